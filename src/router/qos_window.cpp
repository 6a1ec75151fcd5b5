#include "router/qos_window.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace calm {

const char* metric_name(Metric metric) {
  switch (metric) {
    case Metric::kLatency:
      return "latency";
    case Metric::kEnergy:
      return "energy";
    case Metric::kMemory:
      return "memory";
    case Metric::kConfidence:
      return "confidence";
  }
  return "?";
}

double Observation::get(Metric m) const {
  switch (m) {
    case Metric::kLatency:
      return latency_ms;
    case Metric::kEnergy:
      return energy_j;
    case Metric::kMemory:
      return memory_bytes;
    case Metric::kConfidence:
      return confidence;
  }
  return 0;
}

void QosWindows::record(const std::string& model, const Observation& observation) {
  std::lock_guard lock(mutex_);
  auto& window = windows_[model];
  window.push_back(observation);
  while (window.size() > window_) window.pop_front();
}

bool QosWindows::record_feedback(const std::string& model, const std::string& response_id,
                                 double confidence) {
  std::lock_guard lock(mutex_);
  const auto it = windows_.find(model);
  if (it == windows_.end() || response_id.empty()) return false;
  for (auto& o : it->second) {
    if (o.response_id == response_id) {
      o.confidence = confidence;
      return true;
    }
  }
  return false;
}

void QosWindows::keep_newest(const std::string& model, size_t n) {
  std::lock_guard lock(mutex_);
  const auto it = windows_.find(model);
  if (it == windows_.end()) return;
  while (it->second.size() > n) it->second.pop_front();
}

std::vector<DynamicTerms> QosWindows::terms(const std::vector<std::string>& models) const {
  std::lock_guard lock(mutex_);
  std::vector<DynamicTerms> out(models.size());
  std::array<double, kMetricCount> max{};
  for (size_t i = 0; i < models.size(); ++i) {
    const auto it = windows_.find(models[i]);
    if (it == windows_.end() || it->second.empty()) continue;
    out[i].observations = it->second.size();
    for (size_t m = 0; m < kMetricCount; ++m) {
      double sum = 0;
      for (const auto& o : it->second) sum += o.get(static_cast<Metric>(m));
      out[i].value[m] = sum / static_cast<double>(it->second.size());
      max[m] = std::max(max[m], out[i].value[m]);
    }
  }
  for (auto& t : out) {
    for (size_t m = 0; m < kMetricCount; ++m) {
      if (static_cast<Metric>(m) == Metric::kConfidence) {
        // Already in [0, 1]; cold start is full confidence.
        if (t.observations == 0) t.value[m] = 1.0;
        continue;
      }
      t.value[m] = (t.observations == 0 || max[m] <= 0) ? 0.0 : t.value[m] / max[m];
    }
  }
  return out;
}

double QosWindows::spearman(Metric a, Metric b) const {
  std::vector<double> x, y;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [model, window] : windows_) {
      for (const auto& o : window) {
        x.push_back(o.get(a));
        y.push_back(o.get(b));
      }
    }
  }
  return spearman_rho(x, y);
}

namespace {

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return v[i] < v[j]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double average = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) r[order[k]] = average;
    i = j + 1;
  }
  return r;
}

}  // namespace

double spearman_rho(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 3) return 0.0;
  const auto rx = ranks(x), ry = ranks(y);
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(rx.begin(), rx.end(), 0.0) / n;
  const double my = std::accumulate(ry.begin(), ry.end(), 0.0) / n;
  double cov = 0, vx = 0, vy = 0;
  for (size_t i = 0; i < rx.size(); ++i) {
    cov += (rx[i] - mx) * (ry[i] - my);
    vx += (rx[i] - mx) * (rx[i] - mx);
    vy += (ry[i] - my) * (ry[i] - my);
  }
  if (vx <= 0 || vy <= 0) return 0.0;
  return cov / std::sqrt(vx * vy);
}

}  // namespace calm
