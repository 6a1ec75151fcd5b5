// API keys: the auth: section of the fleet file and the check in front of
// every endpoint (auth/api_keys.h), with a clock the test moves.
#include "auth/api_keys.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/fleet_config.h"

namespace calm {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// SHA-256 of "sk-alice" and of "sk-root", as `calm hash-key` prints them.
const std::string kAlice = sha256_hex("sk-alice");
const std::string kRoot = sha256_hex("sk-root");

class FakeClock {
 public:
  ApiKeys::Now now() {
    return [this] { return t_; };
  }
  void advance(std::chrono::milliseconds d) { t_ += d; }

 private:
  ApiKeys::Clock::time_point t_{};
};

AuthConfig two_keys(int rpm = 0, int in_flight = 0) {
  AuthConfig auth;
  auth.keys.push_back({"alice", kAlice, KeyScope::kInference, rpm, in_flight});
  auth.keys.push_back({"root", kRoot, KeyScope::kAdmin, 0, 0});
  return auth;
}

TEST(Sha256Hex, MatchesTheKnownDigestOfABC) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(NewApiKey, IsRandomAndPrefixed) {
  const std::string a = new_api_key(), b = new_api_key();
  EXPECT_EQ(a.rfind("calm-", 0), 0u);
  EXPECT_EQ(a.size(), 5u + 48u);
  EXPECT_NE(a, b);
}

TEST(ApiKeys, WithoutKeysEveryEndpointIsOpen) {
  ApiKeys keys(AuthConfig{});
  EXPECT_FALSE(keys.enabled());
  EXPECT_TRUE(keys.admit("reload", std::nullopt).allowed());
  EXPECT_TRUE(keys.admit("chat", std::nullopt).allowed());
}

TEST(ApiKeys, PublicEndpointNeedsNoKey) {
  ApiKeys keys(two_keys());
  EXPECT_TRUE(keys.admit("health", std::nullopt).allowed());
}

TEST(ApiKeys, MissingKeyIs401) {
  ApiKeys keys(two_keys());
  const auto d = keys.admit("chat", std::nullopt);
  EXPECT_EQ(d.status, 401);
  EXPECT_EQ(d.code, "invalid_api_key");
  EXPECT_EQ(keys.admit("chat", std::string("Basic c2stYWxpY2U=")).status, 401);
  EXPECT_EQ(keys.admit("chat", std::string("Bearer")).status, 401);
  EXPECT_EQ(keys.admit("chat", std::string("Bearer   ")).status, 401);
}

TEST(ApiKeys, WrongKeyIs401AndNeverEchoesIt) {
  ApiKeys keys(two_keys());
  const auto d = keys.admit("chat", std::string("Bearer sk-mallory"));
  EXPECT_EQ(d.status, 401);
  EXPECT_EQ(d.message.find("sk-mallory"), std::string::npos) << d.message;
}

TEST(ApiKeys, RightKeyIsAllowedWithAnySchemeCaseAndSpaces) {
  ApiKeys keys(two_keys());
  EXPECT_TRUE(keys.admit("chat", std::string("Bearer sk-alice")).allowed());
  EXPECT_TRUE(keys.admit("chat", std::string("bearer  sk-alice ")).allowed());
}

TEST(ApiKeys, InferenceKeyOnAnAdminEndpointIs403AndAdminKeyMayCallIt) {
  ApiKeys keys(two_keys());
  const auto d = keys.admit("reload", std::string("Bearer sk-alice"));
  EXPECT_EQ(d.status, 403);
  EXPECT_EQ(d.code, "insufficient_scope");
  EXPECT_TRUE(keys.admit("reload", std::string("Bearer sk-root")).allowed());
  EXPECT_TRUE(keys.admit("chat", std::string("Bearer sk-root")).allowed());
}

TEST(ApiKeys, RequestsPerMinuteAreATokenBucketAnswered429WithRetryAfter) {
  FakeClock clock;
  ApiKeys keys(two_keys(/*rpm=*/2), clock.now());
  const std::string alice = "Bearer sk-alice";
  EXPECT_TRUE(keys.admit("chat", alice).allowed());
  EXPECT_TRUE(keys.admit("chat", alice).allowed());
  const auto over = keys.admit("chat", alice);
  EXPECT_EQ(over.status, 429);
  EXPECT_EQ(over.code, "rate_limit_exceeded");
  EXPECT_EQ(over.retry_after_s, 30);  // 2 a minute: one more every 30 s
  clock.advance(29s);
  EXPECT_EQ(keys.admit("chat", alice).retry_after_s, 1);
  clock.advance(1s);
  EXPECT_TRUE(keys.admit("chat", alice).allowed());
  // Another key has its own bucket.
  EXPECT_TRUE(keys.admit("chat", std::string("Bearer sk-root")).allowed());
}

TEST(ApiKeys, InFlightPlacesAreHeldByPermitsUntilTheyEnd) {
  ApiKeys keys(two_keys(/*rpm=*/0, /*in_flight=*/1));
  auto first = keys.admit("chat", std::string("Bearer sk-alice"));
  ASSERT_TRUE(first.allowed());
  ASSERT_TRUE(first.permit);
  EXPECT_EQ(first.permit->key_name(), "alice");
  const auto second = keys.admit("chat", std::string("Bearer sk-alice"));
  EXPECT_EQ(second.status, 429);
  EXPECT_EQ(second.retry_after_s, 1);
  first.permit.reset();  // the first answer ended
  EXPECT_TRUE(keys.admit("chat", std::string("Bearer sk-alice")).allowed());
}

TEST(ApiKeys, AReloadKeepsAStayingKeysCountsAndDropsARemovedKey) {
  FakeClock clock;
  ApiKeys keys(two_keys(/*rpm=*/1, /*in_flight=*/1), clock.now());
  auto held = keys.admit("chat", std::string("Bearer sk-alice"));
  ASSERT_TRUE(held.allowed());
  AuthConfig next;
  next.keys.push_back({"alice", kAlice, KeyScope::kInference, 1, 1});
  keys.update(next);
  EXPECT_EQ(keys.admit("chat", std::string("Bearer sk-alice")).status, 429);  // still in flight
  held.permit.reset();
  EXPECT_EQ(keys.admit("chat", std::string("Bearer sk-alice")).status, 429);  // bucket spent
  EXPECT_EQ(keys.admit("chat", std::string("Bearer sk-root")).status, 401);   // removed
}

TEST(LoopbackHost, KnowsLoopbackFromEveryOtherAddress) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"})
    EXPECT_TRUE(is_loopback_host(host)) << host;
  for (const char* host : {"0.0.0.0", "::", "", "192.168.1.2", "10.0.0.1", "example.org"})
    EXPECT_FALSE(is_loopback_host(host)) << host;
}

