// The scheduler over a real ModelCache whose loader is a test double: the
// invariants of the global queue.
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace calm {
namespace {

using namespace std::chrono_literals;

// Records the order in which requests started running.
struct Recorder {
  std::mutex mutex;
  std::vector<std::string> order;
  void add(const std::string& what) {
    std::lock_guard lock(mutex);
    order.push_back(what);
  }
  std::vector<std::string> get() {
    std::lock_guard lock(mutex);
    return order;
  }
};

ModelCache::Loader loader() {
  return [](const std::string&) { return uint64_t{100}; };
}

ModelCache::Unloader unloader() {
  return [](const std::string&) {};
}

// Waits (bounded) until the scheduler has `n` requests queued.
void wait_queued(const Scheduler& scheduler, size_t n) {
  for (int i = 0; i < 15000 && scheduler.stats().queued != n; ++i) std::this_thread::sleep_for(2ms);
  ASSERT_EQ(scheduler.stats().queued, n);
}

// Waits (bounded, 30 s) until `n` requests have started running.
void wait_recorded(Recorder& recorder, size_t n) {
  for (int i = 0; i < 15000 && recorder.get().size() < n; ++i) std::this_thread::sleep_for(2ms);
}

// Starts a request on its own thread; it records its name once running and
// holds its slot until `release` is set.
std::future<void> start(Scheduler& scheduler, const std::string& model, const std::string& name,
                        Recorder& recorder, std::shared_future<void> release) {
  return std::async(std::launch::async, [&scheduler, model, name, &recorder, release] {
    auto ticket = scheduler.enter(model);
    recorder.add(name);
    release.wait();
  });
}

TEST(Scheduler, FifoStartsRequestsInArrivalOrder) {
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}, {"b", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "fifo"}, cache, {{"a", 1}, {"b", 1}});
  Recorder recorder;
  std::promise<void> hold_first;
  auto first = start(scheduler, "a", "a1", recorder, hold_first.get_future().share());
  wait_recorded(recorder, 1);
  std::promise<void> go;
  const std::shared_future<void> released = go.get_future().share();
  std::vector<std::future<void>> rest;
  for (const char* name : {"a2", "b1", "a3"}) {
    rest.push_back(start(scheduler, std::string(1, name[0]), name, recorder, released));
    wait_queued(scheduler, rest.size());
  }
  // b1 could run at once (its model is free) but FIFO keeps it behind a2.
  EXPECT_EQ(recorder.get(), std::vector<std::string>{"a1"});
  hold_first.set_value();
  first.get();
  // a2 and then b1 start; a3 waits for a2's slot.
  wait_recorded(recorder, 3);
  go.set_value();
  for (auto& r : rest) r.get();
  // a2 and b1 start in the same dispatch (in that order; their threads may
  // report in either); a3 only after a2 ended.
  const auto order = recorder.get();
  ASSERT_EQ(order.size(), 4u);
  EXPECT_EQ(order.front(), "a1");
  EXPECT_EQ(std::set<std::string>(order.begin() + 1, order.begin() + 3),
            (std::set<std::string>{"a2", "b1"}));
  EXPECT_EQ(order.back(), "a3");
}

TEST(Scheduler, ModelNeverRunsMoreRequestsThanItsSlots) {
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "swap-aware"}, cache, {{"a", 2}});
  // Each request holds its slot until two have run at once (bounded, so a
  // scheduler that starts only one fails instead of hanging): whatever the
  // machine's speed, both slots fill, and the other ten must wait for them.
  std::mutex mutex;
  std::condition_variable changed;
  int running = 0, peak = 0;
  std::vector<std::future<void>> clients;
  for (int i = 0; i < 12; ++i) {
    clients.push_back(std::async(std::launch::async, [&] {
      auto ticket = scheduler.enter("a");
      std::unique_lock lock(mutex);
      peak = std::max(peak, ++running);
      changed.notify_all();
      changed.wait_for(lock, 30s, [&] { return peak >= 2; });
      --running;
    }));
  }
  for (auto& c : clients) c.get();
  EXPECT_EQ(peak, 2);
}

