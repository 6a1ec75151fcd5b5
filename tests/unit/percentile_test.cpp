// nearest_rank_percentile: the one percentile definition (util/percentile.h).
#include "util/percentile.h"

#include <gtest/gtest.h>

#include <vector>

namespace calm {
namespace {

TEST(Percentile, IsAlwaysOneOfTheValuesAtRankCeilPN) {
  const std::vector<double> v = {5, 1, 4, 2, 3};  // unsorted on purpose
  EXPECT_EQ(nearest_rank_percentile(v, 20), 1);   // rank ceil(1) = 1
  EXPECT_EQ(nearest_rank_percentile(v, 21), 2);   // rank ceil(1.05) = 2
  EXPECT_EQ(nearest_rank_percentile(v, 50), 3);   // rank ceil(2.5) = 3
  EXPECT_EQ(nearest_rank_percentile(v, 95), 5);
}

TEST(Percentile, P95OfTwentyIsTheNineteenthDespiteRounding) {
  std::vector<double> v;
  for (int i = 1; i <= 20; ++i) v.push_back(i);
  EXPECT_EQ(nearest_rank_percentile(v, 95), 19);  // 0.95 * 20 is 19.000000000000004
  EXPECT_EQ(nearest_rank_percentile_sorted(v, 95), 19);
}

TEST(Percentile, P100IsTheMaximumAndTinyPTheMinimum) {
  const std::vector<double> v = {7, 3, 9};
  EXPECT_EQ(nearest_rank_percentile(v, 100), 9);
  EXPECT_EQ(nearest_rank_percentile(v, 0.001), 3);
  EXPECT_EQ(nearest_rank_percentile(v, 0), 3);  // clamped to rank 1
}

TEST(Percentile, NoValuesGiveZero) {
  EXPECT_EQ(nearest_rank_percentile({}, 95), 0);
  EXPECT_EQ(nearest_rank_percentile_sorted({}, 50), 0);
}

TEST(Percentile, OneValueIsEveryPercentile) {
  EXPECT_EQ(nearest_rank_percentile({42}, 1), 42);
  EXPECT_EQ(nearest_rank_percentile({42}, 99), 42);
}

}  // namespace
}  // namespace calm
