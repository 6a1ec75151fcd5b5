// PlacedEngine: the Engine of one model served by nodes (a fleet-file model
// with `nodes:`). Each request is placed by the NodeFleet's placement (the
// node that holds the model with room in its queue, else a load on the node
// with the most room, evicting by policy there), then sent to that node's
// /v1/chat/completions through a RemoteEngine of its own per node, and the
// node's events are passed on as they come.
//
// One request:
//
//   submit() ──► [queued] ──worker──► [placing] ──Placed──► [loading on node] ──► [streaming] ──► done
//                                        │  nothing can take it:        │ load failed         │ node failed
//                                        │  wait for a change           ▼                     ▼
//                                        └─ until read_timeout ──► error (kUnavailable / the node's kind)
//   cancel() at any point: the stream finishes "cancelled"; a running node request is aborted.
//
// A node that fails before the first token (no connection, no answer in
// time, a load that fails) is reported to the fleet (out of placement until
// its next health check) and the request is placed again, on another node,
// once per node of the model at most. (An openai node that refuses a model
// it does not list, while its health check passes, stays in placement.) When every try failed, the error has
// backend_failure(), so the pipeline's failover (fallbacks:) and circuit
// breakers treat the model like any remote one. After the first token a
// failure ends the stream with the node's error.
//
// Threads: `parallel` workers (ModelConfig::parallel, the scheduler's slots
// for this model), each running one request at a time; they block on the
// node's load and on its answer, never on a transport's thread.
// Lock order: mutex_, then a Call's mutex. Thread-safe, except load() and
// unload() with each other (the registry serializes them).
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "config/fleet_config.h"
#include "engines/engine.h"
#include "engines/remote_engine.h"
#include "nodes/node_fleet.h"

namespace calm {

class PlacedEngine : public Engine {
 public:
  // `fleet` must outlive the engine. No I/O.
  PlacedEngine(NodeFleet& fleet, ModelConfig config);
  ~PlacedEngine() override;

  // Makes one RemoteEngine per node of the model and starts the workers.
  // A node that is down now is not an error (it may start after calm): its
  // engine starts on its first request there.
  void load() override;
  // Fails queued requests, cancels running ones, joins the workers.
  void unload() override;
  bool loaded() const override;  // thread-safe
  // Thread-safe; returns at once.
  std::shared_ptr<GenerationStream> submit(GenerationRequest request) override;
  // Healthy while at least one of its nodes is. Thread-safe.
  EngineHealth health() override;
  EngineStats stats() const override;  // thread-safe

 private:
  struct Call {
    std::shared_ptr<GenerationStream> stream = std::make_shared<GenerationStream>();
    GenerationRequest request;
    std::mutex mutex;                           // after PlacedEngine::mutex_
    std::shared_ptr<GenerationStream> on_node;  // guarded by mutex: the node's stream
  };

  void work();
  void run(Call& call);
  // One try on one node: placed, loaded, sent, relayed. Returns the node's
  // failure when it came before the first token (the request may go to
  // another node); otherwise the client's stream has its final event.
  std::optional<EngineError> try_once(Call& call, std::chrono::steady_clock::time_point deadline);
  // Forwards the node's events to the client's stream until the final one;
  // a backend failure before any text is returned instead.
  std::optional<EngineError> relay(Call& call, const std::shared_ptr<GenerationStream>& on_node);
  // Starts the node's engine if it is not running (its node was down when
  // load() ran); the failure when it cannot.
  std::optional<EngineError> ready_on(RemoteEngine& remote);

  NodeFleet& fleet_;
  const ModelConfig config_;
  // By placement node index; null for a node that does not serve the model.
  // Set by load() before the workers start, cleared by unload() after they end.
  std::vector<std::unique_ptr<RemoteEngine>> remotes_;
  std::mutex start_mutex_;  // one ready_on start at a time; taken with no other lock held

  mutable std::mutex mutex_;
  std::condition_variable work_ready_;
  std::deque<std::shared_ptr<Call>> queue_;  // guarded by mutex_
  bool stopping_ = false;                    // guarded by mutex_
  bool loaded_ = false;                      // guarded by mutex_
  int busy_ = 0;                             // guarded by mutex_
  uint64_t completed_ = 0, cancelled_ = 0;   // guarded by mutex_
  std::vector<std::thread> workers_;         // started by load(), joined by unload()
};

}  // namespace calm