TEST(Scheduler, FullQueueIsRefusedWithRetryAfter) {
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "fifo", .max_queue = 1}, cache, {{"a", 1}});
  Recorder recorder;
  std::promise<void> release;
  auto shared = release.get_future().share();
  auto running = start(scheduler, "a", "running", recorder, shared);
  wait_recorded(recorder, 1);
  auto queued = start(scheduler, "a", "queued", recorder, shared);
  wait_queued(scheduler, 1);
  try {
    scheduler.enter("a");
    FAIL() << "a request beyond max_queue was admitted";
  } catch (const SchedulerError& e) {
    EXPECT_EQ(e.kind(), SchedulerError::Kind::kQueueFull);
    EXPECT_GE(e.retry_after_s(), 1);
  }
  release.set_value();
  running.get();
  queued.get();
  EXPECT_EQ(scheduler.stats().rejected_queue_full, 1u);
}

TEST(Scheduler, ModelOverItsInFlightLimitIsRefused) {
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}, {"b", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "fifo"}, cache, {{"a", 4, /*max_in_flight=*/1}, {"b", 1}});
  auto ticket = scheduler.enter("a");
  try {
    scheduler.enter("a");
    FAIL() << "a second request was admitted past max_in_flight 1";
  } catch (const SchedulerError& e) {
    EXPECT_EQ(e.kind(), SchedulerError::Kind::kModelBusy);
  }
  EXPECT_NO_THROW(scheduler.enter("b"));  // other models are not limited by it
}

TEST(Scheduler, SwapAwareDrainsBusyModelsForAnOverdueRequestThatNeedsRoom) {
  // Room for one model. `a` is busy; `b` needs it evicted. With max_wait 0
  // b is overdue at once, so later requests for `a` must not keep it busy.
  ModelCache cache({150, 0, "lru"}, {{"a", 100}, {"b", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "swap-aware", .max_wait = 0ms}, cache, {{"a", 4}, {"b", 1}});
  Recorder recorder;
  std::promise<void> hold_a1;
  auto a1 = start(scheduler, "a", "a1", recorder, hold_a1.get_future().share());
  wait_recorded(recorder, 1);
  std::promise<void> go;
  const std::shared_future<void> released = go.get_future().share();
  auto b1 = start(scheduler, "b", "b1", recorder, released);
  wait_queued(scheduler, 1);
  auto a2 = start(scheduler, "a", "a2", recorder, released);
  wait_queued(scheduler, 2);  // a2 has a free slot on a resident model, yet waits
  EXPECT_EQ(recorder.get(), std::vector<std::string>{"a1"});
  hold_a1.set_value();
  a1.get();
  wait_recorded(recorder, 2);
  go.set_value();
  b1.get();
  a2.get();
  EXPECT_EQ(recorder.get(), (std::vector<std::string>{"a1", "b1", "a2"}));
}

TEST(Scheduler, SwapAwarePrefersResidentWorkBeforeTheBound) {
  ModelCache cache({150, 0, "lru"}, {{"a", 100}, {"b", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "swap-aware", .max_wait = 60s}, cache, {{"a", 1}, {"b", 1}});
  Recorder recorder;
  std::promise<void> hold_a1;
  auto a1 = start(scheduler, "a", "a1", recorder, hold_a1.get_future().share());
  wait_recorded(recorder, 1);
  std::promise<void> go;
  const std::shared_future<void> released = go.get_future().share();
  auto b1 = start(scheduler, "b", "b1", recorder, released);
  wait_queued(scheduler, 1);
  auto a2 = start(scheduler, "a", "a2", recorder, released);
  wait_queued(scheduler, 2);
  go.set_value();
  hold_a1.set_value();
  a1.get();
  a2.get();
  b1.get();
  // b1 arrived first but needs a swap: the resident a2 goes before it.
  EXPECT_EQ(recorder.get(), (std::vector<std::string>{"a1", "a2", "b1"}));
  EXPECT_EQ(cache.stats().models[1].loads, 1u);
}

TEST(Scheduler, FailedLoadErrorsTheRequestAndFreesItsSlot) {
  std::atomic<bool> fail{true};
  ModelCache cache(
      {1000, 0, "lru"}, {{"a", 100}},
      [&](const std::string&) -> uint64_t {
        if (fail) throw std::runtime_error("corrupt GGUF");
        return 100;
      },
      unloader());
  Scheduler scheduler({.policy = "fifo"}, cache, {{"a", 1}});
  EXPECT_THROW(scheduler.enter("a"), CacheError);
  EXPECT_EQ(scheduler.stats().models[0].running, 0);
  fail = false;
  EXPECT_NO_THROW(scheduler.enter("a"));
}

TEST(Scheduler, RequestThatCannotStartTimesOut) {
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "fifo", .queue_timeout = 50ms}, cache, {{"a", 1}});
  auto held = scheduler.enter("a");
  try {
    scheduler.enter("a");
    FAIL() << "it started while the only slot was held";
  } catch (const SchedulerError& e) {
    EXPECT_EQ(e.kind(), SchedulerError::Kind::kTimedOut);
  }
  EXPECT_EQ(scheduler.stats().queued, 0u);
}

