// ApiKeys: the check in front of every endpoint, and each key's limits.
//
// clang-format off
//   endpoint public, or no keys configured ──────────────────────────────► allowed (no permit)
//   Authorization: Bearer KEY ──SHA-256──► a known key? ──no──► 401 invalid_api_key
//                                              │ the endpoint's scope? ──no──► 403 insufficient_scope
//                                              │ a free in-flight place? ──no──► 429 + Retry-After
//                                              │ a request left this minute? ──no──► 429 + Retry-After
//                                              └─► allowed: a Permit holds the in-flight place
// clang-format on
//
// - Keys are known by their SHA-256 digest only (config/auth_config.h); the
//   key a client sends is hashed and looked up, and never kept or logged.
// - requests_per_minute is a token bucket: a key may send that many at once,
//   then one every 60/N seconds. max_in_flight counts requests from their
//   admission until their Permit is destroyed (the answer has ended).
// - An admin key may call every endpoint; an inference key all but the
//   admin ones (auth.admin).
//
// Thread-safe. update() (a reload) swaps the keys; a key that keeps its name
// keeps its bucket and its requests in flight.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "config/auth_config.h"

namespace calm {

// The lower-case hex SHA-256 of `text` (what auth.keys[].sha256 holds).
std::string sha256_hex(const std::string& text);
// A new random key ("calm-" and 48 hex digits), from OpenSSL's generator.
std::string new_api_key();

// Whether `host` (a bind address) is this machine's loopback only:
// localhost, 127.0.0.0/8 or ::1.
bool is_loopback_host(const std::string& host);
// Why calm must not listen on `host`, or nullopt: an address other than
// loopback with no API keys, unless the user said --insecure.
std::optional<std::string> exposure_refusal(const std::string& host, const AuthConfig& auth,
                                            bool insecure);

class ApiKeys {
 private:
  struct Flight;  // a key's requests in flight, shared with its permits

 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  explicit ApiKeys(AuthConfig config, Now now = Clock::now);
  ~ApiKeys();

  // Whether any key is configured (without keys every endpoint is open).
  bool enabled() const;
  // The keys of a reloaded fleet file.
  void update(AuthConfig config);

  // Holds one of a key's in-flight places until destroyed.
  class Permit {
   public:
    ~Permit();
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    const std::string& key_name() const { return name_; }

   private:
    friend class ApiKeys;
    Permit(std::shared_ptr<Flight> flight, std::string name)
        : flight_(std::move(flight)), name_(std::move(name)) {}
    std::shared_ptr<Flight> flight_;
    std::string name_;
  };

  struct Decision {
    int status = 0;  // 0: allowed; else 401, 403 or 429
    std::string message;
    std::string code;       // invalid_api_key, insufficient_scope, rate_limit_exceeded
    int retry_after_s = 0;  // 429 only
    // Allowed with a key: holds its in-flight place. Null when allowed
    // without one (a public endpoint, or no keys configured).
    std::shared_ptr<Permit> permit;

    bool allowed() const { return status == 0; }
  };

  // One request for `endpoint` (a name from endpoint_names()) with the value
  // of its Authorization header, if any.
  Decision admit(const std::string& endpoint, const std::optional<std::string>& authorization);

 private:
  struct Key;
  Now now_;
  mutable std::mutex mutex_;
  AuthConfig config_;                                 // guarded by mutex_
  std::map<std::string, std::shared_ptr<Key>> keys_;  // guarded by mutex_; by digest
};

}  // namespace calm
