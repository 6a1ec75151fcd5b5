// `calm bench suite` end to end: a pool workload made by `calm bench
// workload --pool`, replayed by the real suite command against real `calm
// serve` children on the tiny test model. Each system completes every
// request with finite energy and quality figures, oracle routing is always
// right, a system whose server cannot start is recorded while the others
// still run, and a bad suite file is exit status 2.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using json = nlohmann::json;

using testing::CliRun;
using testing::run_calm;

bool finite_number(const json& value) {
  return value.is_number() && std::isfinite(value.get<double>());
}

// A suite folder: two tiny models behind a router (the tiny GGUF embeds the
// queries too), a 10-request pool workload over two domains.
class BenchSuite : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(testing::temp_path("suite")).parent_path();
    const std::string model = testing::test_model("tiny-chatml.gguf");
    std::ofstream(dir_ / "fleet.yaml") << "router:\n  embeddings: " << model
                                       << "\nmodels:\n"
                                          "  - id: maths-expert\n"
                                          "    description: algebra and arithmetic\n"
                                          "    gguf: "
                                       << model
                                       << "\n    threads: 1\n"
                                          "  - id: code-expert\n"
                                          "    description: python programming\n"
                                          "    gguf: "
                                       << model << "\n    threads: 1\n";
    std::ofstream(dir_ / "pool.jsonl")
        << R"J({"domain": "maths", "messages": [{"role": "user", "content": "What is 2+2?"}], "reference": "4"}
{"domain": "maths", "messages": [{"role": "user", "content": "Solve x+1=3"}], "reference": "x = 2"}
{"domain": "code", "prompt": "def add(a, b):", "reference": " return a + b", "max_tokens": 4}
{"domain": "code", "messages": [{"role": "user", "content": "Sort a list"}], "reference": "sorted(xs)"}
)J";
    const CliRun made = run_calm(
        {"bench", "workload", "--out", path("workload.jsonl"), "--pool", path("pool.jsonl"),
         "--requests", "10", "--rate", "20", "--max-tokens", "8", "--seed", "3"},
        path("workload.log"), std::chrono::seconds(30));
    ASSERT_EQ(made.code, 0) << made.output;
  }

  // A failed test leaves its folder (suite.json, the servers' logs) to read.
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  void write_suite(const std::string& systems) const {
    std::ofstream(dir_ / "suite.yaml") << "workload: workload.jsonl\n"
                                          "concurrency: 2\n"
                                          "domains:\n"
                                          "  maths: maths-expert\n"
                                          "  code: code-expert\n"
                                          "systems:\n"
                                       << systems;
  }

  json suite_json() const {
    std::ifstream in(dir_ / "out" / "suite.json");
    return json::parse(in);
  }

  std::filesystem::path dir_;
};

