// Placement over nodes whose loaders stand in for their engines (test
// doubles that record every call): which node serves a model, and the
// per-node invariants of the caches underneath.
#include "placement/placement.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

namespace calm {
namespace {

// The nodes' engines: what each holds, and every load and unload asked of them.
struct FakeNodes {
  std::mutex mutex;
  std::map<std::string, uint64_t> size;  // model -> what a load takes (the estimate otherwise)
  std::map<std::string, std::map<std::string, uint64_t>> held;  // node -> model -> bytes
  std::map<std::string, uint64_t> peak;                         // node -> most held at once
  std::vector<std::string> loads, unloads;                      // "node/model"

  uint64_t held_bytes(const std::string& node) {
    uint64_t total = 0;
    for (const auto& [model, bytes] : held[node]) total += bytes;
    return total;
  }
  Placement::NodeLoader loader() {
    return [this](const std::string& node, const std::string& model) {
      std::lock_guard lock(mutex);
      loads.push_back(node + "/" + model);
      const uint64_t bytes = size.count(model) ? size[model] : 0;
      held[node][model] = bytes;
      peak[node] = std::max(peak[node], held_bytes(node));
      return ModelCache::LoadResult(bytes);
    };
  }
  Placement::NodeUnloader unloader() {
    return [this](const std::string& node, const std::string& model) {
      std::lock_guard lock(mutex);
      unloads.push_back(node + "/" + model);
      held[node].erase(model);
    };
  }
};

NodeSpec node(std::string id, uint64_t budget, size_t max_queue,
              std::vector<ModelCache::ModelSpec> models) {
  return {std::move(id), budget, max_queue, std::move(models)};
}

Placement make(FakeNodes& fake, std::vector<NodeSpec> nodes, const std::string& eviction = "lru") {
  return Placement(std::move(nodes), eviction, fake.loader(), fake.unloader());
}

Placement::Placed place(Placement& p, const std::string& model) {
  auto placed = p.try_place(model);
  if (!placed) throw std::runtime_error("no node could take '" + model + "' now");
  placed->wait();
  return std::move(*placed);
}

// "m3" (appended rather than added: GCC 12 warns falsely on "literal" + std::string&&).
std::string named(const char* prefix, size_t i) {
  std::string name = prefix;
  name += std::to_string(i);
  return name;
}

size_t index(const Placement& p, const std::string& node) {
  return p.node_index(node).value();
}

// Makes `model` resident on `on`, the other nodes marked down meanwhile.
void load_on(Placement& p, const std::string& model, const std::string& on) {
  for (size_t i = 0; i < p.node_count(); ++i) p.set_healthy(i, p.node_id(i) == on);
  EXPECT_EQ(place(p, model).node_id(), on);
  for (size_t i = 0; i < p.node_count(); ++i) p.set_healthy(i, true);
}

TEST(Placement, APlacedModelGoesToTheNodeThatHoldsItWhileItsQueueHasRoom) {
  FakeNodes fake;
  auto p = make(
      fake, {node("a", 100, 4, {{"m", 10}, {"n", 10}}), node("b", 100, 4, {{"m", 10}, {"n", 10}})});
  load_on(p, "m", "b");  // a has more free bytes now, but b holds m
  std::vector<Placement::Placed> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(place(p, "m"));
    EXPECT_EQ(held.back().node_id(), "b");
    EXPECT_TRUE(held.back().held());
    EXPECT_TRUE(held.back().was_hit());
  }
  EXPECT_EQ(fake.loads, std::vector<std::string>{"b/m"});
}

TEST(Placement, AModelGoesToTheNodeWithTheMostRoomWhenNoNodeHoldsIt) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 100, 0, {{"x", 50}, {"m", 10}}), node("b", 80, 0, {{"m", 10}}),
                       node("c", 120, 0, {{"x", 50}, {"m", 10}})});
  load_on(p, "x", "c");  // c: 70 free, a: 100, b: 80
  auto m = place(p, "m");
  EXPECT_EQ(m.node_id(), "a");
  EXPECT_FALSE(m.held());
  EXPECT_FALSE(m.was_hit());
}

