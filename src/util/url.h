// The one parser for the base URLs of OpenAI-compatible servers: a remote
// model's `url:` in the fleet file (config/fleet_config.h, checked at load),
// the same URL inside RemoteEngine, and the server `calm bench` replays to.
//
// Accepted: http[s]://host[:port][/path], where host is a name, an IPv4
// address or a bracketed IPv6 literal ([::1]). The scheme is matched without
// regard to case. Refused, each with its own message: no scheme or another
// scheme, credentials (user@host: give an api_key instead), no host, a port
// that is not a number in 1..65535, a query or a fragment (a base URL carries
// neither), and spaces or control characters anywhere.
//
// Free functions over values: safe from any thread.
#pragma once

#include <stdexcept>
#include <string>

namespace calm {

// Why a URL is unusable. what() names the URL and the problem.
class UrlError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct Url {
  std::string scheme;  // "http" or "https", lowercase
  std::string host;    // as given; an IPv6 literal without its brackets
  int port = 80;       // the given port, else 80 (http) or 443 (https)
  std::string path;    // "" or "/..." as given (trailing '/' kept)

  bool tls() const { return scheme == "https"; }
  bool ipv6() const { return host.find(':') != std::string::npos; }
  // "host:port", with brackets around an IPv6 literal.
  std::string authority() const;
  // "scheme://host:port", the form httplib::Client accepts.
  std::string origin() const;
};

// Throws UrlError.
Url parse_url(const std::string& text);

// The path that /v1/... endpoints are appended to: trailing '/' dropped, and
// a trailing "/v1" too, since people paste the OpenAI-style base that already
// ends in /v1. "/proxy/v1/" -> "/proxy"; "/" -> "".
std::string openai_base_path(const std::string& path);

// Whether a knowledge target is a PostgreSQL connection URL
// (postgresql://... or postgres://..., handed to libpq as it is) rather than
// a SQLite file path.
bool is_postgres_url(const std::string& text);

}  // namespace calm
