#include "bench/suite_report.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "util/utf8.h"

namespace calm {
namespace {

using nlohmann::json;

// --- reading the suite: tolerant of nulls, missing keys and wrong types ------

const json& null_json() {
  static const json null;
  return null;
}

// j[key] when j is an object holding key, else null.
const json& at(const json& j, const std::string& key) {
  if (!j.is_object()) return null_json();
  const auto it = j.find(key);
  return it == j.end() ? null_json() : *it;
}

// A finite number, else nullopt (null, missing, text, bool, NaN, inf).
std::optional<double> number(const json& j) {
  if (!j.is_number()) return std::nullopt;
  const double v = j.get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

// Text for display: strings as they are (invalid UTF-8 repaired), other
// scalars as JSON, null as "".
std::string text(const json& j) {
  if (j.is_string()) return repair_utf8(j.get_ref<const std::string&>());
  if (j.is_null()) return "";
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

const json& systems_of(const json& suite) {
  static const json empty = json::array();
  const json& systems = at(suite, "systems");
  return systems.is_array() ? systems : empty;
}

bool failed(const json& system) {
  const json& error = at(system, "error");
  if (error.is_null() || (error.is_boolean() && !error.get<bool>())) return false;
  return !(error.is_string() && error.get_ref<const std::string&>().empty());
}

std::string system_name(const json& system, size_t index) {
  const std::string name = text(at(system, "name"));
  return name.empty() ? "system " + std::to_string(index + 1) : name;
}

// Domains named in the workload or in any system's quality, sorted, "all" last.
std::vector<std::string> domains_of(const json& suite) {
  std::set<std::string> names;
  const json& workload_domains = at(at(suite, "workload"), "domains");
  if (workload_domains.is_object()) {
    for (const auto& item : workload_domains.items()) names.insert(item.key());
  }
  for (const json& system : systems_of(suite)) {
    const json& quality = at(at(system, "summary"), "quality");
    if (!quality.is_object()) continue;
    for (const auto& item : quality.items()) names.insert(item.key());
  }
  std::vector<std::string> out;
  for (const std::string& n : names) {
    if (n != "all") out.push_back(n);
  }
  if (names.count("all")) out.push_back("all");
  return out;
}

// Summary columns shared by the CSV and the HTML table, in order.
const std::vector<std::string>& summary_keys() {
  static const std::vector<std::string> keys = {"requests",
                                                "completed",
                                                "errors",
                                                "latency_mean_ms",
                                                "latency_p50_ms",
                                                "latency_p95_ms",
                                                "latency_p99_ms",
                                                "ttft_mean_ms",
                                                "ttft_p95_ms",
                                                "energy_per_request_j",
                                                "energy_source",
                                                "confidence_mean",
                                                "decision_accuracy",
                                                "cache_hit_rate",
                                                "loads",
                                                "peak_model_bytes",
                                                "peak_rss_bytes"};
  return keys;
}

// --- number formatting ------------------------------------------------------

std::string shortest(double v) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, v);
  return std::string(buffer, result.ptr);
}

std::string printf_double(const char* format, double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, v + 0.0);  // + 0.0: no "-0"
  return buffer;
}

std::string fixed(double v, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
  std::string out = buffer;
  if (out.find_first_not_of("-0.") == std::string::npos && out[0] == '-') out.erase(0, 1);
  return out;
}

// Three significant digits, without exponents below a million.
std::string sig3(double v) {
  const double a = std::abs(v);
  if (a >= 1e6) return printf_double("%.3g", v);
  if (a >= 100) return fixed(v, 0);
  if (a >= 10) return fixed(v, 1);
  if (a >= 1) return fixed(v, 2);
  if (a >= 0.001 || a == 0) return printf_double("%.3g", v);
  return printf_double("%.2e", v);
}

// --- CSV ---------------------------------------------------------------------

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_cell(const json& j) {
  if (j.is_number_integer()) return j.dump();
  if (j.is_number()) {
    const auto v = number(j);
    return v ? shortest(*v) : "";
  }
  return csv_field(text(j));
}

// --- HTML --------------------------------------------------------------------

std::string esc(std::string_view raw) {
  const std::string s = repair_utf8(raw);
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// At most `limit` characters (code points), with an ellipsis when cut.
std::string truncate_utf8(const std::string& s, size_t limit) {
  size_t count = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;  // continuation byte
    if (count == limit) return s.substr(0, i) + "\u2026";
    ++count;
  }
  return s;
}

// A colour per system, the same in every table and plot.
std::string colour(size_t index) {
  static const char* const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                        "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#7f7f7f"};
  if (index < std::size(palette)) return palette[index];
  const double hue = std::fmod(static_cast<double>(index) * 137.508, 360.0);
  return "hsl(" + fixed(hue, 0) + ",55%,45%)";
}

std::string na() {
  return "<span class=\"muted\">n/a</span>";
}

