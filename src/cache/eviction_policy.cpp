#include "cache/eviction_policy.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

namespace calm {
namespace {

uint64_t add_saturating(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max()
                                                      : a + b;
}

// Where a model stands in a policy's eviction order: lower goes first.
struct Rank {
  double primary = 0;    // the policy's own measure (unused by LRU)
  uint64_t recency = 0;  // logical time of the last load or access; 0 = never
};

// The greedy selection every policy shares; a policy only supplies the order.
class RankedPolicy : public EvictionPolicy {
 public:
  std::optional<std::vector<std::string>> choose_victims(const std::vector<ResidentModel>& resident,
                                                         uint64_t need, uint64_t budget,
                                                         size_t max_resident) final {
    if (need > budget) return std::nullopt;  // would not fit even alone
    uint64_t used = 0;
    for (const auto& m : resident) used = add_saturating(used, m.bytes);

    const auto fits = [&](uint64_t freed, size_t evicted) {
      const bool bytes_ok = used - freed <= budget - need;
      const bool count_ok = max_resident == 0 || resident.size() - evicted + 1 <= max_resident;
      return bytes_ok && count_ok;
    };

    struct Candidate {
      Rank rank;
      const ResidentModel* model;
    };
    std::vector<Candidate> candidates;
    for (const auto& m : resident) {
      if (m.pinned || m.in_flight > 0) continue;
      candidates.push_back({rank(m), &m});
    }
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      if (a.rank.primary != b.rank.primary) return a.rank.primary < b.rank.primary;
      if (a.rank.recency != b.rank.recency) return a.rank.recency < b.rank.recency;
      return a.model->id < b.model->id;
    });

    std::vector<std::string> victims;
    uint64_t freed = 0;
    for (const auto& c : candidates) {
      if (fits(freed, victims.size())) return victims;
      victims.push_back(c.model->id);
      freed = add_saturating(freed, c.model->bytes);
    }
    if (fits(freed, victims.size())) return victims;
    return std::nullopt;
  }

 protected:
  // May refresh the policy's copy of the model's size and cost.
  virtual Rank rank(const ResidentModel& m) = 0;
  uint64_t tick() { return ++clock_; }

 private:
  uint64_t clock_ = 0;
};

class LruPolicy final : public RankedPolicy {
 public:
  std::string name() const override { return "lru"; }
  void on_load(const std::string& id, uint64_t, double) override { last_[id] = tick(); }
  void on_access(const std::string& id) override { last_[id] = tick(); }
  void on_evict(const std::string& id) override { last_.erase(id); }

 protected:
  Rank rank(const ResidentModel& m) override {
    const auto it = last_.find(m.id);
    return {0, it == last_.end() ? 0 : it->second};
  }

 private:
  std::unordered_map<std::string, uint64_t> last_;
};

// Counts survive eviction; see the header for why.
class LfuPolicy final : public RankedPolicy {
 public:
  std::string name() const override { return "lfu"; }
  void on_load(const std::string& id, uint64_t, double) override { seen_[id].last = tick(); }
  void on_access(const std::string& id) override {
    auto& s = seen_[id];
    ++s.count;
    s.last = tick();
  }
  void on_evict(const std::string&) override {}

 protected:
  Rank rank(const ResidentModel& m) override {
    const auto it = seen_.find(m.id);
    if (it == seen_.end()) return {};
    return {static_cast<double>(it->second.count), it->second.last};
  }

 private:
  struct Seen {
    uint64_t count = 0;
    uint64_t last = 0;
  };
  std::unordered_map<std::string, Seen> seen_;
};

class GdsfPolicy final : public RankedPolicy {
 public:
  std::string name() const override { return "gdsf"; }
  void on_load(const std::string& id, uint64_t bytes, double load_cost_ms) override {
    auto& e = entries_[id];
    e = Entry{};
    e.bytes = bytes;
    e.cost_ms = std::max(load_cost_ms, 0.0);
    e.base = inflation_;
    e.last = tick();
  }
  void on_access(const std::string& id) override {
    auto& e = entries_[id];
    ++e.frequency;
    e.base = inflation_;  // H is recomputed from the current L on every access
    e.last = tick();
  }
  void on_evict(const std::string& id) override {
    const auto it = entries_.find(id);
    if (it == entries_.end()) return;
    // L becomes the H of the evicted model. Evictions in policy order already
    // raise it monotonically; max() keeps aging from running backwards when
    // the cache unloads a model for another reason (say, an idle timeout).
    inflation_ = std::max(inflation_, priority(it->second));
    entries_.erase(it);  // the frequency resets
  }

 protected:
  Rank rank(const ResidentModel& m) override {
    const auto it = entries_.find(m.id);
    if (it == entries_.end()) return {};  // never accessed: H = 0 <= L, first in line
    auto& e = it->second;
    e.bytes = m.bytes;  // the cache's measured, corrected figures win
    e.cost_ms = std::max(m.load_cost_ms, 0.0);
    return {priority(e), e.last};
  }

 private:
  struct Entry {
    uint64_t bytes = 0;
    double cost_ms = 0;
    uint64_t frequency = 0;
    double base = 0;  // L at the last load or access
    uint64_t last = 0;
  };
  static double priority(const Entry& e) {
    return e.base + static_cast<double>(e.frequency) * e.cost_ms /
                        static_cast<double>(std::max<uint64_t>(e.bytes, 1));
  }

  std::unordered_map<std::string, Entry> entries_;
  double inflation_ = 0;  // L
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_eviction_policy(std::string_view name) {
  if (name == "lru") return std::make_unique<LruPolicy>();
  if (name == "lfu") return std::make_unique<LfuPolicy>();
  if (name == "gdsf") return std::make_unique<GdsfPolicy>();
  return nullptr;
}

}  // namespace calm
