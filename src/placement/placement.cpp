#include "placement/placement.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <utility>

#include "cache/eviction_policy.h"

namespace calm {
namespace {

// "5.8 MiB (6038323 bytes)", as the cache writes sizes.
std::string mib(uint64_t bytes) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.1f MiB (%llu bytes)", bytes / 1048576.0,
                static_cast<unsigned long long>(bytes));
  return text;
}

constexpr uint64_t kLow32 = 0xffffffffull;

// A node that can be tried: key is its queue (a) or its free bytes (b).
struct Candidate {
  uint64_t key;
  uint32_t node;
};

// Reasons listed in an error before "and N more".
constexpr size_t kReasonsShown = 3;

}  // namespace

// --- Node --------------------------------------------------------------------

size_t Placement::Node::queued() const {
  const uint64_t s = scraped.load(std::memory_order_relaxed);
  const uint64_t scraped_total = (s >> 32) + (s & kLow32);
  const int64_t mine = std::max<int64_t>(0, in_flight.load(std::memory_order_relaxed));
  return static_cast<size_t>(std::max<uint64_t>(static_cast<uint64_t>(mine), scraped_total));
}

bool Placement::Node::has_room() const {
  return max_queue == 0 || queued() < max_queue;
}

bool Placement::Node::take_slot() {
  const int64_t before = in_flight.fetch_add(1, std::memory_order_acq_rel);
  if (max_queue == 0) return true;
  const uint64_t s = scraped.load(std::memory_order_relaxed);
  const uint64_t scraped_total = (s >> 32) + (s & kLow32);
  // The new request is in neither figure yet: each must stay below the limit.
  if (before >= 0 && static_cast<uint64_t>(before) < max_queue && scraped_total < max_queue) {
    return true;
  }
  in_flight.fetch_sub(1, std::memory_order_acq_rel);
  return false;
}

// --- Placed ------------------------------------------------------------------

Placement::Placed::Placed(Placed&& other) noexcept
    : node_(std::exchange(other.node_, nullptr)),
      index_(other.index_),
      lease_(std::move(other.lease_)),
      held_(other.held_) {}

Placement::Placed& Placement::Placed::operator=(Placed&& other) noexcept {
  if (this != &other) {
    release();
    node_ = std::exchange(other.node_, nullptr);
    index_ = other.index_;
    lease_ = std::move(other.lease_);
    held_ = other.held_;
  }
  return *this;
}

Placement::Placed::~Placed() {
  release();
}

void Placement::Placed::release() {
  if (!node_) return;
  // The slot first: the lease's release calls back on_change, and a retry
  // from there must see the room.
  std::exchange(node_, nullptr)->in_flight.fetch_sub(1, std::memory_order_acq_rel);
  lease_ = ModelCache::Lease();
}

const std::string& Placement::Placed::node_id() const {
  static const std::string none;
  return node_ ? node_->id : none;
}

// --- Placement ---------------------------------------------------------------

Placement::Placement(std::vector<NodeSpec> nodes, std::string eviction, NodeLoader loader,
                     NodeUnloader unloader)
    : eviction_(std::move(eviction)), loader_(std::move(loader)), unloader_(std::move(unloader)) {
  if (!make_eviction_policy(eviction_)) {
    throw CacheError("unknown eviction policy '" + eviction_ + "'");
  }
  // Models some node lists but whose estimate exceeds that node's budget.
  struct TooBig {
    size_t nodes = 0;
    std::string detail;
  };
  std::unordered_map<std::string, TooBig> too_big;

  nodes_.reserve(nodes.size());
  for (auto& spec : nodes) {
    if (spec.id.empty()) throw std::invalid_argument("placement: a node has an empty id");
    const auto index = static_cast<uint32_t>(nodes_.size());
    if (!node_index_.emplace(spec.id, index).second) {
      throw std::invalid_argument("placement: node '" + spec.id + "' is listed twice");
    }
    auto node = std::make_unique<Node>(spec.id, spec.budget_bytes, spec.max_queue);
    std::vector<ModelCache::ModelSpec> fitting;
    fitting.reserve(spec.models.size());
    for (auto& model : spec.models) {
      ModelEntry& entry = models_[model.id];
      if (spec.budget_bytes > 0 && model.estimated_bytes > spec.budget_bytes) {
        TooBig& t = too_big[model.id];
        if (t.nodes++ < kReasonsShown) {
          t.detail += (t.detail.empty() ? "" : ", ") + std::string("about ") +
                      mib(model.estimated_bytes) + " on node '" + spec.id + "' (budget " +
                      mib(spec.budget_bytes) + ")";
        }
        continue;
      }
      if (entry.nodes.empty() || entry.nodes.back() != index) entry.nodes.push_back(index);
      fitting.push_back(std::move(model));
    }
    node->servable = fitting.size();
    Node* raw = node.get();
    node->cache = std::make_unique<ModelCache>(
        ModelCache::Options{spec.budget_bytes, 0, eviction_,
                            "the budget of node '" + spec.id + "'"},
        std::move(fitting),
        [this, raw](const std::string& model) { return loader_(raw->id, model); },
        [this, raw](const std::string& model) { unloader_(raw->id, model); });
    node->cache->set_on_change([this] { notify_change(); });
    nodes_.push_back(std::move(node));
  }
  for (auto& [id, t] : too_big) {
    ModelEntry& entry = models_.at(id);
    if (!entry.nodes.empty()) continue;  // it fits somewhere
    entry.never_fits = "model '" + id + "' fits no node that can serve it: it needs " + t.detail;
    if (t.nodes > kReasonsShown) {
      entry.never_fits += ", and " + std::to_string(t.nodes - kReasonsShown) + " more";
    }
  }
}

