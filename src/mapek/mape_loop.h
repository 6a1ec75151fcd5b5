// The MAPE-K loop: Monitor, Analyze, Plan, Execute over shared Knowledge.
//
//   request threads ──on_request()──► Monitor: QoS windows, analyzer windows,
//                                      knowledge store (queued), metrics
//   loop thread, every period:
//      Analyze  (analyzer.h)  windows vs goals, latency shifts per model
//      Plan     (planner.h)   one bounded step on the routing weights, on
//                             the scheduler's swap-aware max_wait, on the
//                             cache's prefetch, and on the replicas of the
//                             models served by nodes
//      Execute                SemanticRouter::set_policy,
//                             Scheduler::set_max_wait,
//                             ResidentSet::set_prefetch (atomic) and
//                             Placement::set_replicas (atomic; one fewer
//                             also sheds one, Placement::shed_replica); a
//                             shifted model's QoS window keeps only its
//                             newest observations
//      Knowledge              every plan and shift is logged as an adaptation
//                             with its reason and figures (SQLite, and the
//                             last 1000 in memory for /v1/calm/adaptations)
//
// At start the QoS windows are refilled from the knowledge store, so routing
// remembers each model's latency, energy and confidence across restarts.
//
// Replicas (a knowledge store shared through PostgreSQL): every tick first
// reads what the other replicas recorded since the last one
// (KnowledgeStore::news_since): their requests join this replica's QoS
// windows, and every feedback event moves the rated answer's confidence, so
// all replicas route by the same knowledge, one period behind at most. One
// replica leads placement (knowledge/leader_lock.h): only the leader plans
// replicas on the nodes; each tick refreshes the lead, so when the leader
// dies another takes over, and every change of lead is an adaptation
// ("leader"). Each replica adapts its own routing, scheduler and cache.
//
// Request handling never waits for the loop: on_request() takes two short
// locks and queues the disk write; the loop's thread does the rest.
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "cache/resident_set.h"
#include "config/fleet_config.h"
#include "knowledge/knowledge_store.h"
#include "knowledge/leader_lock.h"
#include "mapek/analyzer.h"
#include "mapek/planner.h"
#include "mapek/request_metrics.h"
#include "placement/placement.h"
#include "router/semantic_router.h"
#include "scheduler/scheduler.h"

namespace calm {

class MapeLoop {
 public:
  // router: may hold null (no routing: the loop monitors and logs only).
  // knowledge: may be null (nothing persists).
  // scheduler, resident: may be null (their parameters are then not adapted).
  MapeLoop(LoopConfig config, std::shared_ptr<SemanticRouterSlot> router,
           std::shared_ptr<KnowledgeStore> knowledge, Scheduler* scheduler = nullptr,
           ResidentSet* resident = nullptr);
  ~MapeLoop();

  // Starts the loop's thread (if enabled). Call once.
  // With nodes: the placement whose replicas the loop plans (it must
  // outlive the loop's thread). Call before start().
  void set_placement(Placement* placement) { placement_ = placement; }
  // With a shared knowledge store: the lock that says whether this replica
  // leads placement (it must outlive the loop's thread). Call before start().
  void set_leader(LeaderLock* leader) { leader_ = leader; }

  void start();
  void stop();

  // Monitor: one finished request. Thread-safe, cheap.
  void on_request(const RequestMetrics& metrics);
  // A user's score (1-5) of an answer, mapped to confidence (score-1)/4 and
  // recorded in the answering model's QoS window. False: unknown response id.
  bool on_feedback(const std::string& response_id, int score);

  // One Analyze-Plan-Execute pass (the thread calls it every period; tests
  // call it directly). Returns the adaptations it made.
  std::vector<nlohmann::json> tick();

  // The newest adaptations first (at most `limit`).
  std::vector<nlohmann::json> adaptations(size_t limit) const;
  // Current weights, goals and their last check, for /v1/calm/state.
  nlohmann::json state() const;
  uint64_t adaptation_count() const { return adaptation_count_.load(); }
  // The routing weights in use; nullopt without a router. Thread-safe, cheap.
  std::optional<PolicySettings> routing() const;

  // Records an adaptation made outside the loop's own plans (a circuit
  // breaker that opens or closes): logged, kept for /v1/calm/adaptations and
  // written to the knowledge store like the loop's. Thread-safe.
  void log_adaptation(const std::string& kind, const std::string& reason,
                      const nlohmann::json& figures, const nlohmann::json& before,
                      const nlohmann::json& after);

 private:
  void restore_windows();
  // Replicas: what the others recorded since the last tick, into the windows.
  void take_news();
  // Which model answered a response id, for on_feedback (the newest
  // kRememberedResponses). Thread-safe.
  void remember_responder(const std::string& response_id, const std::string& model);
  // Replicas: refreshes the lead; logs a change. Whether this replica leads.
  bool refresh_lead();
  void run();
  // The placement's lever (Planner::plan_replicas); appends what it made.
  void plan_replicas(const Analysis& analysis, std::vector<nlohmann::json>& made);

  const LoopConfig config_;
  std::shared_ptr<SemanticRouterSlot> router_;
  std::shared_ptr<KnowledgeStore> knowledge_;
  Scheduler* scheduler_;
  std::chrono::milliseconds configured_max_wait_{0};
  ResidentSet* resident_;
  bool configured_prefetch_ = false;
  Placement* placement_ = nullptr;            // set before start(); thread-safe itself
  LeaderLock* leader_ = nullptr;              // set before start(); thread-safe itself
  bool led_ = false;                          // the loop thread's: the lead at the last tick
  KnowledgeStore::NewsCursor news_cursor_;    // the loop thread's (tick)
  uint64_t seen_hits_ = 0, seen_misses_ = 0;  // the loop thread's; cache totals at the last tick
  Analyzer analyzer_;
  std::unique_ptr<Planner> planner_;  // the loop thread's

  mutable std::mutex mutex_;
  std::deque<nlohmann::json> recent_;                        // guarded by mutex_
  std::unordered_map<std::string, std::string> responders_;  // response id → model; guarded
  std::deque<std::string> responder_order_;                  // guarded by mutex_ (eviction)
  nlohmann::json last_checks_ = nlohmann::json::array();     // guarded by mutex_
  std::atomic<uint64_t> adaptation_count_{0};

  std::mutex thread_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by thread_mutex_
  std::thread thread_;
};

nlohmann::json policy_json(const PolicySettings& p);

}  // namespace calm
