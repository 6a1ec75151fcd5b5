// The suite file of `calm bench suite`: which calm configurations
// ("systems") one workload is replayed against, and how each one routes.
// An evaluation compares systems such as "one big generalist model",
// "static routing", "CALM with an LRU cache of 3", "oracle routing"; each is
// a calm fleet file plus a route, so that every figure of the comparison
// comes from the same workload and the same measuring code.
//
//   workload: workload.jsonl          # relative to the suite file; --workload overrides
//   concurrency: 16                   # requests in flight (default 8)
//   domains:                          # domain -> the model that is right for it
//     maths: maths-expert
//   systems:
//     - name: full                    # letters, digits, '.', '_', '-' (names the log file)
//       description: "the full system"
//       config: fleets/full.yaml      # a calm fleet file, relative to the suite file
//       route: auto                   # auto (default) | oracle | random | model:<id>
//       group: headline               # optional free label
//       set: {loop: {enabled: false}} # optional: settings laid over the fleet file
//                                     # (bench/fleet_overrides.h)
//
// Routes: `auto` sends model "auto" (calm routes); `oracle` sends
// domains[request.domain]; `random` sends a model drawn uniformly from the
// domains' values (deterministic per seed and request index, see
// suite_routes.h); `model:<id>` sends that id. oracle and random need
// `domains`.
//
// Errors name file, line and field ("suite.yaml:7: systems[1].route: ...")
// like the fleet file's. Free functions over values: safe from any thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace calm {

class SuiteConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SuiteRoute {
  enum class Kind { kAuto, kOracle, kRandom, kModel };
  Kind kind = Kind::kAuto;
  std::string model;  // kModel: the id sent

  // As written in the suite file: "auto", "oracle", "random", "model:<id>".
  std::string text() const;
};

// Parses a route as written; throws std::invalid_argument saying what is
// allowed.
SuiteRoute parse_suite_route(const std::string& text);

struct SuiteSystem {
  std::string name;
  std::string description;
  std::string group;
  std::string config;       // the fleet file as written in the suite file
  std::string config_path;  // the same, absolute
  SuiteRoute route;
  YAML::Node overrides;  // the `set:` mapping; undefined when there is none

  bool has_overrides() const { return overrides.IsDefined() && overrides.IsMap(); }
};

struct SuiteConfig {
  std::string source;    // the suite file
  std::string workload;  // absolute; empty when the file names none
  int concurrency = 8;
  std::map<std::string, std::string> domains;  // domain -> the right model
  std::vector<SuiteSystem> systems;            // in file order
};

// Reads and checks a suite file: every field known and of the right type,
// at least one system, unique names, each fleet file present. Throws
// SuiteConfigError naming file, line and field.
SuiteConfig load_suite_config(const std::string& path);

}  // namespace calm
