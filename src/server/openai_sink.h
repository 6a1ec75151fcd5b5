// OpenAiSink: one pipeline request written back in OpenAI's wire format,
// either as one JSON body or as server-sent events (`stream: true`).
//
//   not streamed:  started ─► finished: 200 + chat.completion / text_completion JSON
//                          └► failed:   the error JSON with its status (Retry-After if any)
//   streamed:      started: 200 + the headers, the first chunk (role, for chat)
//                  delta:   one chunk per piece of text
//                  finished: the finish_reason chunk, the usage chunk if asked, [DONE]
//                  failed after started: an `error` event, then [DONE]
//                  failed before started: the error JSON with its status
//
// The pipeline calls it one event at a time (pipeline/request_pipeline.h);
// it writes into the transport's AsyncReply, which never blocks.
#pragma once

#include <memory>
#include <string>

#include "pipeline/request_pipeline.h"
#include "server/http_transport.h"
#include "server/openai_schema.h"

namespace calm {

enum class Endpoint { kChat, kCompletion };

// The response to an ApiError: OpenAI's error JSON, with Retry-After if set.
HttpResponse error_response(const ApiError& error);

class OpenAiSink : public PipelineSink {
 public:
  OpenAiSink(Endpoint endpoint, bool stream, bool include_usage, std::shared_ptr<AsyncReply> reply)
      : endpoint_(endpoint),
        stream_(stream),
        include_usage_(include_usage),
        reply_(std::move(reply)) {}

  // Keeps `held` (an API key's place in flight) until the pipeline lets this
  // sink go, when the request has ended. Call before submitting.
  void keep_until_end(std::shared_ptr<const void> held) { held_ = std::move(held); }

  void started(const PipelineStart& start) override;
  void delta(const std::string& text) override;
  void finished(const GenerationResult& result) override;
  void failed(const ApiError& error) override;

 private:
  nlohmann::json content_chunk(const std::string& text, const std::string& finish) const;

  const Endpoint endpoint_;
  const bool stream_;
  const bool include_usage_;
  std::shared_ptr<AsyncReply> reply_;
  std::shared_ptr<const void> held_;
  // Set by started(); the pipeline serialises the calls, so no lock.
  bool started_ = false;
  ResponseMeta meta_;
  std::vector<std::pair<std::string, std::string>> headers_;
};

}  // namespace calm
