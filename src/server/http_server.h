// The OpenAI-compatible HTTP front door.
//
//   GET  /health                 200 when every model is ready, 200 "degraded"
//                                when some failed to load, 503 when none serves
//   GET  /v1/models              the fleet, OpenAI's list shape plus a `calm` object
//   POST /v1/chat/completions    chat; `stream: true` answers server-sent events
//   POST /v1/completions         legacy prompt completion, same streaming rules
//   GET  /v1/calm/state          what every engine is doing (slots, queue)
//   POST /v1/route               the router's ranking for a body, no inference
//   POST /v1/calm/reload         re-read the fleet file (also on SIGHUP)
//
// Every error body is OpenAI's error JSON (server/api_error.h). The router
// (router/router.h) chooses the model; this layer only speaks HTTP.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "config/fleet_config.h"
#include "registry/registry.h"
#include "router/router.h"
#include "router/semantic_router.h"

namespace httplib {
class Server;
}

namespace calm {

// The JSON of a ranking (POST /v1/route; also `calm route-eval`).
nlohmann::json ranking_json(const Ranking& ranking, double decision_ms);

class HttpServer {
 public:
  // semantic: the router behind `model: auto` and POST /v1/route; may be null.
  HttpServer(ServerConfig config, Registry& registry, Router& router,
             std::shared_ptr<SemanticRouterSlot> semantic = nullptr);
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

  ServerConfig config_;
  Registry& registry_;
  Router& router_;
  std::shared_ptr<SemanticRouterSlot> semantic_;
  std::function<nlohmann::json()> reload_;
  std::unique_ptr<httplib::Server> server_;
};

}  // namespace calm
