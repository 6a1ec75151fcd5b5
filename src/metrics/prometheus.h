// MetricsRegistry: counters, gauges and histograms with labels, kept by
// prometheus-cpp (Debian's prometheus-cpp-dev, its core library) and written
// out in the Prometheus text exposition format 0.0.4 (what GET /metrics serves).
//
//   MetricsRegistry registry;
//   auto& requests = registry.counter("calm_requests_total", "Requests.", {"model", "status"});
//   requests.labels({"demo-chat", "200"}).inc();
//   auto& latency = registry.histogram("calm_request_seconds", "Latency.", {"model"},
//                                      {0.01, 0.1, 1, 10});
//   latency.labels({"demo-chat"}).observe(0.25);
//   registry.gauge_callback("calm_queue_depth", "Waiting requests.", {},
//                           [&] { return MetricsRegistry::Samples{{{}, double(queue.size())}}; });
//   std::string body = registry.render();
//
// prometheus-cpp holds the values (its Counter, Gauge and Histogram, atomics
// and a mutex per histogram) and writes the text (prometheus::TextSerializer).
// This layer adds what /metrics needs and prometheus-cpp 1.0.1 leaves out:
//   - a family has fixed label names and takes positional values, written in
//     that order (prometheus-cpp keys children by a std::map, so it would
//     write labels alphabetically and accept any label set per child);
//   - callback gauges, whose rows are read at each render() (a custom
//     collection next to prometheus-cpp's families);
//   - checks: a negative or NaN counter increment throws (prometheus-cpp drops
//     a negative one silently); a name taken by another family, or by a
//     histogram's _bucket/_sum/_count series, throws; "le" is no histogram label;
//   - valid text: HELP is escaped (prometheus-cpp writes it raw, so a newline
//     in it would break the exposition), families come out in registration
//     order and children sorted by label values (prometheus-cpp: by kind,
//     then hash order), and a NaN observation counts in +Inf, as Prometheus'
//     own clients do (prometheus-cpp would count it in the first bucket).
//
// A family (one metric name) is registered once, with fixed label names;
// registering the same name again with the same kind, label names (and
// buckets) returns the same family, anything else throws std::logic_error.
// Names are checked at registration (std::invalid_argument). A family's
// children (one per set of label values) are made on first use and never
// destroyed, so a reference from labels() stays valid for the registry's
// life: callers on a hot path look it up once and keep it. Updating a child
// is lock-free for counters and gauges, one short mutex for a histogram;
// labels() takes the family's lock. A family without labels has its one
// child from the start, so its series shows 0 before the first update.
//
// Output: families in registration order, each with # HELP and # TYPE, its
// children sorted by label values (a histogram writes _count and _sum before
// its buckets, as prometheus-cpp does). Counter names should end in `_total`
// and use base units (`_seconds`, `_bytes`): `promtool check metrics` lints that.
//
// Lock order: MetricsRegistry::mutex_, then a family's children lock, then
// prometheus-cpp's own locks. render() holds none of calm's while it collects.
// Thread-safe throughout (per method below).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace calm {

class MetricsRegistry;

namespace metrics_detail {

enum class Kind { kCounter, kGauge, kCallbackGauge, kHistogram };

// What every family has: name, kind, label names, and collecting its samples.
class Family {
 public:
  virtual ~Family() = default;
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  const std::string& name() const { return name_; }
  Kind kind() const { return kind_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // This family as prometheus-cpp's serializer takes it: labels in
  // label_names() order, children sorted by label values; empty before a
  // labelled family has its first child. Thread-safe.
  std::vector<prometheus::MetricFamily> collect() const;

 protected:
  Family(std::string name, Kind kind, std::vector<std::string> label_names);
  // Throws std::invalid_argument unless there is one value per label name.
  void check_arity(const std::vector<std::string>& values) const;
  prometheus::Labels to_labels(const std::vector<std::string>& values) const;
  virtual std::vector<prometheus::MetricFamily> collect_unordered() const = 0;

 private:
  const std::string name_;
  const Kind kind_;
  const std::vector<std::string> label_names_;
};

// Label values -> child, made on first use, never destroyed (std::map nodes
// do not move, so references stay valid). Thread-safe.
template <class Child>
class Children {
 public:
  // The child for `values`, made by make() (under the lock) the first time.
  template <class Make>
  Child& get(const std::vector<std::string>& values, Make&& make) {
    std::lock_guard lock(mutex_);
    auto it = children_.find(values);
    if (it == children_.end()) it = children_.emplace(values, make()).first;
    return it->second;
  }

 private:
  std::mutex mutex_;
  std::map<std::vector<std::string>, Child> children_;  // guarded by mutex_
};

}  // namespace metrics_detail

// A value that only goes up (requests, tokens, errors).
class Counter : public metrics_detail::Family {
 public:
  class Child {
   public:
    explicit Child(prometheus::Counter& counter) : counter_(counter) {}
    // Adds v. Throws std::invalid_argument for a negative v or NaN. Thread-safe, lock-free.
    void inc(double v = 1);
    double value() const { return counter_.Value(); }

   private:
    prometheus::Counter& counter_;  // owned by the prometheus-cpp family
  };
  // The child for these label values (one per label name, else
  // std::invalid_argument), made on first use. Thread-safe; takes a lock.
  Child& labels(const std::vector<std::string>& values = {});