TEST(Placement, EvictionOnAFullNodeNeverTakesABusyModel) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 12, 0, {{"x", 6}, {"y", 6}, {"z", 6}})});
  std::optional<Placement::Placed> x = place(p, "x");  // busy while held
  { auto y = place(p, "y"); }                          // idle once dropped
  auto z = place(p, "z");                              // needs room: y goes, never x
  EXPECT_EQ(fake.unloads, std::vector<std::string>{"a/y"});
  EXPECT_FALSE(p.try_place("y"));  // both residents busy: no room now
  EXPECT_EQ(fake.unloads, std::vector<std::string>{"a/y"});
  x.reset();
  auto y = place(p, "y");  // z still busy: x, now idle, goes
  EXPECT_EQ(fake.unloads, (std::vector<std::string>{"a/y", "a/x"}));
}

TEST(Placement, AnUnhealthyNodeIsNeverChosen) {
  FakeNodes fake;
  auto p = make(
      fake, {node("a", 100, 0, {{"m", 10}, {"n", 10}}), node("b", 100, 0, {{"m", 10}, {"n", 10}})});
  { auto m = place(p, "m"); }
  ASSERT_EQ(fake.loads, std::vector<std::string>{"a/m"});
  p.set_healthy(index(p, "a"), false);
  for (const char* model : {"m", "n", "m", "n"}) EXPECT_EQ(place(p, model).node_id(), "b");
  p.set_healthy(index(p, "b"), false);
  EXPECT_FALSE(p.try_place("m"));
  EXPECT_FALSE(p.try_place("n"));
}

TEST(Placement, AFullQueueSendsTheModelToAnotherNodeThatHoldsIt) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 100, 2, {{"m", 10}}), node("b", 100, 2, {{"m", 10}}),
                       node("c", 100, 2, {{"m", 10}})});
  load_on(p, "m", "a");
  load_on(p, "m", "b");
  p.set_queue(index(p, "a"), 2, 0);  // a scrape says a is full
  auto first = place(p, "m");
  EXPECT_EQ(first.node_id(), "b");
  EXPECT_TRUE(first.held());
  auto second = place(p, "m");  // b's queue has room for one more of calm's own
  EXPECT_EQ(second.node_id(), "b");
  auto third = place(p, "m");  // b full too: c has room, so m loads there
  EXPECT_EQ(third.node_id(), "c");
  EXPECT_FALSE(third.held());
  EXPECT_EQ(fake.loads, (std::vector<std::string>{"a/m", "b/m", "c/m"}));
}

TEST(Placement, TheLeastQueuedHolderIsChosen) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 100, 0, {{"m", 10}}), node("b", 100, 0, {{"m", 10}})});
  load_on(p, "m", "a");
  load_on(p, "m", "b");
  p.set_queue(index(p, "a"), 3, 2);
  p.set_queue(index(p, "b"), 1, 1);
  EXPECT_EQ(place(p, "m").node_id(), "b");
  p.set_queue(index(p, "b"), 4, 2);
  EXPECT_EQ(place(p, "m").node_id(), "a");
}

TEST(Placement, WhenEveryQueueIsFullNothingIsPlacedUntilOneFrees) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 100, 1, {{"m", 10}}), node("b", 100, 1, {{"m", 10}})});
  int changes = 0;
  p.set_on_change([&] { ++changes; });
  auto first = place(p, "m");
  auto second = place(p, "m");
  EXPECT_NE(first.node_id(), second.node_id());
  EXPECT_FALSE(p.try_place("m"));
  const int before = changes;
  { Placement::Placed gone = std::move(first); }
  EXPECT_GT(changes, before);  // a waiting caller is told to retry
  EXPECT_TRUE(p.try_place("m"));
  p.set_on_change(nullptr);
}

