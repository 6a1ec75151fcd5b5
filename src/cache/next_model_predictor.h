// NextModelPredictor: which model the recent trace says comes next.
//
// A first-order Markov chain over the sequence of requested models: counts of
// "b followed a" over the last `window` transitions. The prediction after a is
// the most frequent follower, if it followed a at least `min_count` times and
// in at least half of a's transitions, so a weak guess never triggers a load.
//
// Not thread-safe: the owner (ResidentSet) holds its lock.
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace calm {

class NextModelPredictor {
 public:
  explicit NextModelPredictor(size_t window = 200, int min_count = 3)
      : window_(window), min_count_(min_count) {}

  void observe(const std::string& model);
  std::optional<std::string> predict_after(const std::string& model) const;

 private:
  size_t window_;
  int min_count_;
  std::optional<std::string> last_;
  std::deque<std::pair<std::string, std::string>> transitions_;
  std::map<std::string, std::map<std::string, int>> counts_;
};

}  // namespace calm
