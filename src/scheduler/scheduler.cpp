#include "scheduler/scheduler.h"

#include <algorithm>
#include <cmath>

namespace calm {
namespace {

double ms_between(SchedClock::time_point from, SchedClock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

Scheduler::Scheduler(Options options, ModelCache& cache, std::vector<ModelSlots> models)
    : options_(std::move(options)),
      cache_(cache),
      policy_(make_queue_policy(options_.policy, options_.max_wait)),
      max_wait_(options_.max_wait) {
  if (!policy_) throw std::invalid_argument("unknown scheduler policy '" + options_.policy + "'");
  update_models(std::move(models));
  cache_.set_on_change([this] { dispatch(); });
}

Scheduler::~Scheduler() {
  cache_.set_on_change(nullptr);
}

void Scheduler::update_models(std::vector<ModelSlots> models) {
  {
    // In place: a waiting enter() holds a reference to its model's record.
    std::lock_guard lock(mutex_);
    std::map<std::string, bool> listed;
    for (auto& slots : models) {
      listed[slots.id] = true;
      Model& m = models_[slots.id];
      m.slots = std::move(slots);
      m.slots.slots = std::max(1, m.slots.slots);
      m.listed = true;
    }
    // A model that is gone but still has requests keeps its record until they end.
    for (auto it = models_.begin(); it != models_.end();) {
      Model& m = it->second;
      if (!listed.contains(it->first)) m.listed = false;
      it = !m.listed && m.running == 0 && m.queued == 0 ? models_.erase(it) : std::next(it);
    }
  }
  dispatch();
}

double Scheduler::expected_service_locked(const Model& m) const {
  return m.service_ms.empty() ? 0.0 : m.service_sum / static_cast<double>(m.service_ms.size());
}

int Scheduler::retry_after_locked() const {
  // The time to drain the queue at the current service rates, at least 1 s.
  double work_ms = 0;
  int slots = 0;
  for (const auto& [id, m] : models_) {
    work_ms += expected_service_locked(m) * static_cast<double>(m.queued);
    slots += m.slots.slots;
  }
  return std::max(1, static_cast<int>(std::ceil(work_ms / std::max(1, slots) / 1000.0)));
}

ModelAvailability Scheduler::availability_locked(const std::string& model) const {
  ModelAvailability a;
  const auto it = models_.find(model);
  const int running = it != models_.end() ? it->second.running : 0;
  const int slots = it != models_.end() ? it->second.slots.slots : 1;
  a.resident = cache_.resident_or_loading(model);
  a.has_free_slot = running < slots;
  a.can_load = !a.resident && cache_.can_acquire_now(model);
  // An idle model would become one more model decoding at once.
  if (running == 0 && options_.max_active_models > 0) {
    size_t active = 0;
    for (const auto& [id, m] : models_) active += m.running > 0 ? 1 : 0;
    if (active >= options_.max_active_models) a.has_free_slot = a.can_load = false;
  }
  return a;
}

void Scheduler::set_max_wait(std::chrono::milliseconds max_wait) {
  {
    std::lock_guard lock(mutex_);
    max_wait_ = max_wait;
    policy_ = make_queue_policy(options_.policy, max_wait);
  }
  dispatch();  // requests may be overdue under the new bound
}

std::chrono::milliseconds Scheduler::max_wait() const {
  std::lock_guard lock(mutex_);
  return max_wait_;
}

void Scheduler::dispatch() {
  std::lock_guard lock(mutex_);
  dispatch_locked();
}

void Scheduler::dispatch_locked() {
  const auto availability = [this](const std::string& model) { return availability_locked(model); };
  while (!queue_.empty()) {
    const auto now = SchedClock::now();
    const auto index = policy_->pick(queue_, availability, now);
    if (!index) return;
    const QueuedRequest request = queue_[*index];
    Waiter* waiter = waiters_.at(request.id);
    std::optional<ModelCache::Lease> lease;
    try {
      lease = cache_.try_acquire(request.model);
    } catch (const CacheError& e) {
      waiter->error = e.what();  // gone from the cache (a reload): fail it, go on
    }
    if (!lease && waiter->error.empty()) return;  // changed under us; the next change retries
    queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(*index));
    Model& m = models_.at(request.model);
    m.queued--;
    if (lease) {
      m.running++;
      waiter->lease = std::move(lease);
      counters_.longest_queue_ms =
          std::max(counters_.longest_queue_ms, ms_between(request.arrival, now));
    }
    waiter->cv.notify_one();
  }
}

std::unique_ptr<Scheduler::Ticket> Scheduler::enter(const std::string& model) {
  // Refused before queueing: no wait can make room for it.
  if (auto why = cache_.never_fits(model)) throw CacheError(*why, CacheError::Kind::kNeverFits);
  Waiter waiter;
  std::unique_lock lock(mutex_);
  const auto it = models_.find(model);
  if (it == models_.end() || !it->second.listed) {
    throw std::out_of_range("the scheduler has no model '" + model + "'");
  }
  Model& m = it->second;
  if (queue_.size() >= options_.max_queue) {
    counters_.rejected_queue_full++;
    throw SchedulerError(SchedulerError::Kind::kQueueFull,
                         "the server is busy: " + std::to_string(queue_.size()) +
                             " requests are queued (scheduler.max_queue)",
                         retry_after_locked());
  }
  const int limit = m.slots.max_in_flight;
  if (limit > 0 && m.running + static_cast<int>(m.queued) >= limit) {
    counters_.rejected_model_busy++;
    throw SchedulerError(SchedulerError::Kind::kModelBusy,
                         "the model '" + model + "' already has " + std::to_string(limit) +
                             " requests in flight (its max_in_flight)",
                         retry_after_locked());
  }
  counters_.admitted++;
  waiter.request = {next_id_++, model, SchedClock::now(), expected_service_locked(m)};
  queue_.push_back(waiter.request);
  m.queued++;
  waiters_[waiter.request.id] = &waiter;
  dispatch_locked();
  const bool started =
      waiter.cv.wait_until(lock, waiter.request.arrival + options_.queue_timeout,
                           [&] { return waiter.lease.has_value() || !waiter.error.empty(); });
  waiters_.erase(waiter.request.id);
  if (!started) {
    queue_.erase(std::find_if(queue_.begin(), queue_.end(),
                              [&](const QueuedRequest& r) { return r.id == waiter.request.id; }));
    m.queued--;
    counters_.timed_out++;
    const int retry = retry_after_locked();
    lock.unlock();
    dispatch();  // its leaving may unblock a FIFO head
    throw SchedulerError(SchedulerError::Kind::kTimedOut,
                         "the request waited " +
                             std::to_string(options_.queue_timeout.count() / 1000) +
                             " s in the queue without starting (scheduler.queue_timeout_s)",
                         retry);
  }
  if (!waiter.error.empty()) throw CacheError(waiter.error);
  lock.unlock();

  // From here the request holds a slot; the ticket gives it back however this ends.
  std::unique_ptr<Ticket> ticket(new Ticket(this, model));
  const auto started_at = SchedClock::now();
  ticket->queue_ms_ = ms_between(waiter.request.arrival, started_at);
  ticket->lease_ = std::move(*waiter.lease);
  ticket->lease_.wait();  // the load, if one is needed; throws and ~Ticket frees the slot
  ticket->running_since_ = SchedClock::now();
  ticket->load_ms_ = ms_between(started_at, ticket->running_since_);
  return ticket;
}

Scheduler::Ticket::~Ticket() {
  scheduler_->finish(*this);
}

void Scheduler::finish(Ticket& ticket) {
  {
    std::lock_guard lock(mutex_);
    const auto it = models_.find(ticket.model_);
    Model& m = it->second;
    m.running--;
    if (ticket.running_since_ != SchedClock::time_point{}) {
      const double ms = ms_between(ticket.running_since_, SchedClock::now());
      counters_.longest_service_ms = std::max(counters_.longest_service_ms, ms);
      m.service_ms.push_back(ms);
      m.service_sum += ms;
      if (m.service_ms.size() > options_.service_window) {
        m.service_sum -= m.service_ms.front();
        m.service_ms.pop_front();
      }
    }
    if (!m.listed && m.running == 0 && m.queued == 0) models_.erase(it);
  }
  // Releasing the lease calls the cache's change callback, which dispatches.
  // An empty lease (a failed start) does not, so dispatch here.
  const bool had_lease = !ticket.lease_.id().empty();
  ticket.lease_ = ModelCache::Lease();
  if (!had_lease) dispatch();
}

Scheduler::Stats Scheduler::stats() const {
  std::lock_guard lock(mutex_);
  Stats s = counters_;
  s.policy = policy_->name();
  s.max_wait_ms = static_cast<double>(max_wait_.count());
  s.max_queue = options_.max_queue;
  s.queued = queue_.size();
  for (const auto& [id, m] : models_) {
    s.models.push_back({id, m.slots.slots, m.running, m.queued, expected_service_locked(m)});
  }
  return s;
}

}  // namespace calm
