// Stop strings for streamed text.
//
// OpenAI's `stop` ends the answer at the first occurrence of any stop string
// and leaves the string itself out. When text is streamed, a stop string can
// arrive split over several tokens, so text that might be the start of one is
// held back until it is known not to be.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace calm {

// Not thread-safe; one per generation.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  struct Step {
    std::string release;   // text safe to send now
    bool stopped = false;  // a stop string was found; nothing more may follow
  };

  // Feeds valid UTF-8 text. After a step that stopped, further calls return nothing.
  Step push(std::string_view text);
  // The generation ended for another reason: release what was held back.
  std::string flush();

 private:
  // Bytes at the end of held_ that could begin a stop string, never cutting a
  // UTF-8 character.
  size_t possible_prefix_length() const;

  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace calm
