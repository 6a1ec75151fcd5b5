// A thread-safe LRU cache of text -> embedding vector, shared by the
// embedders (GloveEmbedder, LlamaEmbedder) so that each does not carry its own
// copy of the same list-plus-index bookkeeping.
//
// Only texts of at most max_text_bytes are cached (long texts are rarely
// repeated and would make the cache's memory unbounded); a capacity of 0
// disables the cache. get() and put() on a text the cache does not take do
// nothing and count neither a hit nor a miss. The caller computes a missed
// vector outside the cache's lock and put()s it afterwards; when two threads
// miss the same text, the first put() wins and the second is a no-op.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace calm {

class EmbeddingCache {
 public:
  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    size_t entries = 0;
  };

  EmbeddingCache(size_t capacity, size_t max_text_bytes)
      : capacity_(capacity), max_text_bytes_(max_text_bytes) {}
  EmbeddingCache(const EmbeddingCache&) = delete;
  EmbeddingCache& operator=(const EmbeddingCache&) = delete;

  // Whether the cache takes this text at all (capacity > 0, text short enough).
  bool cacheable(std::string_view text) const {
    return capacity_ > 0 && text.size() <= max_text_bytes_;
  }

  // The cached vector, made the most recently used; counts a hit or a miss.
  // std::nullopt (and no count) for a text the cache does not take.
  std::optional<std::vector<float>> get(std::string_view text);
  // Adds the vector as the most recently used entry, evicting the least
  // recently used one beyond capacity. Keeps an entry already there.
  void put(std::string_view text, const std::vector<float>& vector);

  Stats stats() const;

 private:
  using List = std::list<std::pair<std::string, std::vector<float>>>;

  const size_t capacity_;
  const size_t max_text_bytes_;

  mutable std::mutex mutex_;
  List list_;                                                   // most recently used first
  std::unordered_map<std::string_view, List::iterator> index_;  // keys view list_
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace calm
