#include "router/embedding_cache.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace calm {
namespace {

std::vector<float> vec(float x) {
  return {x, -x, 2 * x};
}

void expect_stats(const EmbeddingCache& cache, uint64_t hits, uint64_t misses, size_t entries) {
  const EmbeddingCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.hits, hits);
  EXPECT_EQ(stats.misses, misses);
  EXPECT_EQ(stats.entries, entries);
}

TEST(EmbeddingCache, GetReturnsWhatPutStoredAndCountsHitsAndMisses) {
  EmbeddingCache cache(4, 100);
  EXPECT_FALSE(cache.get("a").has_value());
  cache.put("a", vec(1));
  auto hit = cache.get("a");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(*hit, vec(1));
  expect_stats(cache, /*hits=*/1, /*misses=*/1, /*entries=*/1);
}

TEST(EmbeddingCache, EvictsTheLeastRecentlyUsedEntryBeyondCapacity) {
  EmbeddingCache cache(2, 100);
  cache.put("a", vec(1));
  cache.put("b", vec(2));
  ASSERT_TRUE(cache.get("a").has_value());  // "a" is now more recent than "b"
  cache.put("c", vec(3));                   // evicts "b"
  EXPECT_EQ(cache.stats().entries, 2u);
  EXPECT_FALSE(cache.get("b").has_value());
  EXPECT_EQ(cache.get("a"), vec(1));
  EXPECT_EQ(cache.get("c"), vec(3));
}

TEST(EmbeddingCache, PutOfAPresentTextKeepsTheFirstVector) {
  EmbeddingCache cache(2, 100);
  cache.put("a", vec(1));
  cache.put("a", vec(9));
  EXPECT_EQ(cache.stats().entries, 1u);
  EXPECT_EQ(cache.get("a"), vec(1));
}

TEST(EmbeddingCache, CapacityZeroCachesNothingAndCountsNothing) {
  EmbeddingCache cache(0, 100);
  EXPECT_FALSE(cache.cacheable("a"));
  cache.put("a", vec(1));
  EXPECT_FALSE(cache.get("a").has_value());
  expect_stats(cache, /*hits=*/0, /*misses=*/0, /*entries=*/0);
}

TEST(EmbeddingCache, TextsLongerThanTheLimitBypassTheCache) {
  EmbeddingCache cache(4, 5);
  const std::string at_limit(5, 'x');
  const std::string too_long(6, 'x');
  EXPECT_TRUE(cache.cacheable(at_limit));
  EXPECT_FALSE(cache.cacheable(too_long));
  cache.put(too_long, vec(1));
  EXPECT_FALSE(cache.get(too_long).has_value());
  expect_stats(cache, /*hits=*/0, /*misses=*/0, /*entries=*/0);  // bypassing is not a miss
  cache.put(at_limit, vec(2));
  EXPECT_EQ(cache.get(at_limit), vec(2));
}

TEST(EmbeddingCache, ConcurrentGetAndPutKeepEntriesCorrectAndWithinCapacity) {
  EmbeddingCache cache(3, 100);  // small: threads keep evicting each other
  constexpr int kThreads = 8;
  constexpr int kRounds = 2000;
  std::vector<std::thread> threads;
  std::vector<int> wrong(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&cache, &wrong, t] {
      for (int i = 0; i < kRounds; ++i) {
        const int key = (i * 7 + t) % 10;
        const std::string text = "text " + std::to_string(key);
        if (auto hit = cache.get(text)) {
          if (*hit != vec(static_cast<float>(key))) ++wrong[t];
        } else {
          cache.put(text, vec(static_cast<float>(key)));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
  const auto stats = cache.stats();
  EXPECT_LE(stats.entries, 3u);
  EXPECT_EQ(stats.hits + stats.misses, uint64_t(kThreads) * kRounds);
}

}  // namespace
}  // namespace calm
