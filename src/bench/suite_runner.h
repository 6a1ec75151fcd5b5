// `calm bench suite`: one workload replayed against several calm
// configurations ("systems", suite_config.h), one after the other, each in a
// fresh `calm serve` child, so that every system of an evaluation is measured
// by the same code on the same requests.
//
// Per system: start `calm serve -c FLEET --host 127.0.0.1 --port 0
// --knowledge TMP/knowledge.db` (the running calm binary itself, its log in
// OUT/logs/NAME.log); wait for GET /health; replay the workload with its
// route's models (open loop, `concurrency` connections); read
// /v1/calm/state; stop the child (SIGTERM, SIGKILL after 10 s) so that it
// writes its knowledge store; read the per-request records (energy,
// confidence) from it and join them to the replay by response id; score the
// references under the serving models' GGUFs (suite_quality.h); summarise
// (suite_summary.h). A system that cannot run is recorded with an "error"
// and the suite goes on. OUT/suite.json is rewritten after every system, so
// an interrupted suite keeps what it measured.
//
// Not thread-safe: run() blocks the calling thread (it must outlive the
// children, see serve_process.h) and uses the replayer's threads inside.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "bench/suite_config.h"
#include "bench/suite_quality.h"
#include "bench/workload.h"

namespace calm {

struct SuiteOptions {
  std::string suite_path;
  std::string workload;  // overrides the suite's workload when set
  std::string out_dir = "suite-results";
  std::vector<std::string> only;  // run only these systems (in suite order); empty: all
  bool progress = false;          // draw a progress bar per system on stderr
  bool terminal = false;          // ... redrawn in place
  uint64_t seed = 1;              // random routing
  int timeout_s = 600;            // read timeout per request
  std::string calm_executable;    // empty: this process's binary (/proc/self/exe)
  std::string command;            // the command line, recorded in suite.json
};

struct SuiteOutcome {
  nlohmann::json suite;       // what suite.json holds
  size_t failed_systems = 0;  // systems recorded with an "error"
};

class SuiteRunner {
 public:
  // Reads and checks the suite file and the workload, and that every route
  // can be applied to the workload (oracle needs every request's domain in
  // `domains`). Throws SuiteConfigError (or WorkloadError for the workload)
  // naming file, line and field: the suite's input is bad, nothing ran.
  explicit SuiteRunner(SuiteOptions options);

  // Runs every selected system; progress and per-system notes go to `log`.
  // Throws std::runtime_error only when the output directory cannot be
  // written.
  SuiteOutcome run(std::ostream& log);

  const SuiteConfig& config() const { return config_; }

 private:
  nlohmann::json run_system(const SuiteSystem& system, size_t position, size_t count,
                            std::ostream& log);
  nlohmann::json header() const;
  void write_suite_json(const nlohmann::json& suite) const;

  SuiteOptions options_;
  SuiteConfig config_;
  std::string workload_path_;
  std::vector<WorkloadRequest> workload_;
  std::vector<const SuiteSystem*> selected_;
  QualityScorer scorer_;
};

// "2025-06-01T12:00:00Z" for now.
std::string iso_time_utc();

// {"cpus", "cpu_model", "hostname"} of this machine.
nlohmann::json machine_json();

}  // namespace calm
