#include "server/text_keeping_sink.h"

#include <nlohmann/json.hpp>

namespace calm {

void TextKeepingSink::started(const PipelineStart& start) {
  response_id_ = start.response_id;
  model_ = start.model;
  inner_->started(start);
}

void TextKeepingSink::finished(const GenerationResult& result) {
  // Queued before the client has the answer, so a client that reads the
  // store after its answer (or rates it) finds the text there once flushed.
  if (result.finish_reason != "cancelled") {
    store_.record_text(RequestText{.response_id = response_id_,
                                   .model = model_,
                                   .endpoint = endpoint_,
                                   .prompt = prompt_,
                                   .answer = result.text});
  }
  inner_->finished(result);
}

std::string TextKeepingSink::prompt_text(const GenerationRequest& request) {
  if (!request.is_chat()) return *request.prompt;
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& m : request.messages) {
    messages.push_back({{"role", m.role}, {"content", m.content}});
  }
  return messages.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace calm
