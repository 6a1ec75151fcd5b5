// LlamaEmbedder against the project's tiny random-weight llama GGUF files and
// the real llama.cpp: a llama-architecture model declares no pooling, so these
// exercise the mean-pooling fallback.
#include "router/llama_embedder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/helpers.h"
#include "support/test_env.h"

namespace calm {
namespace {

using namespace testing;  // TempDir, read_bytes, write_bytes, norm, all_zero

std::string tiny_model() {
  return testing::test_model("tiny-chatml.gguf");
}

LlamaEmbedder::Options options(size_t cache_capacity = 4096, int context = 512) {
  LlamaEmbedder::Options o;
  o.threads = 2;
  o.context = context;
  o.cache_capacity = cache_capacity;
  return o;
}

// Runs f and returns the message of the std::runtime_error it throws ("" if none).
template <typename F>
std::string runtime_error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

const std::vector<std::string> kTexts = {
    "Write a Python function that reverses a linked list.",
    "What are the symptoms of type 2 diabetes?",
    "Translate 'good morning' into French.",
    "Summarise the causes of the First World War in three sentences.",
    "hello",
    "The quick brown fox jumps over the lazy dog.",
};

TEST(LlamaEmbedder, LoadsTheTinyModelWithMeanPooling) {
  auto e = LlamaEmbedder::load(tiny_model(), options());
  EXPECT_EQ(e->dimension(), 64u);
  EXPECT_EQ(e->name(), "gguf:tiny-chatml (64-d)");
  EXPECT_EQ(e->pooling(), "mean");  // a llama model declares none: the fallback
  EXPECT_EQ(e->context_size(), 512);
  EXPECT_EQ(e->path(), tiny_model());
}

TEST(LlamaEmbedder, DefaultOptionsLoad) {
  auto e = LlamaEmbedder::load(tiny_model());
  EXPECT_EQ(e->context_size(), 512);
  EXPECT_NEAR(norm(e->embed("hello world")), 1.0, 1e-5);
}

TEST(LlamaEmbedder, ContextIsClampedToTheTrainingContext) {
  auto e = LlamaEmbedder::load(tiny_model(), options(0, 8192));
  EXPECT_EQ(e->context_size(), 2048);  // make-tiny-gguf's llama.context_length
}

TEST(LlamaEmbedder, RejectsANonPositiveContext) {
  EXPECT_THROW(LlamaEmbedder::load(tiny_model(), options(0, 0)), std::invalid_argument);
}

TEST(LlamaEmbedder, VectorsHaveUnitLength) {
  auto e = LlamaEmbedder::load(tiny_model(), options());
  for (const std::string& text : kTexts) {
    const std::vector<float> v = e->embed(text);
    ASSERT_EQ(v.size(), e->dimension());
    EXPECT_NEAR(norm(v), 1.0, 1e-5) << text;
    for (float x : v) ASSERT_TRUE(std::isfinite(x)) << text;
  }
}

TEST(LlamaEmbedder, IsDeterministic) {
  auto e = LlamaEmbedder::load(tiny_model(), options(/*cache_capacity=*/0));
  for (const std::string& text : kTexts) {
    EXPECT_EQ(e->embed(text), e->embed(text)) << text;
  }
  // A second embedder over the same file gives the same vectors.
  auto other = LlamaEmbedder::load(tiny_model(), options(0));
  EXPECT_EQ(e->embed(kTexts[0]), other->embed(kTexts[0]));
  EXPECT_EQ(e->cache_stats().entries, 0u);
}

TEST(LlamaEmbedder, DifferentTextsGiveDifferentVectors) {
  auto e = LlamaEmbedder::load(tiny_model(), options());
  std::vector<std::vector<float>> vs;
  for (const std::string& text : kTexts) vs.push_back(e->embed(text));
  for (size_t i = 0; i < vs.size(); ++i) {
    for (size_t j = i + 1; j < vs.size(); ++j) {
      EXPECT_LT(cosine(vs[i], vs[j]), 0.9999f) << kTexts[i] << " | " << kTexts[j];
    }
  }
  // Order matters even with the same words (causal attention).
  EXPECT_LT(cosine(e->embed("dog bites man"), e->embed("man bites dog")), 0.9999f);
}

TEST(LlamaEmbedder, EmptyAndWhitespaceTextGiveZeros) {
  auto e = LlamaEmbedder::load(tiny_model(), options());
  for (const char* text : {"", " ", "  \t\n\r  "}) {
    const std::vector<float> v = e->embed(text);
    ASSERT_EQ(v.size(), e->dimension());
    EXPECT_TRUE(all_zero(v)) << "'" << text << "'";
  }
  // Answered without the model and without the cache.
  EXPECT_EQ(e->cache_stats().misses, 0u);
  EXPECT_EQ(e->cache_stats().entries, 0u);
  // Text around the blanks is embedded.
  EXPECT_NEAR(norm(e->embed("  a  ")), 1.0, 1e-5);
}

TEST(LlamaEmbedder, MissingFileThrowsNamingThePath) {
  TempDir dir;
  const std::string path = dir.file("no-such-model.gguf");
  const std::string what = runtime_error_of([&] { LlamaEmbedder::load(path, options()); });
  EXPECT_NE(what.find(path), std::string::npos) << what;
  EXPECT_NE(what.find("no such file"), std::string::npos) << what;
}

TEST(LlamaEmbedder, TruncatedGgufThrowsNamingThePathAndTheReason) {
  TempDir dir;
  const std::string bytes = read_bytes(tiny_model());
  ASSERT_GT(bytes.size(), 1000u);
  for (size_t keep : {bytes.size() / 2, bytes.size() - 1, size_t{100}, size_t{0}}) {
    const std::string path = dir.file("cut-" + std::to_string(keep) + ".gguf");
    write_bytes(path, bytes.substr(0, keep));
    const std::string what = runtime_error_of([&] { LlamaEmbedder::load(path, options()); });
    EXPECT_NE(what.find(path), std::string::npos) << keep << ": " << what;
    EXPECT_NE(what.find("cannot load"), std::string::npos) << keep << ": " << what;
  }
  // Half a file: llama.cpp's reason follows ours (the pinned build says that a
  // tensor's data is not within the file bounds).
  const std::string half = dir.file("cut-" + std::to_string(bytes.size() / 2) + ".gguf");
  const std::string what = runtime_error_of([&] { LlamaEmbedder::load(half, options()); });
  const size_t ours = what.find("unsupported): ");
  ASSERT_NE(ours, std::string::npos) << what;
  EXPECT_GT(what.size(), ours + std::string("unsupported): ").size()) << what;
}

TEST(LlamaEmbedder, NotAGgufThrowsNamingThePath) {
  TempDir dir;
  const std::string path = dir.file("garbage.gguf");
  write_bytes(path, std::string(4096, 'x'));
  const std::string what = runtime_error_of([&] { LlamaEmbedder::load(path, options()); });
  EXPECT_NE(what.find(path), std::string::npos) << what;
}

TEST(LlamaEmbedder, CacheReturnsIdenticalVectors) {
  auto cached = LlamaEmbedder::load(tiny_model(), options(4096));
  auto uncached = LlamaEmbedder::load(tiny_model(), options(0));
  const std::vector<float> first = cached->embed(kTexts[0]);
  const std::vector<float> second = cached->embed(kTexts[0]);
  EXPECT_EQ(first, second);
  EXPECT_EQ(first, uncached->embed(kTexts[0]));
  const auto stats = cached->cache_stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.entries, 1u);
}

TEST(LlamaEmbedder, CacheEvictsTheLeastRecentlyUsedText) {
  auto e = LlamaEmbedder::load(tiny_model(), options(/*cache_capacity=*/2));
  const auto a = e->embed("alpha");
  e->embed("beta");
  e->embed("alpha");  // hit: alpha is now the most recent
  e->embed("gamma");  // evicts beta
  EXPECT_EQ(e->cache_stats().entries, 2u);
  EXPECT_EQ(e->cache_stats().hits, 1u);
  EXPECT_EQ(e->embed("alpha"), a);  // still cached
  EXPECT_EQ(e->cache_stats().hits, 2u);
  e->embed("beta");  // recomputed
  EXPECT_EQ(e->cache_stats().misses, 4u);
}

TEST(LlamaEmbedder, LongTextIsCutToTheContext) {
  auto e = LlamaEmbedder::load(tiny_model(), options(0, /*context=*/16));
  std::string text;
  for (int i = 0; i < 100; ++i) text += "word" + std::to_string(i) + " ";
  const std::vector<float> v = e->embed(text);
  EXPECT_NEAR(norm(v), 1.0, 1e-5);
  // Whatever follows the first 16 tokens is cut: the vector does not change.
  EXPECT_EQ(e->embed(text + "and then something else entirely"), v);
  // A text well within the context is not cut.
  EXPECT_LT(cosine(e->embed("short text"), e->embed("short text again")), 0.9999f);
}

TEST(LlamaEmbedder, ConcurrentEmbedsEqualSerialResults) {
  auto e = LlamaEmbedder::load(tiny_model(), options(/*cache_capacity=*/0));
  std::vector<std::string> texts;
  for (int i = 0; i < 8; ++i) {
    for (const std::string& t : kTexts) texts.push_back(t + " #" + std::to_string(i));
  }
  std::vector<std::vector<float>> serial;
  for (const std::string& t : texts) serial.push_back(e->embed(t));

  constexpr int kThreads = 4;
  std::vector<std::vector<std::vector<float>>> results(
      kThreads, std::vector<std::vector<float>>(texts.size()));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread walks the texts from a different start.
      for (size_t k = 0; k < texts.size(); ++k) {
        const size_t i = (k + static_cast<size_t>(t) * 5) % texts.size();
        results[t][i] = e->embed(texts[i]);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    for (size_t i = 0; i < texts.size(); ++i) {
      EXPECT_EQ(results[t][i], serial[i]) << "thread " << t << ": " << texts[i];
    }
  }
}

TEST(LlamaEmbedder, ConcurrentEmbedsWithTheCacheEqualSerialResults) {
  auto reference = LlamaEmbedder::load(tiny_model(), options(0));
  auto e = LlamaEmbedder::load(tiny_model(), options(/*cache_capacity=*/3));  // churns
  std::vector<std::thread> threads;
  std::vector<std::vector<std::vector<float>>> results(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        for (const std::string& text : kTexts) results[t].push_back(e->embed(text));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    ASSERT_EQ(results[t].size(), 5 * kTexts.size());
    for (size_t k = 0; k < results[t].size(); ++k) {
      EXPECT_EQ(results[t][k], reference->embed(kTexts[k % kTexts.size()]));
    }
  }
  EXPECT_LE(e->cache_stats().entries, 3u);
}

TEST(LlamaEmbedder, SharedThirdPartyModelEmbeds) {
  const std::string path = testing::shared_model();
  if (path.empty()) GTEST_SKIP() << "../shared/models/llama-2-tiny-random.gguf is absent";
  auto e = LlamaEmbedder::load(path, options());
  EXPECT_GT(e->dimension(), 0u);
  EXPECT_EQ(e->pooling(), "mean");
  EXPECT_EQ(e->name().rfind("gguf:", 0), 0u) << e->name();
  const std::vector<float> a = e->embed("What is the capital of France?");
  const std::vector<float> b = e->embed("def fib(n): return n if n < 2 else fib(n-1) + fib(n-2)");
  ASSERT_EQ(a.size(), e->dimension());
  EXPECT_NEAR(norm(a), 1.0, 1e-5);
  EXPECT_NEAR(norm(b), 1.0, 1e-5);
  EXPECT_LT(cosine(a, b), 0.9999f);
  EXPECT_TRUE(all_zero(e->embed("")));
}

}  // namespace
}  // namespace calm
