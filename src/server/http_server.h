// The OpenAI-compatible HTTP front door.
//
//   GET  /health                 200 when every model is ready, 200 "degraded"
//                                when some failed to load, 503 when none serves
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
// Every error body is OpenAI's error JSON (server/api_error.h). The router
// (router/router.h) chooses the model; this layer only speaks HTTP.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cache/resident_set.h"
#include "config/fleet_config.h"
#include "mapek/mape_loop.h"
#include "meters/energy_share.h"
#include "registry/registry.h"
#include "router/router.h"
#include "router/semantic_router.h"
#include "scheduler/scheduler.h"
#include "server/server_metrics.h"

namespace httplib {
class Server;
}

namespace calm {

// The JSON of a ranking (POST /v1/route; also `calm route-eval`).
nlohmann::json ranking_json(const Ranking& ranking, double decision_ms);

class HttpServer {
 public:
  // The parts a request goes through: the router picks the model, the
  // scheduler queues it and the resident set's cache loads it.
  struct Parts {
    Registry& registry;
    Router& router;
    ResidentSet& resident;
    Scheduler& scheduler;
    // The router behind `model: auto` and POST /v1/route; may be null.
    std::shared_ptr<SemanticRouterSlot> semantic;
    MapeLoop* loop = nullptr;            // may be null: no MAPE-K loop
    EnergyAttributor* energy = nullptr;  // may be null: no energy figures
    ServerMetrics* metrics = nullptr;    // may be null: no /metrics
  };
  HttpServer(ServerConfig config, Parts parts);
  ~HttpServer();

  // Binds host:port (port 0 picks a free one) and returns the bound port.
  // Throws std::runtime_error naming the address when it cannot bind.
  int bind();
  // Serves until stop(). Call after bind(), from one thread.
  void run();
  // Thread-safe; returns at once.
  void stop();

  // What POST /v1/calm/reload runs: returns a JSON report, or throws
  // ConfigError (answered 400, the fleet unchanged). Set before run().
  void set_reload_handler(std::function<nlohmann::json()> handler) { reload_ = std::move(handler); }

 private:
  void install_routes();
  nlohmann::json state_json() const;
  // Records what one finished request cost (the Monitor's input).
  void monitor(RequestMetrics m, std::chrono::steady_clock::time_point arrival, EnergyShare& energy,
               const GenerationResult& result);
  // The model's state for /health and /v1/models: "ready", "unloaded" (loads
  // on demand) or "unavailable: why".
  std::string model_status(const Registry::Entry& entry) const;

  ServerConfig config_;
  Registry& registry_;
  Router& router_;
  std::shared_ptr<SemanticRouterSlot> semantic_;
  ResidentSet& resident_;
  Scheduler& scheduler_;
  MapeLoop* loop_;
  EnergyAttributor* energy_;
  ServerMetrics* metrics_;
  std::function<nlohmann::json()> reload_;
  std::unique_ptr<httplib::Server> server_;
};

}  // namespace calm
