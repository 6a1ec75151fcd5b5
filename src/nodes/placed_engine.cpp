// PlacedEngine: see placed_engine.h.
#include "nodes/placed_engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <variant>

namespace calm {

using Clock = std::chrono::steady_clock;
using Kind = EngineError::Kind;

namespace {

// How often a worker waiting for a node looks again without being woken
// (a node's health or queue can change with nothing in calm noticing).
constexpr std::chrono::milliseconds kRecheck{500};
// The longest one wait for the node's next event: a cancel is noticed by its
// callback at once, this only bounds a node that goes silent.
constexpr std::chrono::milliseconds kEventWait{1000};

}  // namespace

PlacedEngine::PlacedEngine(NodeFleet& fleet, ModelConfig config)
    : fleet_(fleet), config_(std::move(config)) {}

PlacedEngine::~PlacedEngine() {
  unload();
}

void PlacedEngine::load() {
  if (loaded()) return;
  std::vector<std::unique_ptr<RemoteEngine>> remotes(fleet_.node_count());
  std::string why;
  size_t up = 0;
  for (const std::string& node_id : config_.nodes) {
    const std::optional<size_t> index = fleet_.placement().node_index(node_id);
    if (!index) continue;
    const NodeConfig& node = fleet_.node_config(*index);
    RemoteEngine::Options options;
    options.id = config_.id + "@" + node.id;
    options.base_url = node.url;
    options.upstream_model = config_.upstream_model;
    options.api_key = node.api_key;
    options.connect_timeout = config_.connect_timeout;
    options.read_timeout = config_.read_timeout;
    options.workers = std::max(1, config_.parallel);
    options.max_tokens_cap = config_.max_tokens_cap;
    auto remote = std::make_unique<RemoteEngine>(options);
    try {
      remote->load();
      ++up;
    } catch (const EngineError& error) {
      why += (why.empty() ? "" : "; ") + std::string(error.what());
    }
    remotes[*index] = std::move(remote);
  }
  // Nodes come and go (they may start after calm): one that is down now is
  // left out by placement until its health check passes, and its engine is
  // started on its first request (ready_on).
  if (up == 0) {
    spdlog::warn("model '{}': none of its nodes is up yet; requests wait for one: {}", config_.id,
                 why);
  }
  remotes_ = std::move(remotes);
  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
    loaded_ = true;
  }
  for (int i = 0; i < std::max(1, config_.parallel); ++i) workers_.emplace_back([this] { work(); });
}

void PlacedEngine::unload() {
  std::deque<std::shared_ptr<Call>> dropped;
  {
    std::lock_guard lock(mutex_);
    if (!loaded_ && workers_.empty()) return;
    stopping_ = true;
    loaded_ = false;
    dropped.swap(queue_);
  }
  work_ready_.notify_all();
  fleet_.poke();  // workers waiting for a node
  for (auto& call : dropped) call->stream->fail(EngineError(Kind::kUnavailable, "engine stopping"));
  // Running node requests end when their RemoteEngine stops them.
  for (auto& remote : remotes_) {
    if (remote) remote->unload();
  }
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  remotes_.clear();
}

bool PlacedEngine::loaded() const {
  std::lock_guard lock(mutex_);
  return loaded_;
}

std::shared_ptr<GenerationStream> PlacedEngine::submit(GenerationRequest request) {
  auto call = std::make_shared<Call>();
  call->request = std::move(request);
  std::weak_ptr<Call> weak = call;  // the stream's callback must not own its call
  NodeFleet* fleet = &fleet_;
  call->stream->set_on_cancel([weak, fleet] {
    if (const auto held = weak.lock()) {
      std::shared_ptr<GenerationStream> on_node;
      {
        std::lock_guard lock(held->mutex);
        on_node = held->on_node;
      }
      if (on_node) on_node->cancel();
    }
    fleet->poke();  // a worker waiting for a node for it looks again
  });
  {
    std::lock_guard lock(mutex_);
    if (!loaded_) {
      throw EngineError(Kind::kUnavailable, "model '" + config_.id + "' is not loaded");
    }
    queue_.push_back(call);
  }
  work_ready_.notify_one();
  return call->stream;
}

void PlacedEngine::work() {
  for (;;) {
    std::shared_ptr<Call> call;
    {
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      call = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
    }
    run(*call);
    std::lock_guard lock(mutex_);
    --busy_;
    ++completed_;
    if (call->stream->cancelled()) ++cancelled_;
  }
}

void PlacedEngine::run(Call& call) {
  const auto deadline = Clock::now() + config_.read_timeout;
  std::optional<EngineError> failure;
  for (size_t tries = 0; tries < std::max<size_t>(1, config_.nodes.size()); ++tries) {
    failure = try_once(call, deadline);
    if (!failure) return;
  }
  call.stream->fail(std::move(*failure));
}

