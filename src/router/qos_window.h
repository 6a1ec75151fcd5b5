// Rolling windows of what each model's requests cost: the dynamic terms of
// the paper's routing score.
//
// For every model the last k observations (default 100) of four metrics are
// kept; the router reads their means, normalised across the fleet to [0, 1]
// by dividing by the largest mean of that metric (so the slowest model has
// latency 1). A model with no observation yet gets the cold-start values of
// the paper: latency, energy and memory 0, confidence 1, so every model is
// tried.
#pragma once

#include <array>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace calm {

enum class Metric { kLatency = 0, kEnergy = 1, kMemory = 2, kConfidence = 3 };
constexpr size_t kMetricCount = 4;
const char* metric_name(Metric metric);

struct Observation {
  double latency_ms = 0;
  double energy_j = 0;
  double memory_bytes = 0;
  double confidence = 0;    // [0, 1]
  std::string response_id;  // for feedback on this answer; may be empty

  double get(Metric m) const;
};

// The normalised dynamic terms of one model, each in [0, 1].
struct DynamicTerms {
  std::array<double, kMetricCount> value{};  // indexed by Metric
  size_t observations = 0;

  double operator[](Metric m) const { return value[static_cast<size_t>(m)]; }
};

// Thread-safe.
class QosWindows {
 public:
  explicit QosWindows(size_t window = 100) : window_(window) {}

  void record(const std::string& model, const Observation& observation);
  // A user's judgement of one answer replaces that answer's confidence, if it
  // is still in its model's window. False when it is not.
  bool record_feedback(const std::string& model, const std::string& response_id, double confidence);
  // Keeps only a model's newest `n` observations: its behaviour changed (see
  // mapek/analyzer.h), and the older ones describe the regime that ended.
  // (Not all: a model with none looks like the fastest, as at cold start.)
  void keep_newest(const std::string& model, size_t n);
  // Normalised terms for each of models, in the same order.
  std::vector<DynamicTerms> terms(const std::vector<std::string>& models) const;
  // Spearman rank correlation between two metrics over all observations of
  // all models in the windows; 0 when fewer than 3 observations.
  double spearman(Metric a, Metric b) const;
  size_t window() const { return window_; }

 private:
  size_t window_;
  mutable std::mutex mutex_;
  std::map<std::string, std::deque<Observation>> windows_;  // guarded by mutex_
};

// Spearman's rho of two equal-length samples (average ranks for ties).
double spearman_rho(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace calm
