// Placement: which node serves a model, across many machines.
//
// A node is another machine running an engine that loads and unloads models
// on request (llama.cpp's llama-server in router mode), with a memory budget
// in bytes. The router picks the model; placement picks the node. Each node
// gets its own ModelCache (cache/model_cache.h): its budget, the fleet's
// eviction policy, and the caller's loader and unloader, which will call the
// node's HTTP API. So per node, exactly as for the local cache: the budget is
// never exceeded, victims are chosen by the policy (lru, lfu, gdsf), a model
// with requests in flight on that node is never evicted, and loads of one
// model on one node are coalesced.
//
// A request's life:
//
//   try_place(model) ──► Placed ──wait()──► [resident on node] ──send request──► ~Placed
//        │ never blocks      (joins or performs the node's load,     (the caller)   (lease dropped,
//        │                    outside every lock)                                    slot freed)
//        ├─ nullopt: no node can take it now (retry after on_change)
//        └─ PlacementError: no node serves it, or it fits no node (at once)
//
// try_place decides in this order, looking only at the nodes that can serve
// the model (an index, so a decision costs O(those nodes), not O(all nodes)):
//   (a) healthy nodes that hold the model (resident or loading) and whose
//       queue has room, least queued first: the request joins what is there;
//   (b) else healthy nodes with room in their queue that do not hold it, most
//       free bytes first, each asked ModelCache::try_acquire until one
//       reserves a load (evicting by policy there if it must);
//   (c) else nullopt: nothing can take it now.
// Ties go to the node listed first. Replicas: each model has a planned
// replica count (set_replicas; 1 by default; the MAPE-K loop moves it). While
// fewer healthy nodes hold the model than planned and every holder has work
// queued, (b) is tried before (a), so the next request starts a replica on
// another node; shed_replica() gives one back. A node's queue is
//   queued = max(calm's requests in flight on it, scraped running + waiting)
// and has room when queued < max_queue (0: no limit). Calm's own count is
// live but misses other clients; the scrape sees everyone but is stale and
// already counts calm's requests, so the larger is the better guess (their
// sum would count calm's requests twice). Taking a slot is atomic, so
// concurrent decisions never push calm's own count past max_queue.
// Nodes start healthy; the caller marks them down from its health checks.
//
// Threads and locks: the index and the node list are fixed at construction
// and read without a lock. Live figures (health, scrape, in flight) are
// atomics. A decision takes one node cache's lock at a time (inside
// ModelCache's calls), never two at once, and never a Placement lock. The
// only Placement lock, on_change_mutex_, is held only to copy the callback:
// never while a cache is called, and never taken under a cache's lock (a
// cache calls back with its locks released). So there is no lock order to
// keep beyond ModelCache's own. The callback, loaders and unloaders run with
// no lock held.
//
// Thread-safe, except Placed (one owner). The Placement must outlive every
// Placed it returned.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/model_cache.h"

namespace calm {

// A placement that can never succeed. A CacheError, so callers that already
// handle the cache's errors handle these too: kind() is kNeverFits for a
// model that fits no node, kOther for one no node serves.
class PlacementError : public CacheError {
 public:
  enum class Reason {
    kNoNode,     // no node lists the model
    kNeverFits,  // every node that lists it is too small for it
  };
  PlacementError(const std::string& what, Reason reason)
      : CacheError(what, reason == Reason::kNeverFits ? Kind::kNeverFits : Kind::kOther),
        reason_(reason) {}
  Reason reason() const { return reason_; }

 private:
  Reason reason_;
};

struct NodeSpec {
  std::string id;
  uint64_t budget_bytes = 0;  // 0: no limit
  size_t max_queue = 0;       // requests it takes before it counts as full; 0: no limit
  std::vector<ModelCache::ModelSpec> models;  // what it can serve
};

class Placement {
 public:
  using NodeLoader = std::function<ModelCache::LoadResult(const std::string& node_id,
                                                          const std::string& model_id)>;
  using NodeUnloader = std::function<void(const std::string& node_id, const std::string& model_id)>;

  // Builds one ModelCache per node. A model whose estimate exceeds a node's
  // budget is left out of that node (it goes to the larger ones). Throws
  // CacheError for an unknown eviction policy, std::invalid_argument for an
  // empty or repeated node id.
  Placement(std::vector<NodeSpec> nodes, std::string eviction, NodeLoader loader,
            NodeUnloader unloader);
  ~Placement();
  Placement(const Placement&) = delete;
  Placement& operator=(const Placement&) = delete;

 private:
  struct Node;

 public:
  // One request placed on a node. wait() makes the model resident there
  // (performs or joins the node's load; throws CacheError if it fails); then
  // the caller sends the request and drops the Placed, which frees its queue
  // slot and lets the model be evicted again. Dropping one whose reserved
  // load never ran runs it first (ModelCache's rule). Not thread-safe: one owner.
  class Placed {
   public:
    Placed(Placed&& other) noexcept;
    Placed& operator=(Placed&& other) noexcept;
    ~Placed();
    size_t node() const { return index_; }
    const std::string& node_id() const;
    const std::string& model() const { return lease_.id(); }
    bool held() const { return held_; }                // chosen in (a): the node held the model
    bool was_hit() const { return lease_.was_hit(); }  // resident when placed
    void wait() { lease_.wait(); }
    ModelCache::Lease& lease() { return lease_; }