TEST(Placement, ANodeThatComesBackOrGetsQueueRoomIsAnnounced) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 100, 2, {{"m", 10}})});
  int changes = 0;
  p.set_on_change([&] { ++changes; });
  p.set_healthy(0, false);
  EXPECT_EQ(changes, 0);
  p.set_healthy(0, true);
  EXPECT_EQ(changes, 1);
  p.set_queue(0, 2, 0);  // full
  EXPECT_EQ(changes, 1);
  p.set_queue(0, 1, 0);  // room again
  EXPECT_EQ(changes, 2);
  p.set_on_change(nullptr);
}

TEST(Placement, LoadsOfOneModelOnOneNodeAreCoalesced) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 100, 0, {{"m", 10}}), node("b", 100, 0, {{"m", 10}})});
  auto owner = p.try_place("m");
  auto joiner = p.try_place("m");  // before the load ran: joins it
  ASSERT_TRUE(owner && joiner);
  EXPECT_EQ(joiner->node_id(), owner->node_id());
  EXPECT_TRUE(joiner->held());
  owner->wait();
  joiner->wait();
  EXPECT_EQ(fake.loads.size(), 1u);

  // The same from many threads at once, on a fresh one-node fleet. (With two
  // nodes, two first requests racing may each start a load on a different
  // node: coalescing is per node.)
  FakeNodes fake2;
  auto q = make(fake2, {node("a", 100, 0, {{"m", 10}})});
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto placed = q.try_place("m");
      ASSERT_TRUE(placed);
      placed->wait();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(fake2.loads.size(), 1u);
}

TEST(Placement, EveryNodeStaysWithinItsBudget) {
  for (const std::string eviction : {"lru", "lfu", "gdsf"}) {
    FakeNodes fake;
    std::mt19937 random(7);
    std::vector<NodeSpec> nodes;
    const std::vector<uint64_t> budgets = {100, 150, 60};
    for (size_t n = 0; n < budgets.size(); ++n) {
      NodeSpec spec = node(named("node-", n), budgets[n], 3, {});
      for (int m = 0; m < 12; ++m) {
        if ((m + n) % 3 == 0) continue;  // each node serves two thirds of the models
        const std::string id = named("m", static_cast<size_t>(m));
        spec.models.push_back({id, 10 + 5 * static_cast<uint64_t>(m)});
        // Loads report a little more than the estimate for some models.
        fake.size[id] = 10 + 5 * static_cast<uint64_t>(m) + (m % 4 == 0 ? 3 : 0);
      }
      nodes.push_back(std::move(spec));
    }
    auto p = make(fake, std::move(nodes), eviction);
    std::vector<Placement::Placed> in_flight;
    for (int step = 0; step < 2000; ++step) {
      if (step % 50 == 0) p.set_healthy(random() % 3, random() % 4 != 0);
      if (!in_flight.empty() && (in_flight.size() >= 5 || random() % 2 == 0)) {
        in_flight.erase(in_flight.begin() + static_cast<long>(random() % in_flight.size()));
      }
      try {
        if (auto placed = p.try_place(named("m", random() % 12))) {
          placed->wait();
          in_flight.push_back(std::move(*placed));
        }
      } catch (const CacheError& e) {
        // A load that reported more than fits beside the busy models is undone.
        EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
      }
      for (size_t n = 0; n < budgets.size(); ++n) {
        const std::string id = named("node-", n);
        ASSERT_LE(fake.held_bytes(id), budgets[n]) << eviction << " step " << step;
      }
    }
    EXPECT_GT(fake.unloads.size(), 100u) << eviction;  // the nodes were full and evicted
    for (size_t n = 0; n < budgets.size(); ++n) {
      EXPECT_LE(fake.peak[named("node-", n)], budgets[n]) << eviction;
      EXPECT_LE(p.stats().nodes[n].used_bytes, budgets[n]) << eviction;
    }
  }
}

TEST(Placement, AModelTooBigForANodeIsNeverPlacedThere) {
  FakeNodes fake;
  auto p = make(
      fake, {node("small", 10, 0, {{"big", 15}}), node("large", 20, 0, {{"big", 15}, {"x", 12}})});
  load_on(p, "x", "large");  // large has 8 free, small 10: big still goes to large
  EXPECT_EQ(place(p, "big").node_id(), "large");
  EXPECT_EQ(fake.unloads, std::vector<std::string>{"large/x"});
  EXPECT_EQ(p.stats().nodes[index(p, "small")].servable, 0u);
}

