// Queue policies: which waiting request the scheduler starts next.
//
// All requests wait in one global queue (arrival order). Whenever capacity may
// have changed (a request arrived, a slot freed, a load finished) the scheduler
// calls pick() again and again, starting each request it returns, until pick()
// says to wait. A request can start when its model is resident with a free
// parallel slot, or when its model is not resident: picking it then triggers
// (or joins) a load. A request whose model is resident with every slot busy
// cannot start now; nor can one whose model is not resident when no room can
// be made for it yet (every resident model busy). "Wait" below means arrival
// until pick() returns the request.
//
// The policies ("oldest" = smallest id, ids being given in arrival order):
//
//  - "fifo" (the paper's default): strictly the head of the queue. queue[0] is
//    picked if it can start; otherwise nothing is, even if requests behind it
//    could start. This is head-of-line blocking, as in the paper's FIFO: one
//    request for a busy model holds up everything behind it, and every request
//    for a non-resident model at the head costs a load (seconds) however many
//    requests for resident models wait behind it. Fair and predictable, slow
//    under a mixed trace.
//
//  - "stcf" (shortest time to completion first): among the requests that can
//    start, the one with the smallest expected_service_ms (from its model's
//    rolling window); ties go to the oldest. Minimises mean latency when the
//    estimates are good, but it can starve: a long request waits as long as
//    shorter ones keep arriving (the paper notes this). It ignores load cost.
//
//  - "swap-aware": model loads cost seconds, so prefer the oldest request that
//    needs no swap (model resident with a free slot); only when none exists,
//    take the oldest request that needs a load. Preferring residents alone
//    would starve requests for cold models, so it ages: a request that has
//    waited at least max_wait is overdue, and the oldest overdue request that
//    can start is picked before anything else, even if it needs a load.
//
//    The bound, precisely: once a request is overdue, pick() returns only
//    overdue requests older than it ahead of it, and skips over any that cannot
//    start. So the oldest overdue request of its model is picked at the first
//    call at or after arrival + max_wait at which it can start: at once if its
//    model is not resident or has a free slot, else as soon as one of its
//    model's slots frees. Hence, provided the scheduler calls pick() whenever a
//    slot frees, its wait is at most max_wait plus one service time of its
//    model (the time until the earliest of that model's running requests
//    finishes). An overdue request with k older overdue requests for the same
//    model waits, in addition, for those k to start. max_wait <= 0 makes every
//    request overdue at once: the policy becomes FIFO that skips requests
//    which cannot start.
//
// Each pick() is one pass over the queue: O(n) time, availability() called
// once per queued request. Policies are not thread-safe: the scheduler calls
// them under its own lock. swap-aware is the only one that uses max_wait.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/policy_names.h"  // queue_policy_names()

namespace calm {

using SchedClock = std::chrono::steady_clock;

struct QueuedRequest {
  uint64_t id = 0;  // arrival order (monotonic)
  std::string model;
  SchedClock::time_point arrival;
  double expected_service_ms = 0;  // from the model's rolling window (STCF)
};

// What the scheduler can see of each model right now.
struct ModelAvailability {
  bool resident = false;       // loaded, or loading (work for it needs no new swap)
  bool has_free_slot = false;  // of a resident model
  bool can_load = true;        // of a model that is not resident: room can be made now
};

// Whether a request for a model in this state can start now: a free slot of a
// resident model, or a load that the cache has room for.
inline bool can_start(const ModelAvailability& a) {
  return a.resident ? a.has_free_slot : a.can_load;
}

using AvailabilityFn = std::function<ModelAvailability(const std::string&)>;

// Picks the next request to start from one global queue. Not thread-safe (the
// scheduler holds its lock).
class QueuePolicy {
 public:
  virtual ~QueuePolicy() = default;
  virtual std::string name() const = 0;  // "fifo", "stcf", "swap-aware"
  // Index into queue of the request to start now, or nullopt to wait.
  // availability(model) tells whether its model is resident and has a free
  // slot. A request whose model is not resident can still be picked (it
  // triggers a load) — the policy decides whether that is worth it now.
  virtual std::optional<size_t> pick(const std::deque<QueuedRequest>& queue,
                                     const AvailabilityFn& availability,
                                     SchedClock::time_point now) = 0;
};

// The policy of that name (one of queue_policy_names()), or nullptr for an
// unknown name. max_wait is the aging bound of "swap-aware"; the others ignore it.
std::unique_ptr<QueuePolicy> make_queue_policy(std::string_view name,
                                               std::chrono::milliseconds max_wait);

}  // namespace calm
