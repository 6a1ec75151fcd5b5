#include "router/scoring.h"

#include <algorithm>
#include <cmath>

namespace calm {

const char* policy_name(RoutingPolicy policy) {
  switch (policy) {
    case RoutingPolicy::kProLatency:
      return "pro-latency";
    case RoutingPolicy::kProEnergy:
      return "pro-energy";
    case RoutingPolicy::kProConfidence:
      return "pro-confidence";
    case RoutingPolicy::kProCache:
      return "pro-cache";
  }
  return "?";
}

std::optional<RoutingPolicy> parse_policy(std::string_view name) {
  for (auto p : {RoutingPolicy::kProLatency, RoutingPolicy::kProEnergy,
                 RoutingPolicy::kProConfidence, RoutingPolicy::kProCache}) {
    if (name == policy_name(p)) return p;
  }
  return std::nullopt;
}

std::optional<Metric> policy_metric(RoutingPolicy policy) {
  switch (policy) {
    case RoutingPolicy::kProLatency:
      return Metric::kLatency;
    case RoutingPolicy::kProEnergy:
      return Metric::kEnergy;
    case RoutingPolicy::kProConfidence:
      return Metric::kConfidence;
    case RoutingPolicy::kProCache:
      return std::nullopt;
  }
  return std::nullopt;
}

double correlation_aware_lambda(double lambda, Metric /*metric*/,
                                const std::vector<double>& abs_rho_to_others) {
  double sum = 0;
  for (double r : abs_rho_to_others) sum += std::isfinite(r) ? std::abs(r) : 0.0;
  return lambda / (1.0 + sum);
}

std::vector<ScoredCandidate> rank_with_lambda(const PolicySettings& settings,
                                              const std::vector<CandidateInput>& inputs,
                                              double lambda) {
  const RoutingPolicy policy = settings.policy;
  const bool lower_wins =
      policy == RoutingPolicy::kProLatency || policy == RoutingPolicy::kProEnergy;
  std::vector<ScoredCandidate> out;
  out.reserve(inputs.size());
  for (const auto& in : inputs) {
    ScoredCandidate c{in.id, in.similarity, in.terms, in.loaded, lambda, 0};
    switch (policy) {
      case RoutingPolicy::kProLatency:
        c.score = (1.0 - in.similarity) + lambda * in.terms[Metric::kLatency];
        break;
      case RoutingPolicy::kProEnergy:
        c.score = (1.0 - in.similarity) + lambda * in.terms[Metric::kEnergy];
        break;
      case RoutingPolicy::kProConfidence:
        c.score = in.similarity + lambda * in.terms[Metric::kConfidence];
        break;
      case RoutingPolicy::kProCache:
        c.lambda = settings.lambda_cache;
        c.score = in.similarity + (in.loaded ? settings.lambda_cache : 0.0);
        break;
    }
    out.push_back(std::move(c));
  }
  std::stable_sort(out.begin(), out.end(),
                   [lower_wins](const ScoredCandidate& a, const ScoredCandidate& b) {
                     return lower_wins ? a.score < b.score : a.score > b.score;
                   });
  return out;
}

}  // namespace calm
