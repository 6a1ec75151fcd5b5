#include "util/log_softmax.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace calm {
namespace {

double reference(const std::vector<float>& logits, size_t index) {
  double max = logits[0];
  for (float l : logits) max = std::max<double>(max, l);
  double sum = 0;
  for (float l : logits) sum += std::exp(l - max);
  return logits[index] - max - std::log(sum);
}

TEST(LogSoftmax, MatchesADoublePrecisionReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 8.0f);
  std::vector<float> logits(32000);
  for (auto& l : logits) l = dist(rng);
  for (size_t index : {0ul, 17ul, 31999ul}) {
    EXPECT_NEAR(log_softmax_at(logits.data(), logits.size(), index), reference(logits, index),
                1e-3);
  }
}

TEST(LogSoftmax, UniformLogitsGiveLogOfOneOverN) {
  std::vector<float> logits(1000, 2.5f);
  EXPECT_NEAR(log_softmax_at(logits.data(), logits.size(), 5), -std::log(1000.0), 1e-4);
}

TEST(LogSoftmax, LargeLogitsDoNotOverflow) {
  std::vector<float> logits = {1000.0f, 999.0f, -1000.0f};
  const float lp = log_softmax_at(logits.data(), logits.size(), 0);
  EXPECT_TRUE(std::isfinite(lp));
  EXPECT_NEAR(lp, -std::log(1 + std::exp(-1.0)), 1e-4);
}

TEST(ArgmaxLogit, PicksTheLargestLogitAnywhereInTheVocabulary) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 8.0f);
  std::vector<float> logits(32000);
  for (auto& l : logits) l = dist(rng);
  for (size_t at : {0ul, 1ul, 15ul, 16ul, 12345ul, 31999ul}) {
    std::vector<float> copy = logits;
    copy[at] = 100.0f;
    EXPECT_EQ(argmax_logit(copy.data(), copy.size()), at);
  }
}

TEST(ArgmaxLogit, TiesGoToTheFirstTokenAsLlamaCppsGreedySamplerDoes) {
  std::vector<float> logits(100, -1.0f);
  logits[40] = 3.0f;
  logits[7] = 3.0f;
  logits[90] = 3.0f;
  EXPECT_EQ(argmax_logit(logits.data(), logits.size()), 7u);
  const float one = 0.5f;
  EXPECT_EQ(argmax_logit(&one, 1), 0u);
}

}  // namespace
}  // namespace calm
