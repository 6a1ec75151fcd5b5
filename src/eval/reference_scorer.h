// ReferenceScorer: how likely a model finds a reference answer, the quality
// metric that needs no judge (the evaluation issue).
//
// Teacher-forced: the request's prompt (chat messages through the model's
// own template, exactly as calm serves them) followed by the reference
// answer's tokens, in one pass; the score is the mean natural-log probability
// the model gives each reference token, knowing everything before it. Its
// exp(-mean) is the model's perplexity on the reference: lower is better.
//
// One llama.cpp context of its own, separate from serving. Not thread-safe:
// one caller at a time (score() takes a lock).
#pragma once

#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "engines/engine.h"

struct llama_model;
struct llama_context;

namespace calm {

class ReferenceScorer {
 public:
  struct Options {
    std::string gguf_path;
    int context = 2048;  // prompt + reference tokens, at most
    int threads = 0;     // 0: all cores
  };
  // Loads the model. Throws EngineError(kUnavailable) naming the file.
  explicit ReferenceScorer(Options options);
  ~ReferenceScorer();
  ReferenceScorer(const ReferenceScorer&) = delete;
  ReferenceScorer& operator=(const ReferenceScorer&) = delete;

  struct Score {
    int tokens = 0;           // reference tokens scored
    double mean_logprob = 0;  // natural log, <= 0
    double perplexity() const { return std::exp(-mean_logprob); }
  };
  // Throws EngineError: kBadRequest for an empty reference, kContextOverflow
  // when prompt and reference do not fit the context.
  Score score(const std::vector<ChatMessage>& messages, const std::string& reference);
  // The same after a raw prompt (no chat template).
  Score score_prompt(const std::string& prompt, const std::string& reference);

 private:
  Score score_tokens(const std::vector<int32_t>& prompt, const std::string& reference);

  Options options_;
  llama_model* model_ = nullptr;
  llama_context* ctx_ = nullptr;
  std::mutex mutex_;
};

}  // namespace calm
