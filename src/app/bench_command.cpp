// calm bench: replay a workload against any OpenAI-compatible server and
// report latency, time to first token and throughput; generate a workload;
// or replay one workload against several calm configurations and report
// every metric of each (the evaluation).
//
//   calm bench workload --out w.jsonl --requests 500 --rate 4 --arrival bursty
//                       --models a,b,c --mix 0.5,0.3,0.2 --locality 0.2
//   calm bench workload --out w.jsonl --pool pool.jsonl --domain-mix maths=2,code=1
//   calm bench run --url http://127.0.0.1:8080 --workload w.jsonl
//                  --concurrency 8 --label calm --out results.json
//   calm bench suite --suite suite.yaml [--workload w.jsonl] [--out DIR]
//                    [--only a,b] [--seed N]
//   calm bench report --in DIR/suite.json --out DIR
//
// Exit codes: 0 done; 1 every request failed (run), a system failed (suite),
// or an output file could not be written; 2 bad options, a bad workload,
// pool, prompts or suite file (the message names the file, the line and the
// field), or a bad URL.
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "bench/bench_report.h"
#include "bench/bench_stats.h"
#include "bench/progress_bar.h"
#include "bench/replayer.h"
#include "bench/suite_config.h"
#include "bench/suite_report.h"
#include "bench/suite_runner.h"
#include "bench/suite_summary.h"
#include "bench/workload.h"

namespace calm {
namespace {

// CLI::PositiveNumber's message prints DBL_MAX in full; this one says "> 0".
const CLI::Validator kPositive(
    [](std::string& text) -> std::string {
      try {
        size_t end = 0;
        const double value = std::stod(text, &end);
        if (end == text.size() && std::isfinite(value) && value > 0) return "";
      } catch (const std::exception&) {
      }
      return "must be a number > 0, got '" + text + "'";
    },
    "POSITIVE");

std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::vector<std::string> prompts;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) prompts.push_back(line);
  }
  if (prompts.empty()) throw std::runtime_error(path + ": no prompt (one per line)");
  return prompts;
}

// Opens an output file before the run, so a bad path fails in a second
// rather than after an hour of benchmarking.
std::unique_ptr<std::ofstream> open_output(const std::string& path) {
  if (path.empty()) return nullptr;
  auto out = std::make_unique<std::ofstream>(path, std::ios::trunc);
  if (!*out) throw std::runtime_error(path + ": cannot open for writing");
  return out;
}

void print_errors(const BenchStats& stats, const std::vector<RequestRecord>& records) {
  if (stats.errors == 0) return;
  std::cerr << "errors by status:";
  for (const auto& [status, count] : stats.errors_by_status) {
    std::cerr << " " << status << " x" << count;
  }
  std::cerr << " (0: no complete answer)\n";
  for (const RequestRecord& r : records) {
    if (!r.ok()) {
      std::cerr << "first error (request " << r.index << ", model " << r.model << "): " << r.error
                << "\n";
      break;
    }
  }
}

struct RunArgs {
  std::string url;
  std::string workload;
  int concurrency = 8;
  std::string model = "auto";
  bool ignore_eos = false;
  std::string label;
  std::string out, csv;
  bool progress = false, no_progress = false;
  int timeout_s = 600;
};

