#include "cache/model_cache.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <set>
#include <utility>

namespace calm {
namespace {

using Clock = std::chrono::steady_clock;

// "5.8 MiB (6038323 bytes)": rounded figures alone can read as equal.
std::string mib(uint64_t bytes) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.1f MiB (%llu bytes)", bytes / 1048576.0,
                static_cast<unsigned long long>(bytes));
  return text;
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
  update_models(std::move(models), {});
}

ModelCache::~ModelCache() = default;

void ModelCache::add_models(std::vector<ModelSpec> models) {
  std::vector<ModelSpec> all;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, m] : models_) {
      if (!m.retired) all.push_back(m.spec);
    }
  }
  for (auto& spec : models) {
    const bool known =
        std::any_of(all.begin(), all.end(), [&](const ModelSpec& s) { return s.id == spec.id; });
    if (!known) all.push_back(std::move(spec));
  }
  update_models(std::move(all), {});
}

void ModelCache::check_fits(const std::vector<ModelSpec>& models) const {
  for (const auto& spec : models) {
    if (options_.budget_bytes > 0 && spec.estimated_bytes > options_.budget_bytes) {
      throw CacheError("model '" + spec.id + "' needs about " + mib(spec.estimated_bytes) +
                       ", more than the whole budget of " + mib(options_.budget_bytes));
    }
  }
}

void ModelCache::update_models(std::vector<ModelSpec> models,
                               const std::vector<std::string>& reset) {
  check_fits(models);
  {
    // In place, never rebuilt: a thread in the middle of a swap holds a
    // reference to its model's record.
    std::lock_guard lock(mutex_);
    std::set<std::string> listed;
    for (auto& spec : models) {
      listed.insert(spec.id);
      auto [it, added] = models_.try_emplace(spec.id);
      Model& m = it->second;
      const bool reset_it = std::find(reset.begin(), reset.end(), spec.id) != reset.end();
      if (added || (reset_it && m.state != State::kLoading && m.state != State::kUnloading)) {
        if (m.state == State::kResident) policy_->on_evict(spec.id);
        m.state = State::kUnloaded;
        m.bytes = spec.estimated_bytes;
      }
      m.retired = false;
      m.stats.id = spec.id;
      m.stats.pinned = spec.pinned;
      m.stats.estimated_bytes = spec.estimated_bytes;
      m.spec = std::move(spec);
    }
    // Gone from the fleet: forgotten now, or once its swap and requests end.
    for (auto it = models_.begin(); it != models_.end();) {
      Model& m = it->second;
      if (listed.contains(it->first)) {
        ++it;
      } else if (m.state == State::kLoading || m.state == State::kUnloading || m.in_flight > 0) {
        m.retired = true;
        m.spec.pinned = false;
        ++it;
      } else {
        if (m.state == State::kResident) policy_->on_evict(it->first);
        it = models_.erase(it);
      }
    }
    ++change_count_;
  }
  changed_.notify_all();
}

uint64_t ModelCache::used_locked() const {
  uint64_t used = 0;
  for (const auto& [id, m] : models_) {
    if (m.state != State::kUnloaded) used += m.bytes;
  }
  return used;
}

uint64_t ModelCache::budget_locked() const {
  return options_.budget_bytes > 0 ? options_.budget_bytes : std::numeric_limits<uint64_t>::max();
}

std::optional<std::string> ModelCache::never_fits_locked(const std::string& id) const {
  const auto it = models_.find(id);
  if (options_.budget_bytes == 0 || it == models_.end()) return std::nullopt;
  const Model& m = it->second;
  if (m.state == State::kResident || m.state == State::kLoading) return std::nullopt;
  // Pinned models that hold memory never leave: their bytes are never free.
  uint64_t pinned = 0;
  for (const auto& [other, o] : models_) {
    if (other != id && o.spec.pinned && o.state != State::kUnloaded) pinned += o.bytes;
  }
  if (m.bytes + pinned <= options_.budget_bytes) return std::nullopt;
  const std::string size = m.stats.loads > 0 ? "takes " : "needs about ";
  return "model '" + id + "' can never fit " + options_.budget_name + ": it " + size +
         mib(m.bytes) + (pinned > 0 ? " beside " + mib(pinned) + " held by pinned models" : "") +
         ", and " + options_.budget_name + " is " + mib(options_.budget_bytes);
}

std::optional<std::string> ModelCache::never_fits(const std::string& id) const {
  std::lock_guard lock(mutex_);
  return never_fits_locked(id);
}

