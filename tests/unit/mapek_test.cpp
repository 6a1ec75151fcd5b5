// The parts of the MAPE-K loop that decide: change detection, goal checks
// and the bounded controller.
#include <gtest/gtest.h>

#include <random>

#include "mapek/analyzer.h"
#include "mapek/page_hinkley.h"
#include "mapek/planner.h"

namespace calm {
namespace {

RequestMetrics request(const std::string& model, double latency_ms, double confidence = 0.5) {
  RequestMetrics m;
  m.model = model;
  m.latency_ms = latency_ms;
  m.confidence = confidence;
  m.energy_j = 1;
  return m;
}

TEST(PageHinkley, StationaryNoiseRaisesNoAlarm) {
  PageHinkley detector;
  std::mt19937 rng(1);
  std::normal_distribution<double> noise(100, 10);
  for (int i = 0; i < 2000; ++i) EXPECT_EQ(detector.add(noise(rng)), PageHinkley::Shift::kNone);
}

TEST(PageHinkley, DetectsAnUpwardShiftWithinAFewSamples) {
  PageHinkley detector;
  for (int i = 0; i < 50; ++i) detector.add(100 + (i % 3));
  int seen = 0;
  PageHinkley::Shift shift = PageHinkley::Shift::kNone;
  while (shift == PageHinkley::Shift::kNone && seen < 20) {
    shift = detector.add(400);
    ++seen;
  }
  EXPECT_EQ(shift, PageHinkley::Shift::kUp);
  EXPECT_LE(seen, 5);
}

TEST(PageHinkley, DetectsADownwardShift) {
  PageHinkley detector;
  for (int i = 0; i < 50; ++i) detector.add(400 + (i % 3));
  PageHinkley::Shift shift = PageHinkley::Shift::kNone;
  for (int i = 0; i < 60 && shift == PageHinkley::Shift::kNone; ++i) shift = detector.add(100);
  EXPECT_EQ(shift, PageHinkley::Shift::kDown);
}

Goals latency_goal(double p95_ms) {
  Goals g;
  g.latency_p95_ms = p95_ms;
  g.window = 20;
  g.lambda_step = 0.5;
  g.lambda_max = 2;
  g.relax_margin = 0.8;
  g.relax_after = 1;
  return g;
}

TEST(Analyzer, ChecksTheP95AgainstTheGoal) {
  Analyzer analyzer(latency_goal(100));
  for (int i = 0; i < 18; ++i) analyzer.add(request("a", 50));
  for (int i = 0; i < 2; ++i) analyzer.add(request("a", 500));
  const Analysis a = analyzer.analyze();
  ASSERT_EQ(a.goals.size(), 1u);
  EXPECT_DOUBLE_EQ(a.overall.latency_p95_ms, 500);  // nearest rank: the 19th of 20
  EXPECT_FALSE(a.goals[0].met);
  EXPECT_TRUE(a.enough_data);
}

TEST(Analyzer, TooFewRequestsAreNotJudged) {
  Analyzer analyzer(latency_goal(100));
  analyzer.add(request("a", 900));
  EXPECT_FALSE(analyzer.analyze().enough_data);
}

TEST(Analyzer, CancelledRequestsSayNothing) {
  Analyzer analyzer(latency_goal(100));
  RequestMetrics m = request("a", 900);
  m.cancelled = true;
  analyzer.add(m);
  EXPECT_EQ(analyzer.analyze().overall.count, 0u);
}

Analysis analysis_with(const GoalCheck& check) {
  Analysis a;
  a.enough_data = true;
  a.goals.push_back(check);
  return a;
}

PolicySettings configured() {
  PolicySettings p;
  p.policy = RoutingPolicy::kProConfidence;
  p.lambda = 0.5;
  return p;
}

TEST(Planner, MissedLatencyGoalSwitchesToProLatencyAndRaisesLambdaStepByStep) {
  Planner planner(configured(), latency_goal(100));
  const Analysis missed = analysis_with({"latency_p95_ms", 100, 300, false, false});
  auto p = planner.plan(missed, configured());
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->next.policy, RoutingPolicy::kProLatency);
  EXPECT_DOUBLE_EQ(p->next.lambda, 0.5);
  p = planner.plan(missed, p->next);
  EXPECT_DOUBLE_EQ(p->next.lambda, 1.0);
}

TEST(Planner, LambdaNeverExceedsItsBound) {
  Planner planner(configured(), latency_goal(100));
  const Analysis missed = analysis_with({"latency_p95_ms", 100, 300, false, false});
  PolicySettings current = configured();
  for (int i = 0; i < 20; ++i) {
    if (auto p = planner.plan(missed, current)) current = p->next;
  }
  EXPECT_DOUBLE_EQ(current.lambda, 2.0);
}

TEST(Planner, GoalJustMetHoldsAndGoalMetWithMarginRelaxesToTheConfiguredPolicy) {
  Planner planner(configured(), latency_goal(100));
  PolicySettings pushed = configured();
  pushed.policy = RoutingPolicy::kProLatency;
  pushed.lambda = 1.0;
  EXPECT_FALSE(planner.plan(analysis_with({"latency_p95_ms", 100, 95, true, false}), pushed));
  const Analysis easy = analysis_with({"latency_p95_ms", 100, 40, true, true});
  PolicySettings current = pushed;
  for (int i = 0; i < 5; ++i) {
    if (auto p = planner.plan(easy, current)) current = p->next;
  }
  EXPECT_EQ(current.policy, RoutingPolicy::kProConfidence);
  EXPECT_DOUBLE_EQ(current.lambda, 0.5);
}

TEST(Planner, RelaxesOnlyAfterRelaxAfterComfortableAnalysesInARow) {
  Goals goals = latency_goal(100);
  goals.relax_after = 3;
  Planner planner(configured(), goals);
  PolicySettings pushed = configured();
  pushed.policy = RoutingPolicy::kProLatency;
  pushed.lambda = 1.0;
  const Analysis easy = analysis_with({"latency_p95_ms", 100, 40, true, true});
  const Analysis tight = analysis_with({"latency_p95_ms", 100, 95, true, false});
  EXPECT_FALSE(planner.plan(easy, pushed));
  EXPECT_FALSE(planner.plan(easy, pushed));
  EXPECT_FALSE(planner.plan(tight, pushed));  // the streak starts over
  EXPECT_FALSE(planner.plan(easy, pushed));
  EXPECT_FALSE(planner.plan(easy, pushed));
  EXPECT_TRUE(planner.plan(easy, pushed).has_value());
}

TEST(Planner, MissedConfidenceGoalGivesQualityBackFirst) {
  Goals goals = latency_goal(100);
  goals.confidence_min = 0.4;
  Planner planner(configured(), goals);
  PolicySettings pushed = configured();
  pushed.policy = RoutingPolicy::kProLatency;
  pushed.lambda = 2.0;
  Analysis a;
  a.enough_data = true;
  a.goals.push_back({"latency_p95_ms", 100, 300, false, false});
  a.goals.push_back({"confidence_min", 0.4, 0.2, false, false});
  const auto p = planner.plan(a, pushed);
  ASSERT_TRUE(p.has_value());
  EXPECT_LT(p->next.lambda, 2.0);
}

TEST(Planner, MaxWaitHalvesWhileLatencyIsMissedAndReturnsWhenMetWithMargin) {
  using std::chrono::milliseconds;
  const Planner planner(configured(), latency_goal(100));
  const Analysis missed = analysis_with({"latency_p95_ms", 100, 300, false, false});
  const Analysis easy = analysis_with({"latency_p95_ms", 100, 40, true, true});
  const Analysis tight = analysis_with({"latency_p95_ms", 100, 95, true, false});
  const milliseconds configured_wait(4000);
  EXPECT_EQ(planner.plan_max_wait(missed, milliseconds(4000), configured_wait),
            std::optional<milliseconds>(2000));
  EXPECT_EQ(planner.plan_max_wait(missed, milliseconds(500), configured_wait), std::nullopt)
      << "never below an eighth of the configured bound";
  EXPECT_EQ(planner.plan_max_wait(tight, milliseconds(1000), configured_wait), std::nullopt);
  EXPECT_EQ(planner.plan_max_wait(easy, milliseconds(1000), configured_wait),
            std::optional<milliseconds>(2000));
  EXPECT_EQ(planner.plan_max_wait(easy, milliseconds(4000), configured_wait), std::nullopt)
      << "never above the configured bound";
}

TEST(Planner, PrefetchTurnsOnForMissedLatencyWithManyLoadsAndOffForMissedEnergy) {
  Goals goals = latency_goal(100);
  goals.energy_per_request_j = 5;
  const Planner planner(configured(), goals);
  Analysis slow;
  slow.enough_data = true;
  slow.goals = {{"latency_p95_ms", 100, 300, false, false},
                {"energy_per_request_j", 5, 1, true, true}};
  EXPECT_EQ(planner.plan_prefetch(slow, false, false, 0.5), std::optional<bool>(true));
  EXPECT_EQ(planner.plan_prefetch(slow, false, false, 0.05), std::nullopt)
      << "few loads: prefetch would not help";
  Analysis costly = slow;
  costly.goals[1] = {"energy_per_request_j", 5, 9, false, false};
  EXPECT_EQ(planner.plan_prefetch(costly, true, false, 0.5), std::optional<bool>(false));
  Analysis easy;
  easy.enough_data = true;
  easy.goals = {{"latency_p95_ms", 100, 40, true, true},
                {"energy_per_request_j", 5, 1, true, true}};
  EXPECT_EQ(planner.plan_prefetch(easy, true, false, 0.5), std::optional<bool>(false))
      << "back to the configured setting";
}

TEST(Planner, NoPlanWithoutEnoughData) {
  Planner planner(configured(), latency_goal(100));
  Analysis a = analysis_with({"latency_p95_ms", 100, 300, false, false});
  a.enough_data = false;
  EXPECT_FALSE(planner.plan(a, configured()).has_value());
}

TEST(Planner, AReplicaIsAddedWhileLatencyIsMissedAndDemandOutgrowsTheHolders) {
  Planner planner(configured(), latency_goal(100));
  Analysis slow;
  slow.enough_data = true;
  slow.goals = {{"latency_p95_ms", 100, 300, false, false}};
  const auto plans = planner.plan_replicas(slow, {{"m", 1, 1, 3, 4}, {"calm", 1, 1, 3, 1}});
  ASSERT_EQ(plans.size(), 1u) << "one request on one node is no reason";
  EXPECT_EQ(plans[0].model, "m");
  EXPECT_EQ(plans[0].replicas, 2u);
  EXPECT_NE(plans[0].reason.find("latency goal missed"), std::string::npos) << plans[0].reason;
  EXPECT_TRUE(planner.plan_replicas(slow, {{"m", 2, 1, 3, 5}}).empty())
      << "the planned replica is not held yet";
  EXPECT_TRUE(planner.plan_replicas(slow, {{"m", 2, 2, 3, 3}}).empty()) << "demand is falling";
  EXPECT_TRUE(planner.plan_replicas(slow, {{"m", 3, 3, 3, 9}}).empty()) << "no node is left";
  Analysis met = slow;
  met.goals[0] = {"latency_p95_ms", 100, 40, true, true};
  EXPECT_TRUE(planner.plan_replicas(met, {{"m", 3, 3, 4, 9}}).empty()) << "the goal is met";
}

TEST(Planner, AReplicaIsRemovedOnlyAfterTheModelWasIdleForSeveralAnalyses) {
  Planner planner(configured(), latency_goal(100));
  const Analysis any;
  for (int i = 1; i < Planner::kIdleTicks; ++i) {
    EXPECT_TRUE(planner.plan_replicas(any, {{"m", 2, 2, 3, 0}}).empty()) << i;
  }
  const auto plans = planner.plan_replicas(any, {{"m", 2, 2, 3, 0}});
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0].replicas, 1u);
  EXPECT_TRUE(planner.plan_replicas(any, {{"m", 1, 1, 3, 0}}).empty()) << "never below one";
  for (int i = 0; i < Planner::kIdleTicks + 1; ++i) {
    EXPECT_TRUE(planner.plan_replicas(any, {{"n", 2, 2, 3, static_cast<size_t>(i % 2)}}).empty())
        << "a request between the analyses starts the count again";
  }
}

}  // namespace
}  // namespace calm
