#include "cache/model_cache.h"

#include <algorithm>
#include <utility>

namespace calm {
namespace {

using Clock = std::chrono::steady_clock;

std::string mib(uint64_t bytes) {
  return std::to_string(bytes / (1024 * 1024)) + " MiB (" + std::to_string(bytes) + " bytes)";
}

}  // namespace

const char* ModelCache::state_name(State state) {
  switch (state) {
    case State::kUnloaded:
      return "unloaded";
    case State::kLoading:
      return "loading";
    case State::kResident:
      return "resident";
    case State::kUnloading:
      return "unloading";
  }
  return "?";
}

ModelCache::ModelCache(Options options, std::vector<ModelSpec> models, Loader loader,
                       Unloader unloader)
    : options_(std::move(options)),
      loader_(std::move(loader)),
      unloader_(std::move(unloader)),
      policy_(make_eviction_policy(options_.eviction)) {
  if (!policy_) throw CacheError("unknown eviction policy '" + options_.eviction + "'");
  if (options_.budget_bytes == 0) throw CacheError("the memory budget must be more than 0 bytes");
  for (auto& spec : models) {
    if (spec.estimated_bytes > options_.budget_bytes) {
      throw CacheError("model '" + spec.id + "' needs about " + mib(spec.estimated_bytes) +
                       ", more than the whole budget of " + mib(options_.budget_bytes));
    }
    Model m;
    m.bytes = spec.estimated_bytes;
    m.stats.id = spec.id;
    m.stats.pinned = spec.pinned;
    m.spec = std::move(spec);
    models_.emplace(m.spec.id, std::move(m));
  }
}

ModelCache::~ModelCache() = default;

uint64_t ModelCache::used_locked() const {
  uint64_t used = 0;
  for (const auto& [id, m] : models_) {
    if (m.state != State::kUnloaded) used += m.bytes;
  }
  return used;
}

std::vector<ResidentModel> ModelCache::residents_locked() const {
  std::vector<ResidentModel> out;
  for (const auto& [id, m] : models_) {
    if (m.state == State::kUnloaded) continue;
    ResidentModel r;
    r.id = id;
    r.bytes = m.bytes;
    r.load_cost_ms = m.stats.last_load_ms;
    // Only a settled, resident model may be chosen; loading and unloading
    // ones still count against the budget.
    r.pinned = m.spec.pinned || m.state != State::kResident;
    r.in_flight = m.in_flight;
    out.push_back(std::move(r));
  }
  return out;
}

void ModelCache::evict_locked(std::unique_lock<std::mutex>& lock, const std::string& id) {
  Model& m = models_.at(id);
  m.state = State::kUnloading;
  m.stats.evictions++;
  policy_->on_evict(id);
  lock.unlock();
  unloader_(id);
  lock.lock();
  m.state = State::kUnloaded;
  changed_.notify_all();
}

bool ModelCache::make_room_locked(std::unique_lock<std::mutex>& lock, const std::string& for_id,
                                  uint64_t need) {
  std::vector<ResidentModel> residents = residents_locked();
  size_t max_resident = options_.max_resident;
  for (auto& r : residents) {
    if (r.id != for_id) continue;
    r.pinned = true;   // already charged (a measured load that overshot): keep it
    max_resident = 0;  // and it already counts towards the limit
  }
  const auto victims =
      policy_->choose_victims(residents, need, options_.budget_bytes, max_resident);
  if (!victims) return false;
  for (const auto& v : *victims) evict_locked(lock, v);
  return true;
}

ModelCache::Lease ModelCache::acquire(const std::string& id, std::chrono::milliseconds wait_limit) {
  const auto deadline = Clock::now() + wait_limit;
  std::unique_lock lock(mutex_);
  const auto it = models_.find(id);
  if (it == models_.end()) throw CacheError("unknown model '" + id + "'");
  Model& m = it->second;
  const bool hit = m.state == State::kResident;
  uint64_t waited_for_load = 0;  // the load generation this call waited on

  auto wait_or_throw = [&](const std::string& why) {
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      throw CacheError("model '" + id + "': " + why + " after waiting " +
                       std::to_string(wait_limit.count()) + " ms");
    }
  };

