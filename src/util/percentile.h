// The one percentile definition of calm: nearest rank. The p-th percentile
// of n values is the value at rank ceil(p/100 * n) (1-based) of the sorted
// values, so it is always one of the measured values (never an
// interpolation between two), and p100 is the maximum. Used by the bench
// summaries (bench/bench_stats.h), the MAPE-K analyzer's p95 latency
// (mapek/analyzer.h) and route-eval's decision latencies, so a p95 means the
// same thing in a goal, a bench report and a log line.
//
// Free functions over values: safe from any thread.
#pragma once

#include <vector>

namespace calm {

// p in (0, 100]; values in any order. 0 for no values.
double nearest_rank_percentile(std::vector<double> values, double p);

// The same over values already sorted ascending (no copy, no sort).
double nearest_rank_percentile_sorted(const std::vector<double>& sorted, double p);

}  // namespace calm
