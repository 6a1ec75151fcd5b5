// make_http_client, without_secret: see http_client.h.
#include "engines/http_client.h"

namespace calm {

std::unique_ptr<httplib::ClientImpl> make_http_client(const Url& url,
                                                      const HttpClientSettings& settings) {
  std::unique_ptr<httplib::ClientImpl> client;
  if (url.tls()) {
    auto tls = std::make_unique<httplib::SSLClient>(url.host, url.port);
    tls->enable_server_certificate_verification(settings.tls_verify);
    if (!settings.ca_file.empty()) tls->set_ca_cert_path(settings.ca_file);
    client = std::move(tls);
  } else {
    client = std::make_unique<httplib::ClientImpl>(url.host, url.port);
  }
  client->set_connection_timeout(settings.connect_timeout);
  client->set_read_timeout(settings.read_timeout);
  client->set_write_timeout(settings.read_timeout);
  client->set_keep_alive(settings.keep_alive);
  client->set_tcp_nodelay(true);  // SSE chunks are small; don't hold them back
  if (!settings.api_key.empty()) client->set_bearer_token_auth(settings.api_key);
  return client;
}

std::string without_secret(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
    text.replace(at, secret.size(), "[api_key]");
  }
  return text;
}

}  // namespace calm
