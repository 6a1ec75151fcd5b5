// One HTTP exchange of RemoteEngine (remote_engine.h), without the threads:
// the JSON body sent upstream, and RemoteReply, which follows the answer as
// it arrives (status, headers, body bytes): text deltas are pushed to the
// generation's stream as they come, and on_end() says how it ended (a result
// or an EngineError) for the engine to deliver.
// Split from the engine so the wire format reads apart from the lifecycle.
//
// Not thread-safe: a RemoteReply belongs to the worker running its exchange.
#pragma once

#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "engines/engine.h"
#include "engines/openai_stream.h"

namespace calm {

// The body of a streamed chat or completion request for `model`.
nlohmann::json remote_request_body(const GenerationRequest& request, const std::string& model);

// The EngineError an upstream problem becomes: 503 -> kUnavailable, a 4xx
// about context length -> kContextOverflow, anything else -> kUpstream.
// in_stream: it came inside a 2xx stream (its "code" stands in for a status).
EngineError upstream_engine_error(const UpstreamProblem& problem, const std::string& who,
                                  bool in_stream);

// Why an HTTP exchange failed, in words an operator can act on. `tls_verify`
// is the verify result of an SSLServerVerification failure (0 when unknown).
std::string transport_error_text(httplib::Error error, std::chrono::milliseconds connect_timeout,
                                 std::chrono::milliseconds read_timeout, long tls_verify = 0);

// How a generation ended, before it is delivered to its stream: the worker
// returns its connection to the pool first, so that the caller's next
// request finds it there.
using RemoteOutcome = std::variant<GenerationResult, EngineError>;

// Ends the stream with the outcome.
void deliver(GenerationStream& stream, RemoteOutcome outcome);

class RemoteReply {
 public:
  // who: "remote model 'id' at URL", the start of every message.
  RemoteReply(GenerationStream& stream, std::chrono::steady_clock::time_point start,
              std::string who);

  // httplib's response handler and content receiver; false aborts the
  // exchange (error() says why).
  void on_headers(int status, const std::string& content_type);
  bool on_body(std::string_view bytes);

  // The exchange ended without a transport error: how the generation ended.
  RemoteOutcome on_end();

  int status() const { return status_; }
  bool received_anything() const { return status_ != 0; }
  // True once the upstream said the generation is over.
  bool answered() const { return reader_.answered(); }
  // What the upstream gave, "stop" when it ended with [DONE] alone.
  std::string finish_reason() const;
  std::optional<EngineError> error() const;
  GenerationResult result(const std::string& finish_reason) const;

 private:
  bool keep_body(std::string_view bytes);

  GenerationStream& stream_;
  const std::chrono::steady_clock::time_point start_;
  const std::string who_;

  int status_ = 0;
  bool sse_ = false;
  OpenAiStreamReader reader_;
  std::string body_;                  // a non-SSE answer (JSON or an error)
  double first_token_ms_ = 0;         // stays 0 when no text ever came
  std::optional<EngineError> error_;  // a failure found here, not by the reader
};

}  // namespace calm
