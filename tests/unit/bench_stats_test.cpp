// The `calm bench` summary, on hand-made records with hand-computed figures.
#include "bench/bench_stats.h"

#include <gtest/gtest.h>

#include <sstream>

#include "bench/bench_report.h"

namespace calm {
namespace {

TEST(BenchStats, NearestRankPercentilesOfTwenty) {
  std::vector<double> v;
  for (int i = 20; i >= 1; --i) v.push_back(i);   // unsorted on purpose
  EXPECT_EQ(nearest_rank_percentile(v, 50), 10);  // rank ceil(10) = 10
  EXPECT_EQ(nearest_rank_percentile(v, 95), 19);  // rank ceil(19) = 19
  EXPECT_EQ(nearest_rank_percentile(v, 99), 20);  // rank ceil(19.8) = 20
  EXPECT_EQ(nearest_rank_percentile(v, 100), 20);
}

TEST(BenchStats, NearestRankPercentileIsAlwaysAMeasuredValue) {
  const std::vector<double> v = {15, 20, 35, 40, 50};
  EXPECT_EQ(nearest_rank_percentile(v, 5), 15);   // rank ceil(0.25) = 1
  EXPECT_EQ(nearest_rank_percentile(v, 30), 20);  // rank ceil(1.5) = 2
  EXPECT_EQ(nearest_rank_percentile(v, 40), 20);  // rank ceil(2) = 2
  EXPECT_EQ(nearest_rank_percentile(v, 50), 35);  // rank ceil(2.5) = 3
  EXPECT_EQ(nearest_rank_percentile(v, 100), 50);
}

TEST(BenchStats, PercentileOfNothingIsZero) {
  EXPECT_EQ(nearest_rank_percentile({}, 50), 0);
}

RequestRecord ok(double latency_ms, std::optional<double> ttft_ms, int completion_tokens) {
  RequestRecord r;
  r.status = 200;
  r.latency_ms = latency_ms;
  r.ttft_ms = ttft_ms;
  r.prompt_tokens = 5;
  r.completion_tokens = completion_tokens;
  return r;
}

RequestRecord failed(int status) {
  RequestRecord r;
  r.status = status;
  r.error = "boom";
  r.latency_ms = 1;
  return r;
}

std::vector<RequestRecord> sample() {
  return {ok(100, 10, 10), ok(400, std::nullopt, 10), failed(503),
          ok(300, 30, 10), ok(200, 20, 10),           failed(0)};
}

TEST(BenchStats, LatencyFiguresCoverSuccessesOnly) {
  const BenchStats s = summarize(sample(), 2.0);
  EXPECT_DOUBLE_EQ(s.latency_mean_ms, 250);  // (100 + 200 + 300 + 400) / 4
  EXPECT_DOUBLE_EQ(s.latency_p50_ms, 200);   // rank ceil(2) = 2
  EXPECT_DOUBLE_EQ(s.latency_p95_ms, 400);   // rank ceil(3.8) = 4
  EXPECT_DOUBLE_EQ(s.latency_p99_ms, 400);
}

TEST(BenchStats, TtftFiguresSkipRequestsWithoutText) {
  const BenchStats s = summarize(sample(), 2.0);
  EXPECT_DOUBLE_EQ(s.ttft_mean_ms, 20);  // (10 + 20 + 30) / 3
  EXPECT_DOUBLE_EQ(s.ttft_p95_ms, 30);   // rank ceil(2.85) = 3
}

TEST(BenchStats, ErrorsAreCountedByStatus) {
  const BenchStats s = summarize(sample(), 2.0);
  EXPECT_EQ(s.requests, 6u);
  EXPECT_EQ(s.completed, 4u);
  EXPECT_EQ(s.errors, 2u);
  EXPECT_EQ(s.errors_by_status, (std::map<int, size_t>{{0, 1}, {503, 1}}));
}

TEST(BenchStats, A200WithAnErrorCountsAsAnError) {
  RequestRecord r = ok(100, 10, 1);
  r.error = "stream ended early";
  const BenchStats s = summarize({r}, 1.0);
  EXPECT_EQ(s.completed, 0u);
  EXPECT_EQ(s.errors_by_status.at(200), 1u);
}

TEST(BenchStats, RatesAreOverTheWallTime) {
  const BenchStats s = summarize(sample(), 2.0);
  EXPECT_DOUBLE_EQ(s.throughput_rps, 2.0);  // 4 completed / 2 s
  EXPECT_DOUBLE_EQ(s.tokens_per_s, 20.0);   // 40 tokens / 2 s
  EXPECT_EQ(s.completion_tokens, 40);
  EXPECT_EQ(s.prompt_tokens, 20);
}

TEST(BenchStats, ZeroWallTimeGivesZeroRates) {
  const BenchStats s = summarize(sample(), 0);
  EXPECT_EQ(s.throughput_rps, 0);
  EXPECT_EQ(s.tokens_per_s, 0);
}

TEST(BenchStats, JsonNamesThePercentileMethod) {
  const auto j = to_json(summarize(sample(), 2.0));
  EXPECT_EQ(j["percentiles"], "nearest-rank");
  EXPECT_EQ(j["errors_by_status"]["503"], 1);
  EXPECT_EQ(j["latency_ms"]["p50"], 200.0);
}

TEST(BenchStats, TableRowHasOneCellPerColumn) {
  const std::string header = table_header();
  const std::string row = table_row("calm", summarize(sample(), 2.0));
  const auto cells = [](const std::string& line) {
    return std::count(line.begin(), line.end(), '|');
  };
  EXPECT_EQ(cells(header.substr(0, header.find('\n'))), cells(row));
  EXPECT_EQ(row, "| calm | 6 | 2 | 250.0 | 200.0 | 400.0 | 400.0 | 20.0 | 2.00 |\n");
}

TEST(BenchStats, CsvQuotesFieldsWithCommasAndQuotes) {
  RequestRecord r = failed(503);
  r.error = R"(HTTP 503: "busy", retry)";
  std::ostringstream out;
  write_csv(out, {r});
  EXPECT_NE(out.str().find(R"("HTTP 503: ""busy"", retry")"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace calm