Placement::~Placement() {
  for (auto& node : nodes_) node->cache->set_on_change(nullptr);
}

std::optional<Placement::Placed> Placement::place_on(uint32_t index, const std::string& model,
                                                     bool held) {
  Node& node = *nodes_[index];
  if (!node.take_slot()) return std::nullopt;
  std::optional<ModelCache::Lease> lease;
  try {
    lease = node.cache->try_acquire(model);
  } catch (...) {
    node.in_flight.fetch_sub(1, std::memory_order_acq_rel);
    throw;
  }
  if (!lease) {
    // No callback from here: try_place may run under the caller's lock.
    node.in_flight.fetch_sub(1, std::memory_order_acq_rel);
    return std::nullopt;
  }
  return Placed(&node, index, std::move(*lease), held);
}

std::optional<Placement::Placed> Placement::try_place(const std::string& model) {
  const auto it = models_.find(model);
  if (it == models_.end()) {
    throw PlacementError("no node can serve model '" + model + "'",
                         PlacementError::Reason::kNoNode);
  }
  const ModelEntry& entry = it->second;
  if (!entry.never_fits.empty()) {
    throw PlacementError(entry.never_fits, PlacementError::Reason::kNeverFits);
  }

  // Scratch space per thread: a decision allocates nothing once warm. Safe
  // because nothing below calls back into try_place.
  thread_local std::vector<Candidate> holders, others;
  holders.clear();
  others.clear();
  // Healthy nodes that hold it, with room or not. Nodes without room are
  // asked only when more than one replica is planned: with one, a holder
  // that is full changes no decision (spreading then means (b) before an
  // empty (a), the same order as without).
  const uint32_t wanted = entry.replicas.load(std::memory_order_relaxed);
  uint32_t held = 0;
  for (const uint32_t n : entry.nodes) {
    const Node& node = *nodes_[n];
    if (!node.healthy.load(std::memory_order_relaxed)) continue;
    const bool room = node.has_room();
    if (!room && wanted <= 1) continue;
    const bool holds = node.cache->resident_or_loading(model);
    held += holds ? 1 : 0;
    if (!room) continue;
    if (holds) {
      holders.push_back({node.queued(), n});
    } else {
      others.push_back({0, n});
    }
  }
  std::sort(holders.begin(), holders.end(), [](const Candidate& a, const Candidate& b) {
    return a.key != b.key ? a.key < b.key : a.node < b.node;
  });
  // (b) a load, on the node with the most free bytes that can make room.
  const auto by_load = [&]() -> std::optional<Placed> {
    for (Candidate& c : others) {
      const Node& node = *nodes_[c.node];
      c.key = node.budget_bytes == 0
                  ? std::numeric_limits<uint64_t>::max()
                  : node.budget_bytes - std::min(node.budget_bytes, node.cache->used_bytes());
    }
    std::sort(others.begin(), others.end(), [](const Candidate& a, const Candidate& b) {
      return a.key != b.key ? a.key > b.key : a.node < b.node;
    });
    bool saw_never_fits = false;
    for (const Candidate& c : others) {
      try {
        if (auto placed = place_on(c.node, model, false)) {
          placed_by_load_.fetch_add(1, std::memory_order_relaxed);
          return placed;
        }
      } catch (const CacheError& e) {
        if (e.kind() != CacheError::Kind::kNeverFits) throw;
        saw_never_fits = true;  // pinned models there leave it no room: try the next node
      }
    }

    // (c) nothing now; unless it can never fit anywhere, which waiting won't mend.
    if (saw_never_fits) {
      if (auto why = never_fits_anywhere(model, entry)) {
        throw PlacementError(*why, PlacementError::Reason::kNeverFits);
      }
    }
    return std::nullopt;
  };
  // Fewer replicas than planned and every holder busy: a load elsewhere
  // first, so that the model spreads; the holders only if no load can start.
  const bool spread =
      held < wanted && !others.empty() && (holders.empty() || holders.front().key > 0);
  if (spread) {
    if (auto placed = by_load()) return placed;
  }
  // (a) a node that holds it, least queued first.
  for (const Candidate& c : holders) {
    if (auto placed = place_on(c.node, model, true)) {
      placed_on_holder_.fetch_add(1, std::memory_order_relaxed);
      return placed;
    }
  }
  if (!spread) {
    if (auto placed = by_load()) return placed;
  }
  refused_.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

void Placement::set_replicas(const std::string& model, uint32_t replicas) {
  models_.at(model).replicas.store(std::max<uint32_t>(1, replicas), std::memory_order_relaxed);
}

uint32_t Placement::replicas(const std::string& model) const {
  return models_.at(model).replicas.load(std::memory_order_relaxed);
}

std::vector<Placement::Spread> Placement::spread() const {
  std::vector<Spread> out;
  out.reserve(models_.size());
  for (const auto& [id, entry] : models_) {
    Spread s;
    s.model = id;
    s.replicas = entry.replicas.load(std::memory_order_relaxed);
    for (const uint32_t n : entry.nodes) {
      const Node& node = *nodes_[n];
      if (!node.healthy.load(std::memory_order_relaxed)) continue;
      ++s.nodes;
      s.held += node.cache->resident_or_loading(id) ? 1 : 0;
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const Spread& a, const Spread& b) { return a.model < b.model; });
  return out;
}

std::optional<std::string> Placement::shed_replica(const std::string& model) {
  const ModelEntry& entry = models_.at(model);
  // The busiest node that holds it idle gives it up: that frees room where
  // it is needed most.
  std::vector<Candidate> idle;
  for (const uint32_t n : entry.nodes) {
    const Node& node = *nodes_[n];
    if (node.cache->resident_or_loading(model)) idle.push_back({node.queued(), n});
  }
  if (idle.size() < 2) return std::nullopt;  // the last one stays
  std::sort(idle.begin(), idle.end(), [](const Candidate& a, const Candidate& b) {
    return a.key != b.key ? a.key > b.key : a.node > b.node;
  });
  for (const Candidate& c : idle) {
    if (nodes_[c.node]->cache->unload_if_idle(model)) return nodes_[c.node]->id;
  }
  return std::nullopt;
}

std::optional<std::string> Placement::never_fits_anywhere(const std::string& model,
                                                          const ModelEntry& entry) const {
  std::string why;
  size_t count = 0;
  for (const uint32_t n : entry.nodes) {
    const auto reason = nodes_[n]->cache->never_fits(model);
    if (!reason) return std::nullopt;
    if (count++ < kReasonsShown) {
      why += (why.empty() ? "" : "; ") + std::string("on node '") + nodes_[n]->id + "': " + *reason;
    }
  }
  if (count > kReasonsShown) why += "; and " + std::to_string(count - kReasonsShown) + " more";
  return "model '" + model + "' fits no node that can serve it: " + why;
}

std::optional<size_t> Placement::node_index(const std::string& node_id) const {
  const auto it = node_index_.find(node_id);
  if (it == node_index_.end()) return std::nullopt;
  return it->second;
}

const std::string& Placement::node_id(size_t node) const {
  return nodes_.at(node)->id;
}

void Placement::set_healthy(size_t node, bool healthy) {
  const bool was = nodes_.at(node)->healthy.exchange(healthy, std::memory_order_acq_rel);
  if (healthy && !was) notify_change();
}

void Placement::set_queue(size_t node, uint32_t running, uint32_t waiting) {
  Node& n = *nodes_.at(node);
  const bool had_room = n.has_room();
  n.scraped.store((static_cast<uint64_t>(running) << 32) | waiting, std::memory_order_relaxed);
  if (!had_room && n.has_room()) notify_change();
}

void Placement::set_on_change(std::function<void()> on_change) {
  std::lock_guard lock(on_change_mutex_);
  on_change_ = std::move(on_change);
}

void Placement::notify_change() {
  std::function<void()> on_change;
  {
    std::lock_guard lock(on_change_mutex_);
    on_change = on_change_;
  }
  if (on_change) on_change();
}

Placement::Stats Placement::stats() const {
  Stats s;
  s.eviction = eviction_;
  s.placed_on_holder = placed_on_holder_.load(std::memory_order_relaxed);
  s.placed_by_load = placed_by_load_.load(std::memory_order_relaxed);
  s.refused = refused_.load(std::memory_order_relaxed);
  s.nodes.reserve(nodes_.size());
  for (const auto& node : nodes_) {
    NodeStats ns;
    ns.id = node->id;
    ns.healthy = node->healthy.load(std::memory_order_relaxed);
    const uint64_t scraped = node->scraped.load(std::memory_order_relaxed);
    ns.running = static_cast<uint32_t>(scraped >> 32);
    ns.waiting = static_cast<uint32_t>(scraped & kLow32);
    ns.in_flight = node->in_flight.load(std::memory_order_relaxed);
    ns.queued = node->queued();
    ns.max_queue = node->max_queue;
    ns.budget_bytes = node->budget_bytes;
    ns.servable = node->servable;
    const ModelCache::Stats cs = node->cache->stats();
    ns.used_bytes = cs.used_bytes;
    for (const auto& m : cs.models) {
      if (m.state == "resident" || m.state == "loading") {
        ns.resident.push_back({m.id, m.state, m.bytes, m.in_flight});
      }
      ns.loads += m.loads;
      ns.evictions += m.evictions;
    }
    s.nodes.push_back(std::move(ns));
  }
  return s;
}

}  // namespace calm
