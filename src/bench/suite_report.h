// The evaluation report of `calm bench suite`: what suite.json holds (one
// workload replayed against several systems) as a spreadsheet row per system
// and as one self-contained HTML page with tables and plots.
//
// The input is the suite JSON as the suite command writes it:
//   {"suite": path, "workload": {"path", "requests", "domains": {name: n}},
//    "machine": {"cpus", "cpu_model", "hostname"}, "started": ISO time,
//    "command": "calm bench suite ...",
//    "systems": [{"name", "description", "group", "config", "route",
//                 "summary": {...}, "records": [...]}, ...]}
// A system that could not run carries "error": "..." instead of a summary
// and records, and is shown as a failed row. Any value may be null or
// missing (shown as an empty cell or "n/a"); values of the wrong type are
// treated as null. Nothing here throws on odd data.
//
// The page needs nothing from outside: inline CSS, SVG drawn here (no
// script library, no fonts, no URLs). A tiny inline script at its end checks
// that every <svg class="plot"> has a non-zero box and draws at least one
// mark, then sets <body data-rendered="ok"> (or "fail: why"), so a headless
// browser can confirm the page renders. Text from the JSON is HTML-escaped.
//
// Free functions over values: safe from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace calm {

// Writes report.json (the suite as given, pretty-printed), report.csv and
// report.html into out_dir, creating it if missing. Throws std::runtime_error
// naming the directory or file it could not write.
void write_suite_report(const nlohmann::json& suite, const std::string& out_dir);

// A header line, then one line per system: name, group, route, requests,
// completed, errors, latency_mean_ms, latency_p50_ms, latency_p95_ms,
// latency_p99_ms, ttft_mean_ms, ttft_p95_ms, energy_per_request_j,
// energy_source, confidence_mean, decision_accuracy, cache_hit_rate, loads,
// peak_model_bytes, peak_rss_bytes, then perplexity_<domain> and
// confidence_<domain> for each domain found in the systems' quality or the
// workload (sorted, "all" last), then error (empty unless the system
// failed). Numbers as in the JSON (raw units), an empty cell for null; text
// quoted per RFC 4180 when needed. Lines end in "\n".
std::string suite_csv(const nlohmann::json& suite);

// The whole report as one HTML page (see above).
std::string suite_html(const nlohmann::json& suite);

}  // namespace calm
