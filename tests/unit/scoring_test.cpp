// The paper's policies move traffic the way their formulas say.
#include "router/scoring.h"

#include <gtest/gtest.h>

#include "router/qos_window.h"

namespace calm {
namespace {

Observation obs(double latency_ms, double energy_j, double confidence) {
  Observation o;
  o.latency_ms = latency_ms;
  o.energy_j = energy_j;
  o.confidence = confidence;
  return o;
}

std::vector<CandidateInput> two_equally_similar(const QosWindows& windows) {
  const auto terms = windows.terms({"a", "b"});
  return {{"a", 0.6, terms[0], false}, {"b", 0.6, terms[1], false}};
}

auto no_rho = [](Metric, Metric) { return 0.0; };

TEST(Scoring, ProLatencyMovesToTheModelObservedFaster) {
  QosWindows windows;
  for (int i = 0; i < 10; ++i) {
    windows.record("a", obs(900, 1, 0.5));
    windows.record("b", obs(300, 1, 0.5));
  }
  const auto ranked =
      rank_candidates({RoutingPolicy::kProLatency, 0.5}, two_equally_similar(windows), no_rho);
  EXPECT_EQ(ranked.front().id, "b");
  EXPECT_NEAR(ranked.back().score, (1 - 0.6) + 0.5 * 1.0, 1e-9);  // slowest normalises to 1
}

TEST(Scoring, ProEnergyMovesToTheModelThatSpentLess) {
  QosWindows windows;
  windows.record("a", obs(100, 2.0, 0.5));
  windows.record("b", obs(100, 8.0, 0.5));
  const auto ranked =
      rank_candidates({RoutingPolicy::kProEnergy, 0.5}, two_equally_similar(windows), no_rho);
  EXPECT_EQ(ranked.front().id, "a");
}

TEST(Scoring, ProConfidenceMovesToTheMoreConfidentModel) {
  QosWindows windows;
  windows.record("a", obs(100, 1, 0.2));
  windows.record("b", obs(100, 1, 0.9));
  const auto ranked =
      rank_candidates({RoutingPolicy::kProConfidence, 0.5}, two_equally_similar(windows), no_rho);
  EXPECT_EQ(ranked.front().id, "b");
  EXPECT_NEAR(ranked.front().score, 0.6 + 0.5 * 0.9, 1e-9);
}

TEST(Scoring, ProCachePrefersALoadedModelUnlessAnotherIsClearlyCloser) {
  QosWindows windows;
  auto inputs = two_equally_similar(windows);
  inputs[1].loaded = true;
  PolicySettings settings{RoutingPolicy::kProCache, 0.5, 0.2};
  EXPECT_EQ(rank_candidates(settings, inputs, no_rho).front().id, "b");
  inputs[0].similarity = 0.9;  // 0.9 > 0.6 + 0.2
  EXPECT_EQ(rank_candidates(settings, inputs, no_rho).front().id, "a");
}

TEST(Scoring, ColdStartGivesAnUntriedModelZeroLatencyAndFullConfidence) {
  QosWindows windows;
  windows.record("a", obs(500, 3, 0.4));
  const auto terms = windows.terms({"a", "new"});
  EXPECT_EQ(terms[1].observations, 0u);
  EXPECT_EQ(terms[1][Metric::kLatency], 0.0);
  EXPECT_EQ(terms[1][Metric::kEnergy], 0.0);
  EXPECT_EQ(terms[1][Metric::kConfidence], 1.0);
  const std::vector<CandidateInput> inputs = {{"a", 0.6, terms[0], false},
                                              {"new", 0.6, terms[1], false}};
  EXPECT_EQ(rank_candidates({RoutingPolicy::kProLatency, 0.5}, inputs, no_rho).front().id, "new");
}

TEST(Scoring, SimilarityDominatesWhenLambdaIsZero) {
  QosWindows windows;
  windows.record("a", obs(900, 1, 0.5));
  windows.record("b", obs(100, 1, 0.5));
  const auto terms = windows.terms({"a", "b"});
  const std::vector<CandidateInput> inputs = {{"a", 0.8, terms[0], false},
                                              {"b", 0.5, terms[1], false}};
  EXPECT_EQ(rank_candidates({RoutingPolicy::kProLatency, 0.0}, inputs, no_rho).front().id, "a");
  EXPECT_EQ(rank_candidates({RoutingPolicy::kProLatency, 1.0}, inputs, no_rho).front().id, "b");
}

TEST(Scoring, WindowKeepsOnlyTheLastKObservations) {
  QosWindows windows(3);
  windows.record("a", obs(1000, 0, 0));
  for (int i = 0; i < 3; ++i) windows.record("a", obs(10, 0, 0));
  windows.record("b", obs(20, 0, 0));
  const auto terms = windows.terms({"a", "b"});
  EXPECT_EQ(terms[0].observations, 3u);
  EXPECT_NEAR(terms[0][Metric::kLatency], 0.5, 1e-9);  // 10 / 20: the 1000 fell out
}

TEST(Scoring, CorrelationAwareLambdaShrinksWithCorrelatedMetrics) {
  EXPECT_DOUBLE_EQ(correlation_aware_lambda(0.6, Metric::kLatency, {0.0, 0.0, 0.0}), 0.6);
  EXPECT_DOUBLE_EQ(correlation_aware_lambda(0.6, Metric::kLatency, {1.0, 0.5, 0.5}), 0.2);
  EXPECT_DOUBLE_EQ(correlation_aware_lambda(0.6, Metric::kLatency, {-1.0, 0.0, 0.0}), 0.3);

  QosWindows windows;
  for (int i = 1; i <= 20; ++i) windows.record(i % 2 ? "a" : "b", obs(i * 10.0, i * 1.0, 0.5));
  EXPECT_NEAR(windows.spearman(Metric::kLatency, Metric::kEnergy), 1.0, 1e-9);
  PolicySettings settings{RoutingPolicy::kProLatency, 0.6, 0.2, /*correlation_aware=*/true};
  const auto ranked = rank_candidates(settings, two_equally_similar(windows),
                                      [&](Metric a, Metric b) { return windows.spearman(a, b); });
  EXPECT_NEAR(ranked.front().lambda, 0.6 / 2.0, 1e-9);  // latency moves exactly with energy
}

TEST(Spearman, RanksWithTiesAndDegenerateInputs) {
  EXPECT_NEAR(spearman_rho({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0, 1e-12);
  EXPECT_NEAR(spearman_rho({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0, 1e-12);
  EXPECT_EQ(spearman_rho({1, 1, 1}, {1, 2, 3}), 0.0);  // no variance
  EXPECT_EQ(spearman_rho({1, 2}, {1, 2}), 0.0);        // too few
}

TEST(Policy, NamesRoundTrip) {
  for (auto p : {RoutingPolicy::kProLatency, RoutingPolicy::kProEnergy,
                 RoutingPolicy::kProConfidence, RoutingPolicy::kProCache}) {
    EXPECT_EQ(parse_policy(policy_name(p)), p);
  }
  EXPECT_FALSE(parse_policy("pro-vibes").has_value());
}

}  // namespace
}  // namespace calm
