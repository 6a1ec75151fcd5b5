// NodeFleet: the fleet file's nodes (config/node_config.h), each a Node of
// its kind (nodes/node.h: a RouterNode or an OpenAiNode), and the placement
// of the models they serve (placement/placement.h): one ModelCache per node,
// whose loader and unloader are the node's make_ready and release (on a
// router-mode node its POST /models/load and /models/unload). On a node that
// cannot swap (openai), calm's models are pinned: once in use, never evicted.
//
// Lifecycle:
//   NodeFleet(config)   builds the Nodes and the Placement; no I/O.
//   start()             asks every node once to forget_earlier: models of
//                       calm's fleet that a router-mode node already has
//                       loaded (a calm that ran before) are unloaded, so each
//                       node's charge starts from what calm knows (not in a
//                       replica that does not lead placement: those may be
//                       the leader's); a node that does not answer starts
//                       unhealthy.
//                       Then starts the monitor thread.
//   (monitor)           every `period`: each node's health check (its
//                       placement health; a change is logged), and its queue
//                       over the models resident there, from its /metrics
//                       (Placement::set_queue).
//   ~NodeFleet()        stops the monitor and joins it; it unloads nothing
//                       (the nodes keep serving for whoever comes next).
//
// PlacedEngine (nodes/placed_engine.h) is the Engine of one model served by
// nodes: it asks this fleet's placement for a node per request.
//
// Threads: the monitor thread, and the callers of placement() (the engines'
// workers). Thread-safe after start(). Locks: mutex_ (health, changes) and
// listener_mutex_ (the health listener) are never held together. The NodeFleet must outlive every
// PlacedEngine made on it and every Placed its placement returned.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/fleet_config.h"
#include "nodes/node.h"
#include "nodes/router_node.h"
#include "placement/placement.h"

namespace calm {

class NodeFleet {
 public:
  // Throws NodeError(kMalformed) for a node URL, CacheError for an unknown
  // eviction policy.
  NodeFleet(const FleetConfig& config, std::chrono::milliseconds period = std::chrono::seconds(1));
  ~NodeFleet();
  NodeFleet(const NodeFleet&) = delete;
  NodeFleet& operator=(const NodeFleet&) = delete;

  // See the top. Blocks on the nodes (each bounded by its timeouts). Call once.
  // forget_earlier: false in a replica that does not lead placement.
  void start(bool forget_earlier = true);

  Placement& placement() { return *placement_; }
  const Placement& placement() const { return *placement_; }
  // The node at a placement index. Thread-safe (fixed after construction).
  const Node& node(size_t index) const { return *nodes_.at(index); }
  const NodeConfig& node_config(size_t index) const { return configs_.at(index); }
  size_t node_count() const { return nodes_.size(); }

  // Blocks until the placement may have changed (a Placed dropped, a load
  // settled, a node's health or queue changed) since `seen`, or until
  // `deadline`. Returns the change count to pass next time. Thread-safe.
  uint64_t wait_for_change(uint64_t seen, std::chrono::steady_clock::time_point deadline);
  uint64_t change_count() const;
  // Wakes every wait_for_change (a cancelled request, an engine stopping).
  void poke();

  // A request found the node failing (no connection, an error before its
  // first token, a load that failed): it is out of placement until the
  // monitor's next health check finds it answering again. Thread-safe.
  void report_failure(size_t node, const std::string& detail);

  // Why each node is unhealthy ("" when healthy), by node index. Thread-safe.
  std::vector<std::string> health_details() const;

  // A node that went down (a failed health check, or report_failure) or
  // came back up; not a new reason for one that stays down.
  struct HealthChange {
    std::string node;
    bool healthy = false;
    std::string detail;  // why it is down; "" when it came back
  };
  using HealthListener = std::function<void(const HealthChange&)>;
  // Called at each change, on the thread that saw it, with no NodeFleet
  // lock held but the listener's own. Setting it (null to stop) waits for a
  // call under way, so once this returns the old listener is never called
  // again. Thread-safe.
  void set_on_health_change(HealthListener listener);

 private:
  void monitor();
  void check_once();
  void tell(const HealthChange& change);
  // The name a model of calm's fleet has on the nodes.
  const std::string& upstream_of(const std::string& model) const;

  const std::chrono::milliseconds period_;
  std::vector<NodeConfig> configs_;              // fixed after construction
  std::vector<std::unique_ptr<Node>> nodes_;     // fixed after construction
  std::map<std::string, std::string> upstream_;  // model id -> its name on nodes; fixed
  std::unique_ptr<Placement> placement_;         // fixed after construction

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t changes_ = 0;                // guarded by mutex_
  bool stopping_ = false;               // guarded by mutex_
  std::vector<std::string> unhealthy_;  // guarded by mutex_; per node, "" when healthy
  std::thread monitor_;                 // started by start(), joined by the destructor

  // Taken with no other NodeFleet lock held, and held while the listener runs.
  std::mutex listener_mutex_;
  HealthListener listener_;  // guarded by listener_mutex_
};

}  // namespace calm
