// ModelCache with loaders that stand in for engines (test doubles): the
// invariants of the resident set under a byte budget.
#include "cache/model_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <random>
#include <set>
#include <thread>

namespace calm {
namespace {

using namespace std::chrono_literals;

// Tracks what is "really" resident, as an engine's RSS would.
struct FakeMemory {
  std::mutex mutex;
  std::map<std::string, uint64_t> actual;  // what each load really takes
  std::map<std::string, uint64_t> resident;
  uint64_t peak = 0;
  std::atomic<int> loads{0};
  std::chrono::milliseconds load_time{0};
  std::function<void(const std::string&)> before_load;

  uint64_t used() {
    uint64_t u = 0;
    for (auto& [id, b] : resident) u += b;
    return u;
  }
  ModelCache::Loader loader() {
    return [this](const std::string& id) {
      if (before_load) before_load(id);
      std::this_thread::sleep_for(load_time);
      std::lock_guard lock(mutex);
      ++loads;
      resident[id] = actual.count(id) ? actual[id] : 100;
      peak = std::max(peak, used());
      return resident[id];
    };
  }
  ModelCache::Unloader unloader() {
    return [this](const std::string& id) {
      std::lock_guard lock(mutex);
      resident.erase(id);
    };
  }
};

ModelCache make_cache(FakeMemory& memory, uint64_t budget,
                      std::vector<ModelCache::ModelSpec> models,
                      const std::string& eviction = "lru", size_t max_resident = 0) {
  return ModelCache({budget, max_resident, eviction}, std::move(models), memory.loader(),
                    memory.unloader());
}

TEST(ModelCache, BusyModelIsNeverEvicted) {
  FakeMemory memory;
  auto cache = make_cache(memory, 150, {{"a", 100}, {"b", 100}});
  auto lease_a = cache.acquire("a", 1s);
  EXPECT_THROW(cache.acquire("b", 50ms), CacheError);  // a is busy: no room for b
  EXPECT_EQ(memory.resident.count("a"), 1u);
  lease_a = ModelCache::Lease();  // release a
  auto lease_b = cache.acquire("b", 1s);
  EXPECT_EQ(memory.resident.count("a"), 0u);
  EXPECT_EQ(memory.resident.count("b"), 1u);
}

TEST(ModelCache, WaitingAcquireProceedsOnceTheBusyModelIsReleased) {
  FakeMemory memory;
  auto cache = make_cache(memory, 150, {{"a", 100}, {"b", 100}});
  auto lease_a = std::make_unique<ModelCache::Lease>(cache.acquire("a", 1s));
  auto waiter = std::async(std::launch::async, [&] { return cache.acquire("b", 5s).id(); });
  std::this_thread::sleep_for(50ms);
  lease_a.reset();
  EXPECT_EQ(waiter.get(), "b");
}

TEST(ModelCache, LoadsOfOneModelAreCoalesced) {
  FakeMemory memory;
  memory.load_time = 100ms;
  auto cache = make_cache(memory, 1000, {{"a", 100}});
  std::vector<std::future<bool>> waiters;
  for (int i = 0; i < 8; ++i) {
    waiters.push_back(
        std::async(std::launch::async, [&] { return cache.acquire("a", 5s).id() == "a"; }));
  }
  for (auto& w : waiters) EXPECT_TRUE(w.get());
  EXPECT_EQ(memory.loads.load(), 1);
  const auto stats = cache.stats();
  EXPECT_EQ(stats.models[0].loads, 1u);
  EXPECT_EQ(stats.models[0].hits + stats.models[0].misses, 8u);
}

TEST(ModelCache, BudgetIsNeverExceededMeasured) {
  FakeMemory memory;
  memory.actual = {{"a", 90}, {"b", 120}, {"c", 60}, {"d", 150}, {"e", 40}};
  auto cache =
      make_cache(memory, 300, {{"a", 90}, {"b", 120}, {"c", 60}, {"d", 150}, {"e", 40}}, "gdsf");
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 rng(t);
      const char* ids[] = {"a", "b", "c", "d", "e"};
      for (int i = 0; i < 200; ++i) {
        try {
          auto lease = cache.acquire(ids[rng() % 5], 2s);
          std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
        } catch (const CacheError&) {
          // no room while all others are busy: allowed, never over budget
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_LE(memory.peak, 300u);  // what the loads really held
  EXPECT_LE(cache.stats().peak_used_bytes, 300u);
}

TEST(ModelCache, FailedLoadErrorsEveryWaiterAndDoesNotPoisonTheCache) {
  FakeMemory memory;
  memory.load_time = 100ms;
  std::atomic<bool> fail{true};
  memory.before_load = [&](const std::string&) {
    if (fail) throw std::runtime_error("corrupt GGUF");
  };
  auto cache = make_cache(memory, 1000, {{"a", 100}});
  std::vector<std::future<std::string>> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.push_back(std::async(std::launch::async, [&] {
      try {
        cache.acquire("a", 5s);
        return std::string("loaded");
      } catch (const CacheError& e) {
        return std::string(e.what());
      }
    }));
    std::this_thread::sleep_for(5ms);
  }
  for (auto& w : waiters) EXPECT_NE(w.get().find("corrupt GGUF"), std::string::npos);
  EXPECT_EQ(cache.stats().models[0].state, "unloaded");
  fail = false;
  EXPECT_EQ(cache.acquire("a", 1s).id(), "a");  // the next acquire loads it
}

TEST(ModelCache, ModelLargerThanTheBudgetIsAClearError) {
  FakeMemory memory;
  try {
    make_cache(memory, 100, {{"huge", 500}});
    FAIL() << "accepted a model larger than the budget";
  } catch (const CacheError& e) {
    EXPECT_NE(std::string(e.what()).find("'huge'"), std::string::npos) << e.what();
  }
}

TEST(ModelCache, PinnedModelIsNeverEvicted) {
  FakeMemory memory;
  auto cache = make_cache(memory, 250, {{"pinned", 100, true}, {"a", 100}, {"b", 100}});
  cache.acquire("pinned", 1s);
  cache.acquire("a", 1s);
  cache.acquire("b", 1s);  // must evict a, not the pinned one
  EXPECT_EQ(memory.resident.count("pinned"), 1u);
  EXPECT_EQ(memory.resident.count("a"), 0u);
}

TEST(ModelCache, ReportedChargeReplacesTheEstimateExactly) {
  FakeMemory memory;
  memory.actual = {{"a", 80}};
  auto cache = make_cache(memory, 200, {{"a", 10}});
  cache.acquire("a", 1s);
  EXPECT_EQ(cache.stats().models[0].bytes, 80u);  // deterministic: no margin
  EXPECT_EQ(cache.charged_bytes("a"), 80u);
}

TEST(ModelCache, RssDeltaIsReportedButNeverCharged) {
  FakeMemory memory;
  ModelCache cache(
      {200, 0, "lru"}, {{"a", 10}},
      [](const std::string&) { return ModelCache::LoadResult(80, 190); }, memory.unloader());
  cache.acquire("a", 1s);
  const auto stats = cache.stats();
  EXPECT_EQ(stats.models[0].bytes, 80u);
  EXPECT_EQ(stats.models[0].rss_delta_bytes, 190u);
  EXPECT_EQ(stats.used_bytes, 80u);
}

TEST(ModelCache, WithoutABudgetEveryModelAlwaysFits) {
  FakeMemory memory;
  memory.actual = {{"a", 1ull << 40}, {"b", 1ull << 40}, {"c", 1ull << 40}};
  auto cache = make_cache(memory, 0, {{"a", 1ull << 40}, {"b", 1ull << 40}, {"c", 1}});
  auto a = cache.acquire("a", 0ms);
  auto b = cache.acquire("b", 0ms);
  auto c = cache.acquire("c", 0ms);  // measured far above its estimate: still fits
  EXPECT_EQ(memory.resident.size(), 3u);
  for (const char* id : {"a", "b", "c"}) EXPECT_FALSE(cache.never_fits(id)) << id;
  const auto stats = cache.stats();
  EXPECT_EQ(stats.budget_bytes, 0u);
  for (const auto& m : stats.models) EXPECT_EQ(m.evictions, 0u) << m.id;
}

TEST(ModelCache, WithoutABudgetMaxResidentStillCounts) {
  FakeMemory memory;
  auto cache = make_cache(memory, 0, {{"a", 10}, {"b", 10}}, "lru", /*max_resident=*/1);
  cache.acquire("a", 1s);
  cache.acquire("b", 1s);
  EXPECT_EQ(memory.resident.count("a"), 0u);
  EXPECT_EQ(memory.resident.count("b"), 1u);
}

// The message a model that can never fit is refused with.
void expect_never_fits_message(const std::string& message, const std::string& id) {
  EXPECT_NE(message.find("model '" + id + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("cache.budget"), std::string::npos) << message;
  EXPECT_NE(message.find("MiB ("), std::string::npos) << message;
  EXPECT_NE(message.find(" bytes)"), std::string::npos) << message;
}

TEST(ModelCache, ModelThatMeasuresOverTheBudgetIsRefusedAtOnceAfterwards) {
  FakeMemory memory;
  memory.actual = {{"big", 300}};
  auto cache = make_cache(memory, 200, {{"big", 100}, {"small", 50}});
  try {
    cache.acquire("big", 1s);
    FAIL() << "big was kept over the budget";
  } catch (const CacheError& e) {
    EXPECT_EQ(e.kind(), CacheError::Kind::kNeverFits) << e.what();
    expect_never_fits_message(e.what(), "big");
    EXPECT_NE(std::string(e.what()).find("(300 bytes)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(200 bytes)"), std::string::npos) << e.what();
  }
  EXPECT_EQ(memory.resident.count("big"), 0u);
  const auto why = cache.never_fits("big");
  ASSERT_TRUE(why.has_value());
  expect_never_fits_message(*why, "big");
  EXPECT_EQ(cache.stats().models[0].never_fits, *why);
  // Refused at once, without another load: no wait could ever make room.
  const int loads = memory.loads.load();
  try {
    cache.try_acquire("big");
    FAIL() << "try_acquire did not refuse a model that can never fit";
  } catch (const CacheError& e) {
    EXPECT_EQ(e.kind(), CacheError::Kind::kNeverFits);
    EXPECT_EQ(std::string(e.what()), *why);
  }
  EXPECT_THROW(cache.acquire("big", 10s), CacheError);  // not a 10 s wait
  EXPECT_EQ(memory.loads.load(), loads);
  EXPECT_TRUE(cache.can_acquire_now("big"));  // so a scheduler hands out the error
  EXPECT_FALSE(cache.try_prefetch("big").has_value());
  EXPECT_FALSE(cache.never_fits("small"));
  EXPECT_EQ(cache.acquire("small", 1s).id(), "small");
}

TEST(ModelCache, ModelThatCannotFitBesideThePinnedModelsIsRefusedAtOnce) {
  FakeMemory memory;
  memory.actual = {{"pinned", 120}, {"a", 100}, {"b", 60}};
  auto cache = make_cache(memory, 200, {{"pinned", 120, true}, {"a", 100}, {"b", 60}});
  EXPECT_FALSE(cache.never_fits("a"));  // the pinned model holds nothing yet
  cache.acquire("pinned", 1s);
  const auto why = cache.never_fits("a");
  ASSERT_TRUE(why.has_value());
  expect_never_fits_message(*why, "a");
  EXPECT_NE(why->find("pinned"), std::string::npos) << *why;
  try {
    cache.try_acquire("a");
    FAIL() << "a was not refused";
  } catch (const CacheError& e) {
    EXPECT_EQ(e.kind(), CacheError::Kind::kNeverFits);
  }
  EXPECT_FALSE(cache.never_fits("b"));
  EXPECT_EQ(cache.acquire("b", 1s).id(), "b");
  EXPECT_FALSE(cache.never_fits("pinned"));  // resident: it fits by definition
}

TEST(ModelCache, UnknownModelNeverFitsNothing) {
  FakeMemory memory;
  auto cache = make_cache(memory, 100, {{"a", 10}});
  EXPECT_FALSE(cache.never_fits("zzz"));
}

TEST(ModelCache, LoadThatMeasuresOverTheBudgetIsUndoneWithAClearError) {
  FakeMemory memory;
  memory.actual = {{"a", 100}, {"b", 180}};
  auto cache = make_cache(memory, 200, {{"a", 100}, {"b", 50}});
  auto busy = cache.acquire("a", 1s);
  try {
    cache.acquire("b", 1s);
    FAIL() << "b was kept over the budget";
  } catch (const CacheError& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
    EXPECT_EQ(e.kind(), CacheError::Kind::kOther);  // fits once a is idle
  }
  EXPECT_EQ(memory.resident.count("b"), 0u);
  EXPECT_FALSE(cache.never_fits("b"));
  EXPECT_LE(cache.stats().used_bytes, 200u);
}

TEST(ModelCache, MaxResidentCountIsRespected) {
  FakeMemory memory;
  auto cache =
      make_cache(memory, 10000, {{"a", 10}, {"b", 10}, {"c", 10}}, "lru", /*max_resident=*/2);
  cache.acquire("a", 1s);
  cache.acquire("b", 1s);
  cache.acquire("c", 1s);
  EXPECT_EQ(memory.resident.size(), 2u);
  EXPECT_EQ(memory.resident.count("a"), 0u);  // least recently used
}

TEST(ModelCache, HitsMissesLoadsAndEvictionsAreCounted) {
  FakeMemory memory;
  auto cache = make_cache(memory, 150, {{"a", 100}, {"b", 100}});
  EXPECT_FALSE(cache.acquire("a", 1s).was_hit());
  EXPECT_TRUE(cache.acquire("a", 1s).was_hit());
  cache.acquire("b", 1s);
  const auto stats = cache.stats();
  const auto& a = stats.models[0];
  EXPECT_EQ(a.misses, 1u);
  EXPECT_EQ(a.hits, 1u);
  EXPECT_EQ(a.loads, 1u);
  EXPECT_EQ(a.evictions, 1u);
  EXPECT_EQ(a.state, "unloaded");
}

TEST(ModelCache, UnknownModelAndPolicyAreClearErrors) {
  FakeMemory memory;
  auto cache = make_cache(memory, 100, {{"a", 10}});
  EXPECT_THROW(cache.acquire("zzz", 1s), CacheError);
  EXPECT_THROW(make_cache(memory, 100, {{"a", 10}}, "random"), CacheError);
}

}  // namespace
}  // namespace calm

namespace calm {
namespace {

// What is loaded, as a set; loads take no time.
struct FakeMemoryForTwoStep {
  std::mutex mutex;
  std::set<std::string> resident;
  ModelCache::Loader loader() {
    return [this](const std::string& id) {
      std::lock_guard lock(mutex);
      resident.insert(id);
      return uint64_t{0};  // unknown: keep the estimate
    };
  }
  ModelCache::Unloader unloader() {
    return [this](const std::string& id) {
      std::lock_guard lock(mutex);
      resident.erase(id);
    };
  }
};

}  // namespace
}  // namespace calm

namespace calm {
namespace {

using namespace std::chrono_literals;

TEST(ModelCacheTwoStep, TryAcquireReservesTheSwapSoNobodyElseTakesTheRoom) {
  FakeMemoryForTwoStep memory;
  ModelCache cache({150, 0, "lru"}, {{"a", 100}, {"b", 100}}, memory.loader(), memory.unloader());
  cache.acquire("a", 1s);  // resident and idle
  auto b = cache.try_acquire("b");
  ASSERT_TRUE(b.has_value());                        // a is chosen as the victim, b is loading
  EXPECT_FALSE(cache.try_acquire("a").has_value());  // a is being unloaded: not now
  EXPECT_FALSE(cache.can_acquire_now("a"));
  b->wait();
  EXPECT_EQ(memory.resident, std::set<std::string>{"b"});
}

TEST(ModelCacheTwoStep, ReservedSwapHappensEvenIfNobodyWaits) {
  FakeMemoryForTwoStep memory;
  ModelCache cache({150, 0, "lru"}, {{"a", 100}}, memory.loader(), memory.unloader());
  { auto lease = cache.try_acquire("a"); }  // dropped without wait()
  EXPECT_EQ(cache.stats().models[0].state, "resident");
}

TEST(ModelCacheTwoStep, PrefetchNeverEvicts) {
  FakeMemoryForTwoStep memory;
  ModelCache cache({150, 0, "lru"}, {{"a", 100}, {"b", 100}, {"c", 10}}, memory.loader(),
                   memory.unloader());
  cache.acquire("a", 1s);
  EXPECT_FALSE(cache.try_prefetch("b").has_value());  // would need a evicted
  auto c = cache.try_prefetch("c");
  ASSERT_TRUE(c.has_value());
  c->wait();
  const auto stats = cache.stats();
  EXPECT_EQ(stats.models[2].state, "resident");
  EXPECT_EQ(stats.models[2].prefetches, 1u);
  EXPECT_EQ(stats.models[2].misses, 0u);
  EXPECT_EQ(stats.models[0].state, "resident");
}

TEST(ModelCacheTwoStep, IdleModelIsUnloadedOnlyAfterItsIdleTime) {
  FakeMemoryForTwoStep memory;
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}, {"pinned", 100, true}}, memory.loader(),
                   memory.unloader());
  cache.acquire("a", 1s);
  cache.acquire("pinned", 1s);
  EXPECT_TRUE(cache.unload_idle(10s).empty());
  {
    auto busy = cache.acquire("a", 1s);
    std::this_thread::sleep_for(30ms);
    EXPECT_TRUE(cache.unload_idle(20ms).empty());  // in flight: never
  }
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(cache.unload_idle(20ms), std::vector<std::string>{"a"});  // never the pinned one
  EXPECT_EQ(memory.resident, std::set<std::string>{"pinned"});
}

TEST(ModelCacheTwoStep, ReloadForgetsRemovedModelsAndResetsReplacedOnes) {
  FakeMemoryForTwoStep memory;
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}, {"b", 100}}, memory.loader(), memory.unloader());
  cache.acquire("a", 1s);
  cache.acquire("b", 1s);
  cache.update_models({{"a", 100}, {"c", 50}}, {"a"});
  const auto stats = cache.stats();
  ASSERT_EQ(stats.models.size(), 2u);
  EXPECT_EQ(stats.models[0].id, "a");
  EXPECT_EQ(stats.models[0].state, "unloaded");  // its engine was replaced
  EXPECT_EQ(stats.models[1].id, "c");
  EXPECT_THROW(cache.try_acquire("b"), CacheError);
}

