// The paper's routing score (SORA), one formula per policy:
//
//   pro-latency     (1 - sim) + lambda * L          lowest wins
//   pro-energy      (1 - sim) + lambda * E          lowest wins
//   pro-confidence  sim + lambda * C                highest wins
//   pro-cache       sim + lambda_cache * [loaded]   highest wins
//
// sim is the cosine similarity of the query to the model (router decides
// how), L, E, C the model's normalised window means (router/qos_window.h).
// With correlation-aware weights, which the paper proposed but never built,
// lambda becomes lambda / (1 + sum over the other metrics of |rho(l, l')|),
// rho being Spearman's correlation over the windows: a metric that moves
// with the others already counts through them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "router/qos_window.h"

namespace calm {

enum class RoutingPolicy { kProLatency, kProEnergy, kProConfidence, kProCache };

const char* policy_name(RoutingPolicy policy);
std::optional<RoutingPolicy> parse_policy(std::string_view name);  // "pro-latency", …

struct PolicySettings {
  RoutingPolicy policy = RoutingPolicy::kProConfidence;
  double lambda = 0.5;        // weight of the dynamic term
  double lambda_cache = 0.2;  // pro-cache bonus for a loaded model
  bool correlation_aware = false;
};

struct CandidateInput {
  std::string id;
  double similarity = 0;  // [-1, 1], usually [0, 1]
  DynamicTerms terms;
  bool loaded = false;
};

struct ScoredCandidate {
  std::string id;
  double similarity = 0;
  DynamicTerms terms;
  bool loaded = false;
  double lambda = 0;  // the weight used (after correlation awareness)
  double score = 0;
};

// The metric a policy weighs; pro-cache weighs none.
std::optional<Metric> policy_metric(RoutingPolicy policy);

// Scores every candidate and sorts best first (ties keep input order).
// `rho(a, b)` supplies Spearman correlations when settings.correlation_aware.
template <typename Rho>
std::vector<ScoredCandidate> rank_candidates(const PolicySettings& settings,
                                             const std::vector<CandidateInput>& inputs, Rho rho);

// Implementation detail of rank_candidates, exposed for tests.
double correlation_aware_lambda(double lambda, Metric metric,
                                const std::vector<double>& abs_rho_to_others);
std::vector<ScoredCandidate> rank_with_lambda(const PolicySettings& settings,
                                              const std::vector<CandidateInput>& inputs,
                                              double lambda);

template <typename Rho>
std::vector<ScoredCandidate> rank_candidates(const PolicySettings& settings,
                                             const std::vector<CandidateInput>& inputs, Rho rho) {
  double lambda = settings.lambda;
  const auto metric = policy_metric(settings.policy);
  if (settings.correlation_aware && metric) {
    std::vector<double> others;
    for (size_t m = 0; m < kMetricCount; ++m) {
      if (static_cast<Metric>(m) != *metric)
        others.push_back(std::abs(rho(*metric, static_cast<Metric>(m))));
    }
    lambda = correlation_aware_lambda(lambda, *metric, others);
  }
  return rank_with_lambda(settings, inputs, lambda);
}

}  // namespace calm
