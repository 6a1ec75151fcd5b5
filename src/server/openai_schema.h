// The OpenAI wire format: request bodies in, response bodies and stream
// chunks out. Parsing validates everything a client controls and throws
// ApiError (400) naming the offending field; unknown fields are ignored, as
// OpenAI's own clients send many.
//
// Defaults where the request is silent: temperature 0.8, top_p 0.95,
// top_k 40, a random seed, max_tokens 512 for chat and 16 for the legacy
// completions endpoint (OpenAI's own default there).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "engines/engine.h"
#include "pipeline/api_error.h"

namespace calm {

struct ApiRequest {
  std::string model;  // as the client named it
  GenerationRequest generation;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// The JSON of a request body; throws ApiError (400) when it is not JSON.
nlohmann::json parse_request_body(const std::string& text);

// Both throw ApiError.
ApiRequest parse_chat_request(const nlohmann::json& body);
ApiRequest parse_completion_request(const nlohmann::json& body);

// Identity of one response, shared by all its chunks.
struct ResponseMeta {
  std::string id;  // chatcmpl-… or cmpl-…
  std::string model;
  long long created = 0;  // unix seconds
};

nlohmann::json usage_json(const GenerationResult& result);

nlohmann::json chat_response(const ResponseMeta& meta, const GenerationResult& result);
// A chunk carrying role and/or content; finish_reason empty: null.
nlohmann::json chat_chunk(const ResponseMeta& meta, const nlohmann::json& delta,
                          const std::string& finish_reason);

nlohmann::json completion_response(const ResponseMeta& meta, const GenerationResult& result);
nlohmann::json completion_chunk(const ResponseMeta& meta, const std::string& text,
                                const std::string& finish_reason);

// The last chunk of a stream with include_usage: no choices, only usage.
nlohmann::json usage_chunk(const ResponseMeta& meta, const std::string& object,
                           const GenerationResult& result);

}  // namespace calm
