#include "router/glove_embedder.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/helpers.h"

namespace calm {
namespace {

namespace fs = std::filesystem;

using namespace testing;  // TempDir, read_bytes, write_bytes, norm, all_zero

// Unit vector along axis i of a dim-dimensional space.
std::vector<float> axis(size_t dim, size_t i) {
  std::vector<float> v(dim, 0.0f);
  v[i] = 1.0f;
  return v;
}

// A toy vocabulary in frequency order: every word is a unit vector along its
// own axis, so the weight of each word shows directly in the sentence vector.
// "doctor", "nurse" and "clinic" share an extra axis, as "stock" and "market" do.
const std::vector<std::string> kWords = {
    "the",   "of",    "and",    "do",     "not",          "are",    "we",        "ca",
    "it",    "stock", "market", "doctor", "nurse",        "clinic", "state",     "art",
    "zebra", "neill", "e-mail", "mail",   "state-of-the", "h1n1",   "c\xC3\xA9", "bond"};
constexpr size_t kDim = 32;

std::vector<float> toy_vectors() {
  std::vector<float> vectors;
  for (size_t i = 0; i < kWords.size(); ++i) {
    std::vector<float> v = axis(kDim, i);
    const std::string& w = kWords[i];
    if (w == "doctor" || w == "nurse" || w == "clinic") v[kDim - 1] = 1.0f;
    if (w == "stock" || w == "market" || w == "bond") v[kDim - 2] = 1.0f;
    vectors.insert(vectors.end(), v.begin(), v.end());
  }
  return vectors;
}

class GloveEmbedderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("toy.bin");
    write_glove_bin(path_, kDim, kWords, toy_vectors());
  }
  std::unique_ptr<GloveEmbedder> load(const GloveEmbedder::Options& options = {}) {
    return GloveEmbedder::load(path_, options);
  }

  TempDir dir_;
  std::string path_;
};

// Expects load() to throw a message that names the file and holds `reason`.
void expect_load_error(const std::string& path, const std::string& reason) {
  try {
    GloveEmbedder::load(path);
    ADD_FAILURE() << "loaded " << path << ", expected an error about: " << reason;
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(reason), std::string::npos) << what;
  }
}

// ---- loading --------------------------------------------------------------------

TEST_F(GloveEmbedderTest, LoadKeepsWordsVectorsAndName) {
  auto e = load();
  EXPECT_EQ(e->dimension(), kDim);
  EXPECT_EQ(e->vocabulary_size(), kWords.size());
  EXPECT_EQ(e->name(), "glove-32d (24 words)");
  // A one-word text embeds to that word's own (unit) vector.
  EXPECT_EQ(e->embed("zebra"), axis(kDim, 16));
}

TEST(GloveEmbedderLoad, MissingFileErrorNamesTheFile) {
  TempDir dir;
  expect_load_error(dir.file("nope.bin"), "file not found");
}

TEST(GloveEmbedderLoad, BadMagicIsRejected) {
  TempDir dir;
  const std::string path = dir.file("bad.bin");
  write_glove_bin(path, kDim, kWords, toy_vectors());
  std::string bytes = read_bytes(path);
  bytes[7] = '2';  // CALMGLV2
  write_bytes(path, bytes);
  expect_load_error(path, "bad magic");
  write_bytes(path, "GGUF and some other bytes, long enough for a header");
  expect_load_error(path, "bad magic");
}

TEST(GloveEmbedderLoad, TruncatedFileIsRejectedAtAnyLength) {
  TempDir dir;
  const std::string good = dir.file("good.bin");
  write_glove_bin(good, kDim, kWords, toy_vectors());
  const std::string bytes = read_bytes(good);
  const std::string path = dir.file("cut.bin");
  // Every cut: in the header, in the word list, in the vectors, one byte short.
  for (size_t len : {size_t{0}, size_t{5}, size_t{15}, size_t{16}, size_t{40}, bytes.size() / 2,
                     bytes.size() - 4, bytes.size() - 1}) {
    SCOPED_TRACE(len);
    write_bytes(path, bytes.substr(0, len));
    expect_load_error(path, "truncated");
  }
}

TEST(GloveEmbedderLoad, TrailingBytesAreRejected) {
  TempDir dir;
  const std::string path = dir.file("long.bin");
  write_glove_bin(path, kDim, kWords, toy_vectors());
  write_bytes(path, read_bytes(path) + "junk");
  expect_load_error(path, "4 unexpected bytes after the vectors");
}

