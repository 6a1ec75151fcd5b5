// The judge-free quality metric on a real (tiny, random-weight) GGUF.
#include "eval/reference_scorer.h"

#include <gtest/gtest.h>

#include "engines/llama_engine.h"
#include "support/test_env.h"

namespace calm {
namespace {

ReferenceScorer::Options options() {
  return {.gguf_path = testing::test_model("tiny-plain.gguf"), .context = 256, .threads = 1};
}

TEST(ReferenceScorer, ScoreIsAFiniteMeanLogProbabilityOverTheReferenceTokens) {
  ReferenceScorer scorer(options());
  const auto s = scorer.score_prompt("hello world", " the answer is yes");
  EXPECT_GT(s.tokens, 0);
  EXPECT_LT(s.mean_logprob, 0);
  EXPECT_TRUE(std::isfinite(s.mean_logprob));
  EXPECT_GT(s.perplexity(), 1);
}

TEST(ReferenceScorer, SameInputsGiveTheSameScore) {
  ReferenceScorer scorer(options());
  const auto a = scorer.score({{"user", "what is two plus two"}}, "four");
  const auto b = scorer.score({{"user", "what is two plus two"}}, "four");
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_DOUBLE_EQ(a.mean_logprob, b.mean_logprob);
}

TEST(ReferenceScorer, TheModelsOwnGreedyAnswerScoresAboveAnotherText) {
  // Greedy decoding picks the most likely token at each step, so the model's
  // own answer must be at least as likely to it as an unrelated text.
  LlamaEngine engine({.id = "t",
                      .gguf_path = testing::test_model("tiny-plain.gguf"),
                      .context = 256,
                      .parallel = 1,
                      .threads = 1});
  engine.load();
  GenerationRequest request;
  request.prompt = "hello world";
  request.sampling.temperature = 0;
  request.sampling.max_tokens = 12;
  request.sampling.ignore_eos = true;
  const std::string own = engine.submit(request)->wait().text;
  engine.unload();
  ASSERT_FALSE(own.empty());
  ReferenceScorer scorer(options());
  const auto mine = scorer.score_prompt("hello world", own);
  const auto other = scorer.score_prompt("hello world", " please answer the question now");
  EXPECT_GT(mine.mean_logprob, other.mean_logprob);
}

TEST(ReferenceScorer, EmptyReferenceAndOverflowAreClearErrors) {
  ReferenceScorer scorer(options());
  EXPECT_THROW(scorer.score_prompt("hello", ""), EngineError);
  try {
    scorer.score_prompt(std::string(2000, 'a'), "b");
    FAIL() << "scored past the context";
  } catch (const EngineError& e) {
    EXPECT_EQ(e.kind(), EngineError::Kind::kContextOverflow);
  }
}

TEST(ReferenceScorer, MissingFileIsAClearError) {
  EXPECT_THROW(ReferenceScorer({.gguf_path = "/nonexistent.gguf"}), EngineError);
}

}  // namespace
}  // namespace calm
