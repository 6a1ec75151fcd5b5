// The `calm bench suite` HTML report in a real browser: Debian's headless
// Chromium loads report.html from disk, runs the page's own check script
// (every plot has a box and draws a mark) and dumps the DOM, which must say
// data-rendered="ok". Skipped when no Chromium is installed
// (scripts/install-deps.sh installs Debian's `chromium`).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/suite_report.h"
#include "support/helpers.h"

extern char** environ;

namespace calm {
namespace {

using nlohmann::json;

// $CALM_CHROMIUM, else chromium or chromium-browser on PATH; empty if none.
std::string find_chromium() {
  if (const char* forced = std::getenv("CALM_CHROMIUM"); forced && *forced) return forced;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    for (const char* name : {"chromium", "chromium-browser"}) {
      const std::string candidate = dir + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return "";
}

struct BrowserRun {
  std::optional<int> exit_code;  // nullopt: killed after the timeout
  std::string dom;               // stdout
  std::string log;               // stderr
};

// Runs the browser in its own process group, stdout and stderr to files;
// kills the whole group (the browser and its helpers) when it hangs, and
// whatever of the group is left once it has exited.
BrowserRun run_browser(const std::vector<std::string>& argv, const std::string& dir,
                       std::chrono::seconds timeout) {
  const std::string out_path = dir + "/dom.html", err_path = dir + "/chromium.log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (spawned != 0) throw std::runtime_error("cannot start " + argv[0]);

  BrowserRun run;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(-pid, SIGKILL);  // helpers of the group that outlived the browser, if any
  run.dom = testing::read_bytes(out_path);
  run.log = testing::read_bytes(err_path);
  return run;
}

json records(double latency_ms, int n) {
  json out = json::array();
  for (int i = 0; i < n; ++i) {
    out.push_back({{"index", i},
                   {"t", 0.25 * i},
                   {"domain", i % 2 ? "code" : "maths"},
                   {"model", "auto"},
                   {"served_model", i % 2 ? "code-expert" : "maths-expert"},
                   {"status", i == 3 ? 503 : 200},
                   {"latency_ms", latency_ms * (1 + (i * 37) % 11)},
                   {"ttft_ms", latency_ms / 4},
                   {"completion_tokens", 16},
                   {"cache", i % 4 == 0 ? "miss" : "hit"},
                   {"energy_j", 0.5},
                   {"confidence", 0.5},
                   {"ref_tokens", 12},
                   {"ref_mean_logprob", -1.1}});
  }
  return out;
}

json make_system(const std::string& name, const std::string& group, double latency, double energy,
                 double perplexity) {
  return {
      {"name", name},
      {"description", "system " + name},
      {"group", group},
      {"config", name + ".yaml"},
      {"route", "auto"},
      {"summary",
       {{"requests", 40},
        {"completed", 39},
        {"errors", 1},
        {"errors_by_status", {{"503", 1}}},
        {"latency_mean_ms", latency * 5},
        {"latency_p50_ms", latency * 5},
        {"latency_p95_ms", latency * 10},
        {"latency_p99_ms", latency * 11},
        {"ttft_mean_ms", latency / 4},
        {"ttft_p95_ms", latency / 2},
        {"energy_per_request_j", energy},
        {"energy_source", "cpu-time"},
        {"confidence_mean", 0.5},
        {"decision_accuracy", 0.9},
        {"cache_hit_rate", 0.75},
        {"loads", 10},
        {"peak_model_bytes", 100 << 20},
        {"peak_rss_bytes", 300 << 20},
        {"wall_s", 10},
        {"throughput_rps", 4},
        {"quality",
         {{"maths", {{"n", 20}, {"tokens", 240}, {"perplexity", perplexity}, {"confidence", 0.4}}},
          {"code",
           {{"n", 20}, {"tokens", 240}, {"perplexity", perplexity + 1}, {"confidence", 0.6}}},
          {"all",
           {{"n", 40}, {"tokens", 480}, {"perplexity", perplexity + 0.5}, {"confidence", 0.5}}}}},
        {"unscored", 0}}},
      {"records", records(latency, 40)}};
}

json three_system_suite() {
  return {
      {"suite", "suite.yaml"},
      {"workload",
       {{"path", "workload.jsonl"}, {"requests", 40}, {"domains", {{"maths", 20}, {"code", 20}}}}},
      {"machine", {{"cpus", 2}, {"cpu_model", "Test CPU"}, {"hostname", "box"}}},
      {"started", "2025-01-01T00:00:00Z"},
      {"command", "calm bench suite suite.yaml --out results"},
      {"systems",
       {make_system("full <calm>", "headline", 40, 2.5, 3.0),
        make_system("random, \"routing\"", "baseline", 90, 4.0, 4.2),
        make_system("oracle", "bound", 20, 1.5, 2.6)}}};
}

// Renders the suite's report in headless Chromium; "" when there is none.
std::string render(const json& suite, testing::TempDir& dir, std::string* log) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) return "";
  const std::string out = dir.file("report");
  write_suite_report(suite, out);
  const std::string page = std::filesystem::absolute(out + "/report.html").string();
  const BrowserRun run =
      run_browser({chromium, "--headless", "--no-sandbox", "--disable-gpu",
                   "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                   "--user-data-dir=" + dir.file("profile"), "--dump-dom", "file://" + page},
                  dir.file(""), std::chrono::seconds(60));
  *log = run.log.size() > 4000 ? run.log.substr(run.log.size() - 4000) : run.log;
  EXPECT_TRUE(run.exit_code.has_value()) << "chromium hung for 60 s and was killed";
  return run.dom;
}

std::string rendered_status(const std::string& dom) {
  std::smatch m;
  static const std::regex attribute("data-rendered=\"([^\"]*)\"");
  return std::regex_search(dom, m, attribute) ? m[1].str() : "(no data-rendered attribute)";
}

size_t plots(const std::string& dom) {
  size_t n = 0;
  for (size_t at = dom.find("<svg class=\"plot\""); at != std::string::npos;
       at = dom.find("<svg class=\"plot\"", at + 1)) {
    ++n;
  }
  return n;
}

TEST(ReportRender, RendersInHeadlessChromium) {
  if (find_chromium().empty()) {
    GTEST_SKIP() << "no chromium on PATH: install Debian's chromium package "
                    "(scripts/install-deps.sh does) to check the HTML report renders";
  }
  testing::TempDir dir("report-render");
  std::string log;
  const std::string dom = render(three_system_suite(), dir, &log);
  ASSERT_FALSE(dom.empty()) << "chromium dumped no DOM; its log:\n" << log;
  EXPECT_EQ(rendered_status(dom), "ok") << log;
  EXPECT_EQ(plots(dom), 4u);
  EXPECT_NE(dom.find("full &lt;calm&gt;"), std::string::npos);  // escaped, not parsed as a tag
}

TEST(ReportRender, DegenerateSuiteRendersInHeadlessChromium) {
  if (find_chromium().empty()) {
    GTEST_SKIP() << "no chromium on PATH: install Debian's chromium package "
                    "(scripts/install-deps.sh does) to check the HTML report renders";
  }
  json suite = three_system_suite();
  suite["systems"] = {make_system("only", "headline", 0, 0, 1),
                      {{"name", "broken"}, {"error", "calm serve exited with 1"}}};
  suite["systems"][0]["records"] = json::array();
  suite["systems"][0]["summary"]["quality"] = nullptr;
  testing::TempDir dir("report-render");
  std::string log;
  const std::string dom = render(suite, dir, &log);
  ASSERT_FALSE(dom.empty()) << "chromium dumped no DOM; its log:\n" << log;
  EXPECT_EQ(rendered_status(dom), "ok") << log;
  EXPECT_EQ(plots(dom), 4u);
}

}  // namespace
}  // namespace calm
