// A model's limits on one request (models[].max_prompt_tokens and
// models[].max_tokens_cap), checked where the engine takes the request:
// a request past one is refused with 400 naming the limit and the value,
// never cut short in silence.
//
//   max_tokens_cap     a request that asks for more (max_tokens or
//                      max_completion_tokens) is refused, param naming the
//                      field it used; one that asks nothing gets the API's
//                      default lowered to the cap.
//   max_prompt_tokens  a prompt (after the chat template) of more tokens is
//                      refused with code context_length_exceeded.
#pragma once

#include <string>

#include "engines/engine.h"

namespace calm {

struct GenerationLimits {
  int max_prompt_tokens = 0;  // 0: none
  int max_tokens_cap = 0;     // 0: none
};

// Applies the cap to `sampling` (lowers a default max_tokens). Throws
// EngineError(kBadRequest, param: the field, code: max_tokens_exceeded)
// when the request asked for more than `cap` (0: no cap).
void apply_max_tokens_cap(const std::string& model, int cap, SamplingParams& sampling);

// Throws EngineError(kContextOverflow, param: messages or prompt) when a
// prompt of `prompt_tokens` exceeds `limit`; `setting` names where the limit
// comes from, for the message.
void check_prompt_tokens(const std::string& model, int prompt_tokens, int limit,
                         const std::string& setting, bool chat);

}  // namespace calm