TEST(Scheduler, NoMoreModelsDecodeAtOnceThanMaxActiveModels) {
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}, {"b", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "swap-aware", .max_active_models = 1}, cache,
                      {{"a", 2}, {"b", 2}});
  auto a1 = scheduler.enter("a");
  auto a2 = scheduler.enter("a");  // a second slot of the same model is fine
  auto b1 = std::async(std::launch::async, [&] { return scheduler.enter("b"); });
  wait_queued(scheduler, 1);  // b would be a second model decoding: it waits
  a1.reset();
  EXPECT_EQ(scheduler.stats().queued, 1u);
  a2.reset();
  EXPECT_EQ(b1.get()->model(), "b");
}

TEST(Scheduler, NewMaxWaitAppliesToTheNextPick) {
  ModelCache cache({150, 0, "lru"}, {{"a", 100}, {"b", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "swap-aware", .max_wait = 60s}, cache, {{"a", 4}, {"b", 1}});
  Recorder recorder;
  std::promise<void> hold_a1;
  auto a1 = start(scheduler, "a", "a1", recorder, hold_a1.get_future().share());
  wait_recorded(recorder, 1);
  std::promise<void> go;
  const std::shared_future<void> released = go.get_future().share();
  auto b1 = start(scheduler, "b", "b1", recorder, released);
  wait_queued(scheduler, 1);
  // With a 60 s bound, a2 (resident, free slot) would start at once; with 0,
  // b1 is overdue and the busy model drains for it first.
  scheduler.set_max_wait(0ms);
  EXPECT_EQ(scheduler.max_wait(), 0ms);
  auto a2 = start(scheduler, "a", "a2", recorder, released);
  wait_queued(scheduler, 2);
  hold_a1.set_value();
  a1.get();
  wait_recorded(recorder, 2);
  go.set_value();
  b1.get();
  a2.get();
  EXPECT_EQ(recorder.get(), (std::vector<std::string>{"a1", "b1", "a2"}));
}

TEST(Scheduler, SubmitReturnsBeforeTheRequestStarts) {
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "fifo"}, cache, {{"a", 1}});
  auto held = scheduler.enter("a");
  std::atomic<bool> started{false};
  std::unique_ptr<Scheduler::Ticket> second;
  std::promise<void> got;
  scheduler.submit(
      "a",
      [&](std::unique_ptr<Scheduler::Ticket> t) {
        second = std::move(t);
        started = true;
        got.set_value();
      },
      [](std::exception_ptr) {});
  EXPECT_FALSE(started);  // queued behind the held slot; submit did not wait
  EXPECT_EQ(scheduler.stats().queued, 1u);
  held.reset();
  got.get_future().wait();
  EXPECT_TRUE(started);
}

