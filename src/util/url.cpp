// parse_url: see url.h.
#include "util/url.h"

#include <arpa/inet.h>

#include <charconv>
#include <string_view>
#include <system_error>

namespace calm {
namespace {

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

}  // namespace

std::string Url::authority() const {
  return (ipv6() ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Url::origin() const {
  return scheme + "://" + authority();
}

Url parse_url(const std::string& text) {
  const auto bad = [&](const std::string& why) -> UrlError {
    return UrlError("URL '" + text + "': " + why);
  };
  for (const char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '\x7f') {
      throw bad("contains a space or a control character");
    }
  }
  const size_t scheme_end = text.find("://");
  if (scheme_end == std::string::npos) {
    throw bad("has no scheme; write it as http://host:port or https://host:port");
  }
  Url url;
  url.scheme = lowercase(std::string_view(text).substr(0, scheme_end));
  if (url.scheme != "http" && url.scheme != "https") {
    throw bad("unsupported scheme '" + url.scheme + "://' (only http:// and https://)");
  }
  url.port = url.tls() ? 443 : 80;

  const std::string rest = text.substr(scheme_end + 3);
  if (rest.find_first_of("?#") != std::string::npos) throw bad("may not have a query or fragment");
  const size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  url.path = slash == std::string::npos ? "" : rest.substr(slash);
  if (authority.find('@') != std::string::npos) {
    throw bad("credentials in the URL are not supported; give an api_key instead");
  }

  std::string port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {  // IPv6 literal: [::1]:8080
    const size_t close = authority.find(']');
    if (close == std::string::npos) throw bad("has an unclosed '[' in its host");
    url.host = authority.substr(1, close - 1);
    in6_addr address{};
    if (::inet_pton(AF_INET6, url.host.c_str(), &address) != 1) {
      throw bad("'[" + url.host + "]' is not an IPv6 address");
    }
    const std::string after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') {
      throw bad("unexpected '" + after + "' after the IPv6 address");
    }
    has_port = !after.empty();
    if (has_port) port_text = after.substr(1);
  } else {
    const size_t colon = authority.find(':');
    if (colon != std::string::npos && authority.find(':', colon + 1) != std::string::npos) {
      throw bad("an IPv6 address goes in brackets, e.g. http://[::1]:8080");
    }
    url.host = authority.substr(0, colon);
    has_port = colon != std::string::npos;
    if (has_port) port_text = authority.substr(colon + 1);
    if (url.host.empty()) throw bad("has no host");
    for (const char c : url.host) {
      if (!is_host_char(c)) {
        throw bad(std::string("has a bad character '") + c +
                  "' in its host (an IPv6 address goes in brackets: [::1])");
      }
    }
  }
  if (url.host.empty()) throw bad("has no host");
  if (has_port) {
    int port = 0;
    const auto parsed =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || parsed.ec != std::errc() ||
        parsed.ptr != port_text.data() + port_text.size() || port < 1 || port > 65535) {
      throw bad("has a bad port '" + port_text + "' (a number from 1 to 65535)");
    }
    url.port = port;
  }
  return url;
}

std::string openai_base_path(const std::string& path) {
  std::string out = path;
  while (!out.empty() && out.back() == '/') out.pop_back();
  if (out.size() >= 3 && out.compare(out.size() - 3, 3, "/v1") == 0) out.resize(out.size() - 3);
  while (!out.empty() && out.back() == '/') out.pop_back();
  return out;
}

bool is_postgres_url(const std::string& text) {
  return text.rfind("postgresql://", 0) == 0 || text.rfind("postgres://", 0) == 0;
}

}  // namespace calm