std::optional<EngineError> PlacedEngine::try_once(Call& call, Clock::time_point deadline) {
  GenerationStream& stream = *call.stream;
  const auto stopping = [this] {
    std::lock_guard lock(mutex_);
    return stopping_;
  };
  const auto end = [&](std::optional<EngineError> error) -> std::optional<EngineError> {
    if (error) {
      stream.fail(std::move(*error));
    } else {
      GenerationResult result;
      result.finish_reason = "cancelled";
      stream.finish(std::move(result));
    }
    return std::nullopt;
  };
  // Placing: wait for a node that can take the model, up to the deadline.
  std::optional<Placement::Placed> placed;
  uint64_t seen = fleet_.change_count();
  try {
    while (!(placed = fleet_.placement().try_place(config_.id))) {
      if (stream.cancelled()) return end(std::nullopt);
      if (stopping()) return end(EngineError(Kind::kUnavailable, "engine stopping"));
      if (Clock::now() >= deadline) {
        return end(EngineError(Kind::kUnavailable,
                               "model '" + config_.id + "': no node could take it within " +
                                   std::to_string(config_.read_timeout.count()) +
                                   " ms (every node that serves it is down, full or busy)"));
      }
      seen = fleet_.wait_for_change(seen, std::min(deadline, Clock::now() + kRecheck));
    }
  } catch (const CacheError& error) {  // no node serves it, or it fits none
    return end(EngineError(Kind::kUnavailable, error.what()));
  }
  try {
    placed->wait();  // the node's load, or the one this request joined
  } catch (const CacheError& error) {
    // A node that cannot swap refuses a model it does not serve while it
    // serves its own: that is the model's error, not the node's.
    const Node& node = fleet_.node(placed->node());
    if (node.swaps() || !node.health().ok) fleet_.report_failure(placed->node(), error.what());
    return EngineError(Kind::kUnavailable, error.what());
  }
  if (stream.cancelled()) return end(std::nullopt);
  RemoteEngine* remote = remotes_.at(placed->node()).get();
  if (remote == nullptr) {
    return end(EngineError(Kind::kInternal, "model '" + config_.id + "' was placed on node '" +
                                                placed->node_id() + "' it is not on"));
  }
  if (auto failure = ready_on(*remote)) {
    fleet_.report_failure(placed->node(), failure->what());
    return failure;
  }
  std::shared_ptr<GenerationStream> on_node;
  try {
    on_node = remote->submit(call.request);
  } catch (const EngineError& error) {
    return end(error);
  }
  {
    std::lock_guard lock(call.mutex);
    call.on_node = on_node;
  }
  if (stream.cancelled()) on_node->cancel();  // cancelled before on_node was visible
  std::optional<EngineError> failure = relay(call, on_node);
  {
    std::lock_guard lock(call.mutex);
    call.on_node.reset();
  }
  if (!failure) return std::nullopt;
  // A node that cannot be reached or does not answer in time is left out
  // until its next health check; one that answered with an error (about
  // this request or this model's output) is not down, and the error goes to
  // the client.
  if (failure->kind() != Kind::kUnavailable && failure->kind() != Kind::kTimeout) {
    return end(std::move(*failure));
  }
  fleet_.report_failure(placed->node(), failure->what());
  return failure;
  // `placed` is dropped here: the node's queue slot is freed and the model
  // may be evicted from it again.
}

std::optional<EngineError> PlacedEngine::relay(Call& call,
                                               const std::shared_ptr<GenerationStream>& on_node) {
  bool any_text = false;
  for (;;) {
    std::optional<GenerationStream::Event> event = on_node->next(kEventWait);
    if (!event) continue;  // the RemoteEngine's read_timeout bounds a silent node
    if (auto* delta = std::get_if<GenerationStream::Delta>(&*event)) {
      any_text = true;
      call.stream->push_delta(std::move(delta->text));
    } else if (auto* result = std::get_if<GenerationResult>(&*event)) {
      call.stream->finish(std::move(*result));
      return std::nullopt;
    } else {
      EngineError error = std::get<EngineError>(std::move(*event));
      if (!any_text && error.backend_failure() && !call.stream->cancelled()) return error;
      call.stream->fail(std::move(error));
      return std::nullopt;
    }
  }
}

std::optional<EngineError> PlacedEngine::ready_on(RemoteEngine& remote) {
  if (remote.loaded()) return std::nullopt;
  std::lock_guard lock(start_mutex_);
  try {
    remote.load();  // another worker may have started it meanwhile: then a health check only
  } catch (const EngineError& error) {
    return error;
  }
  return std::nullopt;
}

EngineHealth PlacedEngine::health() {
  std::string why;
  for (const std::string& node_id : config_.nodes) {
    const std::optional<size_t> index = fleet_.placement().node_index(node_id);
    if (!index) continue;
    const EngineHealth health = fleet_.node(*index).health();
    if (health.ok) return {true, "model '" + config_.id + "': " + health.detail};
    why += (why.empty() ? "" : "; ") + health.detail;
  }
  return {false, "model '" + config_.id + "': none of its nodes is up: " + why};
}

EngineStats PlacedEngine::stats() const {
  std::lock_guard lock(mutex_);
  EngineStats stats;
  stats.slots_total = loaded_ ? std::max(1, config_.parallel) : 0;
  stats.slots_busy = busy_;
  stats.queued = static_cast<int>(queue_.size());
  stats.completed = completed_;
  stats.cancelled = cancelled_;
  return stats;
}

}  // namespace calm
