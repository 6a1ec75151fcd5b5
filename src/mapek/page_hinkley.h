// Page-Hinkley change detection on one stream of values (a model's latency).
//
// It tracks the cumulative deviation of each value from the running mean,
// less a tolerance delta, and raises an alarm when that sum rises more than
// lambda above its minimum so far (an upward shift), or falls more than
// lambda below its maximum (a downward shift). After an alarm it starts
// over, so the next regime is learnt afresh. Values are taken relative to
// the running mean (delta and lambda are fractions of it), so one setting
// works for models that answer in 20 ms and in 2 s.
//
// Not thread-safe: the owner holds its lock.
#pragma once

#include <cstddef>

namespace calm {

class PageHinkley {
 public:
  enum class Shift { kNone, kUp, kDown };

  // delta: tolerated drift, lambda: alarm threshold, both relative to the
  // mean; min_samples before any alarm.
  explicit PageHinkley(double delta = 0.1, double lambda = 3.0, size_t min_samples = 8)
      : delta_(delta), lambda_(lambda), min_samples_(min_samples) {}

  Shift add(double value);
  double mean() const { return mean_; }
  size_t samples() const { return n_; }
  void reset();

 private:
  double delta_, lambda_;
  size_t min_samples_;
  size_t n_ = 0;
  double mean_ = 0;
  double up_sum_ = 0, up_min_ = 0;      // cumulative (x - mean - delta), its minimum
  double down_sum_ = 0, down_max_ = 0;  // cumulative (x - mean + delta), its maximum
};

}  // namespace calm
