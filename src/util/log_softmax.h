// Loops over a model's logits that run once per generated token.
//
// log_softmax_at: log softmax(logits)[index], the log-probability a model
// gave one token. argmax_logit: the index of the largest logit (the first
// one, if several tie), what greedy decoding picks.
//
// Both run once per generated token over the whole vocabulary (32k-150k
// entries), so they are on the decode hot path: this file is compiled with
// -ffast-math (see CMakeLists.txt) so the loops vectorise. Logits must be
// finite, which raw model logits are.
#pragma once

#include <cstddef>

namespace calm {

float log_softmax_at(const float* logits, size_t n, size_t index);

// n must be at least 1.
size_t argmax_logit(const float* logits, size_t n);

}  // namespace calm