   private:
    friend class Placement;
    Placed(Node* node, size_t index, ModelCache::Lease lease, bool held)
        : node_(node), index_(index), lease_(std::move(lease)), held_(held) {}
    void release();
    Node* node_ = nullptr;  // counts this request in flight; null once released
    size_t index_ = 0;
    ModelCache::Lease lease_;
    bool held_ = false;
  };

  // Never blocks on a load (see the top). Throws PlacementError for a model
  // no node serves or one that fits no node; CacheError(kNeverFits) can also
  // come from a node whose pinned models leave the model no room there.
  // Never calls the on_change callback, so it may run under the caller's
  // lock. Thread-safe.
  std::optional<Placed> try_place(const std::string& model);

  // The index of a node id, nullopt for an unknown one. Thread-safe.
  std::optional<size_t> node_index(const std::string& node_id) const;
  size_t node_count() const { return nodes_.size(); }
  const std::string& node_id(size_t node) const;  // Thread-safe; throws std::out_of_range

  // What the health check and a scrape of the node's /metrics say.
  // Thread-safe and cheap (atomics); throw std::out_of_range for a bad index.
  void set_healthy(size_t node, bool healthy);
  void set_queue(size_t node, uint32_t running, uint32_t waiting);

  // The planned replica count of a model (at least 1; see the top). Throws
  // std::out_of_range for a model no node lists. Thread-safe (an atomic).
  void set_replicas(const std::string& model, uint32_t replicas);
  uint32_t replicas(const std::string& model) const;

  // Per model: its planned replicas, the healthy nodes that hold it
  // (resident or loading) and the healthy nodes that could. By model id.
  // O(node-model pairs). Thread-safe.
  struct Spread {
    std::string model;
    uint32_t replicas = 1;
    uint32_t held = 0;
    uint32_t nodes = 0;
  };
  std::vector<Spread> spread() const;

  // Unloads the model from one node that holds it with no request in flight
  // there (the busiest such node), never from the last node that holds it.
  // Returns that node's id, or nullopt when none could give it up now.
  // Thread-safe; blocks on the unload.
  std::optional<std::string> shed_replica(const std::string& model);

  // Called (with no lock held) whenever a placement that was refused may now
  // succeed: a lease dropped, a load settled, a node came back or got queue
  // room. Thread-safe. Set it to null before the callee is destroyed.
  void set_on_change(std::function<void()> on_change);

  struct NodeStats {
    std::string id;
    bool healthy = true;
    uint32_t running = 0, waiting = 0;  // the last scrape
    int64_t in_flight = 0;              // calm's requests placed on it now
    size_t queued = 0;                  // max(in_flight, running + waiting)
    size_t max_queue = 0;               // 0: no limit
    uint64_t budget_bytes = 0;          // 0: no limit
    uint64_t used_bytes = 0;            // charged now (resident, loading, unloading)
    size_t servable = 0;                // models it can serve (that fit its budget)
    struct Held {                       // a model resident or loading there
      std::string id;
      std::string state;   // the node cache's word: resident or loading
      uint64_t bytes = 0;  // charged to it there
      int in_flight = 0;   // calm's requests on it there now
    };
    std::vector<Held> resident;         // in the node's model order
    uint64_t loads = 0, evictions = 0;  // over its life
  };
  struct Stats {
    std::string eviction;
    uint64_t placed_on_holder = 0;  // decisions of (a)
    uint64_t placed_by_load = 0;    // decisions of (b)
    uint64_t refused = 0;           // decisions of (c)
    std::vector<NodeStats> nodes;   // in the order given
  };
  // A snapshot for display: O(nodes x models per node). Thread-safe.
  Stats stats() const;

 private:
  struct Node {
    Node(std::string node_id, uint64_t budget, size_t queue_limit)
        : id(std::move(node_id)), budget_bytes(budget), max_queue(queue_limit) {}
    const std::string id;
    const uint64_t budget_bytes;
    const size_t max_queue;
    size_t servable = 0;                // set at construction, then fixed
    std::unique_ptr<ModelCache> cache;  // set at construction; the cache is thread-safe
    std::atomic<bool> healthy{true};    // atomic
    std::atomic<uint64_t> scraped{0};   // atomic: running << 32 | waiting, one consistent pair
    std::atomic<int64_t> in_flight{0};  // atomic: Placed alive on this node

    size_t queued() const;
    bool has_room() const;
    bool take_slot();  // one more in flight, if the queue has room
  };
  // The nodes that can serve a model, from the NodeSpecs.
  struct ModelEntry {
    std::vector<uint32_t> nodes;        // whose budget its estimate fits, in node order
    std::string never_fits;             // listed, but too big for every node: why
    std::atomic<uint32_t> replicas{1};  // atomic: planned replicas (set_replicas)
  };

  std::optional<Placed> place_on(uint32_t index, const std::string& model, bool held);
  // Why the model can never fit any of its nodes, or nullopt.
  std::optional<std::string> never_fits_anywhere(const std::string& model,
                                                 const ModelEntry& entry) const;
  void notify_change();

  const std::string eviction_;
  const NodeLoader loader_;
  const NodeUnloader unloader_;
  std::vector<std::unique_ptr<Node>> nodes_;            // fixed after construction
  std::unordered_map<std::string, size_t> node_index_;  // fixed after construction
  std::unordered_map<std::string, ModelEntry> models_;  // fixed after construction
  std::atomic<uint64_t> placed_on_holder_{0}, placed_by_load_{0}, refused_{0};  // atomic
  mutable std::mutex on_change_mutex_;
  std::function<void()> on_change_;  // guarded by on_change_mutex_
};

}  // namespace calm
