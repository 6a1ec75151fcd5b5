// The `calm bench suite` report (CSV and HTML) on hand-made suite JSON:
// shape, quoting and escaping, no outside references, and finite output for
// degenerate suites.
#include "bench/suite_report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/helpers.h"

namespace calm {
namespace {

using nlohmann::json;

json summary(double latency_mean_ms, double energy_j, double perplexity) {
  return {{"requests", 4},
          {"completed", 4},
          {"errors", 0},
          {"errors_by_status", json::object()},
          {"latency_mean_ms", latency_mean_ms},
          {"latency_p50_ms", latency_mean_ms},
          {"latency_p95_ms", latency_mean_ms * 2},
          {"latency_p99_ms", latency_mean_ms * 3},
          {"ttft_mean_ms", 12.5},
          {"ttft_p95_ms", 30},
          {"energy_per_request_j", energy_j},
          {"energy_source", "cpu-time"},
          {"confidence_mean", 0.42},
          {"decision_accuracy", 0.97},
          {"cache_hit_rate", 0.75},
          {"loads", 3},
          {"peak_model_bytes", 52428800},
          {"peak_rss_bytes", 104857600},
          {"wall_s", 2},
          {"throughput_rps", 2},
          {"quality",
           {{"maths",
             {{"n", 2},
              {"tokens", 20},
              {"mean_logprob", -1.2},
              {"perplexity", perplexity},
              {"confidence", 0.4}}},
            {"code",
             {{"n", 2},
              {"tokens", 20},
              {"mean_logprob", -1.0},
              {"perplexity", 2.7},
              {"confidence", 0.5}}},
            {"all",
             {{"n", 4},
              {"tokens", 40},
              {"mean_logprob", -1.1},
              {"perplexity", 3.0},
              {"confidence", 0.45}}}}},
          {"unscored", 0}};
}

json records(double latency_scale) {
  json out = json::array();
  const char* caches[] = {"miss", "hit", "hit", "hit"};
  for (int i = 0; i < 4; ++i) {
    out.push_back({{"index", i},
                   {"t", 0.5 * i},
                   {"domain", i % 2 ? "code" : "maths"},
                   {"model", "auto"},
                   {"served_model", "m"},
                   {"status", 200},
                   {"latency_ms", latency_scale * (i + 1)},
                   {"ttft_ms", 5},
                   {"completion_tokens", 8},
                   {"cache", caches[i]},
                   {"energy_j", 0.1},
                   {"confidence", 0.5},
                   {"ref_tokens", 10},
                   {"ref_mean_logprob", -1.1}});
  }
  return out;
}

json make_system(const std::string& name, double latency, double energy, double perplexity) {
  return {{"name", name},
          {"description", "a system"},
          {"group", "baseline"},
          {"config", "fleet.yaml"},
          {"route", "auto"},
          {"summary", summary(latency, energy, perplexity)},
          {"records", records(latency / 2)}};
}

json suite(json systems) {
  return {{"suite", "suite.yaml"},
          {"workload",
           {{"path", "workload.jsonl"}, {"requests", 4}, {"domains", {{"maths", 2}, {"code", 2}}}}},
          {"machine", {{"cpus", 2}, {"cpu_model", "Test CPU"}, {"hostname", "box"}}},
          {"started", "2025-01-01T00:00:00Z"},
          {"command", "calm bench suite suite.yaml"},
          {"systems", std::move(systems)}};
}

json three_systems() {
  return suite({make_system("full", 100, 2.0, 3.3), make_system("no-cache", 200, 4.0, 3.1),
                make_system("oracle", 50, 1.0, 2.9)});
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

size_t occurrences(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// "nan", "inf", "-nan", "infinity" as a word (not inside "info").
bool has_non_finite(const std::string& text) {
  static const std::regex word("(^|[^A-Za-z])(nan|inf|infinity)([^A-Za-z]|$)", std::regex::icase);
  return std::regex_search(text, word);
}

TEST(SuiteReport, CsvHasHeaderAndOneRowPerSystem) {
  const auto rows = lines(suite_csv(three_systems()));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0],
            "name,group,route,requests,completed,errors,latency_mean_ms,latency_p50_ms,"
            "latency_p95_ms,latency_p99_ms,ttft_mean_ms,ttft_p95_ms,energy_per_request_j,"
            "energy_source,confidence_mean,decision_accuracy,cache_hit_rate,loads,"
            "peak_model_bytes,peak_rss_bytes,perplexity_code,confidence_code,perplexity_maths,"
            "confidence_maths,perplexity_all,confidence_all,error");
  EXPECT_EQ(rows[1],
            "full,baseline,auto,4,4,0,100,100,200,300,12.5,30,2,cpu-time,0.42,0.97,0.75,3,"
            "52428800,104857600,2.7,0.5,3.3,0.4,3,0.45,");
  EXPECT_EQ(rows[2].substr(0, 9), "no-cache,");
  EXPECT_EQ(rows[3].substr(0, 7), "oracle,");
}

TEST(SuiteReport, CsvQuotesTextFieldsPerRfc4180) {
  json s = three_systems();
  s["systems"][0]["name"] = "fast, \"cheap\"";
  s["systems"][1]["route"] = "line\nbreak";
  const std::string csv = suite_csv(s);
  EXPECT_NE(csv.find("\n\"fast, \"\"cheap\"\"\",baseline,auto,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",\"line\nbreak\","), std::string::npos) << csv;
}

TEST(SuiteReport, CsvLeavesNullAndNonFiniteCellsEmpty) {
  json s = suite({make_system("a", 100, 1, 3)});
  s["systems"][0]["summary"]["latency_mean_ms"] = nullptr;
  s["systems"][0]["summary"]["energy_per_request_j"] = std::nan("");
  s["systems"][0]["summary"]["confidence_mean"] = INFINITY;
  const auto rows = lines(suite_csv(s));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].substr(0, 20), "a,baseline,auto,4,4,");
  EXPECT_NE(rows[1].find("4,4,0,,100,"), std::string::npos) << rows[1];
  EXPECT_NE(rows[1].find(",30,,cpu-time,,0.97,"), std::string::npos) << rows[1];
  EXPECT_FALSE(has_non_finite(rows[1])) << rows[1];
}

