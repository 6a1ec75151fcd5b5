// NodeClient: the HTTP calls calm makes to a node (nodes/node.h) outside of
// generation: one connection per call (these are rare beside generations: a
// load, an unload, one scrape and one health check a second), the node's
// API key as a Bearer token, and that key cut out of every message
// (engines/http_client.h's without_secret).
//
// Thread-safe: no state changes after construction.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "engines/engine.h"
#include "engines/http_client.h"
#include "nodes/node.h"
#include "util/url.h"

namespace calm {

class NodeClient {
 public:
  // Throws NodeError(kMalformed) for a URL util/url.h refuses. No I/O.
  explicit NodeClient(const NodeOptions& options);

  // GET or POST `path` (under the URL's path, without a trailing "/v1");
  // returns the body of a 2xx answer. Throws NodeError: kUnreachable without
  // an answer, kRefused for another status, carrying the node's own message.
  std::string call(const std::string& method, const std::string& path,
                   const std::string& body = "") const;
  // GET `path` answered 200 within the connect timeout. Never throws.
  EngineHealth check(const std::string& path) const;

  std::string describe() const;               // "node 'ID' (URL)"
  std::string scrub(std::string text) const;  // without the API key

 private:
  std::string id_;
  std::string api_key_;
  std::chrono::milliseconds connect_timeout_;
  Url url_;
  std::string base_path_;  // url_.path without a trailing '/' or '/v1'
  HttpClientSettings settings_;
};

// The node's own message from an OpenAI-style error body, else the body
// itself (cut short: it is for a log line). Safe from any thread.
std::string node_error_message(const std::string& body);

// The value of a Prometheus sample named exactly `name` (with or without
// labels; the first such line) in the text format; nullopt when absent or
// not a number. Safe from any thread.
std::optional<double> prometheus_sample(std::string_view text, std::string_view name);

}  // namespace calm
