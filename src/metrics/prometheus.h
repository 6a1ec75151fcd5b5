// MetricsRegistry: counters, gauges and histograms with labels, written out in
// the Prometheus text exposition format 0.0.4 (what GET /metrics serves).
//
// Debian packages no Prometheus client for C++, and calm needs only this much:
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
// A family (one metric name) is registered once, with fixed label names;
// registering the same name again with the same kind, label names (and
// buckets) returns the same family, anything else throws std::logic_error.
// Names are checked at registration (std::invalid_argument). A family's
// children (one per set of label values) are made on first use and never
// destroyed, so a reference from labels() stays valid for the registry's
// life: callers on a hot path look it up once and keep it. Updating a child
// is a few relaxed atomic operations, no lock; labels() takes the family's
// lock. A family without labels has its one child from the start, so its
// series shows 0 before the first update.
//
// Output: families in registration order, each with # HELP and # TYPE, its
// children sorted by label values. Counter names should end in `_total` and
// use base units (`_seconds`, `_bytes`): `promtool check metrics` lints that.
//
// Thread-safe throughout (per method below).
#pragma once

#include <atomic>
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

// What every family has: name, help, kind, label names, and writing itself out.
class Family {
 public:
  virtual ~Family() = default;
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  const std::string& name() const { return name_; }
  Kind kind() const { return kind_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends # HELP, # TYPE and every sample. Thread-safe.
  void render(std::string& out) const;

 protected:
  Family(std::string name, std::string help, Kind kind, std::vector<std::string> label_names);
  // Throws std::invalid_argument unless there is one value per label name.
  void check_arity(const std::vector<std::string>& values) const;
  // Appends `name{labels} value\n`; `extra` is one more label (the histogram's le).
  void append_sample(std::string& out, const std::string& suffix,
                     const std::vector<std::string>& values, double value,
                     const std::pair<std::string, std::string>* extra = nullptr) const;
  virtual void render_samples(std::string& out) const = 0;

 private:
  const std::string name_;
  const std::string help_;
  const Kind kind_;
  const std::vector<std::string> label_names_;
};

// Label values -> child, made on first use, never destroyed (std::map nodes
// do not move, so references stay valid). Thread-safe.
template <class Child>
class Children {
 public:
  template <class... Args>
  Child& get(const std::vector<std::string>& values, const Args&... args) {
    std::lock_guard lock(mutex_);
    return children_.try_emplace(values, args...).first->second;
  }
  // Calls f(values, child) in label-value order, under the lock.
  template <class F>
  void for_each(F&& f) const {
    std::lock_guard lock(mutex_);
    for (const auto& [values, child] : children_) f(values, child);
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, Child> children_;  // guarded by mutex_
};

}  // namespace metrics_detail

// A value that only goes up (requests, tokens, errors).
class Counter : public metrics_detail::Family {
 public:
  class Child {
   public:
    // Adds v. Throws std::invalid_argument for a negative v or NaN. Thread-safe, lock-free.
    void inc(double v = 1);
    double value() const { return value_.load(std::memory_order_relaxed); }

   private:
    std::atomic<double> value_{0};
  };
  // The child for these label values (one per label name, else
  // std::invalid_argument), made on first use. Thread-safe; takes a lock.
  Child& labels(const std::vector<std::string>& values = {});

 private:
  friend class MetricsRegistry;
  Counter(std::string name, std::string help, std::vector<std::string> label_names);
  void render_samples(std::string& out) const override;
  metrics_detail::Children<Child> children_;
};

// A value that goes up and down (in-flight requests, resident models).
class Gauge : public metrics_detail::Family {
 public:
  class Child {
   public:
    // Thread-safe, lock-free.
    void set(double v) { value_.store(v, std::memory_order_relaxed); }
    void inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
    void dec(double v = 1) { value_.fetch_sub(v, std::memory_order_relaxed); }
    double value() const { return value_.load(std::memory_order_relaxed); }

   private:
    std::atomic<double> value_{0};
  };
  // As Counter::labels.
  Child& labels(const std::vector<std::string>& values = {});

 private:
  friend class MetricsRegistry;
  Gauge(std::string name, std::string help, std::vector<std::string> label_names);
  void render_samples(std::string& out) const override;
  metrics_detail::Children<Child> children_;
};

// Observations counted into buckets by upper bound (latencies, sizes). Written
// out as NAME_bucket{le="..."} (cumulative, ending with le="+Inf"), NAME_sum
// and NAME_count.
class Histogram : public metrics_detail::Family {
 public:
  class Child {
   public:
    explicit Child(const std::vector<double>& bounds);
    // Counts v into the first bucket whose bound is >= v (+Inf past the last);
    // NaN goes to +Inf and makes the sum NaN, as Prometheus' own clients do.
    // Thread-safe, lock-free. A concurrent render may see the sum lag the
    // counts by the observations in progress; the counts themselves agree.
    void observe(double v);
    uint64_t count() const;
    double sum() const { return sum_.load(std::memory_order_relaxed); }

   private:
    friend class Histogram;
    const std::vector<double>& bounds_;                 // the family's
    std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
    std::atomic<double> sum_{0};
  };
  // As Counter::labels.
  Child& labels(const std::vector<std::string>& values = {});
  // The finite upper bounds, increasing (+Inf is implicit).
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  friend class MetricsRegistry;
  Histogram(std::string name, std::string help, std::vector<std::string> label_names,
            std::vector<double> bounds);
  void render_samples(std::string& out) const override;
  const std::vector<double> bounds_;
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

  mutable std::mutex mutex_;
  // Registration order; never shrinks, so render() can copy the pointers and let go.
  std::vector<std::unique_ptr<metrics_detail::Family>> families_;  // guarded by mutex_
  // Every series name a family writes (a histogram's own name and its
  // _bucket/_sum/_count) -> that family.
  std::map<std::string, metrics_detail::Family*> series_names_;  // guarded by mutex_
};

}  // namespace calm
