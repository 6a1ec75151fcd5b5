// router-bench: the cost of one routing decision (embedding plus scoring over
// 8 models) and the memory the router adds, with Google Benchmark.
//
//   build/router-bench [--benchmark_repetitions=3]
//
// Needs the GloVe file (scripts/fetch-glove.sh) and the labelled sets
// (python3 scripts/make-route-sets.py); the queries are the test split, the
// models five domain specialists with 50 examples each plus three more with
// descriptions only. Besides Google Benchmark's mean time per decision, each
// run reports p50_us and p99_us over its individual decisions and
// router_rss_mb, the resident memory that loading the embeddings and building
// the router added.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "config/fleet_config.h"
#include "router/glove_embedder.h"
#include "router/semantic_router.h"

namespace {

using namespace calm;

double rss_mb() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) /
         (1024.0 * 1024.0);
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

struct Fixture {
  std::shared_ptr<SemanticRouter> router;
  std::vector<std::string> queries;
  double rss_added_mb = 0;
  std::string error;
};

Fixture make_fixture(SimilarityMode mode) {
  Fixture f;
  const std::string sets = "build/route-sets/";
  const auto examples = read_jsonl(sets + "examples.jsonl");
  for (const auto& row : read_jsonl(sets + "test.jsonl")) f.queries.push_back(row["query"]);
  if (examples.empty() || f.queries.empty()) {
    f.error = "run python3 scripts/make-route-sets.py first (build/route-sets/ is empty)";
    return f;
  }
  std::map<std::string, std::vector<std::string>> by_domain;
  for (const auto& row : examples) by_domain[row["domain"]].push_back(row["query"]);
  const double before = rss_mb();
  std::shared_ptr<Embedder> embedder;
  try {
    embedder = GloveEmbedder::load(default_embeddings_path());
  } catch (const std::exception& e) {
    f.error = e.what();
    return f;
  }
  std::vector<RouteProfileSpec> profiles;
  for (const auto& [domain, list] : by_domain)
    profiles.push_back({domain, "questions about " + domain, list, {domain}});
  profiles.push_back({"general", "general knowledge, trivia and everyday questions", {}, {}});
  profiles.push_back({"writer", "creative writing, stories and poems", {}, {}});
  profiles.push_back({"translator", "translation between languages", {}, {}});
  SemanticRouterSettings settings;
  settings.similarity = mode;
  f.router = std::make_shared<SemanticRouter>(std::move(profiles), embedder, settings);
  f.rss_added_mb = rss_mb() - before;
  return f;
}

void BM_RouteDecision(benchmark::State& state, SimilarityMode mode) {
  static std::map<SimilarityMode, Fixture> fixtures;
  if (!fixtures.count(mode)) fixtures[mode] = make_fixture(mode);
  Fixture& f = fixtures[mode];
  if (!f.router) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  std::vector<double> us;
  size_t i = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    // A distinct text each time defeats the embedder's cache, as new queries would.
    const std::string query = f.queries[i % f.queries.size()] + " #" + std::to_string(i);
    benchmark::DoNotOptimize(f.router->rank(query, nullptr));
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                     .count());
    ++i;
  }
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  state.counters["models"] = static_cast<double>(f.router->profiles().size());
  state.counters["router_rss_mb"] = f.rss_added_mb;
}

BENCHMARK_CAPTURE(BM_RouteDecision, description, SimilarityMode::kDescription)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_RouteDecision, combined, SimilarityMode::kCombined)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_RouteDecision, classifier, SimilarityMode::kClassifier)
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