TEST(Placement, AModelNoNodeCanServeIsAClearError) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 100, 0, {{"m", 10}})});
  try {
    p.try_place("nobody-serves-this");
    FAIL() << "no error";
  } catch (const PlacementError& e) {
    EXPECT_EQ(e.reason(), PlacementError::Reason::kNoNode);
    EXPECT_NE(std::string(e.what()).find("'nobody-serves-this'"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fake.loads.empty());
}

TEST(Placement, AModelThatFitsNoNodeIsAClearErrorAtOnce) {
  FakeNodes fake;
  auto p =
      make(fake, {node("a", 10, 1, {{"huge", 100}, {"m", 5}}), node("b", 20, 1, {{"huge", 100}})});
  auto busy = place(p, "m");  // even with a's queue full and b down
  p.set_healthy(index(p, "b"), false);
  try {
    p.try_place("huge");
    FAIL() << "no error";
  } catch (const PlacementError& e) {
    EXPECT_EQ(e.reason(), PlacementError::Reason::kNeverFits);
    EXPECT_EQ(e.kind(), CacheError::Kind::kNeverFits);
    const std::string what = e.what();
    EXPECT_NE(what.find("'huge'"), std::string::npos) << what;
    EXPECT_NE(what.find("node 'b'"), std::string::npos) << what;
  }
  EXPECT_EQ(fake.loads, std::vector<std::string>{"a/m"});
}

TEST(Placement, AModelCrowdedOutByPinnedModelsOnANodeGoesToAnother) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 30, 0, {{"pin", 27, true}, {"m", 5}}),
                       node("b", 10, 0, {{"o", 8}, {"m", 5}})});
  load_on(p, "pin", "a");  // a: 3 free, but m never fits beside its pinned model
  load_on(p, "o", "b");    // b: 2 free, o can go
  EXPECT_EQ(place(p, "m").node_id(), "b");
  EXPECT_EQ(fake.unloads, std::vector<std::string>{"b/o"});
}

TEST(Placement, AModelCrowdedOutByPinnedModelsOnEveryNodeIsAClearError) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 10, 0, {{"pin", 8, true}, {"m", 5}}),
                       node("b", 10, 0, {{"pin", 7, true}, {"m", 5}})});
  load_on(p, "pin", "a");
  load_on(p, "pin", "b");
  try {
    p.try_place("m");
    FAIL() << "no error";
  } catch (const PlacementError& e) {
    EXPECT_EQ(e.reason(), PlacementError::Reason::kNeverFits);
    const std::string what = e.what();
    EXPECT_NE(what.find("'m'"), std::string::npos) << what;
    EXPECT_NE(what.find("node 'a'"), std::string::npos) << what;
    EXPECT_NE(what.find("node 'b'"), std::string::npos) << what;
    EXPECT_NE(what.find("the budget of node 'a' is"), std::string::npos) << what;
    EXPECT_EQ(what.find("cache.budget"), std::string::npos) << "a node's budget is not the cache's";
  }
}

TEST(Placement, StatsShowEachNodesFigures) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 100, 4, {{"m", 10}, {"n", 30}}), node("b", 0, 0, {{"m", 10}})});
  p.set_healthy(index(p, "b"), false);  // b (no limit) would have the most room
  auto m = place(p, "m");
  auto n = place(p, "n");
  p.set_healthy(index(p, "b"), true);
  p.set_queue(index(p, "b"), 2, 5);
  const auto s = p.stats();
  ASSERT_EQ(s.nodes.size(), 2u);
  EXPECT_EQ(s.eviction, "lru");
  EXPECT_EQ(s.placed_by_load, 2u);
  EXPECT_EQ(s.nodes[0].id, "a");
  EXPECT_EQ(s.nodes[0].budget_bytes, 100u);
  EXPECT_EQ(s.nodes[0].used_bytes, 40u);
  EXPECT_EQ(s.nodes[0].in_flight, 2);
  EXPECT_EQ(s.nodes[0].queued, 2u);
  ASSERT_EQ(s.nodes[0].resident.size(), 2u);
  EXPECT_EQ(s.nodes[0].resident[0].id, "m");
  EXPECT_EQ(s.nodes[0].resident[1].id, "n");
  EXPECT_EQ(s.nodes[0].resident[0].state, "resident");
  EXPECT_EQ(s.nodes[0].resident[0].bytes + s.nodes[0].resident[1].bytes, 40u);
  EXPECT_EQ(s.nodes[0].resident[0].in_flight, 1);
  EXPECT_TRUE(s.nodes[1].healthy);
  EXPECT_EQ(s.nodes[1].running, 2u);
  EXPECT_EQ(s.nodes[1].waiting, 5u);
  EXPECT_EQ(s.nodes[1].queued, 7u);
  EXPECT_TRUE(s.nodes[1].resident.empty());
}

