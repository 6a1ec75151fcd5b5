#include "server/openai_sink.h"

namespace calm {
namespace {

using nlohmann::json;

constexpr const char* kJson = "application/json";

std::string dump(const json& body) {
  // Model text is repaired to valid UTF-8 before it gets here; "replace" is
  // the last line of defence so that dump() can never throw mid-response.
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string sse(const json& data) {
  return "data: " + dump(data) + "\n\n";
}

}  // namespace

HttpResponse error_response(const ApiError& error) {
  HttpResponse r{error.status, kJson, {}, dump(error.to_json())};
  if (error.retry_after_s > 0)
    r.headers.emplace_back("Retry-After", std::to_string(error.retry_after_s));
  return r;
}

json OpenAiSink::content_chunk(const std::string& text, const std::string& finish) const {
  if (endpoint_ == Endpoint::kCompletion) return completion_chunk(meta_, text, finish);
  return chat_chunk(meta_, finish.empty() ? json{{"content", text}} : json::object(), finish);
}

void OpenAiSink::started(const PipelineStart& start) {
  started_ = true;
  meta_ = ResponseMeta{start.response_id, start.model, start.created};
  headers_ = {{"x-calm-model", start.model},
              {"x-calm-route", start.route_reason},
              {"x-calm-fleet-version", std::to_string(start.fleet_version)}};
  if (start.local) {
    headers_.emplace_back("x-calm-cache", start.cache_hit ? "hit" : "miss");
    headers_.emplace_back("x-calm-queue-ms",
                          std::to_string(static_cast<long long>(start.queue_ms)));
  }
  if (!stream_) return;
  HttpResponse head{200, "text/event-stream", headers_, ""};
  head.headers.emplace_back("Cache-Control", "no-cache");
  if (endpoint_ == Endpoint::kChat) {
    head.body = sse(chat_chunk(meta_, {{"role", "assistant"}, {"content", ""}}, ""));
  }
  reply_->start(std::move(head), true);
}

void OpenAiSink::delta(const std::string& text) {
  if (stream_ && started_) reply_->write(sse(content_chunk(text, "")));
}

void OpenAiSink::finished(const GenerationResult& result) {
  if (!stream_) {
    const json body = endpoint_ == Endpoint::kChat ? chat_response(meta_, result)
                                                   : completion_response(meta_, result);
    reply_->start(HttpResponse{200, kJson, headers_, dump(body)}, false);
    return;
  }
  std::string tail = sse(content_chunk("", result.finish_reason));
  if (include_usage_) {
    const char* object = endpoint_ == Endpoint::kChat ? "chat.completion.chunk" : "text_completion";
    tail += sse(usage_chunk(meta_, object, result));
  }
  tail += "data: [DONE]\n\n";
  reply_->write(std::move(tail));
  reply_->end();
}

void OpenAiSink::failed(const ApiError& error) {
  if (stream_ && started_) {
    // An error after the headers went out: OpenAI's clients raise on an
    // event that carries an `error` object.
    reply_->write(sse(error.to_json()) + "data: [DONE]\n\n");
    reply_->end();
    return;
  }
  reply_->start(error_response(error), false);
}

}  // namespace calm
