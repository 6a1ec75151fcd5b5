// The Prometheus metrics registry (calm's layer over prometheus-cpp): its
// invariants, and its output as the real `promtool check metrics` (Debian
// package `prometheus`) reads it.
#include "metrics/prometheus.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>

#include "support/helpers.h"

namespace calm {
namespace {

TEST(Prometheus, CounterOnlyGoesUp) {
  MetricsRegistry registry;
  auto& c = registry.counter("calm_requests_total", "Requests.", {"model"}).labels({"a"});
  c.inc();
  c.inc(2.5);
  c.inc(0);
  EXPECT_THROW(c.inc(-1), std::invalid_argument);
  EXPECT_THROW(c.inc(std::nan("")), std::invalid_argument);
  EXPECT_EQ(c.value(), 3.5);
  EXPECT_NE(registry.render().find("calm_requests_total{model=\"a\"} 3.5\n"), std::string::npos);
}

TEST(Prometheus, HistogramBucketsAreCumulativeWithInf) {
  MetricsRegistry registry;
  auto& h = registry.histogram("calm_latency_seconds", "Latency.", {"model"}, {0.1, 1, 10});
  auto& a = h.labels({"a"});
  for (double v : {0.05, 0.1, 0.5, 1.0, 5.0, 50.0}) a.observe(v);  // le is inclusive
  EXPECT_EQ(a.count(), 6u);
  EXPECT_DOUBLE_EQ(a.sum(), 56.65);
  const std::string out = registry.render();
  const std::string want =  // prometheus-cpp writes _count and _sum first
      "calm_latency_seconds_count{model=\"a\"} 6\n"
      "calm_latency_seconds_sum{model=\"a\"} 56.65\n"
      "calm_latency_seconds_bucket{model=\"a\",le=\"0.1\"} 2\n"
      "calm_latency_seconds_bucket{model=\"a\",le=\"1\"} 4\n"
      "calm_latency_seconds_bucket{model=\"a\",le=\"10\"} 5\n"
      "calm_latency_seconds_bucket{model=\"a\",le=\"+Inf\"} 6\n";
  EXPECT_NE(out.find(want), std::string::npos) << out;
}

TEST(Prometheus, HistogramCountsNaNInInf) {
  MetricsRegistry registry;
  auto& h = registry.histogram("calm_confidence", "c", {}, {0.5, 1}).labels();
  h.observe(0.2);
  h.observe(std::nan(""));
  EXPECT_EQ(h.count(), 2u);
  EXPECT_TRUE(std::isnan(h.sum()));
  const std::string out = registry.render();
  EXPECT_NE(out.find("calm_confidence_bucket{le=\"1\"} 1\n"
                     "calm_confidence_bucket{le=\"+Inf\"} 2\n"),
            std::string::npos)
      << out;
}

TEST(Prometheus, LabelsKeepTheirDeclaredOrderAndChildrenSortByValue) {
  MetricsRegistry registry;
  auto& refused = registry.counter("calm_refused_total", "r", {"status", "code"});
  refused.labels({"503", "busy"}).inc();
  refused.labels({"404", "model_not_found"}).inc();
  refused.labels({"404", "bad"}).inc();
  const std::string out = registry.render();
  EXPECT_NE(out.find("calm_refused_total{status=\"404\",code=\"bad\"} 1\n"
                     "calm_refused_total{status=\"404\",code=\"model_not_found\"} 1\n"
                     "calm_refused_total{status=\"503\",code=\"busy\"} 1\n"),
            std::string::npos)
      << out;
}

TEST(Prometheus, FamiliesComeOutInRegistrationOrder) {
  MetricsRegistry registry;
  registry.histogram("calm_b_seconds", "b", {}, {1});
  registry.gauge_callback("calm_c", "c", {}, [] { return MetricsRegistry::Samples{{{}, 1}}; });
  registry.counter("calm_a_total", "a");
  const std::string out = registry.render();
  const auto b = out.find("# HELP calm_b_seconds"), c = out.find("# HELP calm_c "),
             a = out.find("# HELP calm_a_total");
  ASSERT_NE(a, std::string::npos) << out;
  EXPECT_LT(b, c);
  EXPECT_LT(c, a);
  EXPECT_NE(out.find("calm_a_total 0\n"), std::string::npos) << out;  // shown before any update
}

TEST(Prometheus, HistogramBoundsAreFiniteAndIncreasing) {
  MetricsRegistry registry;
  const double inf = std::numeric_limits<double>::infinity();
  // A last +Inf is the implicit bucket, dropped.
  EXPECT_EQ(registry.histogram("calm_size_bytes", "h", {}, {1, inf}).bounds().size(), 1u);
  EXPECT_THROW(registry.histogram("calm_a_seconds", "h", {}, {1, 1}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("calm_b_seconds", "h", {}, {2, 1}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("calm_c_seconds", "h", {}, {-inf, 1}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("calm_d_seconds", "h", {}, {std::nan(""), 1}),
               std::invalid_argument);
}

TEST(Prometheus, LabelValuesAreEscaped) {
  MetricsRegistry registry;
  registry.gauge("calm_info", "Help with \\ and\nnewline \"quoted\".", {"v"})
      .labels({"back\\slash \"quote\"\nnew"})
      .set(1);
  const std::string out = registry.render();
  EXPECT_NE(out.find("# HELP calm_info Help with \\\\ and\\nnewline \"quoted\".\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("calm_info{v=\"back\\\\slash \\\"quote\\\"\\nnew\"} 1\n"), std::string::npos)
      << out;
}

TEST(Prometheus, InvalidNamesAreRejected) {
  MetricsRegistry registry;
  EXPECT_THROW(registry.counter("", "h"), std::invalid_argument);
  EXPECT_THROW(registry.counter("1abc_total", "h"), std::invalid_argument);
  EXPECT_THROW(registry.counter("a-b_total", "h"), std::invalid_argument);
  EXPECT_THROW(registry.gauge("ok", "h", {"a:b"}), std::invalid_argument);  // no colon in labels
  EXPECT_THROW(registry.gauge("ok", "h", {"9a"}), std::invalid_argument);
  EXPECT_THROW(registry.gauge("ok", "h", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(registry.gauge("ok", "h", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("ok_seconds", "h", {"le"}, {1}), std::invalid_argument);
  EXPECT_NO_THROW(registry.gauge("ns:sub_name9", "h", {"_x", "Y1"}));
  // One value per label name.
  auto& g = registry.gauge("calm_two", "h", {"a", "b"});
  EXPECT_THROW(g.labels({"x"}), std::invalid_argument);
}

TEST(Prometheus, SameNameDifferentTypeIsRejected) {
  MetricsRegistry registry;
  auto& c = registry.counter("calm_x_total", "h", {"a"});
  EXPECT_EQ(&registry.counter("calm_x_total", "h", {"a"}), &c);  // the same family again
  EXPECT_THROW(registry.gauge("calm_x_total", "h", {"a"}), std::logic_error);
  EXPECT_THROW(registry.counter("calm_x_total", "h", {"b"}), std::logic_error);
  registry.histogram("calm_y_seconds", "h", {}, {1, 2});
  EXPECT_THROW(registry.histogram("calm_y_seconds", "h", {}, {1, 3}), std::logic_error);
  EXPECT_THROW(registry.counter("calm_y_seconds_count", "h"), std::logic_error);
  registry.gauge("calm_z_sum", "h");
  EXPECT_THROW(registry.histogram("calm_z", "h", {}, {1}), std::logic_error);
  registry.gauge_callback("calm_cb", "h", {}, [] { return MetricsRegistry::Samples{}; });
  EXPECT_THROW(
      registry.gauge_callback("calm_cb", "h", {}, [] { return MetricsRegistry::Samples{}; }),
      std::logic_error);
  EXPECT_THROW(registry.gauge("calm_cb", "h"), std::logic_error);
}

TEST(Prometheus, CallbackGaugeIsReadAtRender) {
  MetricsRegistry registry;
  double depth = 1;
  registry.gauge_callback("calm_queue_depth", "Waiting requests.", {"model"}, [&] {
    return MetricsRegistry::Samples{{{"b"}, depth * 2}, {{"a"}, depth}};
  });
  EXPECT_NE(registry.render().find("calm_queue_depth{model=\"a\"} 1\n"
                                   "calm_queue_depth{model=\"b\"} 2\n"),
            std::string::npos);
  depth = 1e6;  // integers print without an exponent
  EXPECT_NE(registry.render().find("calm_queue_depth{model=\"a\"} 1000000\n"
                                   "calm_queue_depth{model=\"b\"} 2000000\n"),
            std::string::npos)
      << registry.render();
}

// Every kind of metric, with odd values and labels, through the real promtool.
TEST(Prometheus, OutputPassesPromtool) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool is not on PATH (Debian package `prometheus`, "
                    "installed by scripts/install-deps.sh)";
  }
  MetricsRegistry registry;
  registry.counter("calm_requests_total", "Requests answered.", {"model", "status"})
      .labels({"demo-chat", "200"})
      .inc(3);
  registry.counter("calm_requests_total", "Requests answered.", {"model", "status"})
      .labels({"a \"b\"\n\\c", "500"})
      .inc();
  registry.counter("calm_errors_total", "Errors, none yet.");
  auto& gauge = registry.gauge("calm_resident_models", "Models resident now.", {"model"});
  gauge.labels({"demo-chat"}).set(1);
  gauge.labels({"inf"}).set(std::numeric_limits<double>::infinity());
  gauge.labels({"minus_inf"}).set(-std::numeric_limits<double>::infinity());
  gauge.labels({"nan"}).set(std::nan(""));
  gauge.labels({"small"}).set(1.5e-7);
  gauge.labels({"big"}).set(1e300);
  auto& latency =
      registry.histogram("calm_request_duration_seconds", "Latency, with \\ and\nnewline.",
                         {"model"}, {0.005, 0.25, 1, 2.5, 60});
  for (double v : {0.001, 0.3, 0.3, 2.0, 100.0}) latency.labels({"demo-chat"}).observe(v);
  registry.histogram("calm_prompt_tokens", "Prompt lengths.", {}, {16, 256, 4096})
      .labels()
      .observe(40);
  registry.gauge_callback("calm_queue_depth", "Requests waiting.", {"model"}, [] {
    return MetricsRegistry::Samples{{{"demo-chat"}, 2}, {{"demo-code"}, 0}};
  });

  testing::TempDir dir("calm-prometheus");
  const std::string metrics = dir.file("metrics.txt");
  const std::string report = dir.file("promtool.txt");
  const std::string text = registry.render();
  testing::write_bytes(metrics, text);
  const int rc =
      std::system(("promtool check metrics < '" + metrics + "' > '" + report + "' 2>&1").c_str());
  EXPECT_EQ(rc, 0) << "promtool says:\n" << testing::read_bytes(report) << "\non:\n" << text;
}

}  // namespace
}  // namespace calm
