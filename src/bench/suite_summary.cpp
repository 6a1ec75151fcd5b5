#include "bench/suite_summary.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "bench/bench_stats.h"

namespace calm {
namespace {

using json = nlohmann::json;

json optional_number(const std::optional<double>& value) {
  return value && std::isfinite(*value) ? json(*value) : json(nullptr);
}

// Running mean of the known values; null when none.
struct Mean {
  double sum = 0;
  size_t n = 0;
  void add(const std::optional<double>& value) {
    if (!value || !std::isfinite(*value)) return;
    sum += *value;
    ++n;
  }
  json value() const { return n ? json(sum / static_cast<double>(n)) : json(nullptr); }
};

// The quality figures of a set of records.
struct Quality {
  size_t n = 0;
  int64_t tokens = 0;
  double logprob_sum = 0;  // sum over tokens
  Mean confidence;

  void add(const SuiteRecord& r) {
    confidence.add(r.confidence);
    if (!r.ref_tokens || !r.ref_mean_logprob || *r.ref_tokens <= 0) return;
    ++n;
    tokens += *r.ref_tokens;
    logprob_sum += *r.ref_mean_logprob * *r.ref_tokens;
  }
  json to_json() const {
    const bool scored = tokens > 0;
    const double mean = scored ? logprob_sum / static_cast<double>(tokens) : 0;
    return {{"n", n},
            {"tokens", tokens},
            {"mean_logprob", scored ? json(mean) : json(nullptr)},
            {"perplexity", scored ? json(std::exp(-mean)) : json(nullptr)},
            {"confidence", confidence.value()}};
  }
};

// A number at state[path...] when present, else nullopt.
std::optional<double> state_number(const json& state, std::initializer_list<const char*> path) {
  const json* node = &state;
  for (const char* key : path) {
    if (!node->is_object() || !node->contains(key)) return std::nullopt;
    node = &(*node)[key];
  }
  if (!node->is_number()) return std::nullopt;
  return node->get<double>();
}

// The number at state[path...] as it is (an integer stays one), else null.
json state_value(const json& state, std::initializer_list<const char*> path) {
  const json* node = &state;
  for (const char* key : path) {
    if (!node->is_object() || !node->contains(key)) return nullptr;
    node = &(*node)[key];
  }
  return node->is_number() ? *node : json(nullptr);
}

}  // namespace

json suite_record_json(const SuiteRecord& s) {
  const RequestRecord& r = s.request;
  json out = {{"index", r.index},
              {"t", r.t},
              {"domain", r.domain},
              {"model", r.model},
              {"served_model", r.served_model},
              {"status", r.status},
              {"latency_ms", r.latency_ms},
              {"ttft_ms", optional_number(r.ttft_ms)},
              {"completion_tokens", r.completion_tokens},
              {"cache", r.cache},
              {"energy_j", optional_number(s.energy_j)},
              {"confidence", optional_number(s.confidence)},
              {"ref_tokens", s.ref_tokens ? json(*s.ref_tokens) : json(nullptr)},
              {"ref_mean_logprob", optional_number(s.ref_mean_logprob)}};
  if (!r.error.empty()) out["error"] = r.error;
  return out;
}

json summarize_suite_system(const std::vector<SuiteRecord>& records, const json& state,
                            const SuiteRoute& route,
                            const std::map<std::string, std::string>& domains, double wall_s) {
  std::vector<RequestRecord> plain;
  plain.reserve(records.size());
  for (const SuiteRecord& r : records) plain.push_back(r.request);
  const BenchStats stats = summarize(plain, wall_s);
  const bool any = stats.completed > 0;

  Mean energy, confidence;
  std::map<std::string, size_t> sources;
  std::map<std::string, Quality> quality;
  Quality all;
  size_t unscored = 0, judged = 0, right = 0;
  bool any_ttft = false;
  for (const SuiteRecord& r : records) {
    if (!r.request.ok()) continue;
    any_ttft = any_ttft || r.request.ttft_ms.has_value();
    energy.add(r.energy_j);
    if (r.energy_j && !r.energy_source.empty()) ++sources[r.energy_source];
    confidence.add(r.confidence);
    quality[r.request.domain.empty() ? "unlabelled" : r.request.domain].add(r);
    all.add(r);
    if (r.has_reference && !r.ref_tokens) ++unscored;
    if (const auto it = domains.find(r.request.domain); it != domains.end()) {
      ++judged;
      right += r.request.served_model == it->second ? 1 : 0;
    }
  }
  // The meter that measured most requests (a fleet has one meter; this only
  // matters for a file mixing runs).
  std::string source;
  size_t most = 0;
  for (const auto& [name, count] : sources) {
    if (count > most) source = name, most = count;
  }

  json by_status = json::object();
  for (const auto& [status, count] : stats.errors_by_status) {
    by_status[std::to_string(status)] = count;
  }
  json quality_json = json::object();
  for (const auto& [domain, q] : quality) quality_json[domain] = q.to_json();
  quality_json["all"] = all.to_json();

  std::optional<double> hit_rate, loads;
  if (state.is_object() && state.contains("cache") && state["cache"].is_object() &&
      state["cache"].contains("models") && state["cache"]["models"].is_object()) {
    double hits = 0, misses = 0, load_sum = 0;
    for (const auto& [id, m] : state["cache"]["models"].items()) {
      hits += state_number(m, {"hits"}).value_or(0);
      misses += state_number(m, {"misses"}).value_or(0);
      load_sum += state_number(m, {"loads"}).value_or(0);
    }
    if (hits + misses > 0) hit_rate = hits / (hits + misses);
    loads = load_sum;
  }

  const bool fixed = route.kind == SuiteRoute::Kind::kModel;
  return {{"requests", stats.requests},
          {"completed", stats.completed},
          {"errors", stats.errors},
          {"errors_by_status", by_status},
          {"latency_mean_ms", any ? json(stats.latency_mean_ms) : json(nullptr)},
          {"latency_p50_ms", any ? json(stats.latency_p50_ms) : json(nullptr)},
          {"latency_p95_ms", any ? json(stats.latency_p95_ms) : json(nullptr)},
          {"latency_p99_ms", any ? json(stats.latency_p99_ms) : json(nullptr)},
          {"ttft_mean_ms", any_ttft ? json(stats.ttft_mean_ms) : json(nullptr)},
          {"ttft_p95_ms", any_ttft ? json(stats.ttft_p95_ms) : json(nullptr)},
          {"energy_per_request_j", energy.value()},
          {"energy_source", source.empty() ? json(nullptr) : json(source)},
          {"confidence_mean", confidence.value()},
          {"decision_accuracy", !fixed && judged > 0
                                    ? json(static_cast<double>(right) / static_cast<double>(judged))
                                    : json(nullptr)},
          {"cache_hit_rate", optional_number(hit_rate)},
          {"loads", loads ? json(static_cast<int64_t>(*loads)) : json(nullptr)},
          {"peak_model_bytes", state_value(state, {"cache", "peak_used_bytes"})},
          {"peak_rss_bytes", state_value(state, {"process", "peak_rss_bytes"})},
          {"wall_s", wall_s},
          {"throughput_rps", stats.throughput_rps},
          {"quality", quality_json},
          {"unscored", unscored}};
}

namespace {

// A number from obj[key] with `decimals`, or "-".
std::string cell(const json& obj, const char* key, int decimals, double scale = 1) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_number()) return "-";
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << obj[key].get<double>() * scale;
  return out.str();
}

}  // namespace