TEST(GloveEmbedderLoad, DimensionZeroAndNoWordsAreRejected) {
  TempDir dir;
  const std::string path = dir.file("zero.bin");
  std::string header = "CALMGLV1";
  header += std::string("\0\0\0\0\1\0\0\0", 8);  // dimension 0, one word
  write_bytes(path, header + std::string("\1\0a", 3));
  expect_load_error(path, "dimension 0");
  header = "CALMGLV1";
  header += std::string("\4\0\0\0\0\0\0\0", 8);  // dimension 4, no words
  write_bytes(path, header);
  expect_load_error(path, "holds no words");
}

TEST(GloveEmbedderLoad, EmptyOrDuplicateWordIsRejected) {
  TempDir dir;
  const std::string path = dir.file("dup.bin");
  std::string bytes = "CALMGLV1";
  bytes += std::string("\1\0\0\0\2\0\0\0", 8);  // dimension 1, two words
  bytes += std::string("\1\0a\1\0a", 6);        // "a", "a"
  bytes += std::string(8, '\0');                // two float zeros
  write_bytes(path, bytes);
  expect_load_error(path, "appears twice");
  bytes[18] = 'b';  // "b", "a" is fine
  write_bytes(path, bytes);
  EXPECT_NO_THROW(GloveEmbedder::load(path));
}

TEST(GloveEmbedderLoad, WriterRejectsInconsistentInput) {
  TempDir dir;
  const std::string path = dir.file("w.bin");
  EXPECT_THROW(write_glove_bin(path, 0, {"a"}, {}), std::runtime_error);
  EXPECT_THROW(write_glove_bin(path, 2, {"a"}, {1.0f}), std::runtime_error);
  EXPECT_THROW(write_glove_bin(path, 1, {"a", "a"}, {1.0f, 2.0f}), std::runtime_error);
  EXPECT_THROW(write_glove_bin(path, 1, {""}, {1.0f}), std::runtime_error);
  EXPECT_THROW(write_glove_bin(path, 1, {"a"}, {NAN}), std::runtime_error);
  EXPECT_FALSE(fs::exists(path));
}

// ---- embedding invariants --------------------------------------------------------

TEST_F(GloveEmbedderTest, TextWithNoKnownWordGivesAllZeros) {
  auto e = load();
  for (const char* text : {"", "   ", "?!.,;", "xyzzy plugh", "1234 5678", "\xF0\x9F\x98\x80",
                           "\xFF\xFE broken utf-8"}) {
    SCOPED_TRACE(text);
    const std::vector<float> v = e->embed(text);
    EXPECT_EQ(v.size(), kDim);
    EXPECT_TRUE(all_zero(v));
  }
}

TEST_F(GloveEmbedderTest, EmbeddingIsUnitLength) {
  auto e = load();
  for (const char* text : {"zebra", "the doctor and the nurse", "stock market, stock market!",
                           "of of of of the the zebra"}) {
    SCOPED_TRACE(text);
    EXPECT_NEAR(norm(e->embed(text)), 1.0, 1e-6);
  }
}

TEST_F(GloveEmbedderTest, WordOrderDoesNotMatter) {
  auto e = load();
  EXPECT_EQ(e->embed("doctor nurse stock the"), e->embed("the stock nurse doctor"));
  EXPECT_EQ(e->embed("market zebra of"), e->embed("zebra of market"));
}

TEST_F(GloveEmbedderTest, CaseAndPunctuationDoNotMatter) {
  auto e = load();
  EXPECT_EQ(e->embed("Doctor, NURSE; clinic!"), e->embed("doctor nurse clinic"));
  EXPECT_EQ(e->embed("\xE2\x80\x9C"
                     "doctor\xE2\x80\x94nurse\xE2\x80\x9D"),
            e->embed("doctor nurse"));
}

TEST_F(GloveEmbedderTest, UnknownWordsAreSkipped) {
  auto e = load();
  EXPECT_EQ(e->embed("zebra xyzzy plugh"), e->embed("zebra"));
}