int run_bench(const RunArgs& args) {
  std::signal(SIGPIPE, SIG_IGN);  // a server closing mid-write must not kill us
  std::vector<WorkloadRequest> workload;
  std::unique_ptr<ProgressBar> bar;
  std::unique_ptr<Replayer> replayer;
  std::unique_ptr<std::ofstream> json_out, csv_out;
  try {
    workload = load_workload(args.workload);
    const bool terminal = ::isatty(STDERR_FILENO) == 1;
    if (!args.no_progress && (terminal || args.progress)) {
      bar = std::make_unique<ProgressBar>(workload.size(), terminal);
    }
    ReplayOptions options;
    options.base_url = args.url;
    options.concurrency = args.concurrency;
    options.default_model = args.model;
    options.ignore_eos = args.ignore_eos;
    options.read_timeout = std::chrono::seconds(args.timeout_s);
    options.on_record = [bar = bar.get()](const RequestRecord&, size_t done, size_t errors) {
      if (bar) bar->update(done, errors);
    };
    replayer = std::make_unique<Replayer>(std::move(options));
    json_out = open_output(args.out);
    csv_out = open_output(args.csv);
  } catch (const std::exception& e) {
    std::cerr << "calm bench run: " << e.what() << "\n";
    return 2;
  }

  const std::optional<nlohmann::json> state_before = replayer->fetch_calm_state();
  ReplayResult result;
  try {
    result = replayer->run(workload);
  } catch (const std::exception& e) {  // e.g. no thread could be started
    std::cerr << "calm bench run: " << e.what() << "\n";
    return 1;
  }
  const std::optional<nlohmann::json> state_after =
      state_before ? replayer->fetch_calm_state() : std::nullopt;

  const BenchStats stats = summarize(result.records, result.wall_s);
  const std::string label = args.label.empty() ? args.url : args.label;
  std::cout << table_header() << table_row(label, stats) << std::flush;
  print_errors(stats, result.records);

  int code = stats.completed == 0 ? 1 : 0;
  if (json_out) {
    nlohmann::json out = {{"label", label},
                          {"url", args.url},
                          {"workload", args.workload},
                          {"concurrency", args.concurrency},
                          {"default_model", args.model},
                          {"ignore_eos", args.ignore_eos},
                          {"summary", to_json(stats)},
                          {"records", nlohmann::json::array()}};
    for (const RequestRecord& r : result.records) out["records"].push_back(to_json(r));
    if (state_before) out["state_before"] = *state_before;
    if (state_after) out["state_after"] = *state_after;
    *json_out << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    json_out->flush();
    if (!*json_out) {
      std::cerr << "calm bench run: " << args.out << ": write failed\n";
      code = 1;
    }
  }
  if (csv_out) {
    write_csv(*csv_out, result.records);
    csv_out->flush();
    if (!*csv_out) {
      std::cerr << "calm bench run: " << args.csv << ": write failed\n";
      code = 1;
    }
  }
  return code;
}

struct WorkloadArgs {
  std::string out;
  GeneratorOptions generator;
  std::string prompts;
  std::string pool;
  std::vector<std::string> domain_mix;  // "domain=weight" each
};