TEST(ModelCacheTwoStep, AJoinedLoadOfAModelAReloadReplacedIsAReplacedErrorNotAResidentModel) {
  FakeMemoryForTwoStep memory;
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}}, memory.loader(), memory.unloader());
  auto owner = cache.try_acquire("a");
  auto joined = cache.try_acquire("a");  // joins the load the owner runs
  ASSERT_TRUE(owner && joined);
  owner->wait();                             // loaded; the joined lease has not woken yet
  cache.update_models({{"a", 100}}, {"a"});  // a reload replaced "a": its record is reset
  try {
    joined->wait();
    FAIL() << "the joined lease must not go on with a model that is not resident";
  } catch (const CacheError& e) {
    EXPECT_EQ(e.kind(), CacheError::Kind::kReplaced);
  }
  EXPECT_EQ(cache.stats().models[0].state, "unloaded");
}

TEST(ModelCacheTwoStep, AddModelsAddsNewIdsAndLeavesKnownOnesResident) {
  FakeMemoryForTwoStep memory;
  ModelCache cache({1000, 0, "lru"}, {{"a", 100}}, memory.loader(), memory.unloader());
  cache.acquire("a", 1s);
  cache.add_models({{"a", 999}, {"b", 100}});  // "a" is known: its record stays as it is
  EXPECT_TRUE(cache.resident_or_loading("a"));
  EXPECT_EQ(cache.charged_bytes("a"), std::optional<uint64_t>(100));
  EXPECT_TRUE(cache.try_acquire("b").has_value());
}

}  // namespace
}  // namespace calm