uint64_t ModelCache::held_locked() const {
  uint64_t held = 0;
  for (const auto& [id, m] : models_) {
    if (m.state == State::kResident || m.state == State::kUnloading ||
        (m.state == State::kLoading && m.load_started)) {
      held += m.bytes;
    }
  }
  return held;
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

std::optional<std::vector<std::string>> ModelCache::room_for_locked(const std::string& id) const {
  const Model& m = models_.at(id);
  size_t resident_count = 0;
  for (const auto& [other, o] : models_) resident_count += o.state != State::kUnloaded ? 1 : 0;
  const bool fits = (options_.budget_bytes == 0 || used_locked() + m.bytes <= budget_locked()) &&
                    (options_.max_resident == 0 || resident_count + 1 <= options_.max_resident);
  if (fits) return std::vector<std::string>{};
  // The policy's bookkeeping is only read here: choose_victims is const in effect.
  return policy_->choose_victims(residents_locked(), m.bytes, budget_locked(),
                                 options_.max_resident);
}

bool ModelCache::can_acquire_now(const std::string& id) const {
  std::lock_guard lock(mutex_);
  const auto it = models_.find(id);
  if (it == models_.end()) return false;
  switch (it->second.state) {
    case State::kResident:
    case State::kLoading:
      return true;
    case State::kUnloading:
      return false;
    case State::kUnloaded:
      // A model that can never fit is "available": try_acquire then throws
      // its error at once, rather than leaving a request queued for ever.
      return never_fits_locked(id) || room_for_locked(id).has_value();
  }
  return false;
}

std::optional<uint64_t> ModelCache::charged_bytes(const std::string& id) const {
  std::lock_guard lock(mutex_);
  const auto it = models_.find(id);
  if (it == models_.end()) return std::nullopt;
  return it->second.bytes;
}

uint64_t ModelCache::used_bytes() const {
  std::lock_guard lock(mutex_);
  return used_locked();
}

bool ModelCache::resident_or_loading(const std::string& id) const {
  std::lock_guard lock(mutex_);
  const auto it = models_.find(id);
  return it != models_.end() &&
         (it->second.state == State::kResident || it->second.state == State::kLoading);
}

std::optional<ModelCache::Lease> ModelCache::try_acquire(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto it = models_.find(id);
  if (it == models_.end()) throw CacheError("unknown model '" + id + "'");
  Model& m = it->second;
  switch (m.state) {
    case State::kResident:
      m.in_flight++;
      m.stats.hits++;
      policy_->on_access(id);
      return Lease(this, id, true, m.load_generation, {}, false);
    case State::kLoading:
      m.in_flight++;
      m.stats.misses++;
      return Lease(this, id, false, m.load_generation, {}, false);
    case State::kUnloading:
      return std::nullopt;
    case State::kUnloaded:
      break;
  }
  if (auto why = never_fits_locked(id)) throw CacheError(*why, CacheError::Kind::kNeverFits);
  auto victims = room_for_locked(id);
  if (!victims) return std::nullopt;
  // Reserve the swap: nobody else can take this room or start on a victim.
  for (const auto& v : *victims) models_.at(v).state = State::kUnloading;
  m.state = State::kLoading;
  m.load_started = false;
  ++m.load_generation;
  m.in_flight++;
  m.stats.misses++;
  return Lease(this, id, false, m.load_generation, std::move(*victims), true);
}

std::optional<ModelCache::Lease> ModelCache::try_prefetch(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto it = models_.find(id);
  if (it == models_.end() || it->second.state != State::kUnloaded) return std::nullopt;
  if (never_fits_locked(id)) return std::nullopt;
  const auto victims = room_for_locked(id);
  if (!victims || !victims->empty()) return std::nullopt;  // never evict for a guess
  Model& m = it->second;
  m.state = State::kLoading;
  m.load_started = false;
  ++m.load_generation;
  m.in_flight++;
  m.stats.prefetches++;
  return Lease(this, id, false, m.load_generation, {}, true);
}

std::vector<std::string> ModelCache::unload_idle(std::chrono::milliseconds idle) {
  std::vector<std::string> unloaded;
  std::unique_lock lock(mutex_);
  const auto now = Clock::now();
  std::vector<std::string> candidates;
  for (const auto& [id, m] : models_) {
    if (m.state == State::kResident && !m.spec.pinned && m.in_flight == 0 &&
        now - m.last_used >= idle) {
      candidates.push_back(id);
    }
  }
  for (const auto& id : candidates) {
    // The lock was released by earlier unloads: checked again.
    if (idle_unload_locked(lock, id)) unloaded.push_back(id);
  }
  ++change_count_;
  lock.unlock();
  if (!unloaded.empty()) {
    changed_.notify_all();
    notify_change();
  }
  return unloaded;
}

bool ModelCache::unload_if_idle(const std::string& id) {
  std::unique_lock lock(mutex_);
  const auto it = models_.find(id);
  if (it == models_.end() || it->second.spec.pinned || !idle_unload_locked(lock, id)) return false;
  ++change_count_;
  lock.unlock();
  changed_.notify_all();
  notify_change();
  return true;
}

bool ModelCache::idle_unload_locked(std::unique_lock<std::mutex>& lock, const std::string& id) {
  const auto it = models_.find(id);
  if (it == models_.end() || it->second.state != State::kResident || it->second.in_flight > 0) {
    return false;
  }
  evict_now_locked(lock, id);
  it->second.stats.evictions--;  // counted apart
  it->second.stats.idle_unloads++;
  return true;
}

void ModelCache::evict_now_locked(std::unique_lock<std::mutex>& lock, const std::string& id) {
  Model& m = models_.at(id);
  m.state = State::kUnloading;
  lock.unlock();
  unloader_(id);
  lock.lock();
  m.state = State::kUnloaded;
  m.stats.evictions++;
  policy_->on_evict(id);
}

void ModelCache::run_swap(Lease& lease) {
  const std::string& id = lease.id_;
  for (const auto& victim : lease.victims_) {
    unloader_(victim);
    std::lock_guard lock(mutex_);
    Model& v = models_.at(victim);
    v.state = State::kUnloaded;
    v.stats.evictions++;
    policy_->on_evict(victim);
    if (v.retired && v.in_flight == 0) models_.erase(victim);
    ++change_count_;
  }
  lease.victims_.clear();

  // One load at a time: what is really held is then exact (at most this
  // model is half-loaded), and loads do not blur each other's measurement.
  std::lock_guard one_load(load_mutex_);
  {
    std::lock_guard lock(mutex_);
    models_.at(id).load_started = true;
    peak_held_ = std::max(peak_held_, held_locked());
  }

  const auto start = Clock::now();
  LoadResult measured;
  std::string error;
  try {
    measured = loader_(id);
  } catch (const std::exception& e) {
    error = e.what();
  }
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

  std::unique_lock lock(mutex_);
  Model& m = models_.at(id);
  m.load_started = false;
  CacheError::Kind kind = CacheError::Kind::kOther;
  if (error.empty()) {
    // What the engine allocated is the same on every load: it replaces the
    // estimate as it is.
    if (measured.bytes > 0) m.bytes = measured.bytes;
    m.stats.rss_delta_bytes = measured.rss_delta_bytes;
    m.state = State::kResident;
    m.loaded_generation = lease.generation_;
    m.stats.loads++;
    m.stats.last_load_ms = load_ms;
    m.stats.total_load_ms += load_ms;
    m.last_used = Clock::now();
    policy_->on_load(id, m.bytes, load_ms);
    policy_->on_access(id);
    // What is really in memory now (not the room reserved for swaps still to
    // come) must be within the budget. Only a load that reported more than
    // its charge can break that: evict idle models, or undo the load.
    if (options_.budget_bytes > 0 && held_locked() > options_.budget_bytes) {
      auto residents = residents_locked();
      for (auto& r : residents) r.pinned = r.pinned || r.id == id;
      const auto victims = policy_->choose_victims(residents, 0, options_.budget_bytes, 0);
      if (victims) {
        for (const auto& v : *victims) evict_now_locked(lock, v);
      } else {
        error = "model '" + id + "' took " + mib(m.bytes) +
                " when loaded, which does not fit the " + mib(options_.budget_bytes) +
                " budget beside the busy and pinned models";
        evict_now_locked(lock, id);
        m.stats.evictions--;  // not an eviction: a load that did not fit
        m.loaded_generation = 0;
        // Unloaded again, it is judged by what it really took: if that alone
        // (beside the pinned models) exceeds the budget it can never fit.
        if (auto why = never_fits_locked(id)) {
          error = *why;
          kind = CacheError::Kind::kNeverFits;
        }
      }
    }
  } else {
    error = "model '" + id + "' failed to load: " + error;
    m.state = State::kUnloaded;
  }
  if (!error.empty()) {
    m.stats.load_failures++;
    m.stats.last_error = error;
    m.last_error_kind = kind;
  }
  peak_held_ = std::max(peak_held_, held_locked());
  ++change_count_;
  lock.unlock();
  changed_.notify_all();
  notify_change();
  if (!error.empty()) throw CacheError(error, kind);
}

void ModelCache::wait_for_load(const Lease& lease) {
  std::unique_lock lock(mutex_);
  const Model& m = models_.at(lease.id_);
  changed_.wait(
      lock, [&] { return m.load_generation != lease.generation_ || m.state != State::kLoading; });
  // Later loads may have run since; whether this lease's load succeeded is
  // recorded by its generation.
  if (m.loaded_generation != lease.generation_) {
    throw CacheError(m.stats.last_error, m.last_error_kind);
  }
  // The lease kept the model busy, so a successful load cannot have been
  // evicted since; but a reload that replaced the model resets its record
  // to unloaded (the new engine is not loaded), even with leases held.
  if (m.state != State::kResident) {
    throw CacheError("model '" + lease.id_ + "' was replaced by a fleet reload while it loaded",
                     CacheError::Kind::kReplaced);
  }
}

void ModelCache::Lease::wait() {
  if (!cache_ || hit_) return;
  if (owns_load_) {
    owns_load_ = false;
    cache_->run_swap(*this);
  } else {
    cache_->wait_for_load(*this);
  }
}

ModelCache::Lease ModelCache::acquire(const std::string& id, std::chrono::milliseconds wait_limit) {
  const auto deadline = Clock::now() + wait_limit;
  while (true) {
    uint64_t seen;
    {
      std::lock_guard lock(mutex_);
      seen = change_count_;
    }
    if (auto lease = try_acquire(id)) {
      lease->wait();
      return std::move(*lease);
    }
    std::unique_lock lock(mutex_);
    if (!changed_.wait_until(lock, deadline, [&] { return change_count_ != seen; })) {
      const Model& m = models_.at(id);
      const std::string limit =
          options_.budget_bytes > 0
              ? "it needs " + mib(m.bytes) + " of a " + mib(options_.budget_bytes) + " budget"
              : "at most " + std::to_string(options_.max_resident) + " models may be resident";
      throw CacheError("model '" + id + "': no room after waiting " +
                       std::to_string(wait_limit.count()) + " ms: " + limit +
                       " and every other resident model is busy or pinned");
    }
  }
}

void ModelCache::release(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    const auto it = models_.find(id);
    if (it != models_.end()) {
      Model& m = it->second;
      m.in_flight--;
      m.last_used = Clock::now();
      const bool mid_swap = m.state == State::kLoading || m.state == State::kUnloading;
      if (m.retired && m.in_flight == 0 && !mid_swap) {
        if (m.state == State::kResident) policy_->on_evict(id);
        models_.erase(it);
      }
    }
    ++change_count_;
  }
  changed_.notify_all();
  notify_change();
}