TEST(Placement, WithOneReplicaPlannedABusyHolderIsJoinedNotCopied) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 100, 0, {{"m", 10}}), node("b", 100, 0, {{"m", 10}})});
  auto first = place(p, "m");
  auto second = place(p, "m");  // the holder is busy, but one replica is planned
  EXPECT_EQ(first.node_id(), second.node_id());
  EXPECT_EQ(fake.loads.size(), 1u);
}

TEST(Placement, APlannedReplicaStartsOnAnotherNodeOnlyWhileEveryHolderIsBusy) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 100, 0, {{"m", 10}}), node("b", 100, 0, {{"m", 10}}),
                       node("c", 100, 0, {{"m", 10}})});
  p.set_replicas("m", 2);
  EXPECT_EQ(p.replicas("m"), 2u);
  {
    auto only = place(p, "m");  // nobody holds it: one load
    auto idle_holder = place(p, "m");
    EXPECT_NE(only.node_id(), idle_holder.node_id()) << "the holder was busy: a replica";
    EXPECT_EQ(fake.loads.size(), 2u);
    auto third = place(p, "m");  // two replicas held: the least busy holder
    EXPECT_EQ(fake.loads.size(), 2u) << "never a third replica";
  }
  auto again = place(p, "m");  // every holder idle: joined, no load
  EXPECT_EQ(fake.loads.size(), 2u);
  const auto spread = p.spread();
  ASSERT_EQ(spread.size(), 1u);
  EXPECT_EQ(spread[0].held, 2u);
  EXPECT_EQ(spread[0].nodes, 3u);
  EXPECT_EQ(spread[0].replicas, 2u);
}

TEST(Placement, ShedReplicaUnloadsAnIdleHolderButNeverTheLastOne) {
  FakeNodes fake;
  auto p = make(fake, {node("a", 100, 0, {{"m", 10}}), node("b", 100, 0, {{"m", 10}})});
  load_on(p, "m", "a");
  load_on(p, "m", "b");
  {
    auto busy_a = place(p, "m");
    auto busy_b = place(p, "m");
    EXPECT_FALSE(p.shed_replica("m")) << "both have a request in flight";
  }
  const auto shed = p.shed_replica("m");
  ASSERT_TRUE(shed);
  EXPECT_EQ(fake.unloads, std::vector<std::string>{*shed + "/m"});
  EXPECT_FALSE(p.shed_replica("m")) << "the last holder keeps it";
  EXPECT_EQ(p.spread()[0].held, 1u);
  EXPECT_EQ(p.replicas("m"), 1u) << "shedding does not change the plan";
}

TEST(Placement, ABadFleetIsRejectedWhenBuilt) {
  FakeNodes fake;
  EXPECT_THROW(make(fake, {node("a", 10, 0, {})}, "nope"), CacheError);
  EXPECT_THROW(make(fake, {node("a", 10, 0, {}), node("a", 10, 0, {})}), std::invalid_argument);
  EXPECT_THROW(make(fake, {node("", 10, 0, {})}), std::invalid_argument);
  EXPECT_FALSE(make(fake, {node("a", 10, 0, {})}).node_index("b"));
}

}  // namespace
}  // namespace calm
