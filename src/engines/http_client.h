// The one way calm opens an HTTP(S) client to a server it sends work to: a
// remote model's backend (engines/remote_engine.h) and a node whose models
// calm places (nodes/router_node.h). One place decides TLS verification,
// timeouts, keep-alive and the bearer token, so every backend gets the same.
//
// Free functions over values: safe from any thread. A client itself has one
// owner (httplib::ClientImpl is not thread-safe).
#pragma once

#include <httplib.h>

#include <chrono>
#include <memory>
#include <string>

#include "util/url.h"

namespace calm {

struct HttpClientSettings {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds read_timeout{120000};  // also bounds each write
  std::string api_key;                             // sent as "Authorization: Bearer ..." when set
  std::string ca_file;     // https: PEM file of CAs to trust instead of the system's
  bool tls_verify = true;  // https: verify the certificate and the host name
  bool keep_alive = true;
};

// A client for the URL's origin (its path is the caller's to prefix).
std::unique_ptr<httplib::ClientImpl> make_http_client(const Url& url,
                                                      const HttpClientSettings& settings);

// `text` with every occurrence of `secret` replaced by "[api_key]". Servers
// quote the key they were sent in their errors (OpenAI: "Incorrect API key
// provided: sk-..."); calm's messages reach clients, the log, /health and
// /v1/calm/state, so the key is cut out of every one.
std::string without_secret(std::string text, const std::string& secret);

}  // namespace calm
