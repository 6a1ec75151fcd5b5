// Route assignment of `calm bench suite`: oracle sends each request to its
// domain's model, random is uniform and deterministic per (seed, index), a
// fixed route sends one model, auto leaves the choice to calm.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "bench/suite_routes.h"

namespace calm {
namespace {

const std::map<std::string, std::string> kDomains = {
    {"maths", "maths-expert"}, {"code", "code-expert"}, {"medicine", "med-expert"}};

std::vector<WorkloadRequest> workload(size_t n) {
  const std::vector<std::string> domains = {"maths", "code", "medicine"};
  std::vector<WorkloadRequest> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i].t = static_cast<double>(i);
    out[i].domain = domains[i % domains.size()];
    out[i].model = "from-the-file";
  }
  return out;
}

TEST(SuiteRoutes, OracleSendsEachRequestToItsDomainsModel) {
  const auto routed = assign_routes(workload(30), parse_suite_route("oracle"), kDomains, 1);
  for (const WorkloadRequest& r : routed) EXPECT_EQ(r.model, kDomains.at(r.domain));
}

TEST(SuiteRoutes, OracleRefusesADomainItDoesNotKnow) {
  auto w = workload(3);
  w[2].domain = "law";
  try {
    assign_routes(w, parse_suite_route("oracle"), kDomains, 1);
    FAIL() << "accepted an unknown domain";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("request 2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'law'"), std::string::npos) << e.what();
  }
}

TEST(SuiteRoutes, FixedRouteSendsThatModelAndAutoSendsAuto) {
  for (const auto& r : assign_routes(workload(10), parse_suite_route("model:big"), kDomains, 1)) {
    EXPECT_EQ(r.model, "big");
  }
  for (const auto& r : assign_routes(workload(10), parse_suite_route("auto"), {}, 1)) {
    EXPECT_EQ(r.model, "auto");
  }
}

TEST(SuiteRoutes, RandomIsTheSameForTheSameSeedAndIndex) {
  const auto route = parse_suite_route("random");
  const auto a = assign_routes(workload(200), route, kDomains, 7);
  const auto b = assign_routes(workload(200), route, kDomains, 7);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].model, b[i].model) << i;
  // A request's model depends on its index alone, not on the rest.
  EXPECT_EQ(route_model(route, a[123], 123, kDomains, 7), a[123].model);
  const auto c = assign_routes(workload(200), route, kDomains, 8);
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += a[i].model != c[i].model;
  EXPECT_GT(differ, 50u) << "another seed should give another assignment";
}

TEST(SuiteRoutes, RandomIsUniformOverTheDistinctDomainModels) {
  // Two domains share a model: it must not be drawn twice as often.
  std::map<std::string, std::string> domains = kDomains;
  domains["algebra"] = "maths-expert";
  std::map<std::string, int> counts;
  const auto routed = assign_routes(workload(3000), parse_suite_route("random"), domains, 1);
  for (const auto& r : routed) ++counts[r.model];
  ASSERT_EQ(counts.size(), 3u);
  for (const auto& [model, n] : counts) {
    EXPECT_NEAR(n, 1000, 100) << model;  // about 3.5 standard deviations
  }
}

TEST(SuiteRoutes, RandomIgnoresTheRequestsDomain) {
  auto w = workload(50);
  for (auto& r : w) r.domain = "unlisted";
  const auto routed = assign_routes(w, parse_suite_route("random"), kDomains, 1);
  std::set<std::string> models;
  for (const auto& r : routed) models.insert(r.model);
  EXPECT_EQ(models.size(), 3u);
}

}  // namespace
}  // namespace calm
