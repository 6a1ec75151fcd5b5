#include "engines/generation_limits.h"

namespace calm {

void apply_max_tokens_cap(const std::string& model, int cap, SamplingParams& sampling) {
  if (cap <= 0 || sampling.max_tokens <= cap) return;
  if (sampling.max_tokens_field.empty()) {
    // The client asked for nothing: the API's default is ours to lower.
    sampling.max_tokens = cap;
    return;
  }
  throw EngineError(EngineError::Kind::kBadRequest,
                    "'" + sampling.max_tokens_field + "' is " +
                        std::to_string(sampling.max_tokens) + " but model '" + model +
                        "' generates at most " + std::to_string(cap) +
                        " tokens per request (models[].max_tokens_cap)",
                    sampling.max_tokens_field, "max_tokens_exceeded");
}

void check_prompt_tokens(const std::string& model, int prompt_tokens, int limit,
                         const std::string& setting, bool chat) {
  if (limit <= 0 || prompt_tokens <= limit) return;
  throw EngineError(EngineError::Kind::kContextOverflow,
                    "the prompt is " + std::to_string(prompt_tokens) + " tokens but model '" +
                        model + "' accepts at most " + std::to_string(limit) + " prompt tokens (" +
                        setting + ")",
                    chat ? "messages" : "prompt");
}

}  // namespace calm
