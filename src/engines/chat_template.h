// Turning chat messages into the prompt text a model was trained on.
#pragma once

#include <string>
#include <vector>

#include "engines/engine.h"

struct llama_model;

namespace calm {

// Applies the model's own chat template (tokenizer.chat_template in the GGUF,
// matched by llama.cpp against the templates it knows) and adds the
// assistant's turn opening. When the model has no template, or llama.cpp does
// not recognise it, falls back to a plain transcript:
//   system: …\nuser: …\nassistant:
// Thread-safe (reads the model only).
std::string apply_chat_template(const llama_model* model, const std::vector<ChatMessage>& messages);

// The plain fallback alone (exposed for tests).
std::string plain_chat_prompt(const std::vector<ChatMessage>& messages);

}  // namespace calm
