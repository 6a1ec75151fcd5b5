#include "scheduler/scheduler.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <future>

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
  loader_ = std::thread([this] { loader_thread(); });
  timer_ = std::thread([this] { timer_thread(); });
  cache_.set_on_change([this] { dispatch(); });
}

Scheduler::~Scheduler() {
  stop();
  cache_.set_on_change(nullptr);
}

void Scheduler::stop() {
  std::vector<std::shared_ptr<Waiter>> failed;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      stopping_ = true;
      for (auto& [id, waiter] : waiters_) failed.push_back(waiter);
      waiters_.clear();
      for (const auto& r : queue_) models_.at(r.model).queued--;
      queue_.clear();
    }
  }
  wake_.notify_all();
  if (loader_.joinable()) loader_.join();
  if (timer_.joinable()) timer_.join();
  const auto error = std::make_exception_ptr(
      SchedulerError(SchedulerError::Kind::kStopping, "the server is stopping", 1));
  for (auto& waiter : failed) waiter->on_fail(error);
}

void Scheduler::update_models(std::vector<ModelSlots> models) {
  {
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
  const bool local = it == models_.end() || it->second.slots.local;
  a.has_free_slot = running < slots;
  if (!local) {
    a.resident = true;  // a remote model is always "loaded"; only its slots limit it
    a.can_load = false;
    return a;
  }
  a.resident = cache_.resident_or_loading(model);
  a.can_load = !a.resident && cache_.can_acquire_now(model);
  // An idle model would become one more local model decoding at once.
  if (running == 0 && options_.max_active_models > 0) {
    size_t active = 0;
    for (const auto& [id, m] : models_) active += m.slots.local && m.running > 0 ? 1 : 0;
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
  std::vector<Start> starts;
  {
    std::lock_guard lock(mutex_);
    starts = dispatch_locked();
  }
  deliver(std::move(starts));
}

std::vector<Scheduler::Start> Scheduler::dispatch_locked() {
  std::vector<Start> starts;
  const auto availability = [this](const std::string& model) { return availability_locked(model); };
  while (!queue_.empty() && !stopping_) {
    const auto now = SchedClock::now();
    const auto index = policy_->pick(queue_, availability, now);
    if (!index) break;
    const QueuedRequest request = queue_[*index];
    std::shared_ptr<Waiter> waiter = waiters_.at(request.id);
    Start start{waiter, nullptr, nullptr};
    std::optional<ModelCache::Lease> lease;
    if (waiter->local) {
      try {
        lease = cache_.try_acquire(request.model);
        if (!lease) break;  // changed under us; the next change retries
      } catch (const CacheError&) {
        start.error = std::current_exception();  // gone from the cache, or never fits
      }
    }
    queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(*index));
    waiters_.erase(request.id);
    Model& m = models_.at(request.model);
    m.queued--;
    if (!start.error) {
      m.running++;
      start.ticket.reset(new Ticket(this, request.model, waiter->local));
      start.ticket->queue_ms_ = ms_between(request.arrival, now);
      if (lease) start.ticket->lease_ = std::move(*lease);
      counters_.longest_queue_ms = std::max(counters_.longest_queue_ms, start.ticket->queue_ms_);
      if (waiter->local && !start.ticket->lease_.was_hit()) {
        // The model must be loaded (or its load joined) first: that blocks,
        // so the loader thread waits it out. Queued here, under the lock, in
        // the order the leases were reserved: a lease that joins a load must
        // never reach the loader before the lease that runs that load, or the
        // loader would wait for a load only it can run.
        loads_.push_back(std::move(start));
        wake_.notify_all();
        continue;
      }
    }
    starts.push_back(std::move(start));
  }
  return starts;
}

// Starts that need no load (hits, remote models) and failures; the ones
// that need a load went to the loader in dispatch_locked().
void Scheduler::deliver(std::vector<Start> starts) {
  for (auto& start : starts) {
    if (start.error) {
      start.waiter->on_fail(start.error);
      continue;
    }
    start.ticket->running_since_ = SchedClock::now();
    start.waiter->on_start(std::move(start.ticket));
  }
}

void Scheduler::loader_thread() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || !loads_.empty(); });
    if (loads_.empty()) return;  // stopping, nothing left to settle
    Start start = std::move(loads_.front());
    loads_.pop_front();
    loading_id_ = start.waiter->request.id;
    lock.unlock();
    Ticket& ticket = *start.ticket;
    const auto started_at = SchedClock::now();
    try {
      ticket.lease_.wait();  // the load, or the one it joined
      ticket.running_since_ = SchedClock::now();
      ticket.load_ms_ = ms_between(started_at, ticket.running_since_);
    } catch (const CacheError&) {
      start.error = std::current_exception();
    }
    lock.lock();
    const bool cancelled = cancelled_loads_.erase(start.waiter->request.id) > 0;
    loading_id_ = 0;
    lock.unlock();
    if (start.error) {
      start.ticket.reset();  // frees the slot
      if (!cancelled) start.waiter->on_fail(start.error);
    } else if (cancelled) {
      start.ticket.reset();
    } else {
      start.waiter->on_start(std::move(start.ticket));
    }
    lock.lock();
  }
}