TEST_F(BenchSuite, EverySystemCompletesEveryRequestWithFiniteEnergyAndQuality) {
  write_suite(
      "  - name: oracle\n    config: fleet.yaml\n    route: oracle\n    group: bound\n"
      "  - name: routed\n    description: calm routes\n    config: fleet.yaml\n"
      "    route: auto\n");
  const CliRun r = run_calm(
      {"bench", "suite", "--suite", path("suite.yaml"), "--out", path("out"), "--no-progress"},
      path("suite.log"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("oracle"), std::string::npos) << r.output;  // the table

  const json suite = suite_json();
  EXPECT_EQ(suite["workload"]["requests"], 10);
  EXPECT_TRUE(suite["machine"]["cpus"].is_number());
  EXPECT_NE(suite["command"].get<std::string>().find("bench suite"), std::string::npos);
  ASSERT_EQ(suite["systems"].size(), 2u);
  for (const json& system : suite["systems"]) {
    SCOPED_TRACE(system["name"].get<std::string>());
    ASSERT_FALSE(system.contains("error")) << system["error"];
    const json& s = system["summary"];
    EXPECT_EQ(s["requests"], 10);
    EXPECT_EQ(s["completed"], 10);
    EXPECT_EQ(s["errors"], 0);
    for (const char* key : {"latency_mean_ms", "latency_p95_ms", "energy_per_request_j",
                            "confidence_mean", "cache_hit_rate", "peak_rss_bytes"}) {
      EXPECT_TRUE(finite_number(s[key])) << key << " = " << s[key];
    }
    EXPECT_TRUE(s["energy_source"].is_string()) << s["energy_source"];
    const json& all = s["quality"]["all"];
    EXPECT_EQ(all["n"], 10) << all;
    EXPECT_GT(all["tokens"].get<int>(), 0);
    EXPECT_TRUE(finite_number(all["mean_logprob"])) << all;
    EXPECT_LT(all["mean_logprob"].get<double>(), 0);
    EXPECT_TRUE(finite_number(all["perplexity"])) << all;
    EXPECT_EQ(s["unscored"], 0);
    ASSERT_EQ(system["records"].size(), 10u);
    for (const json& record : system["records"]) {
      EXPECT_TRUE(finite_number(record["energy_j"])) << record;
      EXPECT_TRUE(finite_number(record["ref_mean_logprob"])) << record;
      EXPECT_TRUE(record["cache"] == "hit" || record["cache"] == "miss") << record;
    }
    EXPECT_TRUE(std::filesystem::exists(dir_ / "out" / "logs" /
                                        (system["name"].get<std::string>() + ".log")));
    EXPECT_EQ(system["server_exit_status"], 0);  // stopped cleanly: its records were written
  }
  const json& oracle = suite["systems"][0];
  EXPECT_EQ(oracle["group"], "bound");
  EXPECT_EQ(oracle["summary"]["decision_accuracy"], 1.0);
  for (const json& record : oracle["records"]) {
    EXPECT_EQ(record["served_model"], record["domain"].get<std::string>() + "-expert") << record;
  }
  // Both systems served the same (model, request) pairs from the same GGUF:
  // one score each, the same in both.
  EXPECT_EQ(suite["systems"][0]["summary"]["quality"]["all"]["mean_logprob"],
            suite["systems"][1]["summary"]["quality"]["all"]["mean_logprob"]);
}

TEST_F(BenchSuite, ASystemThatCannotStartIsRecordedAndTheOthersStillRun) {
  std::ofstream(dir_ / "broken.yaml") << "router:\n  embeddings: " << path("fleet.yaml")
                                      << "\nmodels:\n  - id: maths-expert\n    description: d\n"
                                         "    gguf: "
                                      << testing::test_model("tiny-chatml.gguf") << "\n";
  write_suite(
      "  - name: broken\n    config: broken.yaml\n    route: auto\n"
      "  - name: fixed\n    config: fleet.yaml\n    route: model:maths-expert\n");
  const CliRun r = run_calm(
      {"bench", "suite", "--suite", path("suite.yaml"), "--out", path("out"), "--no-progress"},
      path("suite.log"));
  EXPECT_EQ(r.code, 1) << r.output;
  const json suite = suite_json();
  ASSERT_EQ(suite["systems"].size(), 2u);
  EXPECT_NE(suite["systems"][0]["error"].get<std::string>().find("did not start"),
            std::string::npos)
      << suite["systems"][0];
  EXPECT_EQ(suite["systems"][1]["summary"]["completed"], 10);
  EXPECT_TRUE(suite["systems"][1]["summary"]["decision_accuracy"].is_null());
}

TEST_F(BenchSuite, OnlyRunsTheNamedSystems) {
  write_suite(
      "  - name: a\n    config: fleet.yaml\n    route: model:code-expert\n"
      "  - name: b\n    config: fleet.yaml\n    route: random\n"
      "  - name: c\n    config: fleet.yaml\n    route: auto\n");
  const CliRun r = run_calm({"bench", "suite", "--suite", path("suite.yaml"), "--out", path("out"),
                             "--only", "b", "--no-progress"},
                            path("suite.log"));
  ASSERT_EQ(r.code, 0) << r.output;
  const json suite = suite_json();
  ASSERT_EQ(suite["systems"].size(), 1u);
  EXPECT_EQ(suite["systems"][0]["name"], "b");
  EXPECT_EQ(suite["systems"][0]["summary"]["completed"], 10);
  EXPECT_TRUE(suite["systems"][0]["summary"]["decision_accuracy"].is_number());
}

TEST_F(BenchSuite, ABadSuiteFileIsExitStatus2NamingTheField) {
  write_suite("  - name: a\n    config: fleet.yaml\n    route: smart\n");
  const CliRun r = run_calm({"bench", "suite", "--suite", path("suite.yaml"), "--out", path("out")},
                            path("suite.log"), std::chrono::seconds(30));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("systems[0].route"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out" / "suite.json"));
}

}  // namespace
}  // namespace calm