TEST(Scheduler, CancelledQueuedRequestLeavesTheQueueAndNeverStarts) {
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "fifo"}, cache, {{"a", 1}});
  auto held = scheduler.enter("a");
  std::atomic<int> callbacks{0};
  auto admission = scheduler.submit(
      "a", [&](std::unique_ptr<Scheduler::Ticket>) { callbacks++; },
      [&](std::exception_ptr) { callbacks++; });
  EXPECT_TRUE(admission->cancel());
  EXPECT_EQ(scheduler.stats().queued, 0u);
  EXPECT_EQ(scheduler.stats().cancelled, 1u);
  held.reset();
  EXPECT_NO_THROW(scheduler.enter("a"));  // the slot was not taken by the cancelled one
  EXPECT_EQ(callbacks, 0);
}

TEST(Scheduler, RequestCancelledDuringItsLoadIsDroppedOnceTheLoadSettles) {
  std::promise<void> let_load_finish;
  std::shared_future<void> load_may_finish = let_load_finish.get_future().share();
  std::promise<void> load_began;
  ModelCache cache(
      {1000, 0, "lru"}, {{"a", 100}},
      [&](const std::string&) -> uint64_t {
        load_began.set_value();
        load_may_finish.wait();
        return 100;
      },
      unloader());
  Scheduler scheduler({.policy = "fifo"}, cache, {{"a", 1}});
  std::atomic<int> callbacks{0};
  auto admission = scheduler.submit(
      "a", [&](std::unique_ptr<Scheduler::Ticket>) { callbacks++; },
      [&](std::exception_ptr) { callbacks++; });
  load_began.get_future().wait();
  EXPECT_TRUE(admission->cancel());
  EXPECT_EQ(scheduler.stats().cancelled, 1u);  // counted when it left, not when the load ends
  let_load_finish.set_value();
  EXPECT_NO_THROW(scheduler.enter("a"));  // its slot was freed after the load
  EXPECT_EQ(callbacks, 0);
}

TEST(Scheduler, StopFailsQueuedRequestsAndRefusesNewOnes) {
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "fifo"}, cache, {{"a", 1}});
  auto held = scheduler.enter("a");
  std::promise<std::exception_ptr> failed;
  scheduler.submit(
      "a", [](std::unique_ptr<Scheduler::Ticket>) {},
      [&](std::exception_ptr e) { failed.set_value(e); });
  scheduler.stop();
  try {
    std::rethrow_exception(failed.get_future().get());
  } catch (const SchedulerError& e) {
    EXPECT_EQ(e.kind(), SchedulerError::Kind::kStopping);
  }
  try {
    scheduler.enter("a");
    FAIL() << "a stopped scheduler admitted a request";
  } catch (const SchedulerError& e) {
    EXPECT_EQ(e.kind(), SchedulerError::Kind::kStopping);
  }
}

TEST(Scheduler, RemoteModelIsLimitedByItsSlotsWithoutACacheLease) {
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}}, loader(), unloader());
  Scheduler scheduler({.policy = "fifo"}, cache,
                      {{"a", 1}, {.id = "far", .slots = 2, .max_in_flight = 3, .local = false}});
  auto f1 = scheduler.enter("far");
  auto f2 = scheduler.enter("far");
  EXPECT_TRUE(f1->cache_hit());
  std::promise<void> third_started;
  std::unique_ptr<Scheduler::Ticket> f3;
  scheduler.submit(
      "far",
      [&](std::unique_ptr<Scheduler::Ticket> t) {
        f3 = std::move(t);
        third_started.set_value();
      },
      [](std::exception_ptr) {});
  EXPECT_EQ(scheduler.stats().queued, 1u);               // both slots busy
  EXPECT_THROW(scheduler.enter("far"), SchedulerError);  // max_in_flight 3
  f1.reset();
  third_started.get_future().wait();
  EXPECT_EQ(cache.stats().models[0].loads, 0u);  // no cache involvement
}

TEST(Scheduler, UnknownPolicyIsRejected) {
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}}, loader(), unloader());
  EXPECT_THROW(Scheduler({.policy = "lifo"}, cache, {{"a", 1}}), std::invalid_argument);
}

}  // namespace
}  // namespace calm
