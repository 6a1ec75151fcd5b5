// NodeFleet: see node_fleet.h.
#include "nodes/node_fleet.h"

#include <spdlog/spdlog.h>

#include <set>
#include <utility>

#include "nodes/openai_node.h"

namespace calm {

namespace {

NodeOptions node_options(const NodeConfig& config) {
  NodeOptions options;
  options.id = config.id;
  options.base_url = config.url;
  options.api_key = config.api_key;
  options.connect_timeout = config.connect_timeout;
  options.load_timeout = config.load_timeout;
  return options;
}

// The node of the config's kind (config/node_config.h checked it).
std::unique_ptr<Node> make_node(const NodeConfig& config) {
  if (config.kind == "openai") return std::make_unique<OpenAiNode>(node_options(config));
  if (config.kind == "calm") return std::make_unique<CalmNode>(node_options(config));
  return std::make_unique<RouterNode>(node_options(config));
}

}  // namespace

NodeFleet::NodeFleet(const FleetConfig& config, std::chrono::milliseconds period)
    : period_(period), configs_(config.nodes), unhealthy_(config.nodes.size()) {
  std::vector<NodeSpec> specs;
  for (const NodeConfig& node : configs_) {
    nodes_.push_back(make_node(node));
    // On a node that cannot swap, calm's models stay once in use.
    const bool pinned = !nodes_.back()->swaps();
    NodeSpec spec;
    spec.id = node.id;
    spec.budget_bytes = node.budget_bytes;
    spec.max_queue = node.max_queue;
    for (const ModelConfig& model : config.models) {
      if (model.backend != ModelConfig::Backend::kNodes) continue;
      for (const std::string& id : model.nodes) {
        if (id == node.id) spec.models.push_back({model.id, model.estimated_bytes, pinned});
      }
    }
    specs.push_back(std::move(spec));
  }
  for (const ModelConfig& model : config.models) {
    if (model.backend == ModelConfig::Backend::kNodes) upstream_[model.id] = model.upstream_model;
  }
  // The loader and unloader run on the thread of the request that reserved
  // the load, with no lock held (ModelCache's rule): the node's HTTP calls.
  auto loader = [this](const std::string& node_id,
                       const std::string& model) -> ModelCache::LoadResult {
    const Node& node = *nodes_.at(*placement_->node_index(node_id));
    const uint64_t bytes = node.make_ready(upstream_of(model));
    spdlog::info("node '{}': model '{}' ready ({} bytes of weights)", node_id, model, bytes);
    return ModelCache::LoadResult(bytes);
  };
  auto unloader = [this](const std::string& node_id, const std::string& model) {
    const Node& node = *nodes_.at(*placement_->node_index(node_id));
    try {
      node.release(upstream_of(model));
      spdlog::info("node '{}': model '{}' unloaded", node_id, model);
    } catch (const NodeError& error) {
      // The model is forgotten either way: a node that is down holds nothing
      // calm can use, and one that answers wrongly is logged for a person.
      spdlog::warn("{}", error.what());
    }
  };
  placement_ = std::make_unique<Placement>(std::move(specs), config.cache.eviction,
                                           std::move(loader), std::move(unloader));
  placement_->set_on_change([this] { poke(); });
}

NodeFleet::~NodeFleet() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  placement_->set_on_change(nullptr);
}

const std::string& NodeFleet::upstream_of(const std::string& model) const {
  const auto it = upstream_.find(model);
  return it == upstream_.end() ? model : it->second;
}

void NodeFleet::start(bool forget_earlier) {
  std::set<std::string> ours;
  for (const auto& [id, upstream] : upstream_) ours.insert(upstream);
  for (const auto& node : nodes_) {
    if (!forget_earlier) break;
    try {
      node->forget_earlier(ours);
    } catch (const NodeError& error) {
      spdlog::warn("{}", error.what());
    }
  }
  check_once();
  monitor_ = std::thread([this] { monitor(); });
}

void NodeFleet::monitor() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    changed_.wait_for(lock, period_, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    check_once();
    lock.lock();
  }
}

void NodeFleet::check_once() {
  const Placement::Stats stats = placement_->stats();
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const EngineHealth health = nodes_[i]->health();
    std::string detail = health.ok ? "" : health.detail;
    uint32_t running = 0, waiting = 0;
    if (health.ok) {
      std::vector<std::string> upstreams;
      for (const auto& held : stats.nodes[i].resident) upstreams.push_back(upstream_of(held.id));
      try {
        const Node::Queue queue = nodes_[i]->queue_over(upstreams);
        running = static_cast<uint32_t>(queue.processing);
        waiting = static_cast<uint32_t>(queue.deferred);
      } catch (const NodeError& error) {
        spdlog::debug("{}", error.what());  // the next health check will say
      }
    }
    bool changed = false, was_down = false;
    {
      std::lock_guard lock(mutex_);
      changed = unhealthy_[i] != detail;
      was_down = !unhealthy_[i].empty();
      unhealthy_[i] = detail;
    }
    if (changed) {
      if (health.ok) {
        spdlog::info("node '{}' is healthy", configs_[i].id);
      } else {
        spdlog::warn("node '{}' is down: {}", configs_[i].id, detail);
      }
    }
    placement_->set_healthy(i, health.ok);
    placement_->set_queue(i, running, waiting);
    if (was_down == health.ok) tell({configs_[i].id, health.ok, detail});
  }
}

uint64_t NodeFleet::wait_for_change(uint64_t seen, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  changed_.wait_until(lock, deadline, [&] { return changes_ != seen || stopping_; });
  return changes_;
}

uint64_t NodeFleet::change_count() const {
  std::lock_guard lock(mutex_);
  return changes_;
}

void NodeFleet::poke() {
  {
    std::lock_guard lock(mutex_);
    ++changes_;
  }
  changed_.notify_all();
}

void NodeFleet::report_failure(size_t node, const std::string& why) {
  const std::string detail = why.empty() ? "failed" : why;  // "" means healthy
  bool went_down = false;
  {
    std::lock_guard lock(mutex_);
    went_down = unhealthy_.at(node).empty();
    if (went_down) {
      spdlog::warn("node '{}' is out of placement until it answers again: {}", configs_[node].id,
                   detail);
    }
    unhealthy_[node] = detail;
  }
  placement_->set_healthy(node, false);
  if (went_down) tell({configs_[node].id, false, detail});
}

void NodeFleet::set_on_health_change(HealthListener listener) {
  std::lock_guard lock(listener_mutex_);
  listener_ = std::move(listener);
}

void NodeFleet::tell(const HealthChange& change) {
  std::lock_guard lock(listener_mutex_);
  if (listener_) listener_(change);
}

std::vector<std::string> NodeFleet::health_details() const {
  std::lock_guard lock(mutex_);
  return unhealthy_;
}

}  // namespace calm
