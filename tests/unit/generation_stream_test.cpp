// GenerationStream: the channel between an engine and its consumer, with the
// listener (no blocking consumer) and the cancel callback (no polling producer).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engines/engine.h"

namespace calm {
namespace {

TEST(GenerationStream, ListenerDrainsEveryDeltaThenTheFinalEventOnce) {
  GenerationStream stream;
  std::vector<std::string> seen;
  stream.push_delta("early");  // before the listener: it is called at once
  stream.set_listener(
      [&] {
        while (auto event = stream.try_next()) {
          if (auto* d = std::get_if<GenerationStream::Delta>(&*event)) seen.push_back(d->text);
          if (std::holds_alternative<GenerationResult>(*event)) seen.push_back("end");
        }
      },
      /*final_only=*/false);
  stream.push_delta("late");
  GenerationResult result;
  result.finish_reason = "stop";
  stream.finish(result);
  EXPECT_EQ(seen, (std::vector<std::string>{"early", "late", "end"}));
  EXPECT_FALSE(stream.try_next().has_value());  // the final event is returned once
}

TEST(GenerationStream, FinalOnlyListenerIsNotCalledPerDelta) {
  GenerationStream stream;
  int calls = 0;
  stream.set_listener([&] { ++calls; }, /*final_only=*/true);
  stream.push_delta("a");
  stream.push_delta("b");
  EXPECT_EQ(calls, 0);
  stream.fail(EngineError(EngineError::Kind::kInternal, "boom"));
  EXPECT_EQ(calls, 1);
}

TEST(GenerationStream, CancelCallbackRunsOnceAndAtOnceIfAlreadyCancelled) {
  GenerationStream stream;
  int calls = 0;
  stream.set_on_cancel([&] { ++calls; });
  stream.cancel();
  stream.cancel();
  EXPECT_EQ(calls, 1);

  GenerationStream cancelled;
  cancelled.cancel();
  int late = 0;
  cancelled.set_on_cancel([&] { ++late; });
  EXPECT_EQ(late, 1);
}

}  // namespace
}  // namespace calm
