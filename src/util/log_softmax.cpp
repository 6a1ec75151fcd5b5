#include "util/log_softmax.h"

#include <cmath>

namespace calm {

float log_softmax_at(const float* logits, size_t n, size_t index) {
  float max = logits[0];
  for (size_t i = 1; i < n; ++i) max = logits[i] > max ? logits[i] : max;
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) sum += std::exp(logits[i] - max);
  return logits[index] - max - std::log(sum);
}

}  // namespace calm
