#include "server/server_metrics.h"

#include "engines/llama_backend.h"
#include "server/node_views.h"
#include "util/process_memory.h"

namespace calm {
namespace {

const std::vector<double> kSecondsBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                          1,     2.5,  5,     10,   30,  60};

// Raises a counter to `total` (the owner's cumulative figure).
void raise_to(Counter::Child& child, double total) {
  const double delta = total - child.value();
  if (delta > 0) child.inc(delta);
}

}  // namespace

ServerMetrics::ServerMetrics(const ModelCache& cache, const Scheduler& scheduler,
                             const MapeLoop& loop, const CircuitBreakers* breakers,
                             const KnowledgeStore* knowledge)
    : cache_(cache),
      requests_(registry_.counter("calm_requests_total", "Finished requests.", {"model"})),
      latency_(registry_.histogram("calm_request_latency_seconds",
                                   "From arrival at calm to the end of the answer.", {"model"},
                                   kSecondsBuckets)),
      ttft_(registry_.histogram("calm_time_to_first_token_seconds",
                                "From the start of generation to the first token.", {"model"},
                                kSecondsBuckets)),
      queue_(registry_.histogram("calm_queue_wait_seconds",
                                 "In the scheduler's queue, including a model load.", {"model"},
                                 kSecondsBuckets)),
      tokens_(registry_.counter("calm_tokens_total", "Tokens read (in) and generated (out).",
                                {"model", "direction"})),
      energy_(registry_.counter("calm_energy_joules_total",
                                "Energy attributed to requests, by the meter that measured it.",
                                {"model", "source"})),
      confidence_(registry_.histogram("calm_request_confidence",
                                      "Geometric mean probability of the generated tokens.",
                                      {"model"}, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9})),
      refused_(registry_.counter("calm_requests_refused_total",
                                 "Requests refused with an error (completions; API-key refusals of "
                                 "any endpoint), by status and code.",
                                 {"status", "code"})),
      retries_(registry_.counter("calm_failover_retries_total",
                                 "Requests sent on to a fallback after this model failed.",
                                 {"model"})),
      failed_(registry_.counter("calm_requests_failed_total",
                                "Requests whose backend failed for good, before the first token "
                                "(every fallback failed too) or mid-stream.",
                                {"model", "phase"})),
      breaker_opened_(registry_.counter("calm_breaker_opened_total",
                                        "Times each model's circuit breaker opened.", {"model"})),
      hits_(registry_.counter("calm_cache_hits_total", "Requests whose model was resident.",
                              {"model"})),
      misses_(registry_.counter("calm_cache_misses_total",
                                "Requests that waited for their model to load.", {"model"})),
      loads_(registry_.counter("calm_cache_loads_total", "Model loads.", {"model"})),
      evictions_(registry_.counter("calm_cache_evictions_total", "Models unloaded to make room.",
                                   {"model"})),
      adaptations_(registry_.counter("calm_adaptations_total", "Changes made by the MAPE-K loop.")),
      knowledge_lost_(registry_.counter(
          "calm_knowledge_writes_lost_total",
          "Records the knowledge store could not write (serving went on without them).")),
      loop_(loop),
      breakers_(breakers),
      knowledge_(knowledge) {
  registry_.gauge_callback(
      "calm_cache_resident_bytes", "Bytes charged to each resident model.", {"model"}, [this] {
        std::vector<std::pair<std::vector<std::string>, double>> rows;
        for (const auto& m : cache_.stats().models) {
          rows.push_back({{m.id}, m.state == "resident" ? static_cast<double>(m.bytes) : 0.0});
        }
        return rows;
      });
  registry_.gauge_callback("calm_cache_budget_bytes", "The model cache's memory budget.", {},
                           [this] {
                             return std::vector<std::pair<std::vector<std::string>, double>>{
                                 {{}, static_cast<double>(cache_.stats().budget_bytes)}};
                           });
  registry_.gauge_callback("calm_cache_used_bytes", "Bytes charged now (incl. swaps under way).",
                           {}, [this] {
                             return std::vector<std::pair<std::vector<std::string>, double>>{
                                 {{}, static_cast<double>(cache_.stats().used_bytes)}};
                           });
  // The kernel's view beside the charge: a cross-check, never the charge.
  registry_.gauge_callback(
      "calm_cache_model_rss_growth_bytes",
      "How much the process's RSS grew across each model's last load (a cross-check only).",
      {"model"}, [this] {
        std::vector<std::pair<std::vector<std::string>, double>> rows;
        for (const auto& m : cache_.stats().models) {
          rows.push_back({{m.id}, static_cast<double>(m.rss_delta_bytes)});
        }
        return rows;
      });
  registry_.gauge_callback("calm_process_resident_bytes",
                           "The process's resident memory (RSS), the cache's cross-check.", {}, [] {
                             return std::vector<std::pair<std::vector<std::string>, double>>{
                                 {{}, static_cast<double>(process_rss_bytes())}};
                           });
  registry_.gauge_callback("calm_llama_backend_overhead_bytes",
                           "llama.cpp's one-time set-up in this process, charged to no model.", {},
                           [] {
                             return std::vector<std::pair<std::vector<std::string>, double>>{
                                 {{}, static_cast<double>(llama_backend_overhead().total())}};
                           });
  registry_.gauge_callback("calm_queue_depth", "Requests waiting in the scheduler's queue.",
                           {"model"}, [&scheduler] {
                             std::vector<std::pair<std::vector<std::string>, double>> rows;
                             for (const auto& m : scheduler.stats().models) {
                               rows.push_back({{m.id}, static_cast<double>(m.queued)});
                             }
                             return rows;
                           });
  registry_.gauge_callback("calm_requests_running", "Requests holding one of a model's slots.",
                           {"model"}, [&scheduler] {
                             std::vector<std::pair<std::vector<std::string>, double>> rows;
                             for (const auto& m : scheduler.stats().models) {
                               rows.push_back({{m.id}, static_cast<double>(m.running)});
                             }
                             return rows;
                           });
  registry_.gauge_callback(
      "calm_breaker_state",
      "1 for the state each model's circuit breaker is in (models that have failed).",
      {"model", "state"}, [this] {
        std::vector<std::pair<std::vector<std::string>, double>> rows;
        if (!breakers_) return rows;
        using State = CircuitBreakers::State;
        for (const auto& [model, status] : breakers_->all()) {
          for (State state : {State::kClosed, State::kOpen, State::kHalfOpen}) {
            rows.push_back(
                {{model, CircuitBreakers::state_name(state)}, status.state == state ? 1.0 : 0.0});
          }
        }
        return rows;
      });
  registry_.gauge_callback("calm_routing_lambda",
                           "The routing weight in use, by policy (the loop moves it).", {"policy"},
                           [this] {
                             std::vector<std::pair<std::vector<std::string>, double>> rows;
                             if (const auto p = loop_.routing()) {
                               rows.push_back({{policy_name(p->policy)}, p->lambda});
                             }
                             return rows;
                           });
}

