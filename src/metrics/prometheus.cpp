#include "metrics/prometheus.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <stdexcept>

namespace calm {

namespace {

using metrics_detail::Family;
using metrics_detail::Kind;

bool valid_name(const std::string& s, bool colon_ok) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (colon_ok && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void check_names(const std::string& name, const std::vector<std::string>& label_names) {
  if (!valid_name(name, true)) throw std::invalid_argument("invalid metric name '" + name + "'");
  std::set<std::string> seen;
  for (const auto& l : label_names) {
    if (!valid_name(l, false) || l.starts_with("__")) {
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

// Label values: backslash, double quote and newline are escaped; HELP text:
// backslash and newline.
void append_escaped(std::string& out, const std::string& s, bool quote) {
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// As Prometheus parses it: +Inf, -Inf, NaN; integers (exact in a double)
// without exponent; anything else the shortest text that reads back the same.
std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::trunc(v) && std::fabs(v) <= 9007199254740992.0) {  // 2^53
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[32];
  const auto result = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, result.ptr);
}

// The gauge behind MetricsRegistry::gauge_callback.
class CallbackGauge : public Family {
 public:
  CallbackGauge(std::string name, std::string help, std::vector<std::string> label_names,
                MetricsRegistry::GaugeCallback callback)
      : Family(std::move(name), std::move(help), Kind::kCallbackGauge, std::move(label_names)),
        callback_(std::move(callback)) {}

 private:
  void render_samples(std::string& out) const override {
    auto rows = callback_();
    for (const auto& row : rows) {
      if (row.first.size() != label_names().size()) {
        throw std::logic_error("callback for " + name() + " gave " +
                               std::to_string(row.first.size()) + " label values for " +
                               std::to_string(label_names().size()) + " labels");
      }
    }
    std::sort(rows.begin(), rows.end());
    for (size_t i = 0; i < rows.size(); ++i) {
      if (i > 0 && rows[i].first == rows[i - 1].first) {
        throw std::logic_error("callback for " + name() + " gave one label set twice");
      }
      append_sample(out, "", rows[i].first, rows[i].second);
    }
  }

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

Family::Family(std::string name, std::string help, Kind kind, std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      kind_(kind),
      label_names_(std::move(label_names)) {}

void Family::render(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  append_escaped(out, help_, false);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += type_name(kind_);
  out += '\n';
  render_samples(out);
}

void Family::check_arity(const std::vector<std::string>& values) const {
  if (values.size() != label_names_.size()) {
    throw std::invalid_argument(name_ + " has " + std::to_string(label_names_.size()) +
                                " labels, got " + std::to_string(values.size()) + " values");
  }
}

void Family::append_sample(std::string& out, const std::string& suffix,
                           const std::vector<std::string>& values, double value,
                           const std::pair<std::string, std::string>* extra) const {
  out += name_;
  out += suffix;
  if (!values.empty() || extra != nullptr) {
    out += '{';
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out += ',';
      out += label_names_[i];
      out += "=\"";
      append_escaped(out, values[i], true);
      out += '"';
    }
    if (extra != nullptr) {
      if (!values.empty()) out += ',';
      out += extra->first;
      out += "=\"";
      append_escaped(out, extra->second, true);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += format_number(value);
  out += '\n';
}

}  // namespace metrics_detail

// --- Counter, Gauge, Histogram -----------------------------------------------

void Counter::Child::inc(double v) {
  if (!(v >= 0)) throw std::invalid_argument("a counter cannot go down");
  value_.fetch_add(v, std::memory_order_relaxed);
}

Counter::Counter(std::string name, std::string help, std::vector<std::string> label_names)
    : Family(std::move(name), std::move(help), Kind::kCounter, std::move(label_names)) {
  if (this->label_names().empty()) children_.get({});
}

Counter::Child& Counter::labels(const std::vector<std::string>& values) {
  check_arity(values);
  return children_.get(values);
}

void Counter::render_samples(std::string& out) const {
  children_.for_each([&](const std::vector<std::string>& values, const Child& child) {
    append_sample(out, "", values, child.value());
  });
}

Gauge::Gauge(std::string name, std::string help, std::vector<std::string> label_names)
    : Family(std::move(name), std::move(help), Kind::kGauge, std::move(label_names)) {
  if (this->label_names().empty()) children_.get({});
}

Gauge::Child& Gauge::labels(const std::vector<std::string>& values) {
  check_arity(values);
  return children_.get(values);
}

void Gauge::render_samples(std::string& out) const {
  children_.for_each([&](const std::vector<std::string>& values, const Child& child) {
    append_sample(out, "", values, child.value());
  });
}

Histogram::Child::Child(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Child::observe(double v) {
  const size_t i = std::isnan(v)
                       ? bounds_.size()
                       : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                             bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

uint64_t Histogram::Child::count() const {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) n += buckets_[i].load(std::memory_order_relaxed);
  return n;
}

Histogram::Histogram(std::string name, std::string help, std::vector<std::string> label_names,
                     std::vector<double> bounds)
    : Family(std::move(name), std::move(help), Kind::kHistogram, std::move(label_names)),
      bounds_(std::move(bounds)) {
  if (this->label_names().empty()) children_.get({}, bounds_);
}

Histogram::Child& Histogram::labels(const std::vector<std::string>& values) {
  check_arity(values);
  return children_.get(values, bounds_);
}

void Histogram::render_samples(std::string& out) const {
  children_.for_each([&](const std::vector<std::string>& values, const Child& child) {
    uint64_t cumulative = 0;
    std::pair<std::string, std::string> le{"le", ""};
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += child.buckets_[i].load(std::memory_order_relaxed);
      le.second = i < bounds_.size() ? format_number(bounds_[i]) : "+Inf";
      append_sample(out, "_bucket", values, static_cast<double>(cumulative), &le);
    }
    append_sample(out, "_sum", values, child.sum());
    append_sample(out, "_count", values, static_cast<double>(cumulative));
  });
}

// --- MetricsRegistry -----------------------------------------------------------

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

Family* MetricsRegistry::find_locked(const std::string& name, Kind kind,
                                     const std::vector<std::string>& label_names,
                                     const std::vector<double>* bounds) const {
  const auto it = series_names_.find(name);
  if (it == series_names_.end()) return nullptr;
  Family* f = it->second;
  const bool same = f->name() == name && f->kind() == kind && kind != Kind::kCallbackGauge &&
                    f->label_names() == label_names &&
                    (bounds == nullptr || static_cast<Histogram*>(f)->bounds() == *bounds);
  if (!same) {
    throw std::logic_error("metric " + name + " is already registered as " + type_name(f->kind()) +
                           " " + f->name() + " with other labels or buckets, or by a callback");
  }
  return f;
}

void MetricsRegistry::add_locked(std::unique_ptr<Family> family) {
  const auto names = series_of(family->name(), family->kind());
  for (const auto& n : names) {
    const auto it = series_names_.find(n);
    if (it != series_names_.end()) {
      throw std::logic_error("metric " + family->name() + " would write " + n + ", which metric " +
                             it->second->name() + " already writes");
    }
  }
  for (const auto& n : names) series_names_[n] = family.get();
  families_.push_back(std::move(family));
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const std::vector<std::string>& label_names) {
  check_names(name, label_names);
  std::lock_guard lock(mutex_);
  if (Family* f = find_locked(name, Kind::kCounter, label_names, nullptr)) {
    return *static_cast<Counter*>(f);
  }
  auto* c = new Counter(name, help, label_names);
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
  auto* g = new Gauge(name, help, label_names);
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
  auto* h = new Histogram(name, help, label_names, std::move(bounds));
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
  std::string out;
  for (const Family* f : families) f->render(out);
  return out;
}

}  // namespace calm
