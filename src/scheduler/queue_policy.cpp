#include "scheduler/queue_policy.h"

namespace calm {
namespace {

class FifoPolicy final : public QueuePolicy {
 public:
  std::string name() const override { return "fifo"; }

  std::optional<size_t> pick(const std::deque<QueuedRequest>& queue,
                             const AvailabilityFn& availability,
                             SchedClock::time_point /*now*/) override {
    if (queue.empty() || !can_start(availability(queue.front().model))) return std::nullopt;
    return 0;
  }
};

class StcfPolicy final : public QueuePolicy {
 public:
  std::string name() const override { return "stcf"; }

  std::optional<size_t> pick(const std::deque<QueuedRequest>& queue,
                             const AvailabilityFn& availability,
                             SchedClock::time_point /*now*/) override {
    std::optional<size_t> best;
    for (size_t i = 0; i < queue.size(); ++i) {
      const QueuedRequest& r = queue[i];
      if (!can_start(availability(r.model))) continue;
      if (!best) {
        best = i;
        continue;
      }
      const QueuedRequest& b = queue[*best];
      if (r.expected_service_ms < b.expected_service_ms ||
          (r.expected_service_ms == b.expected_service_ms && r.id < b.id)) {
        best = i;
      }
    }
    return best;
  }
};

class SwapAwarePolicy final : public QueuePolicy {
 public:
  explicit SwapAwarePolicy(std::chrono::milliseconds max_wait) : max_wait_(max_wait) {}

  std::string name() const override { return "swap-aware"; }

  std::optional<size_t> pick(const std::deque<QueuedRequest>& queue,
                             const AvailabilityFn& availability,
                             SchedClock::time_point now) override {
    std::optional<size_t> overdue;   // oldest startable request past max_wait
    std::optional<size_t> resident;  // oldest with a resident model and a free slot
    std::optional<size_t> load;      // oldest whose model needs a load
    const auto older = [&](const std::optional<size_t>& best, size_t i) {
      return !best || queue[i].id < queue[*best].id;
    };
    for (size_t i = 0; i < queue.size(); ++i) {
      const QueuedRequest& r = queue[i];
      const ModelAvailability a = availability(r.model);
      const bool is_overdue = now - r.arrival >= max_wait_;
      // An overdue request waiting for room: drain (see the header).
      if (is_overdue && !a.resident && !a.can_load) return std::nullopt;
      if (!can_start(a)) continue;
      if (is_overdue && older(overdue, i)) overdue = i;
      if (a.resident) {
        if (older(resident, i)) resident = i;
      } else if (older(load, i)) {
        load = i;
      }
    }
    if (overdue) return overdue;
    if (resident) return resident;
    return load;
  }

 private:
  std::chrono::milliseconds max_wait_;
};

}  // namespace

std::unique_ptr<QueuePolicy> make_queue_policy(std::string_view name,
                                               std::chrono::milliseconds max_wait) {
  if (name == "fifo") return std::make_unique<FifoPolicy>();
  if (name == "stcf") return std::make_unique<StcfPolicy>();
  if (name == "swap-aware") return std::make_unique<SwapAwarePolicy>(max_wait);
  return nullptr;
}

}  // namespace calm
