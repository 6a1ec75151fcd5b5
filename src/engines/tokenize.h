// Text to llama.cpp tokens, shared by the engine and the reference scorer.
#pragma once

#include <llama.h>

#include <string>
#include <vector>

namespace calm {

// add_special: the model's BOS (for a prompt's start; not for a continuation).
// parse_special: read control-token text such as <|im_start|> as those tokens
// (for a chat template's output; never for user text). Throws EngineError
// (kBadRequest) when the text is too long to tokenize.
std::vector<llama_token> tokenize(const llama_vocab* vocab, const std::string& text,
                                  bool parse_special, bool add_special = true);

}  // namespace calm
