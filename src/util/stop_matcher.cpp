#include "util/stop_matcher.h"

#include <algorithm>

namespace calm {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

StopMatcher::Step StopMatcher::push(std::string_view text) {
  Step step;
  if (stopped_) return step;
  held_.append(text);

  size_t first = std::string::npos;
  for (const auto& stop : stops_) first = std::min(first, held_.find(stop));
  if (first != std::string::npos) {
    step.release = held_.substr(0, first);
    step.stopped = stopped_ = true;
    held_.clear();
    return step;
  }
  const size_t keep = possible_prefix_length();
  step.release = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return step;
}

std::string StopMatcher::flush() {
  std::string out;
  if (!stopped_) out.swap(held_);
  held_.clear();
  return out;
}

size_t StopMatcher::possible_prefix_length() const {
  size_t longest = 0;
  for (const auto& stop : stops_) {
    const size_t max_len = std::min(stop.size() - 1, held_.size());
    for (size_t len = max_len; len > longest; --len) {
      if (std::string_view(held_).substr(held_.size() - len) ==
          std::string_view(stop).substr(0, len)) {
        longest = len;
        break;
      }
    }
  }
  // Never release half a character: widen to the start of the character.
  while (longest < held_.size() &&
         (static_cast<unsigned char>(held_[held_.size() - longest]) & 0xC0) == 0x80) {
    ++longest;
  }
  return longest;
}

}  // namespace calm