  while (true) {
    switch (m.state) {
      case State::kResident: {
        m.in_flight++;
        (hit ? m.stats.hits : m.stats.misses)++;
        policy_->on_access(id);
        return Lease(this, id, hit);
      }
      case State::kLoading:
        waited_for_load = m.load_generation;
        wait_or_throw("still loading");
        continue;
      case State::kUnloading:
        wait_or_throw("still unloading");
        continue;
      case State::kUnloaded:
        break;
    }
    // A load this call waited on failed: every waiter gets its error.
    if (waited_for_load != 0 && waited_for_load == m.load_generation && !m.last_error.empty()) {
      throw CacheError(m.last_error);
    }
    const uint64_t need = m.bytes;
    size_t resident_count = 0;
    for (const auto& [other, o] : models_) resident_count += o.state != State::kUnloaded ? 1 : 0;
    const bool fits = used_locked() + need <= options_.budget_bytes &&
                      (options_.max_resident == 0 || resident_count + 1 <= options_.max_resident);
    if (!fits) {
      if (!make_room_locked(lock, id, need)) {
        wait_or_throw("no room: it needs " + mib(need) + " of a " + mib(options_.budget_bytes) +
                      " budget and every other resident model is busy or pinned");
      }
      continue;  // the lock may have been released: look again
    }

    // Load, charging the estimate meanwhile; others wait on this one load.
    m.state = State::kLoading;
    ++m.load_generation;
    m.last_error.clear();
    peak_used_ = std::max(peak_used_, used_locked());
    lock.unlock();
    const auto start = Clock::now();
    uint64_t measured = 0;
    std::string error;
    try {
      measured = loader_(id);
    } catch (const std::exception& e) {
      error = e.what();
    }
    const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    lock.lock();
    if (!error.empty()) {
      m.state = State::kUnloaded;
      m.last_error = "model '" + id + "' failed to load: " + error;
      m.stats.load_failures++;
      changed_.notify_all();
      throw CacheError(m.last_error);
    }
    m.bytes = measured > 0 ? measured : m.bytes;  // the measurement replaces the estimate
    m.state = State::kResident;
    m.stats.loads++;
    m.stats.last_load_ms = load_ms;
    policy_->on_load(id, m.bytes, load_ms);
    if (used_locked() > options_.budget_bytes && !make_room_locked(lock, id, 0)) {
      // It measured bigger than estimated and nothing idle can make room.
      const std::string why = "model '" + id + "' took " + mib(m.bytes) +
                              " when loaded, which does not fit the " + mib(options_.budget_bytes) +
                              " budget beside the busy and pinned models";
      evict_locked(lock, id);
      m.stats.evictions--;  // not an eviction: a load that did not fit
      m.last_error = why;
      throw CacheError(why);
    }
    peak_used_ = std::max(peak_used_, used_locked());
    changed_.notify_all();
  }
}

void ModelCache::release(const std::string& id) {
  std::lock_guard lock(mutex_);
  models_.at(id).in_flight--;
  changed_.notify_all();
}

ModelCache::Stats ModelCache::stats() const {
  std::lock_guard lock(mutex_);
  Stats s;
  s.budget_bytes = options_.budget_bytes;
  s.used_bytes = used_locked();
  s.peak_used_bytes = peak_used_;
  for (const auto& [id, m] : models_) {
    ModelStats ms = m.stats;
    ms.state = state_name(m.state);
    ms.bytes = m.bytes;
    ms.in_flight = m.in_flight;
    s.models.push_back(std::move(ms));
  }
  return s;
}

ModelCache::Lease::Lease(Lease&& other) noexcept
    : cache_(std::exchange(other.cache_, nullptr)), id_(std::move(other.id_)), hit_(other.hit_) {}

ModelCache::Lease& ModelCache::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (cache_) cache_->release(id_);
    cache_ = std::exchange(other.cache_, nullptr);
    id_ = std::move(other.id_);
    hit_ = other.hit_;
  }
  return *this;
}

ModelCache::Lease::~Lease() {
  if (cache_) cache_->release(id_);
}

}  // namespace calm
