#include "util/log_softmax.h"

#include <cmath>

namespace calm {

// One copy per vector width, picked at load time by the CPU it runs on: the
// baseline x86-64 build would use 4-wide SSE exp calls only. On an AVX-512
// machine this takes 13 us instead of 37 us for a 32k vocabulary, which is
// paid once per generated token on the decode thread while the other
// llama.cpp threads wait.
// Not under ThreadSanitizer: the clones' resolver runs while the dynamic
// loader relocates the binary, before TSan's runtime is set up, and its
// instrumented entry crashes there.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__)
#define CALM_PER_VECTOR_WIDTH __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CALM_PER_VECTOR_WIDTH
#endif

CALM_PER_VECTOR_WIDTH
float log_softmax_at(const float* logits, size_t n, size_t index) {
  float max = logits[0];
  for (size_t i = 1; i < n; ++i) max = logits[i] > max ? logits[i] : max;
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) sum += std::exp(logits[i] - max);
  return logits[index] - max - std::log(sum);
}

// Two passes: a max reduction (which vectorises) and a search for its first
// occurrence (which stops early), rather than one scalar loop carrying both
// the value and its index.
CALM_PER_VECTOR_WIDTH
size_t argmax_logit(const float* logits, size_t n) {
  float max = logits[0];
  for (size_t i = 1; i < n; ++i) max = logits[i] > max ? logits[i] : max;
  for (size_t i = 0; i < n; ++i) {
    if (logits[i] == max) return i;
  }
  return 0;  // unreachable for finite logits
}

}  // namespace calm