TEST(SuiteReport, CsvShowsFailedSystemAsRowWithError) {
  json s = three_systems();
  s["systems"][1] = {
      {"name", "broken"}, {"group", "ablation"}, {"error", "calm serve exited with 1"}};
  const auto rows = lines(suite_csv(s));
  ASSERT_EQ(rows.size(), 4u);
  // No route, 17 empty summary cells, 6 empty quality cells, then the error.
  EXPECT_EQ(rows[2], "broken,ablation," + std::string(23, ',') + ",calm serve exited with 1");
}

TEST(SuiteReport, HtmlEscapesSystemNames) {
  json s = three_systems();
  s["systems"][0]["name"] = "<script>alert(1)</script>";
  s["systems"][1]["description"] = "a & b \"quoted\" 'single' <b>";
  s["command"] = "calm bench suite <x>";
  s["workload"]["domains"]["<img>"] = 1;
  const std::string html = suite_html(s);
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_NE(html.find("a &amp; b &quot;quoted&quot; &#39;single&#39; &lt;b&gt;"),
            std::string::npos);
  EXPECT_EQ(html.find("<x>"), std::string::npos);
  EXPECT_EQ(html.find("<img>"), std::string::npos);
  EXPECT_EQ(occurrences(html, "<script"), 1u);  // only the page's own check
}

TEST(SuiteReport, HtmlHasNoExternalReferences) {
  const std::string html = suite_html(three_systems());
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find(" src="), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  for (size_t at = html.find("href=\""); at != std::string::npos;
       at = html.find("href=\"", at + 1)) {
    EXPECT_EQ(html[at + 6], '#') << html.substr(at, 60);
  }
}

