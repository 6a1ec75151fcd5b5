#include "mapek/analyzer.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "util/percentile.h"

namespace calm {

void Analyzer::add(const RequestMetrics& m) {
  if (m.cancelled) return;
  const Sample s{m.latency_ms, m.energy_j, m.confidence};
  std::lock_guard lock(mutex_);
  overall_.push_back(s);
  if (overall_.size() > goals_.window) overall_.pop_front();
  auto& window = per_model_[m.model];
  window.push_back(s);
  if (window.size() > goals_.window) window.pop_front();
  PageHinkley& detector = detectors_[m.model];
  const double before = detector.mean();
  const PageHinkley::Shift shift = detector.add(m.latency_ms);
  if (shift != PageHinkley::Shift::kNone) {
    shifts_.push_back({m.model, shift == PageHinkley::Shift::kUp, before});
  }
}

void Analyzer::restart_overall() {
  std::lock_guard lock(mutex_);
  overall_.clear();
}

WindowSummary Analyzer::summarise(const std::deque<Sample>& window) {
  WindowSummary s;
  s.count = window.size();
  if (window.empty()) return s;
  std::vector<double> latencies;
  double energy = 0, confidence = 0;
  for (const auto& x : window) {
    latencies.push_back(x.latency_ms);
    s.latency_mean_ms += x.latency_ms;
    energy += x.energy_j;
    confidence += x.confidence;
  }
  const double n = static_cast<double>(window.size());
  s.latency_mean_ms /= n;
  s.energy_mean_j = energy / n;
  s.confidence_mean = confidence / n;
  s.latency_p95_ms = nearest_rank_percentile(std::move(latencies), 95);
  return s;
}

Analysis Analyzer::analyze() {
  Analysis a;
  {
    std::lock_guard lock(mutex_);
    a.overall = summarise(overall_);
    for (const auto& [model, window] : per_model_) a.per_model[model] = summarise(window);
    a.shifts.swap(shifts_);
  }
  // Judge only on a window at least a fifth full (and 5 requests), so one
  // slow request at start does not trigger a plan.
  a.enough_data = a.overall.count >= std::max<size_t>(5, goals_.window / 5);
  const double margin = goals_.relax_margin;
  if (goals_.latency_p95_ms) {
    const double t = *goals_.latency_p95_ms, v = a.overall.latency_p95_ms;
    a.goals.push_back({"latency_p95_ms", t, v, v <= t, v <= t * margin});
  }
  if (goals_.energy_per_request_j) {
    const double t = *goals_.energy_per_request_j, v = a.overall.energy_mean_j;
    a.goals.push_back({"energy_per_request_j", t, v, v <= t, v <= t * margin});
  }
  if (goals_.confidence_min) {
    const double t = *goals_.confidence_min, v = a.overall.confidence_mean;
    a.goals.push_back({"confidence_min", t, v, v >= t, v >= t / margin});
  }
  return a;
}

}  // namespace calm
