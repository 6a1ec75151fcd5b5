#include "cache/next_model_predictor.h"

#include <gtest/gtest.h>

namespace calm {
namespace {

TEST(NextModelPredictor, PredictsTheModelThatUsuallyFollows) {
  NextModelPredictor predictor(100, 3);
  for (int i = 0; i < 5; ++i) {
    predictor.observe("a");
    predictor.observe("b");
  }
  EXPECT_EQ(predictor.predict_after("a"), std::optional<std::string>("b"));
}

TEST(NextModelPredictor, WeakOrUnseenEvidencePredictsNothing) {
  NextModelPredictor predictor(100, 3);
  EXPECT_EQ(predictor.predict_after("a"), std::nullopt);
  for (const char* m : {"a", "b", "a", "c", "a", "d", "a", "b"}) predictor.observe(m);
  EXPECT_EQ(predictor.predict_after("a"), std::nullopt);  // b followed a 2 of 4 times
}

TEST(NextModelPredictor, ForgetsTransitionsOutsideTheWindow) {
  NextModelPredictor predictor(4, 2);
  for (int i = 0; i < 3; ++i) {
    predictor.observe("a");
    predictor.observe("b");
  }
  for (int i = 0; i < 3; ++i) {
    predictor.observe("a");
    predictor.observe("c");
  }
  EXPECT_EQ(predictor.predict_after("a"), std::optional<std::string>("c"));
}

}  // namespace
}  // namespace calm
