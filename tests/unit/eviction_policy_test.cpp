#include "cache/eviction_policy.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace calm {
namespace {

using Victims = std::vector<std::string>;

// A resident set kept in step with a policy's notifications, the way the cache will.
class Fleet {
 public:
  explicit Fleet(std::string_view policy) : policy_(make_eviction_policy(policy)) {}

  // Loads a model and serves the request that asked for it.
  ResidentModel& load(const std::string& id, uint64_t bytes, double load_cost_ms = 1000) {
    policy_->on_load(id, bytes, load_cost_ms);
    policy_->on_access(id);
    resident_.push_back({id, bytes, load_cost_ms});
    return resident_.back();
  }
  void use(const std::string& id, int times = 1) {
    for (int i = 0; i < times; ++i) policy_->on_access(id);
  }
  void evict(const Victims& victims) {
    for (const auto& id : victims) {
      policy_->on_evict(id);
      std::erase_if(resident_, [&](const ResidentModel& m) { return m.id == id; });
    }
  }
  std::optional<Victims> choose(uint64_t need, uint64_t budget, size_t max_resident = 0) {
    return policy_->choose_victims(resident_, need, budget, max_resident);
  }
  // Makes room for `id` the way the cache will, then loads it; returns the victims.
  Victims make_room_and_load(const std::string& id, uint64_t bytes, uint64_t budget,
                             double load_cost_ms = 1000) {
    auto victims = choose(bytes, budget);
    EXPECT_TRUE(victims.has_value());
    if (!victims) return {};
    evict(*victims);
    load(id, bytes, load_cost_ms);
    return *victims;
  }
  ResidentModel& model(const std::string& id) {
    return *std::find_if(resident_.begin(), resident_.end(),
                         [&](const ResidentModel& m) { return m.id == id; });
  }

