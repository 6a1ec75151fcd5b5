#include "bench/bench_stats.h"

#include <numeric>

namespace calm {
namespace {

double mean(const std::vector<double>& values) {
  if (values.empty()) return 0;
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

}  // namespace

BenchStats summarize(const std::vector<RequestRecord>& records, double wall_s) {
  BenchStats s;
  s.requests = records.size();
  s.wall_s = wall_s;
  std::vector<double> latencies, ttfts;
  for (const RequestRecord& r : records) {
    if (!r.ok()) {
      ++s.errors;
      ++s.errors_by_status[r.status];
      continue;
    }
    ++s.completed;
    latencies.push_back(r.latency_ms);
    if (r.ttft_ms) ttfts.push_back(*r.ttft_ms);
    s.prompt_tokens += r.prompt_tokens;
    s.completion_tokens += r.completion_tokens;
  }
  s.latency_mean_ms = mean(latencies);
  s.latency_p50_ms = nearest_rank_percentile(latencies, 50);
  s.latency_p95_ms = nearest_rank_percentile(latencies, 95);
  s.latency_p99_ms = nearest_rank_percentile(latencies, 99);
  s.ttft_mean_ms = mean(ttfts);
  s.ttft_p95_ms = nearest_rank_percentile(ttfts, 95);
  if (wall_s > 0) {
    s.throughput_rps = static_cast<double>(s.completed) / wall_s;
    s.tokens_per_s = static_cast<double>(s.completion_tokens) / wall_s;
  }
  return s;
}

nlohmann::json to_json(const BenchStats& s) {
  nlohmann::json by_status = nlohmann::json::object();
  for (const auto& [status, count] : s.errors_by_status) by_status[std::to_string(status)] = count;
  return {{"requests", s.requests},
          {"completed", s.completed},
          {"errors", s.errors},
          {"errors_by_status", by_status},
          {"latency_ms",
           {{"mean", s.latency_mean_ms},
            {"p50", s.latency_p50_ms},
            {"p95", s.latency_p95_ms},
            {"p99", s.latency_p99_ms}}},
          {"ttft_ms", {{"mean", s.ttft_mean_ms}, {"p95", s.ttft_p95_ms}}},
          {"wall_s", s.wall_s},
          {"throughput_rps", s.throughput_rps},
          {"tokens_per_s", s.tokens_per_s},
          {"prompt_tokens", s.prompt_tokens},
          {"completion_tokens", s.completion_tokens},
          {"percentiles", "nearest-rank"}};
}

}  // namespace calm
