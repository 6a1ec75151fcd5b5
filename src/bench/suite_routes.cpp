#include "bench/suite_routes.h"

#include <algorithm>
#include <set>

namespace calm {
namespace {

// SplitMix64's finaliser: a well-mixed 64-bit hash, the same on every
// platform (std::hash is not).
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

std::string route_model(const SuiteRoute& route, const WorkloadRequest& request, size_t index,
                        const std::map<std::string, std::string>& domains, uint64_t seed) {
  switch (route.kind) {
    case SuiteRoute::Kind::kAuto:
      return "auto";
    case SuiteRoute::Kind::kModel:
      return route.model;
    case SuiteRoute::Kind::kOracle: {
      const auto it = domains.find(request.domain);
      if (it == domains.end()) {
        throw std::invalid_argument("oracle routing: domain '" + request.domain +
                                    "' is not in the suite's domains");
      }
      return it->second;
    }
    case SuiteRoute::Kind::kRandom: {
      // Distinct models, sorted: the draw does not depend on how many
      // domains share a model or on the order they are listed in.
      std::set<std::string> unique;
      for (const auto& [domain, model] : domains) unique.insert(model);
      if (unique.empty()) throw std::invalid_argument("random routing needs domains");
      const std::vector<std::string> models(unique.begin(), unique.end());
      const uint64_t h = mix64(mix64(seed) ^ static_cast<uint64_t>(index));
      const double u = static_cast<double>(h >> 11) * 0x1.0p-53;  // [0, 1)
      return models[std::min(models.size() - 1,
                             static_cast<size_t>(u * static_cast<double>(models.size())))];
    }
  }
  return "auto";
}

std::vector<WorkloadRequest> assign_routes(const std::vector<WorkloadRequest>& workload,
                                           const SuiteRoute& route,
                                           const std::map<std::string, std::string>& domains,
                                           uint64_t seed) {
  std::vector<WorkloadRequest> out = workload;
  for (size_t i = 0; i < out.size(); ++i) {
    try {
      out[i].model = route_model(route, out[i], i, domains, seed);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("request " + std::to_string(i) + ": " + e.what());
    }
  }
  return out;
}

}  // namespace calm
