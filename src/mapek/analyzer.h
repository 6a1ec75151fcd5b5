// Analyze: what the recent requests say against the goals (the A of MAPE-K).
//
// Keeps, per model and over the whole fleet, a rolling window of the last
// `window` finished requests (latency, energy, confidence), and a
// Page-Hinkley detector per model on its latency. analyze() summarises them:
// p95 latency, mean energy and confidence, which goals are met, and which
// models' latency shifted since the last call.
//
// Thread-safe: add() runs on request threads (cheap, O(1) amortised; the
// p95 sort happens in analyze(), on the loop's thread).
#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/fleet_config.h"
#include "mapek/page_hinkley.h"
#include "mapek/request_metrics.h"

namespace calm {

struct WindowSummary {
  size_t count = 0;
  double latency_mean_ms = 0;
  double latency_p95_ms = 0;  // nearest rank (util/percentile.h)
  double energy_mean_j = 0;
  double confidence_mean = 1;
};

struct GoalCheck {
  std::string goal;  // "latency_p95_ms", "energy_per_request_j", "confidence_min"
  double target = 0;
  double value = 0;
  bool met = true;
  bool comfortably = true;  // met with the relax margin to spare
};

struct LatencyShift {
  std::string model;
  bool up = true;
  double mean_before_ms = 0;  // the detector's mean when it fired
};

struct Analysis {
  WindowSummary overall;
  std::map<std::string, WindowSummary> per_model;
  std::vector<GoalCheck> goals;
  std::vector<LatencyShift> shifts;  // since the previous analyze()
  bool enough_data = false;          // the overall window is full enough to judge
};

class Analyzer {
 public:
  explicit Analyzer(Goals goals) : goals_(std::move(goals)) {}

  void add(const RequestMetrics& m);
  Analysis analyze();
  const Goals& goals() const { return goals_; }
  // Starts the overall window over (after a plan changed the routing, so the
  // next judgement reads only requests routed the new way).
  void restart_overall();

 private:
  struct Sample {
    double latency_ms, energy_j, confidence;
  };
  static WindowSummary summarise(const std::deque<Sample>& window);

  const Goals goals_;
  std::mutex mutex_;
  std::deque<Sample> overall_;                           // guarded by mutex_
  std::map<std::string, std::deque<Sample>> per_model_;  // guarded by mutex_
  std::map<std::string, PageHinkley> detectors_;         // guarded by mutex_
  std::vector<LatencyShift> shifts_;                     // guarded by mutex_
};

}  // namespace calm