TEST(SuiteReport, HtmlHasFourPlotsWithMarksAndLegends) {
  const std::string html = suite_html(three_systems());
  EXPECT_EQ(occurrences(html, "<svg class=\"plot\""), 4u);
  for (const char* id : {"plot-latency", "plot-energy", "plot-quality", "plot-cache"}) {
    EXPECT_NE(html.find(std::string("id=\"") + id + "\""), std::string::npos) << id;
  }
  EXPECT_EQ(occurrences(html, "<polyline class=\"mark\""), 6u);  // CDF + cache, 3 systems each
  EXPECT_EQ(occurrences(html, "<rect class=\"mark\""), 3u);      // energy bars
  EXPECT_EQ(occurrences(html, "<circle class=\"mark\""), 3u);    // quality points
  EXPECT_EQ(occurrences(html, "<g class=\"legend\">"), 3u);      // the bar chart is labelled
  EXPECT_EQ(occurrences(html, "class=\"mark nodata\""), 0u);
  EXPECT_NE(html.find("document.body.dataset.rendered"), std::string::npos);
  EXPECT_FALSE(has_non_finite(html));
}

TEST(SuiteReport, HtmlUsesOneColourPerSystemAcrossPlots) {
  const std::string html = suite_html(three_systems());
  // Tables (summary, systems, quality), 4 plots: the third colour is used by
  // the third system only.
  EXPECT_GE(occurrences(html, "#e15759"), 3u + 4u + 3u);  // swatches, marks, legend swatches
}

TEST(SuiteReport, HtmlComparesWithFirstSystem) {
  const std::string html = suite_html(three_systems());
  EXPECT_NE(html.find("<td>2.00\u00d7</td><td>2.00\u00d7</td>"), std::string::npos);  // no-cache
  EXPECT_NE(html.find("<td>0.50\u00d7</td><td>0.50\u00d7</td>"), std::string::npos);  // oracle
}

TEST(SuiteReport, HtmlMarksBestPerplexityPerDomain) {
  const std::string html = suite_html(three_systems());
  EXPECT_NE(html.find("<td class=\"best\" title=\"n=2, tokens=20, mean logprob=-1.20\">2.90"),
            std::string::npos);
}

// Suites a report must survive: every one gives a page with four plots and no
// NaN or infinity anywhere, and a CSV with one row per system.
std::vector<std::pair<std::string, json>> degenerate_suites() {
  std::vector<std::pair<std::string, json>> out;
  out.emplace_back("one system", suite({make_system("only", 100, 2, 3)}));
  out.emplace_back("only a failed system",
                   suite({{{"name", "broken"}, {"error", "no such config"}}}));
  json failed_first = three_systems();
  failed_first["systems"][0] = {{"name", "first"}, {"error", "boom"}};
  out.emplace_back("failed baseline", failed_first);
  json nulls = suite({make_system("a", 1, 1, 1), make_system("b", 1, 1, 1)});
  for (json& s : nulls["systems"]) {
    for (auto& item : s["summary"].items()) item.value() = nullptr;
    for (json& r : s["records"]) {
      for (auto& item : r.items()) item.value() = nullptr;
    }
  }
  out.emplace_back("all nulls", nulls);
  json no_records = three_systems();
  for (json& s : no_records["systems"]) s["records"] = json::array();
  out.emplace_back("no records", no_records);
  json no_record_key = three_systems();
  for (json& s : no_record_key["systems"]) s.erase("records");
  out.emplace_back("no records key", no_record_key);
  json zero_range = suite({make_system("a", 0, 0, 1), make_system("b", 0, 0, 1)});
  for (json& s : zero_range["systems"]) {
    for (json& r : s["records"]) r["latency_ms"] = 0, r["t"] = 0;
  }
  out.emplace_back("zero ranges", zero_range);
  json same = suite({make_system("a", 7, 3, 2), make_system("b", 7, 3, 2)});
  for (json& s : same["systems"]) {
    for (json& r : s["records"]) r["latency_ms"] = 7, r["t"] = 1.5;
  }
  out.emplace_back("identical values", same);
  json non_finite = suite({make_system("a", 1, 1, 1)});
  non_finite["systems"][0]["summary"]["latency_mean_ms"] = INFINITY;
  non_finite["systems"][0]["summary"]["energy_per_request_j"] = -INFINITY;
  non_finite["systems"][0]["records"][0]["latency_ms"] = std::nan("");
  non_finite["systems"][0]["records"][1]["t"] = INFINITY;
  out.emplace_back("non-finite values", non_finite);
  json huge = suite({make_system("a", 1e300, 1e300, 1e300), make_system("b", -1e300, -5, -1)});
  out.emplace_back("huge and negative values", huge);
  json wrong_types = suite({make_system("a", 1, 1, 1)});
  wrong_types["systems"][0]["summary"]["latency_mean_ms"] = "fast";
  wrong_types["systems"][0]["summary"]["quality"] = "none";
  wrong_types["systems"][0]["records"] = {1, "two", nullptr};
  wrong_types["workload"] = "w";
  wrong_types["machine"] = json::array();
  out.emplace_back("wrong types", wrong_types);
  out.emplace_back("no systems", suite(json::array()));
  out.emplace_back("empty object", json::object());
  out.emplace_back("null", json());
  return out;
}

