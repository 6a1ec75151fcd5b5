// The request pipeline: one generation's life, the same for every transport.
//
// clang-format off
//   submit() ──► route ──► admit ──► [queued] ──► lease (load if needed) ──► engine ──► stream ──► monitor
//                  │         │          │                                       │          │
//                  404       503/429    cancel(): gone at once                  └─ cancel(): the engine
//                                       queue timeout: 503                         stops, the slot frees
// clang-format on
//
// - Nothing here waits: submit() returns once the request is queued (or has
//   failed), and every later step runs on the thread whose work enabled it
//   (the scheduler's dispatch or loader thread, then the engine's thread).
//   A transport's threads are free while a request waits.
// - The transport hands in a Sink and gets a Call back. The sink is told, in
//   this order and never two at once: started (once, when the engine has
//   taken the request), delta (streamed requests only), then exactly one of
//   finished or failed. failed may come without started (refused, timed out,
//   cancelled in the queue) and may come before submit() returns.
// - Routing and queueing happen while the registry holds the fleet still
//   (Registry::hold_fleet), so a request is admitted against one fleet
//   snapshot, whose version it reports. It keeps the entry it was routed to
//   (so the engine) until it ends: a reload never changes a request in
//   flight. One exception: a queued request for a local model that a reload
//   replaced runs on the replacement (the cache loads only the current one).
// - Local and remote models go through the same admission: the queue limit,
//   each model's max_in_flight and the queue timeout.
// - Failover: when the model's backend fails before anything reached the
//   client (a remote that is down, a load that fails, a connection refused,
//   a 5xx, a timeout), the request goes to the route's next fallback
//   (RouteDecision::fallbacks), at most `max_retries` times, each retry
//   admitted like a new request. A streamed request's head (and so its
//   `x-calm-model`) goes out with its first token, so the client only ever
//   sees the model that answers. A failure after the first streamed token
//   ends the stream with an error event and [DONE]; a non-streamed answer
//   has sent nothing until it ends, so it can fail over at any point.
//   Each backend failure counts against the model's circuit breaker, each
//   success resets it, and a model whose breaker is open is skipped (or
//   answered 503 with Retry-After when nothing else can answer).
// - drain() refuses new requests with 503 and waits (bounded) for the ones in
//   flight; what is left when the grace ends is cancelled.
//
// Thread-safe. The pipeline must outlive every Call it returned; drain()
// returns only once no call is left, so a transport that drains first can
// then stop.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "cache/resident_set.h"
#include "engines/engine.h"
#include "failover/circuit_breakers.h"
#include "mapek/mape_loop.h"
#include "meters/energy_attributor.h"
#include "pipeline/api_error.h"
#include "registry/registry.h"
#include "router/router.h"
#include "router/semantic_router.h"
#include "scheduler/scheduler.h"
#include "util/delay_queue.h"

namespace calm {

struct PipelineRequest {
  std::string model;  // as the client named it ("auto" routes)
  GenerationRequest generation;
  bool stream = false;    // the sink wants every delta; else only the end
  std::string id_prefix;  // "chatcmpl" or "cmpl": the response id's prefix
  std::chrono::steady_clock::time_point arrival = std::chrono::steady_clock::now();
};

// What the transport needs to write the response's head.
struct PipelineStart {
  std::string response_id;
  std::string model;           // the model that answers
  std::string route_reason;    // why (one line)
  bool local = false;          // went through the model cache (cache_hit, queue_ms mean something)
  uint64_t fleet_version = 0;  // the fleet snapshot it was admitted with (registry.h)
  bool cache_hit = false;
  double queue_ms = 0;    // arrival until started, including a load
  long long created = 0;  // unix seconds
};

class PipelineSink {
 public:
  virtual ~PipelineSink() = default;
  virtual void started(const PipelineStart& start) = 0;
  virtual void delta(const std::string& text) = 0;
  virtual void finished(const GenerationResult& result) = 0;
  virtual void failed(const ApiError& error) = 0;
};

// Throws ApiError (400, empty_query) when a request has no words to route by.
void require_query_text(const GenerationRequest& request);

class RequestPipeline {
 public:
  struct Parts {
    Registry& registry;
    Router& router;
    ResidentSet& resident;
    Scheduler& scheduler;
    std::shared_ptr<SemanticRouterSlot> semantic;  // may be null: no routing
    MapeLoop* loop = nullptr;                      // may be null
    EnergyAttributor* energy = nullptr;            // may be null
    // Told of every finished request and every refusal (for /metrics); may
    // be empty. Called on whichever thread ends the request; must not block.
    std::function<void(const RequestMetrics&)> on_record;
    std::function<void(const ApiError&)> on_refusal;
    // Failover: the breakers (may be null: none), the retries per request,
    // and told of each retry (the model that failed, the one tried next)
    // and of each request that failed for good (`mid_stream`: after its
    // first token reached the client). Same threading as on_record.
    CircuitBreakers* breakers = nullptr;
    int max_retries = 0;
    std::function<void(const std::string& failed, const std::string& next)> on_retry;
    std::function<void(const std::string& model, const ApiError&, bool mid_stream)> on_failure;
  };
  explicit RequestPipeline(Parts parts);
  ~RequestPipeline();  // drains with no grace