void Scheduler::timer_thread() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    // The queue is in arrival order, so its front is the next to time out.
    if (queue_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const auto deadline = queue_.front().arrival + options_.queue_timeout;
    if (SchedClock::now() < deadline) {
      wake_.wait_until(lock, deadline);
      continue;
    }
    std::vector<std::shared_ptr<Waiter>> expired;
    const auto now = SchedClock::now();
    while (!queue_.empty() && queue_.front().arrival + options_.queue_timeout <= now) {
      const uint64_t id = queue_.front().id;
      expired.push_back(waiters_.at(id));
      remove_queued_locked(id);
      counters_.timed_out++;
    }
    const int retry = retry_after_locked();
    std::vector<Start> starts = dispatch_locked();  // their leaving may unblock a FIFO head
    lock.unlock();
    const auto error = std::make_exception_ptr(SchedulerError(
        SchedulerError::Kind::kTimedOut,
        "the request waited " + std::to_string(options_.queue_timeout.count() / 1000) +
            " s in the queue without starting (scheduler.queue_timeout_s)",
        retry));
    for (auto& waiter : expired) waiter->on_fail(error);
    deliver(std::move(starts));
    lock.lock();
  }
}

void Scheduler::remove_queued_locked(uint64_t id) {
  const auto it = std::find_if(queue_.begin(), queue_.end(),
                               [&](const QueuedRequest& r) { return r.id == id; });
  assert(it != queue_.end());
  models_.at(it->model).queued--;
  queue_.erase(it);
  waiters_.erase(id);
}

std::shared_ptr<Scheduler::Admission> Scheduler::submit(const std::string& model, OnStart on_start,
                                                        OnFail on_fail) {
  // Refused before queueing: no wait can make room for it.
  if (const auto why = cache_.never_fits(model))
    throw CacheError(*why, CacheError::Kind::kNeverFits);
  std::vector<Start> starts;
  std::shared_ptr<Admission> admission;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      throw SchedulerError(SchedulerError::Kind::kStopping, "the server is stopping", 1);
    }
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
    auto waiter = std::make_shared<Waiter>();
    waiter->request = {next_id_++, model, SchedClock::now(), expected_service_locked(m)};
    waiter->on_start = std::move(on_start);
    waiter->on_fail = std::move(on_fail);
    waiter->local = m.slots.local;
    queue_.push_back(waiter->request);
    m.queued++;
    waiters_[waiter->request.id] = waiter;
    admission.reset(new Admission(this, waiter->request.id));
    if (queue_.size() == 1) wake_.notify_all();  // the timer's next deadline
    starts = dispatch_locked();
  }
  deliver(std::move(starts));
  return admission;
}

bool Scheduler::Admission::cancel() {
  return scheduler_->cancel(id_);
}

bool Scheduler::cancel(uint64_t id) {
  std::vector<Start> starts;
  bool withdrawn = false;
  {
    std::lock_guard lock(mutex_);
    if (waiters_.contains(id)) {
      remove_queued_locked(id);
      counters_.cancelled++;
      withdrawn = true;
      starts = dispatch_locked();  // its leaving may unblock a FIFO head
    } else {
      const bool loading = id == loading_id_ ||
                           std::any_of(loads_.begin(), loads_.end(),
                                       [&](const Start& s) { return s.waiter->request.id == id; });
      // In the loader's hands (queued for it, or its load running): dropped
      // once the load settles. Already started: the ticket's owner cancels.
      if (loading) {
        if (cancelled_loads_.insert(id).second) counters_.cancelled++;
        withdrawn = true;
      }
    }
  }
  deliver(std::move(starts));
  return withdrawn;
}

std::unique_ptr<Scheduler::Ticket> Scheduler::enter(const std::string& model) {
  auto started = std::make_shared<std::promise<std::unique_ptr<Ticket>>>();
  auto future = started->get_future();
  submit(
      model, [started](std::unique_ptr<Ticket> ticket) { started->set_value(std::move(ticket)); },
      [started](std::exception_ptr error) { started->set_exception(error); });
  return future.get();
}

Scheduler::Ticket::~Ticket() {
  scheduler_->finish(*this);
}

void Scheduler::finish(Ticket& ticket) {
  std::vector<Start> starts;
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
    // A remote model's slot, or a local one whose lease is empty (a failed
    // load), frees here; a lease's release below dispatches through the cache.
    if (!ticket.local_ || ticket.lease_.id().empty()) starts = dispatch_locked();
  }
  ticket.lease_ = ModelCache::Lease();
  deliver(std::move(starts));
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
