#include "config/fleet_config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace calm {
namespace {

namespace fs = std::filesystem;

class FleetConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("calm-config-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "a.gguf") << "x";
  }
  void TearDown() override { fs::remove_all(dir_); }

  FleetConfig parse(const std::string& yaml) {
    return parse_fleet_config(yaml, "fleet.yaml", dir_);
  }

  // The error message for yaml, or "" when it parsed.
  std::string error_of(const std::string& yaml) {
    try {
      parse(yaml);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

TEST_F(FleetConfigTest, ParsesModelsAndServerWithDefaults) {
  const auto c = parse(R"(
server:
  port: 0
models:
  - id: local
    description: small chat
    gguf: a.gguf
    parallel: 4
  - id: far
    url: http://127.0.0.1:9999/
    upstream_model: big
)");
  EXPECT_EQ(c.server.host, "127.0.0.1");
  EXPECT_EQ(c.server.port, 0);
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_TRUE(c.models[0].is_local());
  EXPECT_EQ(c.models[0].gguf_path, (dir_ / "a.gguf").string());
  EXPECT_EQ(c.models[0].parallel, 4);
  EXPECT_EQ(c.models[0].context, 2048);
  EXPECT_FALSE(c.models[1].is_local());
  EXPECT_EQ(c.models[1].base_url, "http://127.0.0.1:9999");
  EXPECT_EQ(c.models[1].upstream_model, "big");
}

TEST_F(FleetConfigTest, MissingGgufNamesFileLineAndField) {
  const std::string e = error_of("models:\n  - id: m\n    gguf: nope.gguf\n");
  EXPECT_NE(e.find("fleet.yaml:3: models[0].gguf: file not found"), std::string::npos) << e;
}

TEST_F(FleetConfigTest, BrokenYamlNamesTheLine) {
  const std::string e = error_of("models:\n  - id: m\n   gguf: [unclosed\n");
  EXPECT_EQ(e.rfind("fleet.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST_F(FleetConfigTest, UnknownFieldIsAnError) {
  const std::string e = error_of("models:\n  - id: m\n    gguf: a.gguf\n    contxt: 4\n");
  EXPECT_NE(e.find("fleet.yaml:4: models[0].contxt: unknown field"), std::string::npos) << e;
}

// Found by fuzz/fleet_config_fuzzer and fuzz/goals_fuzzer: a key that is a
// list or a mapping made yaml-cpp throw its own bad conversion, with neither
// the file nor the field.
TEST_F(FleetConfigTest, AKeyThatIsAListOrAMappingIsAClearError) {
  const std::string e = error_of("models:\n  - id: m\n    gguf: a.gguf\n    [x]: 1\n");
  EXPECT_NE(e.find("fleet.yaml:4: models[0]: a key must be a plain name"), std::string::npos) << e;
  const std::string top = error_of("{a: 1}: 2\nmodels: [{id: m, gguf: a.gguf}]\n");
  EXPECT_NE(top.find("fleet.yaml:1: (top): a key must be a plain name"), std::string::npos) << top;

  std::ofstream(dir_ / "goals.yaml") << "goals: {latency_p95_ms: 1, [a]: 2}\n";
  try {
    load_goals_file((dir_ / "goals.yaml").string());
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("goals.yaml:1: goals: a key must be a plain name"),
              std::string::npos)
        << error.what();
  }
}

TEST_F(FleetConfigTest, OutOfRangeValueIsAnError) {
  const std::string e = error_of("models:\n  - id: m\n    gguf: a.gguf\n    parallel: 0\n");
  EXPECT_NE(e.find("models[0].parallel: must be between 1 and 256"), std::string::npos) << e;
  EXPECT_NE(error_of("models:\n  - id: m\n    gguf: a.gguf\n    context: lots\n")
                .find("expected an integer"),
            std::string::npos);
}

TEST_F(FleetConfigTest, DuplicateIdsAreAnError) {
  const std::string e =
      error_of("models:\n  - id: m\n    gguf: a.gguf\n  - id: m\n    gguf: a.gguf\n");
  EXPECT_NE(e.find("models[1].id: duplicate model id 'm'"), std::string::npos) << e;
}

TEST_F(FleetConfigTest, FallbacksAndFailoverAreReadWithDefaults) {
  const FleetConfig c = parse(
      "models:\n  - id: a\n    gguf: a.gguf\n    fallbacks: [b]\n  - id: b\n    gguf: a.gguf\n");
  EXPECT_EQ(c.models[0].fallbacks, std::vector<std::string>{"b"});
  EXPECT_TRUE(c.models[1].fallbacks.empty());
  EXPECT_EQ(c.failover.max_retries, 2);
  EXPECT_EQ(c.failover.breaker_failures, 3);
  EXPECT_EQ(c.failover.breaker_cooldown, std::chrono::milliseconds(10000));
  const FleetConfig d = parse(
      "failover: {max_retries: 0, breaker_failures: 5, breaker_cooldown_s: 0.5}\n"
      "models:\n  - id: a\n    gguf: a.gguf\n");
  EXPECT_EQ(d.failover.max_retries, 0);
  EXPECT_EQ(d.failover.breaker_failures, 5);
  EXPECT_EQ(d.failover.breaker_cooldown, std::chrono::milliseconds(500));
}

TEST_F(FleetConfigTest, AFallbackMustBeAnotherModelOfTheFleetListedOnce) {
  const std::string two = "  - id: b\n    gguf: a.gguf\n";
  std::string e = error_of("models:\n  - id: a\n    gguf: a.gguf\n    fallbacks: [c]\n" + two);
  EXPECT_NE(e.find("fleet.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("models[0].fallbacks: 'c' is not a model of this fleet"), std::string::npos)
      << e;
  e = error_of("models:\n  - id: a\n    gguf: a.gguf\n    fallbacks: [a]\n" + two);
  EXPECT_NE(e.find("'a' is the model itself"), std::string::npos) << e;
  e = error_of("models:\n  - id: a\n    gguf: a.gguf\n    fallbacks: [b, b]\n" + two);
  EXPECT_NE(e.find("'b' is listed twice"), std::string::npos) << e;
  e = error_of("models:\n  - id: a\n    gguf: a.gguf\n    fallbacks: {x: 1}\n" + two);
  EXPECT_NE(e.find("models[0].fallbacks: expected a list of strings"), std::string::npos) << e;
}

TEST_F(FleetConfigTest, FailoverValuesOutOfRangeAreErrors) {
  const std::string models = "models:\n  - id: a\n    gguf: a.gguf\n";
  std::string e = error_of("failover: {breaker_failures: 0}\n" + models);
  EXPECT_NE(e.find("failover.breaker_failures: must be between 1 and 1000"), std::string::npos)
      << e;
  e = error_of("failover: {max_retries: 99}\n" + models);
  EXPECT_NE(e.find("failover.max_retries: must be between 0 and 16"), std::string::npos) << e;
  e = error_of("failover: {retries: 1}\n" + models);
  EXPECT_NE(e.find("failover"), std::string::npos) << e;
}

TEST_F(FleetConfigTest, ModelNeedsExactlyOneBackend) {
  EXPECT_NE(error_of("models:\n  - id: m\n").find("exactly one backend"), std::string::npos);
  EXPECT_NE(error_of("models:\n  - id: m\n    gguf: a.gguf\n    url: http://x\n")
                .find("exactly one backend"),
            std::string::npos);
  EXPECT_NE(error_of("models:\n  - id: m\n    url: ftp://x\n").find("must start with http://"),
            std::string::npos);
}

TEST_F(FleetConfigTest, HttpsUrlIsAcceptedAndVerifiesByDefault) {
  const FleetConfig c = parse("models:\n  - id: m\n    url: https://api.example.org/v1/\n");
  EXPECT_EQ(c.models[0].base_url, "https://api.example.org/v1");
  EXPECT_TRUE(c.models[0].tls_verify);
  EXPECT_EQ(c.models[0].ca_file, "");
}

TEST_F(FleetConfigTest, BadUrlErrorNamesFileLineFieldAndProblem) {
  const std::string e = error_of("models:\n  - id: m\n    url: http://host:99999\n");
  EXPECT_NE(e.find("fleet.yaml:3"), std::string::npos) << e;
  EXPECT_NE(e.find("models[0].url"), std::string::npos) << e;
  EXPECT_NE(e.find("bad port '99999'"), std::string::npos) << e;
  EXPECT_NE(error_of("models:\n  - id: m\n    url: http://\n").find("has no host"),
            std::string::npos);
  EXPECT_NE(error_of("models:\n  - id: m\n    url: http://[::1\n").find("unclosed"),
            std::string::npos);
}

TEST_F(FleetConfigTest, CaFileResolvesAgainstTheFleetFileAndMustExist) {
  std::ofstream(dir_ / "ca.pem") << "-----BEGIN CERTIFICATE-----\n";
  const FleetConfig c = parse("models:\n  - id: m\n    url: https://h\n    ca_file: ca.pem\n");
  EXPECT_EQ(c.models[0].ca_file, (dir_ / "ca.pem").string());
  const std::string e =
      error_of("models:\n  - id: m\n    url: https://h\n    ca_file: missing.pem\n");
  EXPECT_NE(e.find("fleet.yaml:4"), std::string::npos) << e;
  EXPECT_NE(e.find("models[0].ca_file: file not found"), std::string::npos) << e;
}

TEST_F(FleetConfigTest, TlsVerifyFalseIsRead) {
  const FleetConfig c = parse("models:\n  - id: m\n    url: https://h\n    tls_verify: false\n");
  EXPECT_FALSE(c.models[0].tls_verify);
  EXPECT_NE(error_of("models:\n  - id: m\n    url: https://h\n    tls_verify: maybe\n")
                .find("models[0].tls_verify: expected true or false"),
            std::string::npos);
}

TEST_F(FleetConfigTest, TlsFieldsOnAnHttpUrlAreAnError) {
  std::ofstream(dir_ / "ca.pem") << "x";
  const std::string e = error_of("models:\n  - id: m\n    url: http://h\n    tls_verify: false\n");
  EXPECT_NE(e.find("fleet.yaml:4"), std::string::npos) << e;
  EXPECT_NE(e.find("models[0].tls_verify: applies only to an https:// url"), std::string::npos)
      << e;
  EXPECT_NE(error_of("models:\n  - id: m\n    url: http://h\n    ca_file: ca.pem\n")
                .find("models[0].ca_file: applies only to an https:// url"),
            std::string::npos);
}

TEST_F(FleetConfigTest, TlsVerifyFalseWithCaFileIsAnError) {
  std::ofstream(dir_ / "ca.pem") << "x";
  EXPECT_NE(error_of("models:\n  - id: m\n    url: https://h\n    ca_file: ca.pem\n"
                     "    tls_verify: false\n")
                .find("give one or the other"),
            std::string::npos);
}

TEST_F(FleetConfigTest, EmptyFleetIsAnError) {
  EXPECT_NE(error_of("server:\n  port: 1\n").find("models: is required"), std::string::npos);
  EXPECT_NE(error_of("models: []\n").find("models: is required"), std::string::npos);
  EXPECT_NE(error_of("- just a list\n").find("expected a mapping"), std::string::npos);
}

TEST_F(FleetConfigTest, RouterSectionReadsPolicyAndExamples) {
  std::ofstream(dir_ / "emb.bin") << "x";
  std::ofstream(dir_ / "ex.jsonl")
      << "{\"query\": \"what is 2+2\", \"domain\": \"maths\"}\nplain line\n\n";
  const auto c = parse(R"(
router:
  embeddings: emb.bin
  policy: pro-latency
  lambda: 0.3
  correlation_aware: true
models:
  - id: m
    gguf: a.gguf
    examples: ["solve x"]
    examples_file: ex.jsonl
    tags: [maths]
)");
  ASSERT_TRUE(c.router.has_value());
  EXPECT_EQ(c.router->policy, "pro-latency");
  EXPECT_DOUBLE_EQ(c.router->lambda, 0.3);
  EXPECT_TRUE(c.router->correlation_aware);
  EXPECT_EQ(c.router->embeddings, (dir_ / "emb.bin").string());
  EXPECT_EQ(c.models[0].examples,
            (std::vector<std::string>{"solve x", "what is 2+2", "plain line"}));
  EXPECT_EQ(c.models[0].tags, std::vector<std::string>{"maths"});
}

TEST_F(FleetConfigTest, RoutedFleetNeedsADescriptionOrExamplesForEveryModel) {
  std::ofstream(dir_ / "emb.bin") << "x";
  const std::string e =
      error_of("router:\n  embeddings: emb.bin\nmodels:\n  - id: m\n    gguf: a.gguf\n");
  EXPECT_NE(e.find("models[0].description: a routed fleet needs a description or examples"),
            std::string::npos)
      << e;
}

TEST_F(FleetConfigTest, MissingEmbeddingsFileIsAnError) {
  const std::string e = error_of(
      "router:\n  embeddings: none.bin\nmodels:\n  - id: m\n    description: d\n    gguf: "
      "a.gguf\n");
  EXPECT_NE(e.find("router.embeddings: file not found"), std::string::npos) << e;
}

TEST_F(FleetConfigTest, UnknownPolicyIsAnError) {
  std::ofstream(dir_ / "emb.bin") << "x";
  const std::string e = error_of(
      "router:\n  embeddings: emb.bin\n  policy: fastest\nmodels:\n  - id: m\n    description: d\n "
      "   gguf: a.gguf\n");
  EXPECT_NE(e.find("router.policy: must be pro-latency"), std::string::npos) << e;
}

TEST_F(FleetConfigTest, BrokenExamplesFileNamesItsLine) {
  std::ofstream(dir_ / "bad.jsonl") << "{\"query\": \"ok\"}\n{\"text\": 1}\n";
  const std::string e =
      error_of("models:\n  - id: m\n    gguf: a.gguf\n    examples_file: bad.jsonl\n");
  EXPECT_NE(e.find("bad.jsonl:2: expected {\"query\""), std::string::npos) << e;
}

TEST_F(FleetConfigTest, UnreadableFileIsAnError) {
  EXPECT_THROW(load_fleet_config((dir_ / "missing.yaml").string()), ConfigError);
}

TEST_F(FleetConfigTest, CacheAndSchedulerSectionsAreRead) {
  const FleetConfig config = parse(
      "cache: {budget: 1.5GiB, max_resident: 2, eviction: gdsf, idle_unload_s: 30, prefetch: "
      "true}\n"
      "scheduler: {policy: swap-aware, max_wait_ms: 2500, max_queue: 64, queue_timeout_s: 9}\n"
      "models:\n  - {id: a, gguf: a.gguf, pinned: true, preload: false, max_in_flight: 8}\n");
  EXPECT_EQ(config.cache.budget_bytes, 1610612736u);
  EXPECT_EQ(config.cache.max_resident, 2u);
  EXPECT_EQ(config.cache.eviction, "gdsf");
  EXPECT_EQ(config.cache.idle_unload, std::chrono::milliseconds(30000));
  EXPECT_TRUE(config.cache.prefetch);
  EXPECT_EQ(config.scheduler.policy, "swap-aware");
  EXPECT_EQ(config.scheduler.max_wait, std::chrono::milliseconds(2500));
  EXPECT_EQ(config.scheduler.max_queue, 64u);
  EXPECT_EQ(config.scheduler.queue_timeout, std::chrono::milliseconds(9000));
  EXPECT_TRUE(config.models[0].pinned);
  EXPECT_EQ(config.models[0].preload, std::optional<bool>(false));
  EXPECT_EQ(config.models[0].max_in_flight, 8);
}

TEST_F(FleetConfigTest, WithoutACacheSectionThereIsNoBudget) {
  const FleetConfig config = parse("models:\n  - {id: a, gguf: a.gguf}\n");
  EXPECT_EQ(config.cache.budget_bytes, 0u);
  EXPECT_EQ(config.scheduler.policy, "fifo");
  EXPECT_EQ(config.models[0].preload, std::nullopt);
}

TEST_F(FleetConfigTest, BadCacheAndSchedulerValuesNameTheirField) {
  const std::string models = "models:\n  - {id: a, gguf: a.gguf}\n";
  EXPECT_NE(error_of("cache: {budget: lots}\n" + models).find("fleet.yaml:1: cache.budget:"),
            std::string::npos);
  EXPECT_NE(error_of("cache: {budget: 0}\n" + models).find("cache.budget"), std::string::npos);
  EXPECT_NE(error_of("cache: {eviction: random}\n" + models)
                .find("cache.eviction: must be one of lru, lfu, gdsf"),
            std::string::npos);
  EXPECT_NE(error_of("scheduler: {policy: lifo}\n" + models).find("scheduler.policy"),
            std::string::npos);
  EXPECT_NE(error_of("scheduler: {max_queue: 0}\n" + models).find("scheduler.max_queue"),
            std::string::npos);
  EXPECT_NE(error_of("cache: {budgett: 1GiB}\n" + models).find("cache.budgett: unknown field"),
            std::string::npos);
}

TEST_F(FleetConfigTest, LoopSectionReadsItsGoalsFile) {
  std::ofstream(dir_ / "goals.yaml") << "goals:\n  latency_p95_ms: 800\n  confidence_min: 0.3\n"
                                        "window: 40\ncontroller: {lambda_step: 0.25}\n";
  const FleetConfig config = parse(
      "loop: {period_s: 0.5, goals_file: goals.yaml, knowledge: k.db, energy_meter: cpu-time}\n"
      "models:\n  - {id: a, gguf: a.gguf, inject_delay_ms: 250}\n");
  ASSERT_TRUE(config.loop.has_value());
  EXPECT_EQ(config.loop->period, std::chrono::milliseconds(500));
  EXPECT_EQ(config.loop->goals.latency_p95_ms, std::optional<double>(800));
  EXPECT_EQ(config.loop->goals.confidence_min, std::optional<double>(0.3));
  EXPECT_EQ(config.loop->goals.energy_per_request_j, std::nullopt);
  EXPECT_EQ(config.loop->goals.window, 40u);
  EXPECT_DOUBLE_EQ(config.loop->goals.lambda_step, 0.25);
  EXPECT_EQ(config.loop->knowledge, (dir_ / "k.db").string());
  EXPECT_EQ(config.loop->energy_meter, "cpu-time");
  EXPECT_EQ(config.models[0].inject_delay_ms, 250);
}

TEST_F(FleetConfigTest, BrokenGoalsFileNamesItsFileLineAndField) {
  const std::string models = "models:\n  - {id: a, gguf: a.gguf}\n";
  std::ofstream(dir_ / "bad.yaml") << "goals:\n  latency_p95_ms: fast\n";
  const std::string e1 = error_of("loop: {goals_file: bad.yaml}\n" + models);
  EXPECT_NE(e1.find("loop.goals_file"), std::string::npos) << e1;
  EXPECT_NE(e1.find("bad.yaml:2: goals.latency_p95_ms: expected a number"), std::string::npos)
      << e1;
  std::ofstream(dir_ / "typo.yaml") << "goals:\n  latency_p59_ms: 800\n";
  EXPECT_NE(error_of("loop: {goals_file: typo.yaml}\n" + models)
                .find("goals.latency_p59_ms: unknown field"),
            std::string::npos);
  EXPECT_NE(error_of("loop: {goals_file: missing.yaml}\n" + models).find("cannot open"),
            std::string::npos);
  std::ofstream(dir_ / "conf.yaml") << "goals:\n  confidence_min: 2\n";
  EXPECT_NE(error_of("loop: {goals_file: conf.yaml}\n" + models).find("goals.confidence_min"),
            std::string::npos);
}

TEST(ByteSize, ParsesUnits) {
  EXPECT_EQ(parse_byte_size("1048576"), std::optional<uint64_t>(1048576));
  EXPECT_EQ(parse_byte_size("512MiB"), std::optional<uint64_t>(512ull << 20));
  EXPECT_EQ(parse_byte_size("2 GB"), std::optional<uint64_t>(2000000000ull));
  EXPECT_EQ(parse_byte_size("2 parsecs"), std::nullopt);
  EXPECT_EQ(parse_byte_size("-1GiB"), std::nullopt);
  EXPECT_EQ(parse_byte_size(""), std::nullopt);
}

}  // namespace
}  // namespace calm