TEST_F(GloveEmbedderTest, RareWordWeighsMoreThanFrequentWord) {
  auto e = load();
  // SIF: the weight falls with frequency; "the" is rank 0, "zebra" rank 16.
  ASSERT_TRUE(e->weight("the").has_value());
  ASSERT_TRUE(e->weight("zebra").has_value());
  EXPECT_LT(*e->weight("the"), *e->weight("zebra"));
  const std::vector<float> both = e->embed("the zebra");
  EXPECT_GT(cosine(both, e->embed("zebra")), cosine(both, e->embed("the")));
  EXPECT_GT(cosine(both, e->embed("zebra")), 0.99f);  // "the" barely counts
}

TEST_F(GloveEmbedderTest, SifWeightsFollowZipfRank) {
  auto e = load();
  double harmonic = 0;
  for (size_t k = 1; k <= kWords.size(); ++k) harmonic += 1.0 / k;
  for (size_t r = 0; r < kWords.size(); ++r) {
    const double p = 1.0 / ((r + 1) * harmonic);
    EXPECT_NEAR(*e->weight(kWords[r]), 1e-3 / (1e-3 + p), 1e-7) << kWords[r];
  }
  EXPECT_FALSE(e->weight("xyzzy").has_value());
}

TEST_F(GloveEmbedderTest, RelatedTextsAreCloserThanUnrelated) {
  auto e = load();
  const auto medical = e->embed("doctor nurse");
  EXPECT_GT(cosine(medical, e->embed("clinic")), cosine(medical, e->embed("stock market")));
}

// ---- tokenisation ----------------------------------------------------------------

TEST_F(GloveEmbedderTest, HyphenatedWordIsWholeWhenKnownElseSplit) {
  auto e = load();
  EXPECT_EQ(e->tokens("E-mail"), (std::vector<std::string>{"e-mail"}));
  EXPECT_EQ(e->tokens("state-of-the-art"), (std::vector<std::string>{"state", "of", "the", "art"}));
  EXPECT_EQ(e->tokens("stock--market -zebra- h1n1"),
            (std::vector<std::string>{"stock", "market", "zebra", "h1n1"}));
}

TEST_F(GloveEmbedderTest, ContractionsMapToGloveTokens) {
  auto e = load();
  EXPECT_EQ(e->tokens("Don't"), (std::vector<std::string>{"do", "not"}));
  EXPECT_EQ(e->tokens("can\xE2\x80\x99t"), (std::vector<std::string>{"ca", "not"}));  // U+2019
  EXPECT_EQ(e->tokens("we're"), (std::vector<std::string>{"we", "are"}));
  EXPECT_EQ(e->tokens("it's the doctor's"), (std::vector<std::string>{"it", "the", "doctor"}));
  EXPECT_EQ(e->tokens("O'Neill 'zebra'"), (std::vector<std::string>{"neill", "zebra"}));
}

TEST_F(GloveEmbedderTest, NonAsciiLettersStayInsideWords) {
  auto e = load();
  EXPECT_EQ(e->tokens("c\xC3\xA9 caf\xC3\xA9"), (std::vector<std::string>{"c\xC3\xA9"}));
  EXPECT_EQ(e->tokens("\xC2\xA0zebra\xC2\xBB"), (std::vector<std::string>{"zebra"}));  // nbsp, »
}

// ---- the cache -------------------------------------------------------------------

TEST_F(GloveEmbedderTest, CacheReturnsIdenticalVectors) {
  auto e = load();
  const std::vector<float> first = e->embed("doctor nurse clinic");
  const std::vector<float> second = e->embed("doctor nurse clinic");
  EXPECT_EQ(first, second);
  const auto stats = e->cache_stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.entries, 1u);
  // Without a cache the vector is the same.
  GloveEmbedder::Options no_cache;
  no_cache.cache_capacity = 0;
  EXPECT_EQ(load(no_cache)->embed("doctor nurse clinic"), first);
}

TEST_F(GloveEmbedderTest, CacheIsABoundedLru) {
  GloveEmbedder::Options options;
  options.cache_capacity = 2;
  auto e = load(options);
  e->embed("zebra");
  e->embed("doctor");
  e->embed("zebra");  // hit: "zebra" is now the most recent
  e->embed("nurse");  // evicts "doctor"
  EXPECT_EQ(e->cache_stats().entries, 2u);
  EXPECT_EQ(e->cache_stats().hits, 1u);
  e->embed("zebra");  // still cached
  EXPECT_EQ(e->cache_stats().hits, 2u);
  e->embed("doctor");  // was evicted
  EXPECT_EQ(e->cache_stats().hits, 2u);
  EXPECT_EQ(e->cache_stats().misses, 4u);
}

