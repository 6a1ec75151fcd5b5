#include "scheduler/queue_policy.h"

#include <gtest/gtest.h>

#include <map>

namespace calm {
namespace {

using std::chrono::milliseconds;

const SchedClock::time_point kT0{};  // a fake clock: tests move `now` by hand

QueuedRequest request(uint64_t id, std::string model, milliseconds arrival_offset = milliseconds(0),
                      double expected_service_ms = 0) {
  return QueuedRequest{id, std::move(model), kT0 + arrival_offset, expected_service_ms};
}

// A fixed view of the fleet; models not listed are not resident.
struct Fleet {
  std::map<std::string, ModelAvailability> models;

  AvailabilityFn fn() const {
    return [this](const std::string& model) {
      const auto it = models.find(model);
      return it == models.end() ? ModelAvailability{} : it->second;
    };
  }
};

constexpr ModelAvailability kFree{true, true};
constexpr ModelAvailability kBusy{true, false};
constexpr ModelAvailability kCold{false, false};
constexpr ModelAvailability kNoRoom{false, false, false};  // cold, and every resident is busy

std::unique_ptr<QueuePolicy> make(std::string_view name,
                                  milliseconds max_wait = milliseconds(1000)) {
  auto policy = make_queue_policy(name, max_wait);
  EXPECT_NE(policy, nullptr) << name;
  return policy;
}

// Picks until the policy waits or the queue empties; returns the ids in order.
std::vector<uint64_t> drain(QueuePolicy& policy, std::deque<QueuedRequest> queue,
                            const Fleet& fleet, SchedClock::time_point now = kT0) {
  std::vector<uint64_t> order;
  while (const auto i = policy.pick(queue, fleet.fn(), now)) {
    EXPECT_LT(*i, queue.size());
    order.push_back(queue[*i].id);
    queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(*i));
  }
  return order;
}

TEST(QueuePolicy, FifoKeepsArrivalOrder) {
  auto fifo = make("fifo");
  const Fleet fleet{{{"a", kFree}, {"b", kFree}}};  // "c" is not resident: a load
  std::deque<QueuedRequest> queue{request(1, "b", {}, 900), request(2, "c", {}, 5),
                                  request(3, "a", {}, 1), request(4, "b", {}, 50)};
  EXPECT_EQ(drain(*fifo, queue, fleet), (std::vector<uint64_t>{1, 2, 3, 4}));
}

TEST(QueuePolicy, FifoWaitsWhenTheHeadCannotStart) {
  auto fifo = make("fifo");
  const Fleet fleet{{{"busy", kBusy}, {"free", kFree}}};
  const std::deque<QueuedRequest> queue{request(1, "busy"), request(2, "free"), request(3, "cold")};
  // Head-of-line blocking: the requests behind could start, but strict FIFO waits.
  EXPECT_EQ(fifo->pick(queue, fleet.fn(), kT0), std::nullopt);
}

TEST(QueuePolicy, StcfOrdersByExpectedServiceTime) {
  auto stcf = make("stcf");
  const Fleet fleet{{{"a", kFree}, {"b", kFree}, {"busy", kBusy}}};
  std::deque<QueuedRequest> queue{request(1, "a", {}, 300), request(2, "b", {}, 100),
                                  request(3, "busy", {}, 1),  // cannot start: skipped
                                  request(4, "cold", {}, 200), request(5, "a", {}, 50)};
  EXPECT_EQ(drain(*stcf, queue, fleet), (std::vector<uint64_t>{5, 2, 4, 1}));
}

TEST(QueuePolicy, StcfBreaksTiesByArrival) {
  auto stcf = make("stcf");
  const Fleet fleet{{{"a", kFree}, {"b", kFree}}};
  // Ids give arrival order, whatever the position in the queue.
  std::deque<QueuedRequest> queue{request(7, "a", {}, 100), request(3, "b", {}, 100),
                                  request(5, "a", {}, 100), request(9, "b", {}, 10)};
  EXPECT_EQ(drain(*stcf, queue, fleet), (std::vector<uint64_t>{9, 3, 5, 7}));
}

TEST(QueuePolicy, SwapAwareServesResidentModelsFirst) {
  auto swap = make("swap-aware", milliseconds(10'000));
  const Fleet fleet{{{"hot", kFree}, {"other", kFree}, {"busy", kBusy}}};
  std::deque<QueuedRequest> queue{request(1, "cold"),  request(2, "busy"),  request(3, "hot"),
                                  request(4, "cold2"), request(5, "other"), request(6, "hot")};
  const auto now = kT0 + milliseconds(500);  // nobody is overdue yet
  // Residents with a free slot first, oldest first; then loads, oldest first;
  // the request whose resident model is busy waits.
  EXPECT_EQ(drain(*swap, queue, fleet, now), (std::vector<uint64_t>{3, 5, 6, 1, 4}));
}

TEST(QueuePolicy, SwapAwareLoadsWhenNothingResidentCanRun) {
  auto swap = make("swap-aware", milliseconds(10'000));
  const Fleet fleet{{{"busy", kBusy}}};
  const std::deque<QueuedRequest> queue{request(1, "busy"), request(2, "cold"),
                                        request(3, "cold2")};
  EXPECT_EQ(swap->pick(queue, fleet.fn(), kT0), std::optional<size_t>(1));
}

TEST(QueuePolicy, SwapAwareNeverLetsARequestWaitPastTheBound) {
  const milliseconds max_wait(2000);
  const milliseconds tick(100);
  auto swap = make("swap-aware", max_wait);
  const Fleet fleet{{{"hot", kFree}}};  // "cold" is not resident

  // One request for "hot" arrives every tick and one is started every tick, so
  // a resident request is always there to prefer over loading "cold".
  std::deque<QueuedRequest> queue{request(1, "hot"), request(2, "hot"), request(3, "cold")};
  uint64_t next_id = 4;
  std::optional<milliseconds> cold_picked_at;
  for (milliseconds t(0); t <= 3 * max_wait; t += tick) {
    queue.push_back(request(next_id++, "hot", t));
    const auto i = swap->pick(queue, fleet.fn(), kT0 + t);
    ASSERT_TRUE(i.has_value()) << "at " << t.count() << " ms";
    const QueuedRequest& picked = queue[*i];
    EXPECT_LE(kT0 + t - picked.arrival, max_wait) << "request " << picked.id;
    if (picked.model == "cold") {
      cold_picked_at = t;
      break;
    }
    queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(*i));
  }
  // Preferred resident work until then; picked as soon as its wait reached the bound.
  ASSERT_TRUE(cold_picked_at.has_value());
  EXPECT_EQ(*cold_picked_at, max_wait);
}

TEST(QueuePolicy, SwapAwareSkipsAnOverdueRequestThatCannotStart) {
  auto swap = make("swap-aware", milliseconds(1000));
  const Fleet fleet{{{"busy", kBusy}, {"hot", kFree}}};
  const std::deque<QueuedRequest> queue{request(1, "busy"), request(2, "hot", milliseconds(900)),
                                        request(3, "cold", milliseconds(100))};
  const auto now = kT0 + milliseconds(1500);
  // 1 and 3 are overdue; 1 cannot start, so 3 goes before the resident 2.
  EXPECT_EQ(swap->pick(queue, fleet.fn(), now), std::optional<size_t>(2));
}

TEST(QueuePolicy, FifoWaitsWhenTheHeadNeedsRoomThatIsNotThere) {
  auto fifo = make("fifo");
  const Fleet fleet{{{"hot", kFree}, {"cold", kNoRoom}}};
  const std::deque<QueuedRequest> queue{request(1, "cold"), request(2, "hot")};
  EXPECT_EQ(fifo->pick(queue, fleet.fn(), kT0), std::nullopt);
}

TEST(QueuePolicy, SwapAwareDrainsForAnOverdueRequestThatNeedsRoom) {
  auto swap = make("swap-aware", milliseconds(1000));
  const Fleet fleet{{{"hot", kFree}, {"cold", kNoRoom}}};
  const std::deque<QueuedRequest> queue{request(1, "cold"), request(2, "hot", milliseconds(1200))};
  // Before the bound, resident work goes ahead of the request that needs room...
  EXPECT_EQ(swap->pick(queue, fleet.fn(), kT0 + milliseconds(1300) - milliseconds(400)),
            std::optional<size_t>(1));
  // ...after it, nothing starts, so the busy models drain and room appears.
  EXPECT_EQ(swap->pick(queue, fleet.fn(), kT0 + milliseconds(1300)), std::nullopt);
}

TEST(QueuePolicy, EmptyQueueGivesNothing) {
  const Fleet fleet{{{"a", kFree}}};
  for (const std::string& name : queue_policy_names()) {
    auto policy = make(name);
    EXPECT_EQ(policy->pick({}, fleet.fn(), kT0 + milliseconds(5000)), std::nullopt) << name;
  }
}

TEST(QueuePolicy, UnknownPolicyNameGivesNullptr) {
  EXPECT_EQ(make_queue_policy("lifo", milliseconds(1000)), nullptr);
  EXPECT_EQ(make_queue_policy("", milliseconds(1000)), nullptr);
  EXPECT_EQ(make_queue_policy("FIFO", milliseconds(1000)), nullptr);
  EXPECT_EQ(queue_policy_names(), (std::vector<std::string>{"fifo", "stcf", "swap-aware"}));
  for (const std::string& name : queue_policy_names()) EXPECT_EQ(make(name)->name(), name);
}

}  // namespace
}  // namespace calm
