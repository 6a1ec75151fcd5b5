// A GGUF sentence-embedding model as an Embedder, run in process by llama.cpp.
//
// Any model llama.cpp can load and pool works: BERT-style sentence encoders
// (all-MiniLM, bge, nomic-embed, ...), encoder-only models such as T5 encoders,
// and plain decoder models of any architecture (llama, qwen2, ...), whose
// token states are mean-pooled.
//
// Pooling: the context asks for LLAMA_POOLING_TYPE_UNSPECIFIED, so a model
// that declares its own pooling in its GGUF ("<arch>.pooling_type": mean for
// MiniLM, CLS for bge, last token for some LLM-based embedders) keeps it. When
// the model declares none (NONE: per-token states, the case of every
// generative model) or declares RANK (a reranker's score head, not a vector),
// the context is made again with MEAN pooling. pooling() says which one won.
//
// embed(text): the text is tokenized with the model's own tokenizer and
// special tokens (BOS, CLS/SEP, ... as the vocabulary asks; text that looks
// like a special token is not parsed as one), cut to the context size (an end
// token the tokenizer appended is kept as the last token), run through the
// model in one batch from an empty memory, pooled, and L2-normalised. Empty or
// whitespace-only text embeds to all zeros without running the model. The
// context size is Options::context, lowered to the model's training context
// when that is smaller (absolute position embeddings end there).
//
// Thread safety: embed() may be called from any number of threads. There is
// one llama.cpp context and a context is not thread-safe, so concurrent
// embed() calls that miss the cache serialise on a mutex; cache hits do not
// wait for a running computation. Repeated texts (up to 4 KiB each) are
// answered from an LRU cache (Options::cache_capacity entries; 0 disables it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "router/embedder.h"
#include "router/embedding_cache.h"

struct llama_model;
struct llama_context;

namespace calm {

class LlamaEmbedder : public Embedder {
 public:
  struct Options {
    int threads = 2;               // CPU threads for the forward pass; <= 0: all cores
    int context = 512;             // tokens per text; longer texts are cut (> 0)
    size_t cache_capacity = 4096;  // LRU entries; 0 disables the cache
  };

  // Loads the GGUF file and makes an embedding context. Throws
  // std::runtime_error "PATH: reason" when the file is missing, is not a GGUF
  // llama.cpp can load (corrupt, truncated, unsupported architecture; the
  // reason llama.cpp logged is included), has no tokenizer, or when no context
  // can be made; std::invalid_argument when options.context <= 0.
  static std::unique_ptr<LlamaEmbedder> load(const std::string& gguf_path, const Options& options);
  static std::unique_ptr<LlamaEmbedder> load(const std::string& gguf_path);

  ~LlamaEmbedder() override;
  LlamaEmbedder(const LlamaEmbedder&) = delete;
  LlamaEmbedder& operator=(const LlamaEmbedder&) = delete;

  std::string name() const override;  // "gguf:all-MiniLM-L6-v2 (384-d)"
  size_t dimension() const override { return dimension_; }
  // Throws std::runtime_error "PATH: reason" only when llama.cpp fails to run
  // the model (out of memory, say); never for any text.
  std::vector<float> embed(std::string_view text) override;

  // The pooling the context uses: "mean", "cls" or "last".
  std::string pooling() const;
  // Tokens per text after clamping to the model's training context.
  int context_size() const { return context_; }
  const std::string& path() const { return path_; }

  using CacheStats = EmbeddingCache::Stats;  // hits, misses, entries
  CacheStats cache_stats() const { return cache_.stats(); }

 private:
  // Longer texts are embedded but not cached (bounds the cache's memory).
  static constexpr size_t kMaxCachedTextBytes = 4096;

  explicit LlamaEmbedder(const Options& options)
      : options_(options), cache_(options.cache_capacity, kMaxCachedTextBytes) {}
  std::vector<float> compute(std::string_view text);  // takes model_mutex_

  std::string path_;
  std::string model_name_;  // general.name, else the file name without extension
  size_t dimension_ = 0;
  int context_ = 0;
  int pooling_type_ = 0;  // enum llama_pooling_type
  bool use_encode_ = false;
  Options options_;

  std::mutex model_mutex_;  // guards ctx_ (and the decode through it)
  llama_model* model_ = nullptr;
  llama_context* ctx_ = nullptr;

  EmbeddingCache cache_;
};

}  // namespace calm