TEST_F(GloveEmbedderTest, LongTextsBypassTheCache) {
  GloveEmbedder::Options options;
  options.max_cached_text_bytes = 10;
  auto e = load(options);
  e->embed("doctor nurse clinic");
  e->embed("doctor nurse clinic");
  EXPECT_EQ(e->cache_stats().entries, 0u);
}

TEST_F(GloveEmbedderTest, ConcurrentEmbedsAgreeWithSerialOnes) {
  GloveEmbedder::Options options;
  options.cache_capacity = 3;  // small: threads keep evicting each other
  auto e = load(options);
  const std::vector<std::string> texts = {"doctor", "nurse clinic", "stock market", "the zebra",
                                          "bond"};
  std::vector<std::vector<float>> expected;
  for (const auto& t : texts) expected.push_back(load()->embed(t));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const size_t k = (i + t) % texts.size();
        if (e->embed(texts[k]) != expected[k]) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_LE(e->cache_stats().entries, 3u);
}

// ---- cosine ----------------------------------------------------------------------

TEST(GloveCosine, BasicsHold) {
  const std::vector<float> a = {1, 2, 3};
  const std::vector<float> b = {-1, -2, -3};
  const std::vector<float> c = {3, 0, -1};
  const std::vector<float> zero = {0, 0, 0};
  EXPECT_NEAR(cosine(a, a), 1.0f, 1e-6);
  EXPECT_NEAR(cosine(a, b), -1.0f, 1e-6);
  EXPECT_NEAR(cosine(a, c), 0.0f, 1e-6);
  EXPECT_NEAR(cosine(a, {2, 4, 6}), 1.0f, 1e-6);  // scale does not matter
  EXPECT_FLOAT_EQ(cosine(a, c), cosine(c, a));    // symmetric
  EXPECT_EQ(cosine(a, zero), 0.0f);               // no signal
  EXPECT_EQ(cosine(zero, zero), 0.0f);
  EXPECT_EQ(cosine(a, {1, 2}), 0.0f);  // sizes differ
  EXPECT_EQ(cosine({}, {}), 0.0f);
}

// ---- the converter ---------------------------------------------------------------

// The wink-embeddings layout: header, words by frequency, then per word its
// vector followed by its l2 norm and its index.
const char* kWinkJson = R"({"precision":8,"l2NormIndex":2,"wordIndex":3,"size":4,"dimensions":2,
  "words":["the","doctor","nurse","zebra"],
  "vectors":{"the":[1,0,1,0],"doctor":[0.5,-0.25,0.56,1],"nurse":[0,2,2,2],"zebra":[3,4,5,3]},
  "unkVector":[0,0,0,-1]})";

TEST(GloveConvert, KeepsTheMostFrequentWordsAndTheirVectors) {
  TempDir dir;
  const std::string out = dir.file("conv.bin");
  std::istringstream in(kWinkJson);
  const GloveConversion r = convert_glove_json(in, "toy.json", out, 3);
  EXPECT_EQ(r.dimension, 2u);
  EXPECT_EQ(r.source_words, 4u);
  EXPECT_EQ(r.written_words, 3u);
  EXPECT_EQ(r.missing_vectors, 0u);
  EXPECT_EQ(r.output_bytes, 16u + (2 + 3) + (2 + 6) + (2 + 5) + 3 * 2 * 4);
  auto e = GloveEmbedder::load(out);
  EXPECT_EQ(e->vocabulary_size(), 3u);
  EXPECT_FALSE(e->weight("zebra").has_value());
  EXPECT_LT(*e->weight("the"), *e->weight("nurse"));  // rank order kept
  const std::vector<float> doctor = e->embed("doctor");
  EXPECT_NEAR(doctor[0], 0.5 / std::sqrt(0.3125), 1e-6);
  EXPECT_NEAR(doctor[1], -0.25 / std::sqrt(0.3125), 1e-6);
  const std::vector<float> nurse = e->embed("nurse");
  EXPECT_EQ(nurse[0], 0.0f);
  EXPECT_NEAR(nurse[1], 1.0f, 1e-6);
}

