#include "mapek/page_hinkley.h"

#include <algorithm>

namespace calm {

void PageHinkley::reset() {
  n_ = 0;
  mean_ = 0;
  up_sum_ = up_min_ = down_sum_ = down_max_ = 0;
}

PageHinkley::Shift PageHinkley::add(double value) {
  ++n_;
  mean_ += (value - mean_) / static_cast<double>(n_);
  if (mean_ <= 0) return Shift::kNone;
  const double x = (value - mean_) / mean_;  // relative deviation
  up_sum_ += x - delta_;
  up_min_ = std::min(up_min_, up_sum_);
  down_sum_ += x + delta_;
  down_max_ = std::max(down_max_, down_sum_);
  if (n_ < min_samples_) return Shift::kNone;
  Shift shift = Shift::kNone;
  if (up_sum_ - up_min_ > lambda_) shift = Shift::kUp;
  if (down_max_ - down_sum_ > lambda_) shift = Shift::kDown;
  if (shift != Shift::kNone) reset();
  return shift;
}

}  // namespace calm
