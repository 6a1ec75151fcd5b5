#include "router/embedding_cache.h"

namespace calm {

std::optional<std::vector<float>> EmbeddingCache::get(std::string_view text) {
  if (!cacheable(text)) return std::nullopt;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(text);
  if (it == index_.end()) {
    ++misses_;
    return std::nullopt;
  }
  list_.splice(list_.begin(), list_, it->second);  // most recently used
  ++hits_;
  return it->second->second;
}

void EmbeddingCache::put(std::string_view text, const std::vector<float>& vector) {
  if (!cacheable(text)) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (index_.find(text) != index_.end()) return;  // another thread may have added it
  list_.emplace_front(std::string(text), vector);
  index_.emplace(list_.front().first, list_.begin());
  if (list_.size() > capacity_) {
    index_.erase(list_.back().first);
    list_.pop_back();
  }
}

EmbeddingCache::Stats EmbeddingCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {hits_, misses_, list_.size()};
}

}  // namespace calm
