// The summary `calm bench run` prints for a replay: how many requests
// succeeded, how fast, and how they failed. Separate from the replayer so the
// arithmetic can be tested on hand-made records.
//
// Latency and TTFT figures are over the successful requests only (a refused
// connection's 0.3 ms would flatter the mean); failures are counted by status
// instead. Percentiles use the nearest-rank method of util/percentile.h: the
// p-th percentile of n sorted values is the value at rank ceil(p/100 * n)
// (1-based), so it is always one of the measured values. Throughput is successful requests per
// second of the run's wall time (t = 0 to the end of the last request);
// tokens/s counts the completion tokens of successful requests over the same
// time.
//
// Free functions over values: safe from any thread.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench/replayer.h"
#include "util/percentile.h"  // nearest_rank_percentile, used here and by callers

namespace calm {

struct BenchStats {
  size_t requests = 0;
  size_t completed = 0;                    // ok() records
  size_t errors = 0;                       // requests - completed
  std::map<int, size_t> errors_by_status;  // 0: no complete answer
  double latency_mean_ms = 0, latency_p50_ms = 0, latency_p95_ms = 0, latency_p99_ms = 0;
  double ttft_mean_ms = 0, ttft_p95_ms = 0;  // over successes that streamed text
  double wall_s = 0;
  double throughput_rps = 0;                         // completed / wall_s
  double tokens_per_s = 0;                           // completion tokens / wall_s
  int64_t prompt_tokens = 0, completion_tokens = 0;  // of successful requests
};

// wall_s <= 0 leaves the rates at 0.
BenchStats summarize(const std::vector<RequestRecord>& records, double wall_s);

nlohmann::json to_json(const BenchStats& stats);

}  // namespace calm