// "maths=2" -> {"maths", 2}; throws std::invalid_argument.
std::pair<std::string, double> parse_domain_weight(const std::string& text) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0) {
    throw std::invalid_argument("domain mix: expected domain=weight, got '" + text + "'");
  }
  const std::string weight = text.substr(eq + 1);
  size_t end = 0;
  double value = 0;
  try {
    value = std::stod(weight, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  if (weight.empty() || end != weight.size()) {
    throw std::invalid_argument("domain mix: weight of '" + text.substr(0, eq) +
                                "' is not a number: '" + weight + "'");
  }
  return {text.substr(0, eq), value};
}

int make_workload(WorkloadArgs args) {
  std::vector<WorkloadRequest> workload;
  try {
    if (!args.prompts.empty()) args.generator.prompts = read_prompts(args.prompts);
    if (!args.pool.empty()) args.generator.pool = load_pool(args.pool);
    for (const std::string& item : args.domain_mix) {
      args.generator.domain_mix.push_back(parse_domain_weight(item));
    }
    workload = generate_workload(args.generator);
  } catch (const std::exception& e) {  // bad options or a bad prompts file
    std::cerr << "calm bench workload: " << e.what() << "\n";
    return 2;
  }
  try {
    save_workload(args.out, workload);
  } catch (const std::exception& e) {
    std::cerr << "calm bench workload: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "wrote " << workload.size() << " requests over " << workload.back().t << " s to "
            << args.out << "\n";
  return 0;
}

// This process's command line, as typed (for the record in suite.json).
std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string out, arg;
  while (std::getline(in, arg, '\0')) {
    const bool quote = arg.empty() || arg.find_first_of(" \t'\"$\\") != std::string::npos;
    if (!out.empty()) out += ' ';
    if (!quote) {
      out += arg;
      continue;
    }
    out += '\'';
    for (const char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

struct SuiteArgs {
  SuiteOptions options;
  bool progress = false, no_progress = false;
};

// Writes the report files when the report module is built in.
void write_report(const nlohmann::json& suite, const std::string& out_dir) {
  write_suite_report(suite, out_dir);
}

int run_suite(SuiteArgs args) {
  std::signal(SIGPIPE, SIG_IGN);  // a server closing mid-write must not kill us
  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  args.options.terminal = terminal;
  args.options.progress = !args.no_progress && (terminal || args.progress);
  args.options.command = command_line();
  std::unique_ptr<SuiteRunner> runner;
  try {
    runner = std::make_unique<SuiteRunner>(args.options);
  } catch (const std::exception& e) {  // SuiteConfigError, WorkloadError
    std::cerr << "calm bench suite: " << e.what() << "\n";
    return 2;
  }
  SuiteOutcome outcome;
  try {
    outcome = runner->run(std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "calm bench suite: " << e.what() << "\n";
    return 1;
  }
  std::cout << suite_table(outcome.suite) << std::flush;
  int code = outcome.failed_systems > 0 ? 1 : 0;
  try {
    write_report(outcome.suite, args.options.out_dir);
  } catch (const std::exception& e) {
    std::cerr << "calm bench suite: report: " << e.what() << "\n";
    code = 1;
  }
  std::cerr << "wrote " << args.options.out_dir << "/suite.json\n";
  return code;
}

struct ReportArgs {
  std::string in;
  std::string out;
};

int make_report(const ReportArgs& args) {
  std::ifstream in(args.in);
  if (!in) {
    std::cerr << "calm bench report: " << args.in << ": cannot open\n";
    return 2;
  }
  const nlohmann::json suite = nlohmann::json::parse(in, nullptr, false);
  if (suite.is_discarded() || !suite.is_object()) {
    std::cerr << "calm bench report: " << args.in << ": not a JSON object\n";
    return 2;
  }
  try {
    write_report(suite, args.out);
  } catch (const std::exception& e) {
    std::cerr << "calm bench report: " << e.what() << "\n";
    return 1;
  }
  std::cout << suite_table(suite) << std::flush;
  return 0;
}

}  // namespace

Command add_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand(
      "bench", "Replay a workload against an OpenAI-compatible server, or generate one");
  bench->require_subcommand(1);

  auto run_args = std::make_shared<RunArgs>();
  CLI::App* run = bench->add_subcommand(
      "run", "Replay a JSONL workload (open loop) and print latency, TTFT and throughput");
  run->add_option("--url", run_args->url, "Server base URL, http://host:port")->required();
  run->add_option("-w,--workload", run_args->workload, "Workload file (JSONL)")->required();
  run->add_option("-c,--concurrency", run_args->concurrency, "Most requests in flight")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  run->add_option("--model", run_args->model, "Model for requests that name none")
      ->capture_default_str();
  run->add_flag("--ignore-eos", run_args->ignore_eos,
                "Send ignore_eos: every answer is exactly max_tokens long");
  run->add_option("--label", run_args->label, "Name of this run in the table (default: the URL)");
  run->add_option("--out", run_args->out, "Write summary, records and calm state as JSON");
  run->add_option("--csv", run_args->csv, "Write one CSV line per request");
  run->add_option("--timeout", run_args->timeout_s, "Read timeout per request, seconds")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  auto* progress = run->add_flag("--progress", run_args->progress,
                                 "Show progress on stderr even when it is not a terminal");
  run->add_flag("--no-progress", run_args->no_progress, "Never show progress")->excludes(progress);

  auto workload_args = std::make_shared<WorkloadArgs>();
  GeneratorOptions& g = workload_args->generator;
  CLI::App* workload =
      bench->add_subcommand("workload", "Generate a synthetic workload (deterministic per seed)");
  workload->add_option("-o,--out", workload_args->out, "Workload file to write")->required();
  workload->add_option("-n,--requests", g.requests, "Requests")
      ->check(CLI::Range(1, 100000000))
      ->capture_default_str();
  workload->add_option("--rate", g.rate, "Requests per second (calm state when bursty)")
      ->check(kPositive)
      ->capture_default_str();
  workload->add_option("--arrival", g.arrival, "Arrival process")
      ->check(CLI::IsMember({"poisson", "bursty"}))
      ->capture_default_str();
  workload->add_option("--burst-factor", g.burst_factor, "Burst rate / calm rate (bursty)")
      ->check(CLI::Range(1.0, 1e6))
      ->capture_default_str();
  workload->add_option("--calm-s", g.calm_mean_s, "Mean seconds in the calm state (bursty)")
      ->check(kPositive)
      ->capture_default_str();
  workload->add_option("--burst-s", g.burst_mean_s, "Mean seconds in a burst (bursty)")
      ->check(kPositive)
      ->capture_default_str();
  workload->add_option("--models", g.models, "Models, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  workload->add_option("--mix", g.mix, "Popularity weight per model, comma-separated")
      ->delimiter(',');
  workload->add_option("--locality", g.locality, "Probability of repeating the previous model")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  workload->add_option("--max-tokens", g.max_tokens, "max_tokens of every request")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  workload->add_option("--prompts", workload_args->prompts,
                       "Text file, one prompt per line (default: synthetic prompts)");
  workload->add_option("--seed", g.seed, "Random seed")->capture_default_str();
  workload->add_option("--pool", workload_args->pool,
                       "JSONL pool of {domain, messages|prompt, reference, max_tokens}: each "
                       "request draws a domain, then an item (replaces --models and --prompts)");
  workload
      ->add_option("--domain-mix", workload_args->domain_mix,
                   "Weight per pool domain, comma-separated domain=weight (default: uniform)")
      ->delimiter(',');

  auto suite_args = std::make_shared<SuiteArgs>();
  SuiteOptions& so = suite_args->options;
  CLI::App* suite = bench->add_subcommand(
      "suite", "Replay one workload against several calm configurations and collect every metric");
  suite->add_option("-s,--suite", so.suite_path, "Suite file (YAML): systems, domains, workload")
      ->required();
  suite->add_option("-w,--workload", so.workload, "Workload file (overrides the suite's)");
  suite->add_option("-o,--out", so.out_dir, "Output directory: suite.json, logs/, report files")
      ->capture_default_str();
  suite->add_option("--only", so.only, "Run only these systems, comma-separated")->delimiter(',');
  suite->add_option("--seed", so.seed, "Seed of random routing")->capture_default_str();
  suite->add_option("--timeout", so.timeout_s, "Read timeout per request, seconds")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  auto* suite_progress = suite->add_flag("--progress", suite_args->progress,
                                         "Show progress on stderr even when it is not a terminal");
  suite->add_flag("--no-progress", suite_args->no_progress, "Never show progress")
      ->excludes(suite_progress);

  auto report_args = std::make_shared<ReportArgs>();
  CLI::App* report = bench->add_subcommand(
      "report", "Write report.json, report.csv and report.html from a suite.json");
  report->add_option("-i,--in", report_args->in, "suite.json written by calm bench suite")
      ->required();
  report->add_option("-o,--out", report_args->out, "Directory for the report files")->required();

  return [run, workload, suite, report, run_args, workload_args, suite_args, report_args]() -> int {
    if (run->parsed()) return run_bench(*run_args);
    if (workload->parsed()) return make_workload(*workload_args);
    if (suite->parsed()) return run_suite(*suite_args);
    if (report->parsed()) return make_report(*report_args);
    return 2;
  };
}

}  // namespace calm
