// loop-bench: what the MAPE-K loop adds to every request, with Google Benchmark.
//
//   build/loop-bench [--benchmark_repetitions=3]
//
// BM_MonitorOneRequest is the whole per-request path of the loop: the energy
// share (begin and end on the CPU-time meter), the Monitor (QoS window,
// analyzer window and Page-Hinkley detector, the queued SQLite record) and
// the Prometheus metrics. The goal is at most 0.1 ms. BM_LoopTick is one
// Analyze-Plan-Execute pass, which runs on the loop's own thread once a period.
// Needs the GloVe file (scripts/fetch-glove.sh) for the router's embedder.
#include <benchmark/benchmark.h>

#include <filesystem>

#include "cache/model_cache.h"
#include "config/fleet_config.h"
#include "knowledge/knowledge_store.h"
#include "mapek/mape_loop.h"
#include "meters/cpu_time_meter.h"
#include "meters/energy_attributor.h"
#include "meters/energy_share.h"
#include "router/glove_embedder.h"
#include "router/semantic_router.h"
#include "scheduler/scheduler.h"
#include "server/server_metrics.h"

namespace {

using namespace calm;

struct Fixture {
  std::shared_ptr<SemanticRouterSlot> slot;
  std::shared_ptr<KnowledgeStore> knowledge;
  std::unique_ptr<ModelCache> cache;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<MapeLoop> loop;
  std::unique_ptr<ServerMetrics> metrics;
  CpuTimeMeter meter;
  std::unique_ptr<EnergyAttributor> energy;
  std::vector<std::string> models;
};

Fixture& fixture() {
  static Fixture f = [] {
    Fixture f;
    std::vector<RouteProfileSpec> profiles;
    std::vector<ModelCache::ModelSpec> specs;
    std::vector<Scheduler::ModelSlots> slots;
    for (int i = 0; i < 8; ++i) {
      const std::string id = "model-" + std::to_string(i);
      f.models.push_back(id);
      profiles.push_back({id, "questions about topic number " + std::to_string(i), {}, {}});
      specs.push_back({id, 100});
      slots.push_back({id, 2});
    }
    std::shared_ptr<Embedder> embedder = GloveEmbedder::load(default_embeddings_path());
    f.slot = std::make_shared<SemanticRouterSlot>(
        std::make_shared<SemanticRouter>(profiles, embedder, SemanticRouterSettings{}));
    const auto path = std::filesystem::temp_directory_path() / "calm-loop-bench.db";
    std::filesystem::remove(path);
    f.knowledge = std::make_shared<KnowledgeStore>(path.string());
    // A cache and a scheduler only for the metrics' scrape-time gauges; nothing loads.
    f.cache = std::make_unique<ModelCache>(
        ModelCache::Options{1 << 20, 0, "lru"}, specs, [](const std::string&) { return 0ull; },
        [](const std::string&) {});
    f.scheduler = std::make_unique<Scheduler>(Scheduler::Options{}, *f.cache, slots);
    LoopConfig config;
    config.goals.latency_p95_ms = 500;
    config.goals.window = 100;
    f.loop = std::make_unique<MapeLoop>(config, f.slot, f.knowledge);
    f.metrics = std::make_unique<ServerMetrics>(*f.cache, *f.scheduler, *f.loop);
    f.energy = std::make_unique<EnergyAttributor>(f.meter);
    return f;
  }();
  return f;
}

void BM_MonitorOneRequest(benchmark::State& state) {
  Fixture& f = fixture();
  uint64_t n = 0;
  for (auto _ : state) {
    EnergyShare share(f.energy.get());
    RequestMetrics m;
    m.response_id = "chatcmpl-" + std::to_string(n);
    m.model = f.models[n % f.models.size()];
    m.latency_ms = 100 + static_cast<double>(n % 37);
    m.ttft_ms = 10;
    m.tokens_in = 20;
    m.tokens_out = 32;
    m.decode_tps = 50;
    m.energy_j = share.end();
    m.energy_source = share.source();
    m.memory_bytes = 1e8;
    m.confidence = 0.5;
    f.loop->on_request(m);
    f.metrics->record(m);
    ++n;
  }
  state.SetItemsProcessed(static_cast<int64_t>(n));
}
BENCHMARK(BM_MonitorOneRequest)->UseRealTime();

void BM_LoopTick(benchmark::State& state) {
  Fixture& f = fixture();
  for (auto _ : state) benchmark::DoNotOptimize(f.loop->tick());
}
BENCHMARK(BM_LoopTick)->UseRealTime();

void BM_MetricsScrape(benchmark::State& state) {
  Fixture& f = fixture();
  for (auto _ : state) benchmark::DoNotOptimize(f.metrics->render());
}
BENCHMARK(BM_MetricsScrape)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
