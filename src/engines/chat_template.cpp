#include "engines/chat_template.h"

#include <llama.h>

namespace calm {

std::string plain_chat_prompt(const std::vector<ChatMessage>& messages) {
  std::string out;
  for (const auto& message : messages) out += message.role + ": " + message.content + "\n";
  out += "assistant:";
  return out;
}

std::string apply_chat_template(const llama_model* model,
                                const std::vector<ChatMessage>& messages) {
  const char* tmpl = llama_model_chat_template(model, /*name=*/nullptr);
  if (tmpl == nullptr) return plain_chat_prompt(messages);

  std::vector<llama_chat_message> chat;
  chat.reserve(messages.size());
  size_t total = 0;
  for (const auto& message : messages) {
    chat.push_back({message.role.c_str(), message.content.c_str()});
    total += message.role.size() + message.content.size();
  }
  std::string buf(2 * total + 256, '\0');
  int32_t n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), /*add_ass=*/true,
                                        buf.data(), static_cast<int32_t>(buf.size()));
  if (n < 0) return plain_chat_prompt(messages);  // a template llama.cpp does not know
  if (static_cast<size_t>(n) > buf.size()) {
    buf.resize(static_cast<size_t>(n));
    n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), true, buf.data(),
                                  static_cast<int32_t>(buf.size()));
  }
  buf.resize(static_cast<size_t>(n));
  return buf;
}

}  // namespace calm
