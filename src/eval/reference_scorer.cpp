#include "eval/reference_scorer.h"

#include <llama.h>

#include <algorithm>
#include <thread>

#include "engines/chat_template.h"
#include "engines/llama_backend.h"
#include "engines/tokenize.h"
#include "util/log_softmax.h"

namespace calm {

ReferenceScorer::ReferenceScorer(Options options) : options_(std::move(options)) {
  ensure_llama_backend();
  take_llama_errors();
  llama_model_params mparams = llama_model_default_params();
  model_ = llama_model_load_from_file(options_.gguf_path.c_str(), mparams);
  if (!model_) {
    throw EngineError(EngineError::Kind::kUnavailable,
                      "cannot load GGUF file " + options_.gguf_path + ": " + take_llama_errors());
  }
  const int threads = options_.threads > 0
                          ? options_.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  llama_context_params cparams = llama_context_default_params();
  cparams.n_ctx = static_cast<uint32_t>(options_.context);
  cparams.n_batch = static_cast<uint32_t>(options_.context);
  cparams.n_ubatch = std::min<uint32_t>(cparams.n_batch, 512);
  cparams.n_threads = threads;
  cparams.n_threads_batch = threads;
  cparams.no_perf = true;
  ctx_ = llama_init_from_model(model_, cparams);
  if (!ctx_) {
    llama_model_free(model_);
    throw EngineError(
        EngineError::Kind::kUnavailable,
        "cannot create a context for " + options_.gguf_path + ": " + take_llama_errors());
  }
}

ReferenceScorer::~ReferenceScorer() {
  if (ctx_) llama_free(ctx_);
  if (model_) llama_model_free(model_);
}

ReferenceScorer::Score ReferenceScorer::score(const std::vector<ChatMessage>& messages,
                                              const std::string& reference) {
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  return score_tokens(tokenize(vocab, apply_chat_template(model_, messages), true), reference);
}

ReferenceScorer::Score ReferenceScorer::score_prompt(const std::string& prompt,
                                                     const std::string& reference) {
  return score_tokens(tokenize(llama_model_get_vocab(model_), prompt, false), reference);
}

ReferenceScorer::Score ReferenceScorer::score_tokens(const std::vector<int32_t>& prompt,
                                                     const std::string& reference) {
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  // The reference continues the prompt: no BOS, no control tokens.
  const std::vector<llama_token> answer = tokenize(vocab, reference, false, false);
  if (answer.empty()) {
    throw EngineError(EngineError::Kind::kBadRequest, "the reference answer has no tokens");
  }
  std::vector<llama_token> tokens(prompt.begin(), prompt.end());
  tokens.insert(tokens.end(), answer.begin(), answer.end());
  if (prompt.empty() || tokens.size() > static_cast<size_t>(options_.context)) {
    throw EngineError(EngineError::Kind::kContextOverflow,
                      "prompt (" + std::to_string(prompt.size()) + " tokens) and reference (" +
                          std::to_string(answer.size()) + ") do not fit the context of " +
                          std::to_string(options_.context));
  }

  std::lock_guard lock(mutex_);
  llama_memory_clear(llama_get_memory(ctx_), true);
  llama_batch batch = llama_batch_init(static_cast<int32_t>(tokens.size()), 0, 1);
  const size_t first_scored = prompt.size() - 1;  // its logits predict answer[0]
  for (size_t i = 0; i < tokens.size(); ++i) {
    batch.token[i] = tokens[i];
    batch.pos[i] = static_cast<llama_pos>(i);
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = i >= first_scored && i + 1 < tokens.size();
  }
  batch.n_tokens = static_cast<int32_t>(tokens.size());
  const int32_t rc = llama_decode(ctx_, batch);
  if (rc != 0) {
    llama_batch_free(batch);
    throw EngineError(EngineError::Kind::kInternal,
                      "llama_decode failed with code " + std::to_string(rc));
  }
  const size_t n_vocab = static_cast<size_t>(llama_vocab_n_tokens(vocab));
  double sum = 0;
  for (size_t i = first_scored; i + 1 < tokens.size(); ++i) {
    const float* logits = llama_get_logits_ith(ctx_, static_cast<int32_t>(i));
    sum += log_softmax_at(logits, n_vocab, static_cast<size_t>(tokens[i + 1]));
  }
  llama_batch_free(batch);
  Score s;
  s.tokens = static_cast<int>(answer.size());
  s.mean_logprob = sum / static_cast<double>(answer.size());
  return s;
}

}  // namespace calm