TEST(GloveConvert, WordWithoutVectorIsSkipped) {
  TempDir dir;
  const std::string out = dir.file("conv.bin");
  std::istringstream in(
      R"({"dimensions":1,"wordIndex":1,"words":["a","b","c"],"vectors":{"a":[1,0],"c":[3,2]}})");
  const GloveConversion r = convert_glove_json(in, "gap.json", out, 10);
  EXPECT_EQ(r.written_words, 2u);
  EXPECT_EQ(r.missing_vectors, 1u);
  EXPECT_EQ(GloveEmbedder::load(out)->tokens("a b c"), (std::vector<std::string>{"a", "c"}));
}

TEST(GloveConvert, BadInputGivesClearErrorAndNoFile) {
  TempDir dir;
  const std::string out = dir.file("bad.bin");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not valid JSON"},
      {"[1,2]", "top level is not an object"},
      {R"({"dimensions":2,"words":["a"],"vectors":{"a":[1,0,1,0]})", "not valid JSON"},
      {R"({"dimensions":2,"words":["a"]})", "no \"vectors\" object"},
      {R"({"dimensions":2,"vectors":{},"words":["a"]})", "\"vectors\" comes before \"words\""},
      {R"({"words":["a"],"vectors":{"a":[1,0]}})", "before \"dimensions\""},
      {R"({"dimensions":0,"words":["a"],"vectors":{}})", "\"dimensions\" must be an integer"},
      {R"({"dimensions":2.5,"words":["a"],"vectors":{}})", "\"dimensions\" must be an integer"},
      {R"({"dimensions":2,"words":["a",3],"vectors":{}})", "\"words\" holds a number"},
      {R"({"dimensions":2,"words":["a","a"],"vectors":{}})", "appears twice"},
      {R"({"dimensions":2,"words":["a"],"vectors":{"a":[1]}})", "fewer than the 2 dimensions"},
      {R"({"dimensions":2,"words":["a"],"vectors":{"a":[1,"x"]}})", "holds a string"},
      {R"({"dimensions":2,"words":["a"],"vectors":{"a":{"x":1}}})", "is not an array"},
      {R"({"dimensions":2,"words":["a"],"vectors":{"a":[1,1e300]}})", "out of range"},
      {R"({"dimensions":1,"wordIndex":2,"words":["a"],"vectors":{"a":[1,1,7]}})",
       "says it is word #7"},
      {R"({"dimensions":1,"words":["a"],"vectors":{"b":[1]}})", "none of the kept words"},
  };
  for (const auto& [json, reason] : cases) {
    SCOPED_TRACE(json);
    std::istringstream in(json);
    try {
      convert_glove_json(in, "in.json", out, 10);
      ADD_FAILURE() << "converted; expected an error about: " << reason;
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind("in.json: ", 0), 0u) << what;
      EXPECT_NE(what.find(reason), std::string::npos) << what;
    }
    EXPECT_FALSE(fs::exists(out));
  }
}

// ---- real data -------------------------------------------------------------------

// The file scripts/fetch-glove.sh makes; the test skips without it.
std::string real_glove_path() {
  const char* cache = std::getenv("CALM_CACHE");
  const char* home = std::getenv("HOME");
  const fs::path root =
      cache && *cache ? fs::path(cache) : fs::path(home ? home : "") / ".cache" / "calm";
  return (root / "embeddings" / "glove-100d-100000w.bin").string();
}

TEST(GloveRealData, MedicalQueryIsCloserToMedicineThanToFinance) {
  const std::string path = real_glove_path();
  if (!fs::exists(path)) {
    GTEST_SKIP() << path << " not found: run scripts/fetch-glove.sh to test on real GloVe data";
  }
  auto e = GloveEmbedder::load(path);
  EXPECT_EQ(e->name(), "glove-100d (100000 words)");
  const auto query = e->embed("doctor patient hospital");
  const float medical = cosine(query, e->embed("medicine nurse clinic"));
  const float finance = cosine(query, e->embed("stock market bond"));
  std::printf("cos(medical query, medicine) = %.3f, cos(medical query, finance) = %.3f\n", medical,
              finance);
  EXPECT_GT(medical, finance + 0.1f);
  const auto money = e->embed("What are the interest rates on government bonds?");
  EXPECT_GT(cosine(money, e->embed("stock market bond")),
            cosine(money, e->embed("medicine nurse clinic")));
  EXPECT_TRUE(all_zero(e->embed("xyzzyqq plughzz")));
}

}  // namespace
}  // namespace calm
