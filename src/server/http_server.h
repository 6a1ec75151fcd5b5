// The OpenAI-compatible HTTP front door.
//
//   GET  /health                 200 when every model (and node) is ready, 200 "degraded"
//                                when some failed to load or have their circuit
//                                breaker open, 503 when none serves
//   GET  /v1/models              the fleet, OpenAI's list shape plus a `calm` object
//   POST /v1/chat/completions    chat; `stream: true` answers server-sent events
//   POST /v1/completions         legacy prompt completion, same streaming rules
//   GET  /v1/calm/state          what every engine, the cache and the scheduler
//                                are doing (resident bytes, hits, loads, queue)
//   POST /v1/route               the router's ranking for a body, no inference
//   POST /v1/calm/reload         re-read the fleet file (also on SIGHUP)
//   POST /v1/feedback            a user's score (1-5) of an answer, by response id
//   GET  /v1/calm/adaptations    what the MAPE-K loop changed, and why, newest first
//   GET  /metrics                Prometheus text format
//
// With API keys (auth/api_keys.h), every endpoint but the public ones needs
// `Authorization: Bearer KEY`: 401 without a valid key, 403 for an inference
// key on an admin endpoint, 429 past the key's limits.
//
// Every error body is OpenAI's error JSON (pipeline/api_error.h). Completions
// go to the request pipeline (pipeline/request_pipeline.h), which routes,
// queues and runs them; this layer only translates HTTP to and from it, on
// the transport's I/O threads (server/http_transport.h), which never wait
// on the queue, a load or inference. A reload runs on its own worker thread.
//
// Lifecycle: bind(), start() (returns at once), stop(). The owner drains the
// pipeline between the two (app/serve_command.cpp), so that /health and the
// other endpoints keep answering while requests finish.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "auth/api_keys.h"
#include "cache/resident_set.h"
#include "config/fleet_config.h"
#include "failover/circuit_breakers.h"
#include "mapek/mape_loop.h"
#include "nodes/node_fleet.h"
#include "pipeline/request_pipeline.h"
#include "registry/registry.h"
#include "router/router.h"
#include "router/semantic_router.h"
#include "scheduler/scheduler.h"
#include "server/http_transport.h"
#include "server/openai_sink.h"
#include "server/server_metrics.h"
#include "util/delay_queue.h"

namespace calm {

// The JSON of a ranking (POST /v1/route; also `calm route-eval`).
nlohmann::json ranking_json(const Ranking& ranking, double decision_ms);

class HttpServer {
 public:
  // The parts the endpoints read; completions go through the pipeline.
  struct Parts {
    Registry& registry;
    ResidentSet& resident;
    Scheduler& scheduler;
    RequestPipeline& pipeline;
    // The router behind `model: auto` and POST /v1/route; may be null.
    std::shared_ptr<SemanticRouterSlot> semantic;
    MapeLoop* loop = nullptr;                   // may be null: no MAPE-K loop
    ServerMetrics* metrics = nullptr;           // may be null: no /metrics
    ApiKeys* keys = nullptr;                    // may be null: every endpoint open
    const CircuitBreakers* breakers = nullptr;  // may be null: no breakers shown
    // With `knowledge: {keep_text: true}`: where each answered request's
    // prompt and answer go (server/text_keeping_sink.h); null: nowhere.
    KnowledgeStore* text_store = nullptr;
    // With `nodes:` in the fleet file: their health and placement, shown in
    // /health and /v1/calm/state (server/node_views.h); null without.
    const NodeFleet* nodes = nullptr;
  };
  HttpServer(ServerConfig config, Parts parts);
  ~HttpServer();  // stop()

  // Binds host:port (port 0 picks a free one) and returns the bound port.
  // Throws std::runtime_error naming the address when it cannot bind, and
  // ConfigError naming the field (server.tls.cert or .key) when the TLS
  // certificate or key cannot be used.
  int bind();
  // Starts serving on the I/O threads; returns at once.
  void start();
  // Closes every connection and joins the I/O threads and the reload worker.
  // Idempotent.
  void stop();

  // What POST /v1/calm/reload runs: returns a JSON report, or throws
  // ConfigError (answered 400, the fleet unchanged). Set before start().
  void set_reload_handler(std::function<nlohmann::json()> handler) { reload_ = std::move(handler); }

 private:
  static std::optional<std::string> endpoint_name(const HttpRequest& request);
  HttpOutcome handle(HttpRequest& request);
  HttpResponse refusal(const ApiKeys::Decision& decision) const;
  // The permit (null without a key limit) is held until the answer ends.
  HttpOutcome generate(Endpoint endpoint, const HttpRequest& request,
                       std::shared_ptr<ApiKeys::Permit> permit);
  HttpOutcome reload(std::shared_ptr<ApiKeys::Permit> permit);
  HttpResponse health() const;
  HttpResponse models() const;
  HttpResponse route(const HttpRequest& request) const;
  HttpResponse feedback(const HttpRequest& request) const;
  HttpResponse adaptations(const HttpRequest& request) const;
  nlohmann::json state_json() const;
  // The model's state for /health and /v1/models: "ready", "unloaded" (loads
  // on demand) or "unavailable: why" (a failed load, a backend that is down,
  // an open circuit breaker).
  std::string model_status(const Registry::Entry& entry) const;

  ServerConfig config_;
  Registry& registry_;
  std::shared_ptr<SemanticRouterSlot> semantic_;
  ResidentSet& resident_;
  Scheduler& scheduler_;
  RequestPipeline& pipeline_;
  MapeLoop* loop_;
  ServerMetrics* metrics_;
  ApiKeys* keys_;
  const CircuitBreakers* breakers_;
  KnowledgeStore* text_store_;
  const NodeFleet* nodes_;
  std::function<nlohmann::json()> reload_;
  std::unique_ptr<DelayQueue> reload_worker_;  // reloads block (file, embeddings, loads)
  std::unique_ptr<HttpTransport> transport_;
};

}  // namespace calm