std::string ms(std::optional<double> v) {
  return v ? fixed(*v, 1) : na();
}
std::string mib(std::optional<double> v) {
  return v ? fixed(*v / (1024.0 * 1024.0), 1) : na();
}
std::string percent(std::optional<double> v) {
  return v ? fixed(*v * 100, 1) + "%" : na();
}
std::string integer(std::optional<double> v) {
  return v ? fixed(*v, 0) : na();
}
std::string joules(std::optional<double> v) {
  return v ? sig3(*v) : na();
}

std::string ratio(std::optional<double> value, std::optional<double> base) {
  if (!value || !base || *base == 0) return na();
  const double r = *value / *base;
  if (!std::isfinite(r)) return na();
  return fixed(r, 2) + "\u00d7";
}

// --- SVG ---------------------------------------------------------------------

constexpr double kWidth = 760;
constexpr double kLegendWidth = 190;
constexpr size_t kMaxPoints = 200;  // per system per line

// A coordinate: finite, bounded, one decimal.
std::string co(double v) {
  if (!std::isfinite(v)) v = 0;
  return fixed(std::clamp(v, -1e6, 1e6), 1);
}

std::string tick_label(double v) {
  if (std::abs(v) < 1e-12) return "0";
  return printf_double("%g", v);
}

// Tall enough for a legend line per system.
double plot_height(size_t systems) {
  return std::max(380.0, 40 + 18.0 * static_cast<double>(systems));
}

struct Frame {
  double left, right, top, bottom;  // the plotting area in pixels
};

struct Scale {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;

  // 0 at lo, 1 at hi, clamped.
  double unit(double v) const {
    double a = lo, b = hi, x = v;
    if (log) {
      a = std::log10(lo);
      b = std::log10(hi);
      x = v > 0 ? std::log10(v) : a;
    }
    if (!(b > a) || !std::isfinite(x)) return 0.5;
    return std::clamp((x - a) / (b - a), 0.0, 1.0);
  }
};

double x_px(const Frame& f, const Scale& s, double v) {
  return f.left + s.unit(v) * (f.right - f.left);
}
double y_px(const Frame& f, const Scale& s, double v) {
  return f.bottom - s.unit(v) * (f.bottom - f.top);
}

// A linear scale over [lo, hi] with "nice" ticks (1, 2, 5 x 10^k) and bounds
// on ticks. Degenerate or non-finite input still gives a usable range.
Scale linear_scale(double lo, double hi, bool from_zero) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  lo = std::clamp(lo, -1e12, 1e12);
  hi = std::clamp(hi, -1e12, 1e12);
  if (lo > hi) std::swap(lo, hi);
  const bool non_negative = lo >= 0;
  if (from_zero) lo = std::min(lo, 0.0);
  if (hi - lo <= 1e-9 * std::max(1.0, std::abs(hi))) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
    if (from_zero && non_negative) lo = 0;
  }
  const double raw = (hi - lo) / 5;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / magnitude;
  const double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * magnitude;
  Scale s;
  s.lo = std::floor(lo / step) * step;
  s.hi = std::ceil(hi / step) * step;
  if (!(s.hi > s.lo)) s.hi = s.lo + step;
  for (double k = std::round(s.lo / step); k * step <= s.hi + step * 1e-9 && s.ticks.size() < 20;
       ++k) {
    s.ticks.push_back(k * step);
  }
  return s;
}

// A log scale over whole decades covering [lo, hi] (both > 0).
Scale log_scale(double lo, double hi) {
  int e0 = static_cast<int>(std::floor(std::log10(lo)));
  int e1 = static_cast<int>(std::ceil(std::log10(hi)));
  e0 = std::clamp(e0, -6, 12);
  e1 = std::clamp(e1, -6, 12);
  if (e1 <= e0) e1 = e0 + 1;
  Scale s;
  s.log = true;
  s.lo = std::pow(10.0, e0);
  s.hi = std::pow(10.0, e1);
  for (int e = e0; e <= e1; ++e) {
    const double decade = std::pow(10.0, e);
    s.ticks.push_back(decade);
    if (e1 - e0 <= 2 && e < e1) {
      s.ticks.push_back(2 * decade);
      s.ticks.push_back(5 * decade);
    }
  }
  std::sort(s.ticks.begin(), s.ticks.end());
  return s;
}