TEST(SuiteReport, DegenerateSuitesGiveFiniteOutputWithFourPlots) {
  for (const auto& [label, s] : degenerate_suites()) {
    SCOPED_TRACE(label);
    std::string html;
    ASSERT_NO_THROW(html = suite_html(s));
    EXPECT_EQ(occurrences(html, "<svg class=\"plot\""), 4u);
    EXPECT_FALSE(has_non_finite(html));
    EXPECT_NE(html.find("</html>"), std::string::npos);
    std::string csv;
    ASSERT_NO_THROW(csv = suite_csv(s));
    EXPECT_FALSE(has_non_finite(csv)) << csv;
    const size_t systems = s.is_object() && s.contains("systems") ? s["systems"].size() : 0;
    EXPECT_EQ(lines(csv).size(), 1 + systems);
  }
}

TEST(SuiteReport, FailedSystemIsAFailedRowAndLeftOutOfPlots) {
  json s = three_systems();
  s["systems"][1] = {{"name", "broken"}, {"group", "ablation"}, {"error", "calm serve exited"}};
  const std::string html = suite_html(s);
  EXPECT_NE(html.find("<tr class=\"failed\">"), std::string::npos);
  EXPECT_NE(html.find("failed: calm serve exited"), std::string::npos);
  EXPECT_NE(html.find("broken (failed)"), std::string::npos);
  EXPECT_EQ(occurrences(html, "<polyline class=\"mark\""), 4u);
}

TEST(SuiteReport, LongSeriesAreDownsampled) {
  json s = suite({make_system("big", 100, 1, 3)});
  json& recs = s["systems"][0]["records"];
  recs = json::array();
  for (int i = 0; i < 20000; ++i) {
    recs.push_back({{"t", i * 0.01},
                    {"status", 200},
                    {"latency_ms", 1 + (i * 7919) % 5000},
                    {"cache", i % 3 ? "hit" : "miss"}});
  }
  const std::string html = suite_html(s);
  EXPECT_LT(html.size(), 60000u);
  for (size_t at = html.find("points=\""); at != std::string::npos;
       at = html.find("points=\"", at + 1)) {
    const size_t end = html.find('"', at + 8);
    EXPECT_LE(occurrences(html.substr(at, end - at), ","), 201u);
  }
}

TEST(SuiteReport, WritesJsonCsvAndHtmlIntoANewDirectory) {
  testing::TempDir dir("suite-report");
  const std::string out = dir.file("a/b");
  const json s = three_systems();
  write_suite_report(s, out);
  EXPECT_EQ(json::parse(testing::read_bytes(out + "/report.json")), s);
  EXPECT_EQ(testing::read_bytes(out + "/report.csv"), suite_csv(s));
  EXPECT_EQ(testing::read_bytes(out + "/report.html"), suite_html(s));
}

TEST(SuiteReport, UnwritableDirectoryErrorNamesIt) {
  testing::TempDir dir("suite-report");
  testing::write_bytes(dir.file("file"), "x");
  const std::string out = dir.file("file/report");
  try {
    write_suite_report(three_systems(), out);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(out), std::string::npos) << e.what();
  }
}

TEST(SuiteReport, UnwritableFileErrorNamesIt) {
  testing::TempDir dir("suite-report");
  std::filesystem::create_directories(dir.file("out/report.csv"));  // a directory in the way
  try {
    write_suite_report(three_systems(), dir.file("out"));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("report.csv"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace calm