  // One request in flight. Thread-safe.
  class Call {
   public:
    // The client has gone: a queued request leaves the queue, a running one
    // stops generating and frees its slot. The sink is told failed (499,
    // "cancelled") unless it was already told the end.
    void cancel();

   private:
    friend class RequestPipeline;
    struct State;
    explicit Call(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;
  };

  // Starts a request; never blocks on the queue, a load or inference.
  // Thread-safe. The sink is kept until the request ends.
  std::shared_ptr<Call> submit(PipelineRequest request, std::shared_ptr<PipelineSink> sink);

  // Refuses new requests (503 server_stopping), waits up to `grace` for the
  // ones in flight to end, cancels the rest and waits for them to settle.
  // Thread-safe; idempotent.
  void drain(std::chrono::milliseconds grace);
  bool draining() const { return draining_.load(); }
  size_t in_flight() const;

 private:
  void admit(const std::shared_ptr<Call::State>& call);
  // One model's try: its breaker, its readiness, then the queue. Called
  // while the fleet is held.
  void attempt(const std::shared_ptr<Call::State>& call, Registry::EntryPtr entry,
               const std::string& reason);
  // `model` failed before anything reached the client: the next fallback
  // gets the request, or the client gets `error`.
  void fail_over(const std::shared_ptr<Call::State>& call, const std::string& model,
                 const ApiError& error, bool backend_failure);
  // A reload replaced `model` while the request waited for its load: tried
  // again on the model's new engine (a retry, not a backend failure).
  void retry_replaced(const std::shared_ptr<Call::State>& call, const std::string& model,
                      const CacheError& error);
  void start(const std::shared_ptr<Call::State>& call, std::unique_ptr<Scheduler::Ticket> ticket);
  void run_engine(const std::shared_ptr<Call::State>& call);
  void drain_stream(const std::shared_ptr<Call::State>& call);
  void fail(const std::shared_ptr<Call::State>& call, const ApiError& error);
  void end(const std::shared_ptr<Call::State>& call);
  void monitor(const Call::State& call, const GenerationResult& result);

  Registry& registry_;
  Router& router_;
  ResidentSet& resident_;
  Scheduler& scheduler_;
  std::shared_ptr<SemanticRouterSlot> semantic_;
  MapeLoop* loop_;
  EnergyAttributor* energy_;
  std::function<void(const RequestMetrics&)> on_record_;
  std::function<void(const ApiError&)> on_refusal_;
  CircuitBreakers* breakers_;
  int max_retries_;
  std::function<void(const std::string&, const std::string&)> on_retry_;
  std::function<void(const std::string&, const ApiError&, bool)> on_failure_;
  DelayQueue delays_;  // models[].inject_delay_ms and failover retries, without holding a thread

  std::atomic<bool> draining_{false};
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  std::map<uint64_t, std::weak_ptr<Call::State>> calls_;  // guarded by mutex_; in flight
  uint64_t next_call_ = 1;                                // guarded by mutex_
};

}  // namespace calm
