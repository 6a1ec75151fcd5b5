#include "config/policy_names.h"

namespace calm {

const std::vector<std::string>& eviction_policy_names() {
  static const std::vector<std::string> names = {"lru", "lfu", "gdsf"};
  return names;
}

const std::vector<std::string>& queue_policy_names() {
  static const std::vector<std::string> names{"fifo", "stcf", "swap-aware"};
  return names;
}

}  // namespace calm
