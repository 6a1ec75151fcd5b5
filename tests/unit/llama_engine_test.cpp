// LlamaEngine against real tiny GGUF files and the real llama.cpp.
#include "engines/llama_engine.h"

#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engines/chat_template.h"
#include "support/test_env.h"
#include "util/utf8.h"

namespace calm {
namespace {

using namespace std::chrono_literals;

LlamaEngine::Options options(int parallel = 1, int context = 256) {
  return {.id = "tiny",
          .gguf_path = testing::test_model("tiny-chatml.gguf"),
          .context = context,
          .parallel = parallel,
          .threads = 2,
          .batch = 512,
          .gpu_layers = 0};
}

GenerationRequest chat(const std::string& text, int max_tokens, uint32_t seed = 7) {
  GenerationRequest r;
  r.messages = {{"user", text}};
  r.sampling.max_tokens = max_tokens;
  r.sampling.seed = seed;
  r.sampling.ignore_eos = true;
  return r;
}

// Waits (bounded) until the engine reports no busy slot.
bool wait_idle(const LlamaEngine& engine) {
  for (int i = 0; i < 3000; ++i) {
    if (engine.stats().slots_busy == 0) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(LlamaEngine, GeneratesExactlyMaxTokensWithLengthFinish) {
  LlamaEngine engine(options());
  engine.load();
  const GenerationResult r = engine.submit(chat("hello there", 12))->wait();
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.completion_tokens, 12);
  EXPECT_EQ(r.prompt_tokens,
            static_cast<int>(engine.tokenize_request(chat("hello there", 1)).size()));
  ASSERT_EQ(r.token_logprobs.size(), 12u);
  for (float lp : r.token_logprobs) EXPECT_LE(lp, 0.0f);
  EXPECT_TRUE(is_valid_utf8(r.text));
}

TEST(LlamaEngine, SameSeedGivesSameText) {
  LlamaEngine engine(options());
  engine.load();
  const auto a = engine.submit(chat("seeded", 16, 99))->wait();
  const auto b = engine.submit(chat("seeded", 16, 99))->wait();
  EXPECT_EQ(a.text, b.text);
  // The second prompt is read from the first's kept KV cache, in a batch of
  // another shape, so its float sums may round differently in the last bits.
  ASSERT_EQ(a.token_logprobs.size(), b.token_logprobs.size());
  for (size_t i = 0; i < a.token_logprobs.size(); ++i) {
    EXPECT_NEAR(a.token_logprobs[i], b.token_logprobs[i], 1e-3) << "token " << i;
  }
}

TEST(LlamaEngine, StreamedDeltasAreValidUtf8AndAddUpToTheText) {
  LlamaEngine engine(options());
  engine.load();
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    auto stream = engine.submit(chat("bytes please", 48, seed));
    std::string joined;
    while (true) {
      auto event = stream->next(5s);
      ASSERT_TRUE(event.has_value());
      if (auto* d = std::get_if<GenerationStream::Delta>(&*event)) {
        EXPECT_TRUE(is_valid_utf8(d->text));
        joined += d->text;
        continue;
      }
      ASSERT_TRUE(std::holds_alternative<GenerationResult>(*event));
      EXPECT_EQ(std::get<GenerationResult>(*event).text, joined);
      break;
    }
  }
}

TEST(LlamaEngine, ParallelRequestsAreAllAnswered) {
  LlamaEngine engine(options(/*parallel=*/4));
  engine.load();
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (int i = 0; i < 12; ++i)
    streams.push_back(engine.submit(chat("req " + std::to_string(i), 10, i)));
  for (auto& s : streams) {
    const auto r = s->wait();
    EXPECT_EQ(r.completion_tokens, 10);
  }
  EXPECT_EQ(engine.stats().completed, 12u);
  EXPECT_EQ(engine.stats().slots_busy, 0);
}

TEST(LlamaEngine, BatchedResultEqualsSoloResult) {
  // A request decoded beside others must give the same tokens as alone
  // (greedy), or batching would change answers.
  LlamaEngine solo(options(1));
  solo.load();
  GenerationRequest greedy = chat("same answer", 12);
  greedy.sampling.temperature = 0;
  const auto alone = solo.submit(greedy)->wait();
  solo.unload();

  LlamaEngine batched(options(3));
  batched.load();
  auto other1 = batched.submit(chat("noise one", 12, 1));
  auto mine = batched.submit(greedy);
  auto other2 = batched.submit(chat("noise two", 12, 2));
  EXPECT_EQ(mine->wait().text, alone.text);
  other1->wait();
  other2->wait();
}

TEST(LlamaEngine, GreedyDecodingPicksWhatLlamaCppsTopOneSamplerPicks) {
  // Temperature 0 takes calm's own argmax path; top_k 1 goes through
  // llama.cpp's sampler chain (logit bias, top-k, temperature, draw), which
  // can only draw the top token. Both ignore end-of-generation tokens here.
  LlamaEngine engine(options(1));
  engine.load();
  for (const char* prompt : {"greedy one", "greedy two", "a third prompt"}) {
    GenerationRequest greedy = chat(prompt, 24);
    greedy.sampling.temperature = 0;
    GenerationRequest top_one = greedy;
    top_one.sampling.temperature = 1.0f;
    top_one.sampling.top_k = 1;
    const auto a = engine.submit(greedy)->wait();
    const auto b = engine.submit(top_one)->wait();
    EXPECT_EQ(a.completion_tokens, 24);
    EXPECT_EQ(a.text, b.text) << prompt;
  }
}

TEST(LlamaEngine, PromptLongerThanContextIsRejectedWithTokenCounts) {
  LlamaEngine engine(options(1, /*context=*/32));
  engine.load();
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "word ";
  try {
    engine.submit(chat(long_text, 4));
    FAIL() << "expected a context overflow";
  } catch (const EngineError& e) {
    EXPECT_EQ(e.kind(), EngineError::Kind::kContextOverflow);
    EXPECT_NE(std::string(e.what()).find("context of 32 tokens"), std::string::npos) << e.what();
  }
}

TEST(LlamaEngine, GenerationStopsAtTheContextEnd) {
  LlamaEngine engine(options(1, /*context=*/40));
  engine.load();
  const auto r = engine.submit(chat("hi", 1000))->wait();
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.prompt_tokens + r.completion_tokens, 40);
}

TEST(LlamaEngine, CancelStopsGenerationAndFreesTheSlot) {
  LlamaEngine engine(options(1, 4096));
  engine.load();
  auto stream = engine.submit(chat("go on forever", 4000));
  ASSERT_TRUE(stream->next(5s).has_value());  // it is generating
  stream->cancel();
  const auto r = stream->wait();
  EXPECT_EQ(r.finish_reason, "cancelled");
  EXPECT_LT(r.completion_tokens, 4000);
  EXPECT_TRUE(wait_idle(engine));
  EXPECT_EQ(engine.stats().cancelled, 1u);
  EXPECT_EQ(engine.submit(chat("next", 3))->wait().completion_tokens, 3);
}

TEST(LlamaEngine, StopStringEndsTheAnswerBeforeIt) {
  LlamaEngine engine(options());
  engine.load();
  GenerationRequest greedy = chat("stop test", 40);
  greedy.sampling.temperature = 0;
  const auto full = engine.submit(greedy)->wait();
  ASSERT_GE(full.text.size(), 8u);
  // A stop string taken from the known answer: two ASCII letters past its start.
  std::string stop;
  for (size_t i = 1; i + 2 <= full.text.size() && stop.empty(); ++i) {
    if (std::isalpha(static_cast<unsigned char>(full.text[i])) &&
        std::isalpha(static_cast<unsigned char>(full.text[i + 1]))) {
      stop = full.text.substr(i, 2);
    }
  }
  ASSERT_FALSE(stop.empty()) << "no ASCII pair in: " << full.text;
  greedy.sampling.stop = {stop};
  const auto cut = engine.submit(greedy)->wait();
  EXPECT_EQ(cut.finish_reason, "stop");
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
}

TEST(LlamaEngine, CorruptGgufFailsToLoadWithAClearError) {
  namespace fs = std::filesystem;
  const fs::path bad = fs::temp_directory_path() / "calm-truncated.gguf";
  {
    std::ifstream in(testing::test_model("tiny-chatml.gguf"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(bad, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  LlamaEngine::Options o = options();
  o.gguf_path = bad.string();
  LlamaEngine engine(o);
  try {
    engine.load();
    FAIL() << "a truncated file loaded";
  } catch (const EngineError& e) {
    EXPECT_EQ(e.kind(), EngineError::Kind::kUnavailable);
    EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(engine.loaded());
  EXPECT_THROW(engine.submit(chat("x", 1)), EngineError);
  fs::remove(bad);
}

TEST(LlamaEngine, UnloadFailsWaitingRequests) {
  LlamaEngine engine(options(1, 4096));
  engine.load();
  auto running = engine.submit(chat("long", 4000));
  auto waiting = engine.submit(chat("queued", 4));
  engine.unload();
  EXPECT_THROW(waiting->wait(), EngineError);
  EXPECT_THROW(running->wait(), EngineError);
}

GenerationRequest greedy_prompt(const std::string& text, int max_tokens) {
  GenerationRequest r;
  r.prompt = text;
  r.sampling.temperature = 0;
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

TEST(LlamaEngine, ReusesTheKvCacheOfASharedPromptPrefix) {
  const std::string first = "the cat sat on the mat and looked at the door";
  const std::string second = first + " for a long time";
  LlamaEngine fresh(options());
  fresh.load();
  const auto expected = fresh.submit(greedy_prompt(second, 12))->wait();
  EXPECT_EQ(expected.cached_prompt_tokens, 0);
  fresh.unload();

  LlamaEngine engine(options());
  engine.load();
  const auto r1 = engine.submit(greedy_prompt(first, 4))->wait();
  const auto r2 = engine.submit(greedy_prompt(second, 12))->wait();
  const int first_tokens =
      static_cast<int>(engine.tokenize_request(greedy_prompt(first, 1)).size());
  EXPECT_GE(r2.cached_prompt_tokens, first_tokens - 2);  // the boundary token may merge
  EXPECT_LT(r2.cached_prompt_tokens, r2.prompt_tokens);
  EXPECT_EQ(r2.text, expected.text);  // a cached prefix changes no answer
  // The same prompt again: all but its last token come from the cache.
  const auto r3 = engine.submit(greedy_prompt(second, 12))->wait();
  EXPECT_EQ(r3.cached_prompt_tokens, r3.prompt_tokens - 1);
  EXPECT_EQ(r3.text, expected.text);
  (void)r1;
}

TEST(LlamaEngine, PicksTheSlotWhoseCacheSharesTheLongestPrefix) {
  LlamaEngine engine(options(/*parallel=*/2));
  engine.load();
  const std::string a = "alpha beta gamma delta epsilon zeta eta theta";
  const std::string b = "one two three four five six seven eight nine";
  auto sa = engine.submit(greedy_prompt(a, 2));
  auto sb = engine.submit(greedy_prompt(b, 2));
  sa->wait();
  sb->wait();
  const auto again_b = engine.submit(greedy_prompt(b, 2))->wait();
  EXPECT_EQ(again_b.cached_prompt_tokens, again_b.prompt_tokens - 1);
  const auto again_a = engine.submit(greedy_prompt(a, 2))->wait();
  EXPECT_EQ(again_a.cached_prompt_tokens, again_a.prompt_tokens - 1);
}

// One after the other, so that the second prompt finds the first one's slot
// free: sharing only the BOS token with it, it takes the unused slot instead.
TEST(LlamaEngine, APromptSharingOnlyItsFirstTokenLeavesAnotherSlotsCacheAlone) {
  LlamaEngine engine(options(/*parallel=*/2));
  engine.load();
  const std::string a = "alpha beta gamma delta epsilon zeta eta theta";
  const std::string b = "one two three four five six seven eight nine";
  engine.submit(greedy_prompt(a, 2))->wait();
  engine.submit(greedy_prompt(b, 2))->wait();
  const auto again_a = engine.submit(greedy_prompt(a, 2))->wait();
  EXPECT_EQ(again_a.cached_prompt_tokens, again_a.prompt_tokens - 1);
  const auto again_b = engine.submit(greedy_prompt(b, 2))->wait();
  EXPECT_EQ(again_b.cached_prompt_tokens, again_b.prompt_tokens - 1);
}

TEST(ChatTemplate, PlainFallbackIsATranscript) {
  EXPECT_EQ(plain_chat_prompt({{"system", "be brief"}, {"user", "hi"}}),
            "system: be brief\nuser: hi\nassistant:");
}

TEST(LlamaEngine, ThirdPartyLlama2TokenizerCountsTokens) {
  const std::string path = testing::shared_model();
  if (path.empty()) GTEST_SKIP() << "../shared/models/llama-2-tiny-random.gguf is absent";
  LlamaEngine engine(
      {.id = "llama2", .gguf_path = path, .context = 512, .parallel = 1, .threads = 2});
  engine.load();
  GenerationRequest r;
  r.prompt = "hello world";
  // The Llama-2 SentencePiece vocabulary: <s> ▁hello ▁world
  EXPECT_EQ(engine.tokenize_request(r), (std::vector<int32_t>{1, 22172, 3186}));
  r.sampling.max_tokens = 8;
  r.sampling.ignore_eos = true;
  const auto result = engine.submit(r)->wait();
  EXPECT_EQ(result.prompt_tokens, 3);
  EXPECT_EQ(result.completion_tokens, 8);
  EXPECT_TRUE(is_valid_utf8(result.text));
}

// The charge the model cache uses: llama.cpp's own buffers, checked against
// figures worked out independently from the file and the context's
// parameters (which also checks the breakdown API's layout). No RSS involved.
TEST(LlamaEngine, MemoryFigureMatchesTheContextsOwnParameters) {
  LlamaEngine engine(options(/*parallel=*/2, /*context=*/300));
  EXPECT_FALSE(engine.memory().has_value());  // not loaded
  engine.load();
  const auto m = engine.memory();
  ASSERT_TRUE(m.has_value());
  // tiny-chatml: 2 layers, n_embd 64 (4 heads, 4 KV heads), n_vocab 512, f32
  // weights. Weights: every tensor as stored.
  const uint64_t per_layer = 4 * 64 * 64 + 3 * 64 * 256 + 2 * 64;
  EXPECT_EQ(m->weights, (2ull * 512 * 64 + 2 * per_layer + 64) * sizeof(float));
  // KV cache: 300 tokens per slot, padded to 512 cells each (llama.cpp pads to
  // 256), 2 slots, 2 layers, K and V 64 wide in f16.
  EXPECT_EQ(m->kv, 2ull * 512 * 2 * 2 * 64 * 2);
  // Compute: at least the logits of one micro-batch and the logits buffer.
  EXPECT_GE(m->compute, 512ull * 512 * sizeof(float) + 2 * 512 * sizeof(float));
  EXPECT_EQ(m->total(), m->weights + m->kv + m->compute);
  EXPECT_EQ(m->device, 0u);  // CPU only here: gpu_layers 0
  engine.unload();
  EXPECT_FALSE(engine.memory().has_value());
}

TEST(LlamaEngine, MemoryFigureIsTheSameOnEveryLoad) {
  LlamaEngine first(options());
  first.load();
  const LlamaMemory a = *first.memory();
  first.unload();
  first.load();
  const LlamaMemory b = *first.memory();
  LlamaEngine second(options());
  second.load();  // beside the first: a second copy costs the same
  const LlamaMemory c = *second.memory();
  for (const LlamaMemory* m : {&b, &c}) {
    EXPECT_EQ(m->weights, a.weights);
    EXPECT_EQ(m->kv, a.kv);
    EXPECT_EQ(m->compute, a.compute);
  }
}

}  // namespace
}  // namespace calm
