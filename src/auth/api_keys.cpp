#include "auth/api_keys.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>

namespace calm {
namespace {

std::string hex(const unsigned char* bytes, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 0xf];
  }
  return out;
}

// The token of "Bearer TOKEN" (the scheme in any case), or "" if none.
std::string bearer_token(const std::string& header) {
  const auto start = header.find_first_not_of(" \t");
  if (start == std::string::npos || header.size() - start < 7) return "";
  std::string scheme = header.substr(start, 6);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "bearer" || (header[start + 6] != ' ' && header[start + 6] != '\t')) return "";
  const auto token = header.find_first_not_of(" \t", start + 6);
  if (token == std::string::npos) return "";
  const auto end = header.find_last_not_of(" \t");
  return header.substr(token, end + 1 - token);
}

bool listed(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

std::string sha256_hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL could not compute a SHA-256 digest");
  }
  return hex(digest, size);
}

std::string new_api_key() {
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    throw std::runtime_error("OpenSSL's random generator gave no bytes");
  }
  return "calm-" + hex(bytes, sizeof bytes);
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  std::string bare = host;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') {
    bare = bare.substr(1, bare.size() - 2);
  }
  in6_addr v6{};
  return inet_pton(AF_INET6, bare.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

std::optional<std::string> exposure_refusal(const std::string& host, const AuthConfig& auth,
                                            bool insecure) {
  if (auth.enabled() || insecure || is_loopback_host(host)) return std::nullopt;
  return "refusing to listen on " + (host.empty() ? std::string("every address") : host) +
         " with no API keys: anyone who can reach the port could run the models, reload the "
         "fleet and read its state. Add keys under auth.keys (`calm hash-key --new` makes one), "
         "listen on 127.0.0.1, or pass --insecure (server.insecure: true) to serve openly";
}

struct ApiKeys::Flight {
  std::atomic<int> in_flight{0};
};

ApiKeys::Permit::~Permit() {
  flight_->in_flight.fetch_sub(1);
}

struct ApiKeys::Key {
  ApiKeyConfig config;
  double tokens = 0;  // the bucket: requests it may still send now
  Clock::time_point refilled;
  std::shared_ptr<Flight> flight = std::make_shared<Flight>();
};

ApiKeys::ApiKeys(AuthConfig config, Now now) : now_(std::move(now)) {
  update(std::move(config));
}

ApiKeys::~ApiKeys() = default;

bool ApiKeys::enabled() const {
  std::lock_guard lock(mutex_);
  return config_.enabled();
}

void ApiKeys::update(AuthConfig config) {
  std::lock_guard lock(mutex_);
  std::map<std::string, std::shared_ptr<Key>> by_name;
  for (const auto& [digest, key] : keys_) by_name[key->config.name] = key;
  std::map<std::string, std::shared_ptr<Key>> next;
  const auto now = now_();
  for (const auto& c : config.keys) {
    auto key = std::make_shared<Key>();
    if (const auto it = by_name.find(c.name); it != by_name.end()) {
      key->tokens = it->second->tokens;  // a key that stays keeps its bucket ...
      key->refilled = it->second->refilled;
      key->flight = it->second->flight;  // ... and its requests in flight
    } else {
      key->tokens = c.requests_per_minute;  // a new key starts with a full bucket
      key->refilled = now;
    }
    key->config = c;
    key->tokens = std::min(key->tokens, static_cast<double>(c.requests_per_minute));
    next[c.sha256] = std::move(key);
  }
  keys_ = std::move(next);
  config_ = std::move(config);
}

ApiKeys::Decision ApiKeys::admit(const std::string& endpoint,
                                 const std::optional<std::string>& authorization) {
  Decision decision;
  // Parsed and hashed before the lock: every request passes through here.
  const std::string token = authorization ? bearer_token(*authorization) : "";
  const std::string digest = token.empty() ? "" : sha256_hex(token);
  std::lock_guard lock(mutex_);
  if (!config_.enabled() || listed(config_.public_endpoints, endpoint)) return decision;
  if (token.empty()) {
    decision.status = 401;
    decision.code = "invalid_api_key";
    decision.message = "this endpoint needs an API key: send it as 'Authorization: Bearer KEY'";
    return decision;
  }
  const auto it = keys_.find(digest);
  if (it == keys_.end()) {
    decision.status = 401;
    decision.code = "invalid_api_key";
    decision.message = "the API key is not valid";
    return decision;
  }
  Key& key = *it->second;
  if (key.config.scope != KeyScope::kAdmin && listed(config_.admin_endpoints, endpoint)) {
    decision.status = 403;
    decision.code = "insufficient_scope";
    decision.message = "the key '" + key.config.name + "' may not call the " + endpoint +
                       " endpoint: it needs an admin key";
    return decision;
  }
  if (key.config.max_in_flight > 0 && key.flight->in_flight.load() >= key.config.max_in_flight) {
    decision.status = 429;
    decision.code = "rate_limit_exceeded";
    decision.retry_after_s = 1;
    decision.message = "the key '" + key.config.name + "' already has " +
                       std::to_string(key.config.max_in_flight) +
                       " requests in flight (its max_in_flight)";
    return decision;
  }
  if (const int rpm = key.config.requests_per_minute; rpm > 0) {
    const auto now = now_();
    const double per_second = rpm / 60.0;
    const double elapsed = std::chrono::duration<double>(now - key.refilled).count();
    key.tokens = std::min<double>(rpm, key.tokens + std::max(0.0, elapsed) * per_second);
    key.refilled = now;
    if (key.tokens < 1) {
      decision.status = 429;
      decision.code = "rate_limit_exceeded";
      decision.retry_after_s =
          std::max(1, static_cast<int>(std::ceil((1 - key.tokens) / per_second)));
      decision.message = "the key '" + key.config.name + "' sent its " + std::to_string(rpm) +
                         " requests of this minute (its requests_per_minute)";
      return decision;
    }
    key.tokens -= 1;
  }
  key.flight->in_flight.fetch_add(1);
  decision.permit = std::shared_ptr<Permit>(new Permit(key.flight, key.config.name));
  return decision;
}

}  // namespace calm
