// Nearest-rank percentiles: see percentile.h.
#include "util/percentile.h"

#include <algorithm>
#include <cmath>

namespace calm {

double nearest_rank_percentile_sorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double n = static_cast<double>(sorted.size());
  // ceil(p/100 * n), clamped to [1, n]; the small epsilon keeps 95/100 * 20
  // (= 19.000000000000004 in floating point) at rank 19.
  const double rank = std::ceil(p / 100.0 * n - 1e-9);
  const size_t index = static_cast<size_t>(std::clamp(rank, 1.0, n)) - 1;
  return sorted[index];
}

double nearest_rank_percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return nearest_rank_percentile_sorted(values, p);
}

}  // namespace calm
