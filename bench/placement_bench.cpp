// placement-bench: the cost of one placement decision across a fleet of
// nodes (src/placement/placement.h), and the control plane's memory, against
// fleet size, with Google Benchmark.
//
//   build/placement-bench [--benchmark_min_time=0.3]
//
// Simulated fleets (the project's own Placement and ModelCache; only the
// nodes' engines are stand-ins, whose loads and unloads return at once with
// the model's bytes):
// - N nodes (10, 100, 1,000) and M models (100, 1,000, 10,000). Each model can
//   be served by r = min(N, max(4, ceil(4N / M), ceil(its share of the
//   requests x W / 4))) nodes, spread evenly from a random first node: at
//   least 4 replicas' worth, every node serves about 4 models or more, and a
//   hot model has room for its requests (about 4 per node, max_queue 8).
// - Model sizes log-uniform from 50 MB to 5 GB. A node's budget is a quarter
//   of what it could serve, at least 1.05 x its largest model, at most
//   80 GiB: every node fills and evicts. Eviction: LRU. max_queue 8.
// - Requests Zipf (s = 1) over the models, popularity unrelated to the id.
//   W = 2N requests (at most 2,000) are held in flight at once: each decision
//   drops the oldest. One node is "scraped" per decision, round robin:
//   running = calm's own requests there (at most 4 slots), waiting = the rest
//   plus 0 to 2 from other clients. Every 997 decisions a random node goes
//   down and the previous one comes back.
// - A fleet is warmed up (50,000 decisions, or 5 s) before it is timed.
//
// One decision, as timed: drop the oldest request in flight (the lease
// release), try_place, Lease::wait() (for a miss: the unloads and the load).
// Counters: p50_us and p99_us over the individual decisions; hit, held
// (placed on a node that held the model), load and refused, as fractions of
// decisions; ctl_bytes, what constructing the Placement allocated (glibc's
// mallinfo2(): in-use heap bytes plus mmapped blocks, after minus before;
// the node specs are built before and moved in), and ctl_bytes_warm, the
// same after the warm-up with no request in flight (the policies'
// bookkeeping included); bytes_per_entry = ctl_bytes / the (node, model)
// pairs; replicas and max_replicas, the fewest and most nodes per model.
//
// BM_RouteThenPlace adds the semantic router in front (description
// similarity over M synthetic model descriptions, GloVe; needs
// scripts/fetch-glove.sh): rank the query, place the top model.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/fleet_config.h"
#include "placement/placement.h"
#include "router/glove_embedder.h"
#include "router/semantic_router.h"

namespace {

using namespace calm;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMB = 1000ull * 1000;
constexpr uint64_t kGiB = 1024ull * 1024 * 1024;
constexpr size_t kMaxQueue = 8;
constexpr uint32_t kSlots = 4;  // requests a node runs at once; the rest wait

uint64_t heap_bytes() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

std::string named(const char* prefix, size_t i) {
  std::string name = prefix;
  name += std::to_string(i);
  return name;
}

// 45 topics known to GloVe: their 3-word combinations (14,190) give every
// model a description of its own.
const std::vector<std::string> kTopics = {
    "mathematics", "programming", "law",      "medicine",  "finance",      "music",
    "history",     "chemistry",   "physics",  "biology",   "cooking",      "travel",
    "sports",      "poetry",      "weather",  "geography", "economics",    "politics",
    "art",         "film",        "games",    "cars",      "health",       "fitness",
    "gardening",   "fashion",     "animals",  "astronomy", "philosophy",   "religion",
    "language",    "software",    "hardware", "networks",  "security",     "databases",
    "marketing",   "insurance",   "taxes",    "education", "architecture", "farming",
    "energy",      "psychology",  "shipping"};

std::vector<std::string> descriptions(size_t count) {
  std::vector<std::string> out;
  const size_t n = kTopics.size();
  for (size_t i = 0; i < n && out.size() < count; ++i)
    for (size_t j = i + 1; j < n && out.size() < count; ++j)
      for (size_t k = j + 1; k < n && out.size() < count; ++k)
        out.push_back("questions about " + kTopics[i] + ", " + kTopics[j] + " and " + kTopics[k]);
  return out;
}

struct Fleet {
  size_t nodes = 0, models = 0;
  size_t replicas = 0;                   // the least a model gets
  size_t max_replicas = 0, entries = 0;  // the most; (node, model) pairs in all
  std::vector<std::string> model_ids;
  std::unordered_map<std::string, uint64_t> bytes;  // what a load reports
  std::unique_ptr<Placement> placement;
  uint64_t ctl_bytes = 0, ctl_bytes_warm = 0;