std::string suite_table(const json& suite) {
  const std::vector<std::string> head = {"system", "done",  "mean ms", "p95 ms", "J/req",
                                         "ppl",    "acc %", "hit %",   "loads"};
  std::vector<std::vector<std::string>> rows = {head};
  std::vector<std::string> errors;
  if (suite.is_object() && suite.contains("systems") && suite["systems"].is_array()) {
    for (const json& system : suite["systems"]) {
      if (!system.is_object()) continue;
      const std::string name = system.value("name", std::string("?"));
      if (system.contains("error") && system["error"].is_string()) {
        rows.push_back({name, "FAILED"});
        errors.push_back(name + ": " + system["error"].get<std::string>());
        continue;
      }
      const json summary = system.value("summary", json::object());
      const json all = summary.contains("quality") && summary["quality"].is_object()
                           ? summary["quality"].value("all", json::object())
                           : json::object();
      rows.push_back({name, cell(summary, "completed", 0) + "/" + cell(summary, "requests", 0),
                      cell(summary, "latency_mean_ms", 0), cell(summary, "latency_p95_ms", 0),
                      cell(summary, "energy_per_request_j", 3), cell(all, "perplexity", 2),
                      cell(summary, "decision_accuracy", 1, 100),
                      cell(summary, "cache_hit_rate", 1, 100), cell(summary, "loads", 0)});
    }
  }
  std::vector<size_t> width(head.size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::ostringstream out;
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      // The name left-aligned, the numbers right-aligned.
      if (c == 0) {
        out << std::left << std::setw(static_cast<int>(width[c])) << row[c];
      } else {
        out << "  " << std::right << std::setw(static_cast<int>(width[c])) << row[c];
      }
    }
    out << "\n";
  }
  for (const std::string& e : errors) out << "failed: " << e << "\n";
  return out.str();
}

}  // namespace calm
