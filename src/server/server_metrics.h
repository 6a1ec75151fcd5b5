// What GET /metrics shows: calm's Prometheus metrics.
//
// Per request (recorded by the Monitor, server/http_server.cpp):
//   calm_requests_total{model}                      finished requests
//   calm_request_latency_seconds{model}             histogram, arrival to end
//   calm_time_to_first_token_seconds{model}         histogram
//   calm_queue_wait_seconds{model}                  histogram, incl. a model load
//   calm_tokens_total{model,direction="in"|"out"}
//   calm_energy_joules_total{model,source}          source: the meter's name
//   calm_request_confidence{model}                  histogram, [0, 1]
//   calm_requests_refused_total{status,code}        completions answered with an
//                                                   error (400, 404, 429, 503, ...)
//   calm_failover_retries_total{model}              requests sent on to a fallback
//                                                   after this model failed
//   calm_requests_failed_total{model,phase}         requests whose backend failed for
//                                                   good: phase before_first_token (every
//                                                   fallback failed too) or mid_stream
// Read at each scrape from the parts that own them:
//   calm_cache_{hits,misses,loads,evictions}_total{model}
//   calm_cache_resident_bytes{model}, calm_cache_budget_bytes, calm_cache_used_bytes
//   calm_queue_depth{model}, calm_requests_running{model}
//   calm_routing_lambda{policy}, calm_adaptations_total
//   calm_breaker_state{model,state}                 1 for the breaker's state (closed,
//                                                   open, half_open), of models that failed
//   calm_breaker_opened_total{model}                times each breaker opened
//   calm_knowledge_writes_lost_total                records the knowledge store
//                                                   could not write (a full disk,
//                                                   a read-only file, its queue full)
//   calm_node_*, calm_placements_total              with nodes: (server/node_views.h)
//
// Thread-safe.
#pragma once

#include <string>

#include "cache/model_cache.h"
#include "failover/circuit_breakers.h"
#include "knowledge/knowledge_store.h"
#include "mapek/mape_loop.h"
#include "mapek/request_metrics.h"
#include "metrics/prometheus.h"
#include "nodes/node_fleet.h"
#include "scheduler/scheduler.h"

namespace calm {

class ServerMetrics {
 public:
  // breakers, knowledge: may be null (no breaker metrics; no knowledge file).
  ServerMetrics(const ModelCache& cache, const Scheduler& scheduler, const MapeLoop& loop,
                const CircuitBreakers* breakers = nullptr,
                const KnowledgeStore* knowledge = nullptr);

  void record(const RequestMetrics& m);
  // A completion request answered with an error instead of an answer.
  void record_refusal(int status, const std::string& code);
  // Failover: `failed` failed and the request went on to a fallback.
  void record_retry(const std::string& failed);
  // A request whose backend failed for good.
  void record_failure(const std::string& model, bool mid_stream);
  // Adds the nodes' figures (server/node_views.h). Call once, before the
  // first render(); the nodes must outlive this.
  void add_nodes(const NodeFleet& nodes);
  std::string render();

 private:
  // Brings the counters that live elsewhere (the cache's) up to date.
  void sync_cache_counters();

  const ModelCache& cache_;
  MetricsRegistry registry_;
  Counter& requests_;
  Histogram& latency_;
  Histogram& ttft_;
  Histogram& queue_;
  Counter& tokens_;
  Counter& energy_;
  Histogram& confidence_;
  Counter& refused_;
  Counter& retries_;
  Counter& failed_;
  Counter& breaker_opened_;
  Counter& hits_;
  Counter& misses_;
  Counter& loads_;
  Counter& evictions_;
  Counter& adaptations_;
  Counter& knowledge_lost_;
  const MapeLoop& loop_;
  const CircuitBreakers* breakers_;
  const KnowledgeStore* knowledge_;
  // With nodes (add_nodes): the fleet and its counters; null without.
  const NodeFleet* nodes_ = nullptr;
  Counter* node_loads_ = nullptr;
  Counter* node_evictions_ = nullptr;
  Counter* placements_ = nullptr;
  std::mutex sync_mutex_;  // one scrape brings the counters up to date at a time
};

}  // namespace calm
