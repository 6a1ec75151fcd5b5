// log softmax(logits)[index]: the log-probability a model gave one token.
//
// It runs once per generated token over the whole vocabulary (32k-150k
// entries), so it is on the decode hot path: this file is compiled with
// -ffast-math (see CMakeLists.txt) so the exp loop vectorises. Logits must be
// finite, which raw model logits are.
#pragma once

#include <cstddef>

namespace calm {

float log_softmax_at(const float* logits, size_t n, size_t index);

}  // namespace calm
