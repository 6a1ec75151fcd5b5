#include "router/example_classifier.h"

#include <gtest/gtest.h>

namespace calm {
namespace {

TEST(ExampleClassifier, SeparatesLinearlySeparableClasses) {
  const std::vector<std::vector<float>> x = {{1, 0}, {0.9f, 0.1f}, {0, 1}, {0.1f, 0.9f}};
  const std::vector<size_t> y = {0, 0, 1, 1};
  const auto c = ExampleClassifier::train(x, y, 2);
  EXPECT_GT(c.probabilities({1, 0})[0], 0.9);
  EXPECT_GT(c.probabilities({0, 1})[1], 0.9);
}

TEST(ExampleClassifier, ProbabilitiesSumToOne) {
  const auto c = ExampleClassifier::train({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, {0, 1, 2}, 3);
  double sum = 0;
  for (double p : c.probabilities({0.3f, 0.3f, 0.4f})) sum += p;
  EXPECT_NEAR(sum, 1.0, 1e-9);
}

TEST(ExampleClassifier, TrainingIsDeterministic) {
  const std::vector<std::vector<float>> x = {{1, 2}, {2, 1}, {-1, 0}};
  const auto a = ExampleClassifier::train(x, {0, 0, 1}, 2);
  const auto b = ExampleClassifier::train(x, {0, 0, 1}, 2);
  EXPECT_EQ(a.probabilities({0.5f, 0.5f}), b.probabilities({0.5f, 0.5f}));
}

TEST(ExampleClassifier, WrongDimensionGivesUniformNotACrash) {
  const auto c = ExampleClassifier::train({{1, 0}, {0, 1}}, {0, 1}, 2);
  EXPECT_EQ(c.probabilities({1, 0, 0}), (std::vector<double>{0.5, 0.5}));
}

}  // namespace
}  // namespace calm