 private:
  friend class MetricsRegistry;
  Counter(std::string name, std::vector<std::string> label_names,
          prometheus::Family<prometheus::Counter>& family);
  std::vector<prometheus::MetricFamily> collect_unordered() const override;
  prometheus::Family<prometheus::Counter>& family_;  // owned by the registry's prometheus::Registry
  metrics_detail::Children<Child> children_;
};

// A value that goes up and down (in-flight requests, resident models).
class Gauge : public metrics_detail::Family {
 public:
  class Child {
   public:
    explicit Child(prometheus::Gauge& gauge) : gauge_(gauge) {}
    // Thread-safe, lock-free.
    void set(double v) { gauge_.Set(v); }
    void inc(double v = 1) { gauge_.Increment(v); }
    void dec(double v = 1) { gauge_.Decrement(v); }
    double value() const { return gauge_.Value(); }

   private:
    prometheus::Gauge& gauge_;  // owned by the prometheus-cpp family
  };
  // As Counter::labels.
  Child& labels(const std::vector<std::string>& values = {});

 private:
  friend class MetricsRegistry;
  Gauge(std::string name, std::vector<std::string> label_names,
        prometheus::Family<prometheus::Gauge>& family);
  std::vector<prometheus::MetricFamily> collect_unordered() const override;
  prometheus::Family<prometheus::Gauge>& family_;
  metrics_detail::Children<Child> children_;
};

// Observations counted into buckets by upper bound (latencies, sizes). Written
// out as NAME_bucket{le="..."} (cumulative, ending with le="+Inf"), NAME_sum
// and NAME_count.
class Histogram : public metrics_detail::Family {
 public:
  class Child {
   public:
    Child(prometheus::Histogram& histogram, size_t bounds)
        : histogram_(histogram), bounds_(bounds) {}
    // Counts v into the first bucket whose bound is >= v (+Inf past the last);
    // NaN goes to +Inf and makes the sum NaN, as Prometheus' own clients do.
    // Thread-safe (prometheus-cpp's per-histogram mutex): a concurrent
    // render sees counts and sum agree.
    void observe(double v);
    uint64_t count() const;
    double sum() const;

   private:
    prometheus::Histogram& histogram_;  // owned by the prometheus-cpp family
    const size_t bounds_;               // finite bounds (buckets are one more)
  };
  // As Counter::labels.
  Child& labels(const std::vector<std::string>& values = {});
  // The finite upper bounds, increasing (+Inf is implicit).
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  friend class MetricsRegistry;
  Histogram(std::string name, std::vector<std::string> label_names, std::vector<double> bounds,
            prometheus::Family<prometheus::Histogram>& family);
  std::vector<prometheus::MetricFamily> collect_unordered() const override;
  const std::vector<double> bounds_;
  prometheus::Family<prometheus::Histogram>& family_;
  metrics_detail::Children<Child> children_;
};

class MetricsRegistry {
 public:
  // (label values, value) rows of a callback gauge.
  using Samples = std::vector<std::pair<std::vector<std::string>, double>>;
  using GaugeCallback = std::function<Samples()>;
  // The Content-Type of render()'s output.
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Register (or find again) a family. Metric names must match
  // [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* without a
  // leading "__", distinct (std::invalid_argument). A name already taken by a
  // family of another kind, label names or buckets, or by a histogram's
  // _bucket/_sum/_count series, throws std::logic_error. Thread-safe.
  Counter& counter(const std::string& name, const std::string& help,
                   const std::vector<std::string>& label_names = {});
  Gauge& gauge(const std::string& name, const std::string& help,
               const std::vector<std::string>& label_names = {});
  // Bounds must be increasing and not NaN (std::invalid_argument); a last
  // +Inf is dropped (it is always there). "le" is no label name here.
  Histogram& histogram(const std::string& name, const std::string& help,
                       const std::vector<std::string>& label_names, std::vector<double> bounds);
  // A gauge whose rows come from `callback` at each render(), for values that
  // live elsewhere (queue depth, resident bytes). The callback runs on the
  // rendering thread without the registry's lock (it may use the registry);
  // it must return distinct label-value sets, one value per label name, else
  // render() throws std::logic_error. Registering the same name twice throws
  // std::logic_error. Thread-safe.
  void gauge_callback(const std::string& name, const std::string& help,
                      const std::vector<std::string>& label_names, GaugeCallback callback);

  // The whole exposition (see the top). Thread-safe; passes on what a
  // callback throws.
  std::string render() const;

 private:
  // The family called `name` if it matches kind, label names and bounds;
  // nullptr if the name is free; throws std::logic_error otherwise.
  metrics_detail::Family* find_locked(const std::string& name, metrics_detail::Kind kind,
                                      const std::vector<std::string>& label_names,
                                      const std::vector<double>* bounds) const;
  void add_locked(std::unique_ptr<metrics_detail::Family> family);

  // Owns the prometheus-cpp families (not the callback gauges); thread-safe itself.
  prometheus::Registry prometheus_;
  mutable std::mutex mutex_;
  // Registration order; never shrinks, so render() can copy the pointers and let go.
  std::vector<std::unique_ptr<metrics_detail::Family>> families_;  // guarded by mutex_
  // Every series name a family writes (a histogram's own name and its
  // _bucket/_sum/_count) -> that family.
  std::map<std::string, metrics_detail::Family*> series_names_;  // guarded by mutex_
};

}  // namespace calm