TEST(ExposureRefusal, ANonLoopbackHostNeedsKeysOrInsecure) {
  const auto refusal = exposure_refusal("0.0.0.0", AuthConfig{}, false);
  ASSERT_TRUE(refusal);
  EXPECT_NE(refusal->find("--insecure"), std::string::npos) << *refusal;
  EXPECT_FALSE(exposure_refusal("0.0.0.0", AuthConfig{}, true));
  EXPECT_FALSE(exposure_refusal("0.0.0.0", two_keys(), false));
  EXPECT_FALSE(exposure_refusal("127.0.0.1", AuthConfig{}, false));
}

class AuthConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("calm-auth-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "a.gguf") << "x";
  }
  void TearDown() override { fs::remove_all(dir_); }

  FleetConfig parse(const std::string& auth_yaml) {
    return parse_fleet_config("models:\n  - id: m\n    gguf: a.gguf\n" + auth_yaml, "fleet.yaml",
                              dir_);
  }
  std::string error_of(const std::string& auth_yaml) {
    try {
      parse(auth_yaml);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

TEST_F(AuthConfigTest, ReadsKeysFromTheFleetFileAndAKeysFile) {
  std::ofstream(dir_ / "keys.yaml")
      << "keys:\n  - name: root\n    sha256: " << kRoot << "\n    scope: admin\n";
  const FleetConfig c = parse(
      "auth:\n  keys_file: keys.yaml\n  keys:\n    - name: alice\n"
      "      sha256: " +
      kAlice + "\n      requests_per_minute: 60\n      max_in_flight: 2\n");
  ASSERT_EQ(c.auth.keys.size(), 2u);
  EXPECT_EQ(c.auth.keys[0].name, "alice");
  EXPECT_EQ(c.auth.keys[0].scope, KeyScope::kInference);
  EXPECT_EQ(c.auth.keys[0].requests_per_minute, 60);
  EXPECT_EQ(c.auth.keys[0].max_in_flight, 2);
  EXPECT_EQ(c.auth.keys[1].name, "root");
  EXPECT_EQ(c.auth.keys[1].scope, KeyScope::kAdmin);
  EXPECT_EQ(c.auth.public_endpoints, std::vector<std::string>{"health"});
}

TEST_F(AuthConfigTest, NoAuthSectionMeansNoKeys) {
  EXPECT_FALSE(parse("").auth.enabled());
}

TEST_F(AuthConfigTest, APlainKeyIsRefusedNamingTheLineAndSayingWhy) {
  const std::string e = error_of("auth:\n  keys:\n    - name: a\n      key: sk-secret\n");
  EXPECT_NE(e.find("fleet.yaml:7: auth.keys[0].key: keys are kept hashed"), std::string::npos) << e;
  EXPECT_EQ(e.find("sk-secret"), std::string::npos) << e;
}

TEST_F(AuthConfigTest, ABadDigestIsRefused) {
  const std::string e = error_of("auth:\n  keys:\n    - name: a\n      sha256: abc\n");
  EXPECT_NE(e.find("auth.keys[0].sha256: expected 64 hexadecimal digits"), std::string::npos) << e;
}

TEST_F(AuthConfigTest, DuplicateNamesAndDigestsAreRefused) {
  const std::string key = "      sha256: " + kAlice + "\n";
  EXPECT_NE(error_of("auth:\n  keys:\n    - name: a\n" + key +
                     "    - name: a\n      sha256: " + kRoot + "\n")
                .find("auth.keys[1].name: duplicate key name 'a'"),
            std::string::npos);
  EXPECT_NE(error_of("auth:\n  keys:\n    - name: a\n" + key + "    - name: b\n" + key)
                .find("auth.keys[1].sha256: the same key is listed twice"),
            std::string::npos);
}

TEST_F(AuthConfigTest, UnknownScopeAndEndpointAreRefused) {
  EXPECT_NE(
      error_of("auth:\n  keys:\n    - name: a\n      sha256: " + kAlice + "\n      scope: god\n")
          .find("auth.keys[0].scope: must be one of inference, admin"),
      std::string::npos);
  EXPECT_NE(error_of("auth:\n  public: [helth]\n").find("auth.public: unknown endpoint 'helth'"),
            std::string::npos);
  EXPECT_NE(error_of("auth:\n  public: [health, metrics]\n")
                .find("auth.admin: 'metrics' cannot be both public and admin"),
            std::string::npos);
}

TEST_F(AuthConfigTest, AMissingOrBrokenKeysFileNamesItself) {
  EXPECT_NE(error_of("auth:\n  keys_file: none.yaml\n").find("auth.keys_file: cannot open"),
            std::string::npos);
  std::ofstream(dir_ / "bad.yaml")
      << "keys:\n  - name: a\n    sha256: " << kAlice << "\n    colour: red\n";
  const std::string e = error_of("auth:\n  keys_file: bad.yaml\n");
  EXPECT_NE(e.find("bad.yaml:4: keys[0].colour: unknown field"), std::string::npos) << e;
}

}  // namespace
}  // namespace calm