 private:
  std::unique_ptr<EvictionPolicy> policy_;
  std::vector<ResidentModel> resident_;
};

TEST(EvictionPolicy, LruEvictsLeastRecentlyUsed) {
  Fleet f("lru");
  f.load("a", 100);
  f.load("b", 100);
  f.load("c", 100);
  f.use("a");  // b is now the least recently used, c next
  EXPECT_EQ(f.choose(100, 300), Victims({"b"}));
  EXPECT_EQ(f.choose(200, 300), Victims({"b", "c"}));
}

TEST(EvictionPolicy, LfuEvictsLeastFrequentlyUsed) {
  Fleet f("lfu");
  f.load("a", 100);
  f.use("a", 3);  // 4 accesses
  f.load("c", 100);
  f.use("c", 2);     // 3 accesses
  f.load("b", 100);  // 1 access, but the most recent
  EXPECT_EQ(f.choose(100, 300), Victims({"b"}));
  EXPECT_EQ(f.choose(200, 300), Victims({"b", "c"}));

  // Ties go to the least recently used.
  Fleet g("lfu");
  g.load("x", 100);
  g.load("y", 100);
  g.load("z", 100);
  g.use("x");
  EXPECT_EQ(g.choose(100, 300), Victims({"y"}));
}

// The documented choice: a popular model that was evicted and comes back keeps
// its count, so it is not the next victim.
TEST(EvictionPolicy, LfuCountSurvivesEviction) {
  Fleet f("lfu");
  f.load("popular", 100);
  f.use("popular", 5);  // 6 accesses
  f.evict({"popular"});
  f.load("other", 100);
  f.use("other");          // 2 accesses
  f.load("popular", 100);  // 7 accesses, counted across the eviction
  EXPECT_EQ(f.choose(100, 200), Victims({"other"}));
}

TEST(EvictionPolicy, GdsfPrefersEvictingCheapToReloadLargeRarelyUsed) {
  const auto build = [](std::string_view policy) {
    Fleet f(policy);
    f.load("hot", 1000, 500);
    f.use("hot", 9);                   // 10 x 500 / 1000 = 5
    f.load("small-slow", 1000, 2000);  // 1 x 2000 / 1000 = 2
    f.load("big-cheap", 4000, 400);    // 1 x 400 / 4000 = 0.1, but the most recent
    return f;
  };
  Fleet gdsf = build("gdsf");
  EXPECT_EQ(gdsf.choose(1000, 6000), Victims({"big-cheap"}));
  // Blind to size and cost, the others would unload a model that is dearer to reload.
  EXPECT_EQ(build("lru").choose(1000, 6000), Victims({"hot"}));
  EXPECT_EQ(build("lfu").choose(1000, 6000), Victims({"small-slow"}));
}

TEST(EvictionPolicy, BusyModelIsNeverChosen) {
  for (const auto& name : eviction_policy_names()) {
    SCOPED_TRACE(name);
    Fleet f(name);
    f.load("busy", 100, 1).in_flight = 1;  // oldest, rarest, cheapest: first in every order
    f.load("idle", 100);
    f.use("idle", 3);
    EXPECT_EQ(f.choose(100, 200), Victims({"idle"}));
    EXPECT_EQ(f.choose(100, 200, 2), Victims({"idle"}));
    EXPECT_EQ(f.choose(10, 1000, 1), std::nullopt);
    EXPECT_EQ(f.choose(200, 200), std::nullopt);
    f.model("busy").in_flight = 0;
    EXPECT_EQ(f.choose(100, 200), Victims({"busy"}));
  }
}

TEST(EvictionPolicy, PinnedModelIsNeverChosen) {
  for (const auto& name : eviction_policy_names()) {
    SCOPED_TRACE(name);
    Fleet f(name);
    f.load("pinned", 100, 1).pinned = true;  // first in every order were it not pinned
    f.load("free", 100);
    f.use("free", 3);
    EXPECT_EQ(f.choose(100, 200), Victims({"free"}));
    EXPECT_EQ(f.choose(200, 200), std::nullopt);
    EXPECT_EQ(f.choose(10, 1000, 1), std::nullopt);
  }
}

TEST(EvictionPolicy, ReturnsNulloptWhenRoomCannotBeMade) {
  for (const auto& name : eviction_policy_names()) {
    SCOPED_TRACE(name);
    Fleet f(name);
    // Too big even alone, with nothing resident.
    EXPECT_EQ(f.choose(1001, 1000), std::nullopt);
    f.load("pinned", 400).pinned = true;
    f.load("busy", 300).in_flight = 2;
    f.load("a", 200);
    // Evicting a frees 200: 300 free, 301 wanted.
    EXPECT_EQ(f.choose(301, 1000), std::nullopt);
    EXPECT_EQ(f.choose(300, 1000), Victims({"a"}));
    // The count cannot drop below the two that must stay.
    EXPECT_EQ(f.choose(1, 1000, 2), std::nullopt);
    EXPECT_EQ(f.choose(1, 1000, 3), Victims({"a"}));
  }
}

TEST(EvictionPolicy, EvictsOnlyAsManyAsNeeded) {
  for (const auto& name : eviction_policy_names()) {
    SCOPED_TRACE(name);
    Fleet f(name);
    for (const char* id : {"a", "b", "c", "d"}) f.load(id, 100);
    EXPECT_EQ(f.choose(1, 400)->size(), 1u);
    EXPECT_EQ(f.choose(100, 400)->size(), 1u);
    EXPECT_EQ(f.choose(101, 400)->size(), 2u);
    EXPECT_EQ(f.choose(150, 450)->size(), 1u);
    EXPECT_EQ(f.choose(400, 400)->size(), 4u);
  }
}

TEST(EvictionPolicy, MaxResidentCountIsRespected) {
  for (const auto& name : eviction_policy_names()) {
    SCOPED_TRACE(name);
    Fleet f(name);
    for (const char* id : {"a", "b", "c"}) f.load(id, 10);
    const uint64_t budget = 1'000'000;  // bytes are no constraint here
    EXPECT_EQ(f.choose(10, budget, 4)->size(), 0u);
    EXPECT_EQ(f.choose(10, budget, 3)->size(), 1u);
    EXPECT_EQ(f.choose(10, budget, 2)->size(), 2u);
    EXPECT_EQ(f.choose(10, budget, 1)->size(), 3u);
    // Bytes and count together: whichever needs more victims wins.
    EXPECT_EQ(f.choose(15, 30, 3)->size(), 2u);
  }
}

TEST(EvictionPolicy, NothingEvictedWhenItAlreadyFits) {
  for (const auto& name : eviction_policy_names()) {
    SCOPED_TRACE(name);
    Fleet f(name);
    EXPECT_EQ(f.choose(1000, 1000), Victims{});
    f.load("a", 300);
    f.load("b", 300);
    EXPECT_EQ(f.choose(400, 1000), Victims{});
    EXPECT_EQ(f.choose(400, 1000, 3), Victims{});
  }
}

// A model once worth keeping (used twice, dear to reload) but not used since
// falls behind models that are used now, because every eviction raises L.
TEST(EvictionPolicy, GdsfInflationAgesOutStaleModels) {
  Fleet f("gdsf");
  const uint64_t budget = 200;  // room for two
  f.load("stale", 100, 1250);
  f.use("stale");           // H = 0 + 2 x 1250 / 100 = 25
  f.load("x1", 100, 1000);  // H = 0 + 1 x 1000 / 100 = 10
  EXPECT_EQ(f.make_room_and_load("x2", 100, budget), Victims({"x1"}));  // L = 10, x2: H = 20
  EXPECT_EQ(f.make_room_and_load("x3", 100, budget), Victims({"x2"}));  // L = 20, x3: H = 30
  EXPECT_EQ(f.make_room_and_load("x4", 100, budget), Victims({"stale"}));

  // Without aging, LFU keeps the stale model for ever.
  Fleet lfu("lfu");
  lfu.load("stale", 100, 1250);
  lfu.use("stale");
  lfu.load("x1", 100, 1000);
  for (const char* id : {"x2", "x3", "x4", "x5"})
    EXPECT_NE(lfu.make_room_and_load(id, 100, budget), Victims({"stale"}));
}

TEST(EvictionPolicy, UnknownPolicyNameGivesNullptr) {
  EXPECT_EQ(make_eviction_policy("fifo"), nullptr);
  EXPECT_EQ(make_eviction_policy(""), nullptr);
  EXPECT_EQ(make_eviction_policy("LRU"), nullptr);
  for (const auto& name : eviction_policy_names()) {
    const auto policy = make_eviction_policy(name);
    ASSERT_NE(policy, nullptr) << name;
    EXPECT_EQ(policy->name(), name);
  }
  EXPECT_EQ(eviction_policy_names(), Victims({"lru", "lfu", "gdsf"}));
}

}  // namespace
}  // namespace calm
