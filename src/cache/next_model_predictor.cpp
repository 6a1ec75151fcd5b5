#include "cache/next_model_predictor.h"

namespace calm {

void NextModelPredictor::observe(const std::string& model) {
  if (last_) {
    transitions_.emplace_back(*last_, model);
    counts_[*last_][model]++;
    if (transitions_.size() > window_) {
      const auto& [from, to] = transitions_.front();
      if (--counts_[from][to] == 0) counts_[from].erase(to);
      transitions_.pop_front();
    }
  }
  last_ = model;
}

std::optional<std::string> NextModelPredictor::predict_after(const std::string& model) const {
  const auto it = counts_.find(model);
  if (it == counts_.end()) return std::nullopt;
  int total = 0, best_count = 0;
  const std::string* best = nullptr;
  for (const auto& [next, count] : it->second) {
    total += count;
    if (count > best_count) {
      best_count = count;
      best = &next;
    }
  }
  if (!best || best_count < min_count_ || 2 * best_count < total) return std::nullopt;
  return *best;
}

}  // namespace calm