  // The simulation's state.
  std::vector<uint32_t> requests;  // Zipf draws of model indices
  std::vector<uint8_t> external;   // other clients' waiting requests per scrape
  std::vector<std::optional<Placement::Placed>> in_flight;  // a ring
  std::vector<uint32_t> own;                                // calm's requests per node
  std::mt19937_64 random{42};
  size_t step = 0, down = 0;
  uint64_t hits = 0, held = 0, loads = 0, refused = 0;

  std::unique_ptr<SemanticRouter> router;  // BM_RouteThenPlace only
  std::vector<std::string> queries;
  std::string router_error;

  // One decision: drop the oldest request in flight, place one more.
  void decide(const std::string& model) {
    auto& slot = in_flight[step % in_flight.size()];
    if (slot) {
      own[slot->node()]--;
      slot.reset();
    }
    if (auto placed = placement->try_place(model)) {
      placed->wait();
      hits += placed->was_hit();
      held += placed->held();
      loads += !placed->held();
      own[placed->node()]++;
      slot = std::move(placed);
    } else {
      ++refused;
    }
    // The scraper, one node per decision.
    const size_t scraped = step % nodes;
    const uint32_t mine = own[scraped];
    placement->set_queue(scraped, std::min(mine, kSlots),
                         mine - std::min(mine, kSlots) + external[step % external.size()]);
    if (nodes >= 10 && step % 997 == 0) {
      placement->set_healthy(down, true);
      down = random() % nodes;
      placement->set_healthy(down, false);
    }
    ++step;
  }
  const std::string& next_model() { return model_ids[requests[step % requests.size()]]; }
  void reset_counts() { hits = held = loads = refused = 0; }
};

std::unique_ptr<Fleet> make_fleet(size_t nodes, size_t models) {
  auto f = std::make_unique<Fleet>();
  f->nodes = nodes;
  f->models = models;
  f->replicas = std::min(nodes, std::max<size_t>(4, (4 * nodes + models - 1) / models));
  std::mt19937_64& random = f->random;
  std::uniform_real_distribution<double> log_size(std::log(50.0 * kMB), std::log(5000.0 * kMB));

  // Everything the simulation itself needs is allocated before the baseline.
  f->in_flight.resize(std::min<size_t>(2 * nodes, 2000));
  // Zipf (s = 1) over a random permutation of the models.
  std::vector<double> share(models);  // of the requests, per model
  {
    std::vector<uint32_t> rank_to_model(models);
    for (size_t m = 0; m < models; ++m) rank_to_model[m] = static_cast<uint32_t>(m);
    std::shuffle(rank_to_model.begin(), rank_to_model.end(), random);
    std::vector<double> weights(models);
    double total = 0;
    for (size_t r = 0; r < models; ++r) total += weights[r] = 1.0 / static_cast<double>(r + 1);
    for (size_t r = 0; r < models; ++r) share[rank_to_model[r]] = weights[r] / total;
    std::discrete_distribution<size_t> zipf(weights.begin(), weights.end());
    f->requests.resize(1 << 18);
    for (auto& r : f->requests) r = rank_to_model[zipf(random)];
  }
  std::vector<std::vector<uint32_t>> serves(nodes);  // node -> model indices
  std::vector<uint64_t> sizes(models);
  for (size_t m = 0; m < models; ++m) {
    const std::string id = named("model-", m);
    sizes[m] = static_cast<uint64_t>(std::exp(log_size(random)));
    f->model_ids.push_back(id);
    f->bytes[id] = sizes[m];
    // A hot model gets enough replicas for about 4 of its requests per node.
    const auto hot =
        static_cast<size_t>(std::ceil(share[m] * static_cast<double>(f->in_flight.size()) / 4.0));
    const size_t replicas = std::min(nodes, std::max(f->replicas, hot));
    f->entries += replicas;
    f->max_replicas = std::max(f->max_replicas, replicas);
    const size_t first = random() % nodes, stride = nodes / replicas;
    for (size_t k = 0; k < replicas; ++k) {
      serves[(first + k * stride) % nodes].push_back(static_cast<uint32_t>(m));
    }
  }
  f->external.resize(4099);
  for (auto& e : f->external) e = static_cast<uint8_t>(random() % 3);
  f->own.assign(nodes, 0);

  const uint64_t before = heap_bytes();
  {
    std::vector<NodeSpec> specs(nodes);
    for (size_t n = 0; n < nodes; ++n) {
      NodeSpec& spec = specs[n];
      spec.id = named("node-", n);
      spec.max_queue = kMaxQueue;
      uint64_t sum = 0, largest = 0;
      for (const uint32_t m : serves[n]) {
        spec.models.push_back({f->model_ids[m], sizes[m]});
        sum += sizes[m];
        largest = std::max(largest, sizes[m]);
      }
      spec.budget_bytes = std::max(largest + largest / 20, std::min(80 * kGiB, sum / 4));
    }
    f->placement = std::make_unique<Placement>(
        std::move(specs), "lru",
        [fleet = f.get()](const std::string&, const std::string& model) {
          return ModelCache::LoadResult(fleet->bytes.at(model));
        },
        [](const std::string&, const std::string&) {});
  }
  f->ctl_bytes = heap_bytes() - before;

  // Warm up: fill the nodes, then measure what the control plane holds.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (size_t i = 0; i < 50000 && Clock::now() < deadline; ++i) f->decide(f->next_model());
  for (auto& slot : f->in_flight) {
    if (slot) f->own[slot->node()]--;
    slot.reset();
  }
  f->ctl_bytes_warm = heap_bytes() - before;
  f->reset_counts();
  return f;
}

// One fleet at a time: the previous one is freed before the next is built.
Fleet& fleet(size_t nodes, size_t models) {
  static std::unique_ptr<Fleet> current;
  if (!current || current->nodes != nodes || current->models != models) {
    current.reset();
    current = make_fleet(nodes, models);
  }
  return *current;
}

void report(benchmark::State& state, Fleet& f, std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  const double n = static_cast<double>(std::max<size_t>(1, us.size()));
  state.counters["p50_us"] = us.empty() ? 0 : us[us.size() / 2];
  state.counters["p99_us"] = us.empty() ? 0 : us[std::min(us.size() - 1, us.size() * 99 / 100)];
  state.counters["hit"] = static_cast<double>(f.hits) / n;
  state.counters["held"] = static_cast<double>(f.held) / n;
  state.counters["load"] = static_cast<double>(f.loads) / n;
  state.counters["refused"] = static_cast<double>(f.refused) / n;
  state.counters["replicas"] = static_cast<double>(f.replicas);
  state.counters["max_replicas"] = static_cast<double>(f.max_replicas);
  state.counters["ctl_bytes"] = static_cast<double>(f.ctl_bytes);
  state.counters["ctl_bytes_warm"] = static_cast<double>(f.ctl_bytes_warm);
  state.counters["bytes_per_entry"] =
      static_cast<double>(f.ctl_bytes) / static_cast<double>(f.entries);
  f.reset_counts();
}

void BM_Place(benchmark::State& state) {
  Fleet& f = fleet(static_cast<size_t>(state.range(0)), static_cast<size_t>(state.range(1)));
  std::vector<double> us;
  us.reserve(1 << 16);
  for (auto _ : state) {
    const std::string& model = f.next_model();
    const auto start = Clock::now();
    f.decide(model);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  report(state, f, us);
}

void BM_RouteThenPlace(benchmark::State& state) {
  Fleet& f = fleet(static_cast<size_t>(state.range(0)), static_cast<size_t>(state.range(1)));
  if (!f.router && f.router_error.empty()) {
    try {
      std::shared_ptr<Embedder> embedder = GloveEmbedder::load(default_embeddings_path());
      const auto texts = descriptions(f.models);
      std::vector<RouteProfileSpec> profiles;
      for (size_t m = 0; m < f.models; ++m) profiles.push_back({f.model_ids[m], texts[m], {}, {}});
      SemanticRouterSettings settings;
      settings.similarity = SimilarityMode::kDescription;
      f.router = std::make_unique<SemanticRouter>(std::move(profiles), embedder, settings);
      f.queries = texts;
    } catch (const std::exception& e) {
      f.router_error = e.what();
    }
  }
  if (!f.router) {
    state.SkipWithError(f.router_error.c_str());
    return;
  }
  std::vector<double> us;
  size_t i = 0, misrouted = 0;
  for (auto _ : state) {
    const uint32_t wanted = f.requests[f.step % f.requests.size()];
    // A distinct text each time defeats the embedder's cache, as new queries would.
    std::string query = f.queries[wanted];
    query += " #";
    query += std::to_string(i++);
    const auto start = Clock::now();
    const Ranking ranking = f.router->rank(query, nullptr);
    const std::string& model = ranking.candidates.front().id;
    f.decide(model);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    misrouted += model != f.model_ids[wanted];
  }
  report(state, f, us);
  state.counters["misrouted"] =
      static_cast<double>(misrouted) / static_cast<double>(std::max<size_t>(1, i));
}

BENCHMARK(BM_Place)
    ->ArgNames({"nodes", "models"})
    ->ArgsProduct({{10, 100, 1000}, {100, 1000, 10000}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RouteThenPlace)
    ->ArgNames({"nodes", "models"})
    ->ArgsProduct({{100}, {100, 1000, 10000}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