void ServerMetrics::record(const RequestMetrics& m) {
  if (m.cancelled) return;
  requests_.labels({m.model}).inc();
  latency_.labels({m.model}).observe(m.latency_ms / 1000.0);
  ttft_.labels({m.model}).observe(m.ttft_ms / 1000.0);
  queue_.labels({m.model}).observe(m.queue_ms / 1000.0);
  tokens_.labels({m.model, "in"}).inc(m.tokens_in);
  tokens_.labels({m.model, "out"}).inc(m.tokens_out);
  if (!m.energy_source.empty()) energy_.labels({m.model, m.energy_source}).inc(m.energy_j);
  confidence_.labels({m.model}).observe(m.confidence);
}

void ServerMetrics::record_refusal(int status, const std::string& code) {
  refused_.labels({std::to_string(status), code.empty() ? "none" : code}).inc();
}

void ServerMetrics::record_retry(const std::string& failed) {
  retries_.labels({failed}).inc();
}

void ServerMetrics::record_failure(const std::string& model, bool mid_stream) {
  failed_.labels({model, mid_stream ? "mid_stream" : "before_first_token"}).inc();
}

void ServerMetrics::add_nodes(const NodeFleet& nodes) {
  add_node_gauges(registry_, nodes);
  node_loads_ =
      &registry_.counter("calm_node_loads_total", "Model loads calm made on each node.", {"node"});
  node_evictions_ = &registry_.counter(
      "calm_node_evictions_total", "Models calm unloaded from each node to make room.", {"node"});
  placements_ = &registry_.counter(
      "calm_placements_total",
      "Placement decisions: on a node that held the model, by a load, or refused for now.",
      {"decision"});
  std::lock_guard lock(sync_mutex_);
  nodes_ = &nodes;
}

void ServerMetrics::sync_cache_counters() {
  std::lock_guard lock(sync_mutex_);
  for (const auto& m : cache_.stats().models) {
    raise_to(hits_.labels({m.id}), static_cast<double>(m.hits));
    raise_to(misses_.labels({m.id}), static_cast<double>(m.misses));
    raise_to(loads_.labels({m.id}), static_cast<double>(m.loads));
    raise_to(evictions_.labels({m.id}), static_cast<double>(m.evictions));
  }
  raise_to(adaptations_.labels(), static_cast<double>(loop_.adaptation_count()));
  if (breakers_) {
    for (const auto& [model, status] : breakers_->all()) {
      raise_to(breaker_opened_.labels({model}), static_cast<double>(status.opened));
    }
  }
  if (knowledge_) raise_to(knowledge_lost_.labels(), static_cast<double>(knowledge_->dropped()));
  if (nodes_) {
    const Placement::Stats placement = nodes_->placement().stats();
    for (const auto& n : placement.nodes) {
      raise_to(node_loads_->labels({n.id}), static_cast<double>(n.loads));
      raise_to(node_evictions_->labels({n.id}), static_cast<double>(n.evictions));
    }
    raise_to(placements_->labels({"holder"}), static_cast<double>(placement.placed_on_holder));
    raise_to(placements_->labels({"load"}), static_cast<double>(placement.placed_by_load));
    raise_to(placements_->labels({"refused"}), static_cast<double>(placement.refused));
  }
}

std::string ServerMetrics::render() {
  sync_cache_counters();
  return registry_.render();
}

}  // namespace calm
