// The per-system figures of `calm bench suite` on hand-made records: quality
// is token-weighted per domain and overall, decision accuracy counts served
// == the domain's model, the cache hit rate and loads come from the state,
// and unknown figures are null rather than 0.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "bench/suite_summary.h"

namespace calm {
namespace {

using json = nlohmann::json;

const std::map<std::string, std::string> kDomains = {{"maths", "m"}, {"code", "c"}};

SuiteRecord record(size_t index, const std::string& domain, const std::string& served,
                   double latency_ms) {
  SuiteRecord s;
  s.request.index = index;
  s.request.domain = domain;
  s.request.model = "auto";
  s.request.served_model = served;
  s.request.status = 200;
  s.request.latency_ms = latency_ms;
  s.request.ttft_ms = latency_ms / 2;
  s.request.completion_tokens = 4;
  s.request.cache = "hit";
  return s;
}

SuiteRecord scored(SuiteRecord s, int tokens, double mean_logprob, double confidence,
                   double energy) {
  s.has_reference = true;
  s.ref_tokens = tokens;
  s.ref_mean_logprob = mean_logprob;
  s.confidence = confidence;
  s.energy_j = energy;
  s.energy_source = "rapl";
  return s;
}

SuiteRecord failed(size_t index, int status) {
  SuiteRecord s;
  s.request.index = index;
  s.request.domain = "maths";
  s.request.status = status;
  s.request.error = "HTTP " + std::to_string(status);
  s.request.latency_ms = 1;
  s.has_reference = true;
  return s;
}

const json kState = {{"cache",
                      {{"peak_used_bytes", 123456789},
                       {"models",
                        {{"m", {{"hits", 6}, {"misses", 2}, {"loads", 2}}},
                         {"c", {{"hits", 1}, {"misses", 1}, {"loads", 1}}}}}}},
                     {"process", {{"peak_rss_bytes", 987654321}}}};

std::vector<SuiteRecord> sample() {
  return {scored(record(0, "maths", "m", 100), 10, -1.0, 0.8, 2.0),
          scored(record(1, "maths", "c", 200), 30, -2.0, 0.4, 4.0),
          scored(record(2, "code", "c", 300), 5, -0.5, 0.6, 6.0), failed(3, 503), failed(4, 0)};
}

TEST(SuiteSummary, QualityIsTokenWeightedPerDomainAndOverall) {
  const json s = summarize_suite_system(sample(), kState, parse_suite_route("auto"), kDomains, 2);
  const json& maths = s["quality"]["maths"];
  EXPECT_EQ(maths["n"], 2);
  EXPECT_EQ(maths["tokens"], 40);
  // (10 * -1 + 30 * -2) / 40, not the plain mean of -1 and -2.
  EXPECT_DOUBLE_EQ(maths["mean_logprob"].get<double>(), -70.0 / 40);
  EXPECT_DOUBLE_EQ(maths["perplexity"].get<double>(), std::exp(70.0 / 40));
  EXPECT_DOUBLE_EQ(maths["confidence"].get<double>(), 0.6);
  const json& all = s["quality"]["all"];
  EXPECT_EQ(all["n"], 3);
  EXPECT_EQ(all["tokens"], 45);
  EXPECT_DOUBLE_EQ(all["mean_logprob"].get<double>(), -72.5 / 45);
  EXPECT_DOUBLE_EQ(all["confidence"].get<double>(), 0.6);
  EXPECT_EQ(s["quality"]["code"]["n"], 1);
  // The failed requests had references but are not "unscored": they did not complete.
  EXPECT_EQ(s["unscored"], 0);
}

TEST(SuiteSummary, DecisionAccuracyIsTheShareServedByTheDomainsModel) {
  const json s = summarize_suite_system(sample(), kState, parse_suite_route("auto"), kDomains, 2);
  EXPECT_DOUBLE_EQ(s["decision_accuracy"].get<double>(), 2.0 / 3);  // record 1 went to c
}

TEST(SuiteSummary, DecisionAccuracyIsNullForAFixedRoute) {
  const json s =
      summarize_suite_system(sample(), kState, parse_suite_route("model:m"), kDomains, 2);
  EXPECT_TRUE(s["decision_accuracy"].is_null());
}

TEST(SuiteSummary, DecisionAccuracyIgnoresDomainsWithoutAModel) {
  std::vector<SuiteRecord> records = {record(0, "maths", "m", 1), record(1, "law", "m", 1)};
  const json s = summarize_suite_system(records, kState, parse_suite_route("auto"), kDomains, 1);
  EXPECT_DOUBLE_EQ(s["decision_accuracy"].get<double>(), 1.0);
}

TEST(SuiteSummary, CacheAndMemoryFiguresComeFromTheState) {
  const json s = summarize_suite_system(sample(), kState, parse_suite_route("auto"), kDomains, 2);
  EXPECT_DOUBLE_EQ(s["cache_hit_rate"].get<double>(), 7.0 / 10);
  EXPECT_EQ(s["loads"], 3);
  EXPECT_EQ(s["peak_model_bytes"], 123456789);
  EXPECT_EQ(s["peak_rss_bytes"], 987654321);
}

TEST(SuiteSummary, LatencyEnergyAndErrorsCountCompletedRequestsOnly) {
  const json s = summarize_suite_system(sample(), kState, parse_suite_route("auto"), kDomains, 2);
  EXPECT_EQ(s["requests"], 5);
  EXPECT_EQ(s["completed"], 3);
  EXPECT_EQ(s["errors"], 2);
  EXPECT_EQ(s["errors_by_status"], (json{{"0", 1}, {"503", 1}}));
  EXPECT_DOUBLE_EQ(s["latency_mean_ms"].get<double>(), 200);
  EXPECT_DOUBLE_EQ(s["latency_p50_ms"].get<double>(), 200);
  EXPECT_DOUBLE_EQ(s["latency_p95_ms"].get<double>(), 300);
  EXPECT_DOUBLE_EQ(s["ttft_mean_ms"].get<double>(), 100);
  EXPECT_DOUBLE_EQ(s["energy_per_request_j"].get<double>(), 4.0);
  EXPECT_EQ(s["energy_source"], "rapl");
  EXPECT_DOUBLE_EQ(s["confidence_mean"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(s["wall_s"].get<double>(), 2);
  EXPECT_DOUBLE_EQ(s["throughput_rps"].get<double>(), 1.5);
}

TEST(SuiteSummary, UnknownFiguresAreNullNotZero) {
  std::vector<SuiteRecord> records = {record(0, "maths", "m", 10)};
  records[0].has_reference = true;  // a reference that could not be scored
  records[0].request.ttft_ms.reset();
  const json s =
      summarize_suite_system(records, json(nullptr), parse_suite_route("auto"), kDomains, 1);
  for (const char* key :
       {"energy_per_request_j", "energy_source", "confidence_mean", "cache_hit_rate", "loads",
        "peak_model_bytes", "peak_rss_bytes", "ttft_mean_ms", "ttft_p95_ms"}) {
    EXPECT_TRUE(s[key].is_null()) << key << " = " << s[key];
  }
  EXPECT_EQ(s["unscored"], 1);
  EXPECT_EQ(s["quality"]["maths"]["n"], 0);
  EXPECT_TRUE(s["quality"]["maths"]["perplexity"].is_null());
  EXPECT_TRUE(s["quality"]["all"]["mean_logprob"].is_null());

  const json none = summarize_suite_system({failed(0, 500)}, json(nullptr),
                                           parse_suite_route("auto"), kDomains, 1);
  EXPECT_TRUE(none["latency_mean_ms"].is_null());
  EXPECT_TRUE(none["decision_accuracy"].is_null());
}

TEST(SuiteSummary, RecordJsonHasTheDocumentedFields) {
  const json r = suite_record_json(scored(record(7, "code", "c", 42), 3, -0.25, 0.9, 1.5));
  for (const char* key :
       {"index", "t", "domain", "model", "served_model", "status", "latency_ms", "ttft_ms",
        "completion_tokens", "cache", "energy_j", "confidence", "ref_tokens", "ref_mean_logprob"}) {
    EXPECT_TRUE(r.contains(key)) << key;
  }
  EXPECT_EQ(r["index"], 7);
  EXPECT_EQ(r["cache"], "hit");
  EXPECT_EQ(r["ref_tokens"], 3);
  EXPECT_FALSE(r.contains("error"));
  EXPECT_EQ(suite_record_json(failed(1, 503))["error"], "HTTP 503");
  EXPECT_TRUE(suite_record_json(failed(1, 503))["ref_tokens"].is_null());
}

TEST(SuiteSummary, TableHasARowPerSystemAndNamesFailures) {
  const json summary =
      summarize_suite_system(sample(), kState, parse_suite_route("auto"), kDomains, 2);
  const json suite = {{"systems",
                       {{{"name", "full"}, {"summary", summary}},
                        {{"name", "broken"}, {"error", "server did not start"}}}}};
  const std::string table = suite_table(suite);
  EXPECT_NE(table.find("system"), std::string::npos) << table;
  EXPECT_NE(table.find("full"), std::string::npos) << table;
  EXPECT_NE(table.find("3/5"), std::string::npos) << table;
  EXPECT_NE(table.find("66.7"), std::string::npos) << table;  // decision accuracy %
  EXPECT_NE(table.find("70.0"), std::string::npos) << table;  // hit rate %
  EXPECT_NE(table.find("failed: broken: server did not start"), std::string::npos) << table;
}

}  // namespace
}  // namespace calm