// Evenly spaced indices into n points, at most `limit`, first and last kept.
std::vector<size_t> sample_indices(size_t n, size_t limit) {
  std::vector<size_t> out;
  if (n <= limit) {
    for (size_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  for (size_t k = 0; k < limit; ++k) {
    out.push_back(static_cast<size_t>(
        std::llround(static_cast<double>(k) * static_cast<double>(n - 1) / (limit - 1))));
  }
  return out;
}

std::string svg_open(const std::string& id, double height, const std::string& label) {
  return "<svg class=\"plot\" id=\"" + id + "\" width=\"" + co(kWidth) + "\" height=\"" +
         co(height) + "\" viewBox=\"0 0 " + co(kWidth) + " " + co(height) +
         "\" role=\"img\" aria-label=\"" + esc(label) + "\"><title>" + esc(label) + "</title>\n";
}

std::string text_at(double x, double y, const std::string& content, const std::string& attrs = "") {
  return "<text x=\"" + co(x) + "\" y=\"" + co(y) + "\"" + (attrs.empty() ? "" : " " + attrs) +
         ">" + content + "</text>";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& cls) {
  return "<line class=\"" + cls + "\" x1=\"" + co(x1) + "\" y1=\"" + co(y1) + "\" x2=\"" + co(x2) +
         "\" y2=\"" + co(y2) + "\"/>";
}

// Grid, ticks, tick labels and axis titles.
std::string axes(const Frame& f, const Scale& x, const Scale& y, const std::string& x_title,
                 const std::string& y_title, bool y_percent = false) {
  std::string s = "<g class=\"axes\">";
  for (double t : x.ticks) {
    const double px = x_px(f, x, t);
    s += line(px, f.top, px, f.bottom, "grid");
    s += line(px, f.bottom, px, f.bottom + 5, "tick");
    s += text_at(px, f.bottom + 18, esc(tick_label(t)), "text-anchor=\"middle\"");
  }
  for (double t : y.ticks) {
    const double py = y_px(f, y, t);
    s += line(f.left, py, f.right, py, "grid");
    s += line(f.left - 5, py, f.left, py, "tick");
    s += text_at(f.left - 8, py + 4, esc(y_percent ? tick_label(t * 100) + "%" : tick_label(t)),
                 "text-anchor=\"end\"");
  }
  s += line(f.left, f.bottom, f.right, f.bottom, "axis");
  s += line(f.left, f.top, f.left, f.bottom, "axis");
  s += text_at((f.left + f.right) / 2, f.bottom + 38, esc(x_title),
               "text-anchor=\"middle\" class=\"title\"");
  const double ty = (f.top + f.bottom) / 2;
  s +=
      text_at(16, ty, esc(y_title),
              "text-anchor=\"middle\" class=\"title\" transform=\"rotate(-90 16 " + co(ty) + ")\"");
  return s + "</g>\n";
}

struct LegendEntry {
  size_t index;
  std::string name;
};

std::string legend(const Frame& f, const std::vector<LegendEntry>& entries) {
  std::string s = "<g class=\"legend\">";
  double y = f.top + 4;
  for (const LegendEntry& e : entries) {
    s += "<rect x=\"" + co(f.right + 20) + "\" y=\"" + co(y) +
         "\" width=\"12\" height=\"12\" fill=\"" + colour(e.index) + "\"/>";
    s += "<text x=\"" + co(f.right + 38) + "\" y=\"" + co(y + 10) + "\"><title>" + esc(e.name) +
         "</title>" + esc(truncate_utf8(e.name, 22)) + "</text>";
    y += 18;
  }
  return s + "</g>\n";
}

std::string no_data(const Frame& f, const std::string& why) {
  return text_at((f.left + f.right) / 2, (f.top + f.bottom) / 2, esc(why),
                 "text-anchor=\"middle\" class=\"mark nodata\"");
}

std::string polyline(const std::vector<std::pair<double, double>>& points, size_t index,
                     const std::string& name) {
  std::string s = "<polyline class=\"mark\" fill=\"none\" stroke=\"" + colour(index) +
                  "\" stroke-width=\"2\" points=\"";
  for (size_t i = 0; i < points.size(); ++i) {
    if (i) s += ' ';
    s += co(points[i].first) + "," + co(points[i].second);
  }
  return s + "\"><title>" + esc(name) + "</title></polyline>\n";
}

// A figure: heading, the SVG, and a caption naming the systems left out.
std::string figure(const std::string& heading, const std::string& svg, const std::string& caption,
                   const std::vector<std::string>& left_out) {
  std::string s = "<figure><h3>" + esc(heading) + "</h3>\n" + svg + "<figcaption>" + caption;
  if (!left_out.empty()) {
    s += " <span class=\"muted\">Not shown: ";
    for (size_t i = 0; i < left_out.size(); ++i) s += (i ? "; " : "") + left_out[i];
    s += ".</span>";
  }
  return s + "</figcaption></figure>\n";
}

std::string left_out_entry(const std::string& name, const std::string& why) {
  return esc(name) + " (" + esc(why) + ")";
}

bool record_ok(const json& record) {
  const auto status = number(at(record, "status"));
  if (status && (*status < 200 || *status >= 300)) return false;
  const json& error = at(record, "error");
  return error.is_null() || (error.is_string() && error.get_ref<const std::string&>().empty());
}

// (1) Empirical CDF of the latency of successful requests, per system.
std::string latency_plot(const json& suite) {
  const json& systems = systems_of(suite);
  std::vector<std::pair<size_t, std::vector<double>>> series;
  std::vector<std::string> left_out;
  for (size_t i = 0; i < systems.size(); ++i) {
    const json& system = systems[i];
    const std::string name = system_name(system, i);
    if (failed(system)) {
      left_out.push_back(left_out_entry(name, "failed"));
      continue;
    }
    std::vector<double> values;
    const json& records = at(system, "records");
    if (records.is_array()) {
      for (const json& r : records) {
        const auto v = number(at(r, "latency_ms"));
        if (v && *v >= 0 && record_ok(r)) values.push_back(*v);
      }
    }
    if (values.empty()) {
      left_out.push_back(left_out_entry(name, "no successful records"));
      continue;
    }
    std::sort(values.begin(), values.end());
    series.emplace_back(i, std::move(values));
  }

  const double height = plot_height(systems.size());
  const Frame f{72, kWidth - kLegendWidth, 16, height - 52};
  double lo = 0, hi = 1;
  if (!series.empty()) {
    lo = series.front().second.front();
    hi = series.front().second.back();
    for (const auto& [index, values] : series) {
      lo = std::min(lo, values.front());
      hi = std::max(hi, values.back());
    }
  }
  const bool log = !series.empty() && lo > 0 && hi / lo >= 20;
  const Scale x = log ? log_scale(lo, hi) : linear_scale(lo, hi, true);
  const Scale y = linear_scale(0, 1, true);
  std::string svg = svg_open("plot-latency", height, "Latency distribution");
  svg += axes(f, x, y, std::string("latency (ms") + (log ? ", log scale)" : ")"),
              "share of requests", true);
  std::vector<LegendEntry> entries;
  for (const auto& [index, values] : series) {
    std::vector<std::pair<double, double>> points;
    const double n = static_cast<double>(values.size());
    points.emplace_back(x_px(f, x, values.front()), y_px(f, y, 0));
    for (size_t k : sample_indices(values.size(), kMaxPoints)) {
      points.emplace_back(x_px(f, x, values[k]), y_px(f, y, (static_cast<double>(k) + 1) / n));
    }
    const std::string name = system_name(systems[index], index);
    svg += polyline(points, index, name);
    entries.push_back({index, name});
  }
  if (series.empty()) svg += no_data(f, "no latency records");
  svg += legend(f, entries) + "</svg>\n";
  return figure("Latency distribution", svg,
                "Empirical CDF of the latency of successful requests (scheduled arrival to end of "
                "stream): further left is faster.",
                left_out);
}

// (2) Energy per request, a horizontal bar per system.
std::string energy_plot(const json& suite) {
  const json& systems = systems_of(suite);
  struct Bar {
    size_t index;
    std::string name;
    std::optional<double> value;
    std::string note;
  };
  std::vector<Bar> bars;
  double hi = 0;
  for (size_t i = 0; i < systems.size(); ++i) {
    const json& system = systems[i];
    Bar bar{i, system_name(system, i), std::nullopt, ""};
    if (failed(system)) {
      bar.note = "failed";
    } else {
      bar.value = number(at(at(system, "summary"), "energy_per_request_j"));
      if (!bar.value) bar.note = "n/a";
      if (bar.value) hi = std::max(hi, *bar.value);
    }
    bars.push_back(std::move(bar));
  }
  double lo = 0;
  for (const Bar& b : bars) {
    if (b.value) lo = std::min(lo, *b.value);
  }
  const double row = 26;
  const double height = 16 + std::max<double>(1, bars.size()) * row + 56;
  const Frame f{150, kWidth - 60, 16, height - 56};
  const Scale x = linear_scale(lo, hi, true);
  std::string svg = svg_open("plot-energy", height, "Energy per request");
  svg += axes(f, x, Scale{0, 1, false, {}}, "energy per request (J)", "");
  bool any = false;
  for (size_t k = 0; k < bars.size(); ++k) {
    const Bar& b = bars[k];
    const double top = f.top + static_cast<double>(k) * row + 4;
    svg += "<text x=\"" + co(f.left - 8) + "\" y=\"" + co(top + 13) +
           "\" text-anchor=\"end\"><title>" + esc(b.name) + "</title>" +
           esc(truncate_utf8(b.name, 20)) + "</text>";
    if (b.value) {
      const double x0 = x_px(f, x, 0), x1 = x_px(f, x, *b.value);
      svg += "<rect class=\"mark\" x=\"" + co(std::min(x0, x1)) + "\" y=\"" + co(top) +
             "\" width=\"" + co(std::abs(x1 - x0)) + "\" height=\"" + co(row - 8) + "\" fill=\"" +
             colour(b.index) + "\"><title>" + esc(b.name) + ": " + esc(sig3(*b.value)) +
             " J</title></rect>";
      svg += text_at(std::max(x0, x1) + 4, top + 13, esc(sig3(*b.value) + " J"), "class=\"value\"");
      any = true;
    } else {
      svg += text_at(f.left + 4, top + 13, esc(b.note), "class=\"muted\"");
    }
    svg += "\n";
  }
  if (!any) svg += no_data(f, "no energy figures");
  svg += "</svg>\n";
  return figure("Energy per request", svg,
                "Mean energy per request in joules (lower is better); the source of each figure is "
                "in the summary table.",
                {});
}

// (3) Overall perplexity against mean latency, a labelled point per system.
std::string quality_plot(const json& suite) {
  const json& systems = systems_of(suite);
  struct Point {
    size_t index;
    std::string name;
    double latency, perplexity;
  };
  std::vector<Point> points;
  std::vector<std::string> left_out;
  for (size_t i = 0; i < systems.size(); ++i) {
    const json& system = systems[i];
    const std::string name = system_name(system, i);
    if (failed(system)) {
      left_out.push_back(left_out_entry(name, "failed"));
      continue;
    }
    const json& summary = at(system, "summary");
    const auto latency = number(at(summary, "latency_mean_ms"));
    const auto perplexity = number(at(at(at(summary, "quality"), "all"), "perplexity"));
    if (!latency || !perplexity) {
      left_out.push_back(left_out_entry(name, !latency ? "no mean latency" : "no perplexity"));
      continue;
    }
    points.push_back({i, name, *latency, *perplexity});
  }
  const double height = plot_height(systems.size());
  const Frame f{72, kWidth - kLegendWidth, 16, height - 52};
  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  if (!points.empty()) {
    x_lo = x_hi = points.front().latency;
    y_lo = y_hi = points.front().perplexity;
    for (const Point& p : points) {
      x_lo = std::min(x_lo, p.latency);
      x_hi = std::max(x_hi, p.latency);
      y_lo = std::min(y_lo, p.perplexity);
      y_hi = std::max(y_hi, p.perplexity);
    }
    const double x_pad = (x_hi - x_lo) * 0.1, y_pad = (y_hi - y_lo) * 0.1;
    x_lo -= x_pad, x_hi += x_pad, y_lo -= y_pad, y_hi += y_pad;
  }
  const Scale x = linear_scale(x_lo, x_hi, false);
  const Scale y = linear_scale(y_lo, y_hi, false);
  std::string svg = svg_open("plot-quality", height, "Quality against latency");
  svg += axes(f, x, y, "mean latency (ms)", "perplexity, all domains");
  std::vector<LegendEntry> entries;
  for (const Point& p : points) {
    const double px = x_px(f, x, p.latency), py = y_px(f, y, p.perplexity);
    svg += "<circle class=\"mark\" cx=\"" + co(px) + "\" cy=\"" + co(py) + "\" r=\"5\" fill=\"" +
           colour(p.index) + "\"><title>" + esc(p.name) + ": " + esc(sig3(p.latency)) +
           " ms, perplexity " + esc(sig3(p.perplexity)) + "</title></circle>";
    const bool right_half = px > (f.left + f.right) / 2;
    svg += text_at(right_half ? px - 8 : px + 8, py - 7, esc(truncate_utf8(p.name, 18)),
                   right_half ? "text-anchor=\"end\"" : "") +
           "\n";
    entries.push_back({p.index, p.name});
  }
  if (points.empty()) svg += no_data(f, "no system has both figures");
  svg += legend(f, entries) + "</svg>\n";
  return figure("Quality against latency", svg,
                "Perplexity of the reference answers over all domains against mean latency: lower "
                "left is better.",
                left_out);
}

// (4) Cumulative cache hit rate over the run, per system.
std::string cache_plot(const json& suite) {
  const json& systems = systems_of(suite);
  std::vector<std::pair<size_t, std::vector<std::pair<double, double>>>> series;  // (t, rate)
  std::vector<std::string> left_out;
  double t_hi = 0;
  for (size_t i = 0; i < systems.size(); ++i) {
    const json& system = systems[i];
    const std::string name = system_name(system, i);
    if (failed(system)) {
      left_out.push_back(left_out_entry(name, "failed"));
      continue;
    }
    std::vector<std::pair<double, bool>> events;
    const json& records = at(system, "records");
    if (records.is_array()) {
      for (const json& r : records) {
        const json& cache = at(r, "cache");
        const auto t = number(at(r, "t"));
        if (!t || !cache.is_string() || cache.get_ref<const std::string&>().empty()) continue;
        events.emplace_back(*t, cache.get_ref<const std::string&>() == "hit");
      }
    }
    if (events.empty()) {
      left_out.push_back(left_out_entry(name, "no cache outcomes"));
      continue;
    }
    std::stable_sort(events.begin(), events.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::pair<double, double>> rate;
    size_t hits = 0;
    for (size_t k = 0; k < events.size(); ++k) {
      hits += events[k].second ? 1 : 0;
      rate.emplace_back(events[k].first, static_cast<double>(hits) / static_cast<double>(k + 1));
    }
    t_hi = std::max(t_hi, events.back().first);
    series.emplace_back(i, std::move(rate));
  }
  const double height = plot_height(systems.size());
  const Frame f{72, kWidth - kLegendWidth, 16, height - 52};
  const Scale x = linear_scale(0, t_hi, true);
  const Scale y = linear_scale(0, 1, true);
  std::string svg = svg_open("plot-cache", height, "Cache hits over time");
  svg += axes(f, x, y, "time since start (s)", "cumulative hit rate", true);
  std::vector<LegendEntry> entries;
  for (const auto& [index, rate] : series) {
    std::vector<std::pair<double, double>> points;
    for (size_t k : sample_indices(rate.size(), kMaxPoints)) {
      points.emplace_back(x_px(f, x, rate[k].first), y_px(f, y, rate[k].second));
    }
    if (points.size() == 1) points.emplace_back(points.front().first + 1, points.front().second);
    const std::string name = system_name(systems[index], index);
    svg += polyline(points, index, name);
    entries.push_back({index, name});
  }
  if (series.empty()) svg += no_data(f, "no cache outcomes");
  svg += legend(f, entries) + "</svg>\n";
  return figure("Cache hits over time", svg,
                "Share of requests so far that found their model loaded (cache hit), by arrival "
                "time; requests with no cache outcome are left out.",
                left_out);
}

// --- page sections -------------------------------------------------------------

std::string swatch(size_t index) {
  return "<span class=\"sw\" style=\"background:" + colour(index) + "\"></span>";
}

std::string header_section(const json& suite) {
  const json& workload = at(suite, "workload");
  const json& machine = at(suite, "machine");
  std::string s = "<h1>calm evaluation report</h1>\n<dl class=\"meta\">";
  std::string w = esc(text(at(workload, "path")));
  if (const auto n = number(at(workload, "requests"))) {
    w += (w.empty() ? "" : ", ") + fixed(*n, 0) + " requests";
  }
  const json& domains = at(workload, "domains");
  if (domains.is_object() && !domains.empty()) {
    std::string list;
    for (const auto& item : domains.items()) {
      list += (list.empty() ? "" : ", ") + esc(item.key());
      if (const auto n = number(item.value())) list += " " + fixed(*n, 0);
    }
    w += (w.empty() ? "" : "; ") + std::string("domains: ") + list;
  }
  s += "<dt>Workload</dt><dd>" + (w.empty() ? na() : w) + "</dd>";
  std::string m = esc(text(at(machine, "hostname")));
  const std::string cpu = esc(text(at(machine, "cpu_model")));
  if (!cpu.empty()) m += (m.empty() ? "" : ", ") + cpu;
  if (const auto cpus = number(at(machine, "cpus"))) {
    m += (m.empty() ? "" : ", ") + fixed(*cpus, 0) + " CPUs";
  }
  s += "<dt>Machine</dt><dd>" + (m.empty() ? na() : m) + "</dd>";
  const std::string command = text(at(suite, "command"));
  s += "<dt>Command</dt><dd>" + (command.empty() ? na() : "<code>" + esc(command) + "</code>") +
       "</dd>";
  const std::string started = text(at(suite, "started"));
  s += "<dt>Started</dt><dd>" + (started.empty() ? na() : esc(started)) + "</dd>";
  const std::string path = text(at(suite, "suite"));
  if (!path.empty()) s += "<dt>Suite</dt><dd>" + esc(path) + "</dd>";
  return s + "</dl>\n";
}

std::string summary_section(const json& suite) {
  const json& systems = systems_of(suite);
  static const char* const headings[] = {
      "System",           "Group",          "Route",        "Requests",       "Completed",
      "Errors",           "Mean ms",        "p50 ms",       "p95 ms",         "p99 ms",
      "TTFT mean ms",     "TTFT p95 ms",    "Energy J/req", "Energy source",  "Confidence",
      "Decision acc.",    "Cache hits",     "Loads",        "Peak model MiB", "Peak RSS MiB",
      "Latency vs first", "Energy vs first"};
  std::string s = "<h2>Summary</h2>\n<div class=\"scroll\"><table id=\"summary\"><thead><tr>";
  for (const char* h : headings) s += std::string("<th>") + h + "</th>";
  s += "</tr></thead><tbody>\n";
  std::optional<double> base_latency, base_energy;
  if (!systems.empty() && !failed(systems[0])) {
    base_latency = number(at(at(systems[0], "summary"), "latency_mean_ms"));
    base_energy = number(at(at(systems[0], "summary"), "energy_per_request_j"));
  }
  for (size_t i = 0; i < systems.size(); ++i) {
    const json& system = systems[i];
    const json& sum = at(system, "summary");
    const std::string description = text(at(system, "description"));
    s += failed(system) ? "<tr class=\"failed\">" : "<tr>";
    s += "<td class=\"l\"" + (description.empty() ? "" : " title=\"" + esc(description) + "\"") +
         ">" + swatch(i) + esc(system_name(system, i)) + "</td>";
    s += "<td class=\"l\">" + esc(text(at(system, "group"))) + "</td>";
    s += "<td class=\"l\">" + esc(text(at(system, "route"))) + "</td>";
    if (failed(system)) {
      s += "<td class=\"l\" colspan=\"" + std::to_string(std::size(headings) - 3) +
           "\">failed: " + esc(text(at(system, "error"))) + "</td></tr>\n";
      continue;
    }
    auto num = [&](const char* key) { return number(at(sum, key)); };
    std::string errors_title;
    const json& by_status = at(sum, "errors_by_status");
    if (by_status.is_object()) {
      for (const auto& item : by_status.items()) {
        errors_title +=
            (errors_title.empty() ? "" : ", ") + esc(item.key()) + ": " + esc(text(item.value()));
      }
    }
    s += "<td>" + integer(num("requests")) + "</td>";
    s += "<td>" + integer(num("completed")) + "</td>";
    s += "<td" + (errors_title.empty() ? "" : " title=\"by status: " + errors_title + "\"") + ">" +
         integer(num("errors")) + "</td>";
    for (const char* key : {"latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                            "ttft_mean_ms", "ttft_p95_ms"}) {
      s += "<td>" + ms(num(key)) + "</td>";
    }
    s += "<td>" + joules(num("energy_per_request_j")) + "</td>";
    const std::string source = text(at(sum, "energy_source"));
    s += "<td class=\"l\">" + (source.empty() ? na() : esc(source)) + "</td>";
    const auto confidence = num("confidence_mean");
    s += "<td>" + (confidence ? fixed(*confidence, 3) : na()) + "</td>";
    s += "<td>" + percent(num("decision_accuracy")) + "</td>";
    s += "<td>" + percent(num("cache_hit_rate")) + "</td>";
    s += "<td>" + integer(num("loads")) + "</td>";
    s += "<td>" + mib(num("peak_model_bytes")) + "</td>";
    s += "<td>" + mib(num("peak_rss_bytes")) + "</td>";
    s += "<td>" + ratio(num("latency_mean_ms"), base_latency) + "</td>";
    s += "<td>" + ratio(num("energy_per_request_j"), base_energy) + "</td>";
    s += "</tr>\n";
  }
  if (systems.empty()) {
    s += "<tr><td class=\"l\" colspan=\"" + std::to_string(std::size(headings)) +
         "\">No systems in this suite.</td></tr>\n";
  }
  s += "</tbody></table></div>\n<p class=\"note\">Latency and TTFT over successful requests. "
       "The ratio columns divide by the first system";
  if (!systems.empty()) s += " (" + esc(system_name(systems[0], 0)) + ")";
  s += ". Hover a system name for its description.</p>\n";

  // What each system is.
  s += "<h2>Systems</h2>\n<div class=\"scroll\"><table id=\"systems\"><thead><tr><th>System</th>"
       "<th>Group</th><th>Route</th><th>Config</th><th>Description</th></tr></thead><tbody>\n";
  for (size_t i = 0; i < systems.size(); ++i) {
    const json& system = systems[i];
    s += "<tr><td class=\"l\">" + swatch(i) + esc(system_name(system, i)) +
         "</td><td class=\"l\">" + esc(text(at(system, "group"))) + "</td><td class=\"l\">" +
         esc(text(at(system, "route"))) + "</td><td class=\"l\"><code>" +
         esc(text(at(system, "config"))) + "</code></td><td class=\"l\">" +
         esc(text(at(system, "description"))) + "</td></tr>\n";
  }
  return s + "</tbody></table></div>\n";
}

std::string quality_section(const json& suite) {
  const json& systems = systems_of(suite);
  const std::vector<std::string> domains = domains_of(suite);
  std::string s = "<h2>Quality per domain</h2>\n";
  if (domains.empty()) return s + "<p class=\"muted\">No quality figures in this suite.</p>\n";
  // The lowest perplexity per domain, to mark it.
  std::vector<std::optional<double>> best(domains.size());
  for (const json& system : systems) {
    if (failed(system)) continue;
    for (size_t d = 0; d < domains.size(); ++d) {
      const auto p = number(at(at(at(at(system, "summary"), "quality"), domains[d]), "perplexity"));
      if (p && (!best[d] || *p < *best[d])) best[d] = p;
    }
  }
  const json& workload_domains = at(at(suite, "workload"), "domains");
  s += "<div class=\"scroll\"><table id=\"quality\"><thead><tr><th>System</th>";
  for (const std::string& d : domains) {
    s += "<th>" + esc(d);
    if (const auto n = number(at(workload_domains, d))) {
      s += " <span class=\"muted\">(" + fixed(*n, 0) + ")</span>";
    }
    s += "</th>";
  }
  s += "<th>Unscored</th></tr></thead><tbody>\n";
  for (size_t i = 0; i < systems.size(); ++i) {
    const json& system = systems[i];
    s += failed(system) ? "<tr class=\"failed\">" : "<tr>";
    s += "<td class=\"l\">" + swatch(i) + esc(system_name(system, i)) + "</td>";
    if (failed(system)) {
      s += "<td class=\"l\" colspan=\"" + std::to_string(domains.size() + 1) +
           "\">failed</td></tr>\n";
      continue;
    }
    const json& quality = at(at(system, "summary"), "quality");
    for (size_t d = 0; d < domains.size(); ++d) {
      const json& q = at(quality, domains[d]);
      const auto perplexity = number(at(q, "perplexity"));
      const auto confidence = number(at(q, "confidence"));
      std::string title;
      if (const auto n = number(at(q, "n"))) title += "n=" + fixed(*n, 0);
      if (const auto t = number(at(q, "tokens")))
        title += (title.empty() ? "" : ", ") + std::string("tokens=") + fixed(*t, 0);
      if (const auto lp = number(at(q, "mean_logprob"))) {
        title += (title.empty() ? "" : ", ") + std::string("mean logprob=") + sig3(*lp);
      }
      const bool is_best = perplexity && best[d] && *perplexity == *best[d];
      s += "<td" + std::string(is_best ? " class=\"best\"" : "") +
           (title.empty() ? "" : " title=\"" + esc(title) + "\"") + ">" +
           (perplexity ? sig3(*perplexity) : na());
      if (confidence) s += " <span class=\"muted\">(" + fixed(*confidence, 2) + ")</span>";
      s += "</td>";
    }
    s += "<td>" + integer(number(at(at(system, "summary"), "unscored"))) + "</td></tr>\n";
  }
  return s +
         "</tbody></table></div>\n<p class=\"note\">Perplexity of the reference answers "
         "under each system, per domain (lower is better; the best in each column is in "
         "bold); in brackets the mean confidence. Hover a cell for its counts.</p>\n";
}

const char* const kStyle = R"(<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;padding:0 16px;max-width:1200px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:0 0 4px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}dl.meta dt{font-weight:600}dl.meta dd{margin:0}
code{font:12px ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th{background:#f4f4f4;position:sticky;top:0}th:first-child,td.l{text-align:left}
#systems th{text-align:left}#systems td{white-space:normal}
tr.failed td{color:#a31515}
td.best{font-weight:700}
.sw{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px;vertical-align:baseline}
.muted{color:#777}.note{color:#555;font-size:13px}
figure{margin:24px 0}figcaption{color:#555;font-size:13px;max-width:760px}
svg.plot{display:block;max-width:100%;height:auto;background:#fff}
svg.plot text{font-size:12px;fill:#333}svg.plot text.title{font-size:13px;fill:#222}
svg.plot text.muted,svg.plot text.nodata{fill:#888}
svg.plot .grid{stroke:#e6e6e6}svg.plot .axis,svg.plot .tick{stroke:#444}
</style>
)";

// Sets body[data-rendered] once the page is laid out: "ok" when every plot
// has a box and draws at least one mark, else "fail: why".
const char* const kCheckScript = R"(<script>
(function () {
  var why = '';
  var plots = document.querySelectorAll('svg.plot');
  if (plots.length === 0) why = 'no plots';
  for (var i = 0; i < plots.length && !why; i++) {
    var p = plots[i], box = p.getBoundingClientRect();
    if (!(box.width > 0 && box.height > 0)) { why = p.id + ' has an empty box'; break; }
    var marks = p.querySelectorAll('.mark'), drawn = false;
    for (var j = 0; j < marks.length && !drawn; j++) {
      try { var b = marks[j].getBBox(); drawn = b.width > 0 || b.height > 0; } catch (e) {}
    }
    if (!drawn) why = p.id + ' draws no mark';
  }
  document.body.dataset.rendered = why ? 'fail: ' + why : 'ok';
})();
</script>
)";

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (out) out.close();
  if (!out) {
    const int error = errno;
    throw std::runtime_error("cannot write " + path.string() +
                             (error ? std::string(": ") + std::strerror(error) : ""));
  }
}

}  // namespace

std::string suite_csv(const json& suite) {
  const std::vector<std::string> domains = domains_of(suite);
  std::vector<std::string> header = {"name", "group", "route"};
  for (const std::string& key : summary_keys()) header.push_back(key);
  for (const std::string& d : domains) {
    header.push_back(csv_field("perplexity_" + d));
    header.push_back(csv_field("confidence_" + d));
  }
  header.push_back("error");
  std::vector<std::vector<std::string>> rows = {std::move(header)};
  const json& systems = systems_of(suite);
  for (size_t i = 0; i < systems.size(); ++i) {
    const json& system = systems[i];
    const json& summary = at(system, "summary");
    std::vector<std::string> row = {csv_field(system_name(system, i)),
                                    csv_cell(at(system, "group")), csv_cell(at(system, "route"))};
    for (const std::string& key : summary_keys()) row.push_back(csv_cell(at(summary, key)));
    const json& quality = at(summary, "quality");
    for (const std::string& d : domains) {
      row.push_back(csv_cell(at(at(quality, d), "perplexity")));
      row.push_back(csv_cell(at(at(quality, d), "confidence")));
    }
    row.push_back(failed(system) ? csv_cell(at(system, "error")) : std::string());
    rows.push_back(std::move(row));
  }
  std::string out;
  for (const std::vector<std::string>& row : rows) {
    for (size_t k = 0; k < row.size(); ++k) {
      if (k) out += ',';
      out += row[k];
    }
    out += '\n';
  }
  return out;
}

std::string suite_html(const json& suite) {
  const std::string workload = text(at(at(suite, "workload"), "path"));
  std::string page =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n"
      "<title>calm report" +
      (workload.empty() ? "" : " \u2014 " + esc(workload)) + "</title>\n";
  page += kStyle;
  page += "</head><body>\n";
  page += header_section(suite);
  page += summary_section(suite);
  page += quality_section(suite);
  page += "<h2>Plots</h2>\n";
  page += latency_plot(suite);
  page += energy_plot(suite);
  page += quality_plot(suite);
  page += cache_plot(suite);
  page += kCheckScript;
  page += "</body></html>\n";
  return page;
}

void write_suite_report(const json& suite, const std::string& out_dir) {
  const std::filesystem::path dir(out_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    throw std::runtime_error("cannot create report directory " + out_dir +
                             (ec ? ": " + ec.message() : ""));
  }
  write_file(dir / "report.json", suite.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  write_file(dir / "report.csv", suite_csv(suite));
  write_file(dir / "report.html", suite_html(suite));
}

}  // namespace calm