void ModelCache::set_on_change(std::function<void()> on_change) {
  std::lock_guard lock(on_change_mutex_);
  on_change_ = std::move(on_change);
}

void ModelCache::notify_change() {
  // Copied under its own lock: set_on_change may race with a load settling.
  std::function<void()> on_change;
  {
    std::lock_guard lock(on_change_mutex_);
    on_change = on_change_;
  }
  if (on_change) on_change();
}

ModelCache::Stats ModelCache::stats() const {
  std::lock_guard lock(mutex_);
  Stats s;
  s.budget_bytes = options_.budget_bytes;
  s.max_resident = options_.max_resident;
  s.eviction = options_.eviction;
  s.used_bytes = used_locked();
  s.peak_used_bytes = peak_held_;
  for (const auto& [id, m] : models_) {
    ModelStats ms = m.stats;
    ms.state = state_name(m.state);
    ms.bytes = m.bytes;
    ms.in_flight = m.in_flight;
    ms.never_fits = never_fits_locked(id).value_or("");
    s.models.push_back(std::move(ms));
  }
  return s;
}

ModelCache::Lease::Lease(Lease&& other) noexcept
    : cache_(std::exchange(other.cache_, nullptr)),
      id_(std::move(other.id_)),
      hit_(other.hit_),
      generation_(other.generation_),
      victims_(std::move(other.victims_)),
      owns_load_(std::exchange(other.owns_load_, false)) {}

ModelCache::Lease& ModelCache::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Lease old(std::move(*this));
    cache_ = std::exchange(other.cache_, nullptr);
    id_ = std::move(other.id_);
    hit_ = other.hit_;
    generation_ = other.generation_;
    victims_ = std::move(other.victims_);
    owns_load_ = std::exchange(other.owns_load_, false);
  }
  return *this;
}

ModelCache::Lease::~Lease() {
  if (!cache_) return;
  // A reserved swap must happen even if nobody waited for it, or the model
  // would stay "loading" and its victims "unloading" for ever.
  if (owns_load_) {
    try {
      wait();
    } catch (const CacheError&) {
      // the error was recorded for the model; nobody is left to tell
    }
  }
  cache_->release(id_);
}

}  // namespace calm
