// What the integration tests ask a running `calm serve`: its state, a
// bounded wait for a state, and requests sent on threads of their own.
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"

namespace calm::testing {

// GET /v1/calm/state; an empty object when it does not answer 200.
inline nlohmann::json state(const CalmServer& server) {
  auto res = server.client().Get("/v1/calm/state");
  if (!res || res->status != 200) return nlohmann::json::object();
  return nlohmann::json::parse(res->body);
}

// Polls /v1/calm/state (bounded, 30 s) until `ready` says yes.
inline bool wait_state(const CalmServer& server,
                       const std::function<bool(const nlohmann::json&)>& ready) {
  for (int i = 0; i < 600; ++i) {
    const nlohmann::json s = state(server);
    if (!s.empty() && ready(s)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Requests sent on their own threads; their statuses (-1: no answer).
class Clients {
 public:
  void send(const CalmServer& server, const std::string& body, int read_timeout_s = 120) {
    threads_.emplace_back([this, port = server.port(), body, read_timeout_s] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(read_timeout_s, 0);
      auto res = c.Post("/v1/chat/completions", body, "application/json");
      std::lock_guard lock(mutex_);
      statuses_.push_back(res ? res->status : -1);
    });
  }
  std::vector<int> join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
    return statuses_;
  }
  ~Clients() { join(); }

 private:
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::vector<int> statuses_;
};

}  // namespace calm::testing
