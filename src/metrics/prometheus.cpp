#include "metrics/prometheus.h"

#include <prometheus/check_names.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

namespace calm {

namespace {

using metrics_detail::Family;
using metrics_detail::Kind;

void check_names(const std::string& name, const std::vector<std::string>& label_names) {
  if (!prometheus::CheckMetricName(name)) {
    throw std::invalid_argument("invalid metric name '" + name + "'");
  }
  std::set<std::string> seen;
  for (const auto& l : label_names) {
    if (!prometheus::CheckLabelName(l)) {  // also refuses the reserved "__" prefix
      throw std::invalid_argument("invalid label name '" + l + "' for metric " + name);
    }
    if (!seen.insert(l).second) {
      throw std::invalid_argument("label name '" + l + "' repeated for metric " + name);
    }
  }
}

const char* type_name(Kind kind) {
  switch (kind) {
    case Kind::kCounter:
      return "counter";
    case Kind::kGauge:
    case Kind::kCallbackGauge:
      return "gauge";
    case Kind::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// HELP text as the exposition format wants it: backslash and newline escaped.
// prometheus-cpp 1.0.1 escapes label values but writes HELP as given.
std::string escape_help(const std::string& help) {
  std::string out;
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// The gauge behind MetricsRegistry::gauge_callback: its rows, collected at
// render() time into a family for prometheus-cpp's serializer.
class CallbackGauge : public Family {
 public:
  CallbackGauge(std::string name, std::string help, std::vector<std::string> label_names,
                MetricsRegistry::GaugeCallback callback)
      : Family(std::move(name), Kind::kCallbackGauge, std::move(label_names)),
        help_(escape_help(help)),
        callback_(std::move(callback)) {}

 private:
  std::vector<prometheus::MetricFamily> collect_unordered() const override {
    auto rows = callback_();
    std::set<std::vector<std::string>> seen;
    prometheus::MetricFamily family{name(), help_, prometheus::MetricType::Gauge, {}};
    for (const auto& [values, value] : rows) {
      if (values.size() != label_names().size()) {
        throw std::logic_error("callback for " + name() + " gave " + std::to_string(values.size()) +
                               " label values for " + std::to_string(label_names().size()) +
                               " labels");
      }
      if (!seen.insert(values).second) {
        throw std::logic_error("callback for " + name() + " gave one label set twice");
      }
      prometheus::ClientMetric metric;
      for (size_t i = 0; i < values.size(); ++i)
        metric.label.push_back({label_names()[i], values[i]});
      metric.gauge.value = value;
      family.metric.push_back(std::move(metric));
    }
    return {std::move(family)};
  }

  const std::string help_;
  const MetricsRegistry::GaugeCallback callback_;
};

// The series names a family writes.
std::vector<std::string> series_of(const std::string& name, Kind kind) {
  if (kind != Kind::kHistogram) return {name};
  return {name, name + "_bucket", name + "_sum", name + "_count"};
}

}  // namespace

// --- Family ------------------------------------------------------------------

namespace metrics_detail {

Family::Family(std::string name, Kind kind, std::vector<std::string> label_names)
    : name_(std::move(name)), kind_(kind), label_names_(std::move(label_names)) {}

void Family::check_arity(const std::vector<std::string>& values) const {
  if (values.size() != label_names_.size()) {
    throw std::invalid_argument(name_ + " has " + std::to_string(label_names_.size()) +
                                " labels, got " + std::to_string(values.size()) + " values");
  }
}

prometheus::Labels Family::to_labels(const std::vector<std::string>& values) const {
  prometheus::Labels labels;
  for (size_t i = 0; i < values.size(); ++i) labels.emplace(label_names_[i], values[i]);
  return labels;
}

std::vector<prometheus::MetricFamily> Family::collect() const {
  auto families = collect_unordered();
  // prometheus-cpp writes labels as its std::map orders them, by name: put
  // them back in the family's order, then sort the children by their values.
  std::map<std::string, size_t> rank;
  for (size_t i = 0; i < label_names_.size(); ++i) rank[label_names_[i]] = i;
  const auto value_of = [](const prometheus::ClientMetric& m) {
    std::vector<std::string> values;
    for (const auto& l : m.label) values.push_back(l.value);
    return values;
  };
  for (auto& family : families) {
    for (auto& metric : family.metric) {
      std::stable_sort(metric.label.begin(), metric.label.end(),
                       [&](const auto& a, const auto& b) { return rank[a.name] < rank[b.name]; });
    }
    std::stable_sort(family.metric.begin(), family.metric.end(),
                     [&](const auto& a, const auto& b) { return value_of(a) < value_of(b); });
  }
  return families;
}

}  // namespace metrics_detail

// --- Counter, Gauge, Histogram -----------------------------------------------

void Counter::Child::inc(double v) {
  // prometheus-cpp would drop a negative v silently and take NaN.
  if (!(v >= 0)) throw std::invalid_argument("a counter cannot go down");
  counter_.Increment(v);
}

Counter::Counter(std::string name, std::vector<std::string> label_names,
                 prometheus::Family<prometheus::Counter>& family)
    : Family(std::move(name), Kind::kCounter, std::move(label_names)), family_(family) {
  if (this->label_names().empty()) labels({});
}

Counter::Child& Counter::labels(const std::vector<std::string>& values) {
  check_arity(values);
  return children_.get(values, [&] { return Child(family_.Add(to_labels(values))); });
}

std::vector<prometheus::MetricFamily> Counter::collect_unordered() const {
  return family_.Collect();
}

Gauge::Gauge(std::string name, std::vector<std::string> label_names,
             prometheus::Family<prometheus::Gauge>& family)
    : Family(std::move(name), Kind::kGauge, std::move(label_names)), family_(family) {
  if (this->label_names().empty()) labels({});
}

Gauge::Child& Gauge::labels(const std::vector<std::string>& values) {
  check_arity(values);
  return children_.get(values, [&] { return Child(family_.Add(to_labels(values))); });
}

std::vector<prometheus::MetricFamily> Gauge::collect_unordered() const {
  return family_.Collect();
}

void Histogram::Child::observe(double v) {
  if (std::isnan(v)) {
    // Into +Inf, the last of the bounds_ + 1 buckets, as Prometheus' clients do.
    std::vector<double> increments(bounds_ + 1, 0);
    increments.back() = 1;
    histogram_.ObserveMultiple(increments, v);
    return;
  }
  histogram_.Observe(v);
}

uint64_t Histogram::Child::count() const {
  return histogram_.Collect().histogram.sample_count;
}
double Histogram::Child::sum() const {
  return histogram_.Collect().histogram.sample_sum;
}

Histogram::Histogram(std::string name, std::vector<std::string> label_names,
                     std::vector<double> bounds, prometheus::Family<prometheus::Histogram>& family)
    : Family(std::move(name), Kind::kHistogram, std::move(label_names)),
      bounds_(std::move(bounds)),
      family_(family) {
  if (this->label_names().empty()) labels({});
}

Histogram::Child& Histogram::labels(const std::vector<std::string>& values) {
  check_arity(values);
  return children_.get(
      values, [&] { return Child(family_.Add(to_labels(values), bounds_), bounds_.size()); });
}

std::vector<prometheus::MetricFamily> Histogram::collect_unordered() const {
  return family_.Collect();
}

// --- MetricsRegistry -----------------------------------------------------------

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

Family* MetricsRegistry::find_locked(const std::string& name, Kind kind,
                                     const std::vector<std::string>& label_names,
                                     const std::vector<double>* bounds) const {
  const auto it = series_names_.find(name);
  if (it != series_names_.end()) {
    Family* f = it->second;
    const bool same = f->name() == name && f->kind() == kind && kind != Kind::kCallbackGauge &&
                      f->label_names() == label_names &&
                      (bounds == nullptr || static_cast<Histogram*>(f)->bounds() == *bounds);
    if (!same) {
      throw std::logic_error("metric " + name + " is already registered as " +
                             type_name(f->kind()) + " " + f->name() +
                             " with other labels or buckets, or by a callback");
    }
    return f;
  }
  // A free name: every series the new family would write must be free too
  // (checked before prometheus-cpp makes its family, so a refusal leaves none).
  for (const auto& n : series_of(name, kind)) {
    const auto taken = series_names_.find(n);
    if (taken != series_names_.end()) {
      throw std::logic_error("metric " + name + " would write " + n + ", which metric " +
                             taken->second->name() + " already writes");
    }
  }
  return nullptr;
}

void MetricsRegistry::add_locked(std::unique_ptr<Family> family) {
  for (const auto& n : series_of(family->name(), family->kind())) series_names_[n] = family.get();
  families_.push_back(std::move(family));
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const std::vector<std::string>& label_names) {
  check_names(name, label_names);
  std::lock_guard lock(mutex_);
  if (Family* f = find_locked(name, Kind::kCounter, label_names, nullptr)) {
    return *static_cast<Counter*>(f);
  }
  auto& family =
      prometheus::BuildCounter().Name(name).Help(escape_help(help)).Register(prometheus_);
  auto* c = new Counter(name, label_names, family);
  add_locked(std::unique_ptr<Family>(c));
  return *c;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                              const std::vector<std::string>& label_names) {
  check_names(name, label_names);
  std::lock_guard lock(mutex_);
  if (Family* f = find_locked(name, Kind::kGauge, label_names, nullptr)) {
    return *static_cast<Gauge*>(f);
  }
  auto& family = prometheus::BuildGauge().Name(name).Help(escape_help(help)).Register(prometheus_);
  auto* g = new Gauge(name, label_names, family);
  add_locked(std::unique_ptr<Family>(g));
  return *g;
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      const std::vector<std::string>& label_names,
                                      std::vector<double> bounds) {
  check_names(name, label_names);
  if (std::find(label_names.begin(), label_names.end(), "le") != label_names.end()) {
    throw std::invalid_argument("histogram " + name + " cannot have a label named le");
  }
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i - 1] < bounds[i]))) {
      throw std::invalid_argument("histogram " + name +
                                  " needs finite, strictly increasing bucket bounds");
    }
  }
  std::lock_guard lock(mutex_);
  if (Family* f = find_locked(name, Kind::kHistogram, label_names, &bounds)) {
    return *static_cast<Histogram*>(f);
  }
  auto& family =
      prometheus::BuildHistogram().Name(name).Help(escape_help(help)).Register(prometheus_);
  auto* h = new Histogram(name, label_names, std::move(bounds), family);
  add_locked(std::unique_ptr<Family>(h));
  return *h;
}

void MetricsRegistry::gauge_callback(const std::string& name, const std::string& help,
                                     const std::vector<std::string>& label_names,
                                     GaugeCallback callback) {
  check_names(name, label_names);
  if (!callback) throw std::invalid_argument("callback gauge " + name + " needs a callback");
  std::lock_guard lock(mutex_);
  find_locked(name, Kind::kCallbackGauge, label_names, nullptr);  // throws if taken
  add_locked(std::make_unique<CallbackGauge>(name, help, label_names, std::move(callback)));
}

std::string MetricsRegistry::render() const {
  std::vector<const Family*> families;
  {
    std::lock_guard lock(mutex_);
    families.reserve(families_.size());
    for (const auto& f : families_) families.push_back(f.get());
  }
  std::vector<prometheus::MetricFamily> all;
  for (const Family* f : families) {
    for (auto& family : f->collect()) all.push_back(std::move(family));
  }
  return prometheus::TextSerializer().Serialize(all);
}

}  // namespace calm
