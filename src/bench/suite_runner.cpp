#include "bench/suite_runner.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "bench/fleet_overrides.h"
#include "bench/progress_bar.h"
#include "bench/replayer.h"
#include "bench/serve_process.h"
#include "bench/suite_routes.h"
#include "bench/suite_summary.h"
#include "config/fleet_config.h"
#include "knowledge/knowledge_store.h"

namespace calm {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A fresh directory under the temp dir, removed with its contents.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (fs::temp_directory_path() / "calm-suite-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("cannot make a temporary directory " + pattern);
    }
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

std::string self_executable() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot find this program's path: " + ec.message());
  return exe.string();
}

// The models a route sends requests to ("auto" names none of the fleet).
std::set<std::string> routed_models(const SuiteRoute& route,
                                    const std::map<std::string, std::string>& domains) {
  std::set<std::string> out;
  if (route.kind == SuiteRoute::Kind::kModel) out.insert(route.model);
  if (route.kind == SuiteRoute::Kind::kOracle || route.kind == SuiteRoute::Kind::kRandom) {
    for (const auto& [domain, model] : domains) out.insert(model);
  }
  return out;
}

}  // namespace

std::string iso_time_utc() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

json machine_json() {
  std::string cpu_model;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        cpu_model = line.substr(line.find_first_not_of(" \t", colon + 1));
      }
      break;
    }
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return {{"cpus", std::thread::hardware_concurrency()},
          {"cpu_model", cpu_model.empty() ? json(nullptr) : json(cpu_model)},
          {"hostname", std::string(host)}};
}

SuiteRunner::SuiteRunner(SuiteOptions options) : options_(std::move(options)) {
  config_ = load_suite_config(options_.suite_path);
  workload_path_ = options_.workload.empty() ? config_.workload : options_.workload;
  if (workload_path_.empty()) {
    throw SuiteConfigError(options_.suite_path +
                           ": workload: is required (in the suite file or with --workload)");
  }
  workload_ = load_workload(workload_path_);

  const std::set<std::string> only(options_.only.begin(), options_.only.end());
  std::set<std::string> unknown = only;
  for (const SuiteSystem& system : config_.systems) {
    unknown.erase(system.name);
    if (only.empty() || only.count(system.name)) selected_.push_back(&system);
  }
  if (!unknown.empty()) {
    throw SuiteConfigError(options_.suite_path + ": --only names no system called '" +
                           *unknown.begin() + "'");
  }
  // A route that cannot be applied is the suite's fault, found before any
  // server starts.
  for (const SuiteSystem* system : selected_) {
    try {
      assign_routes(workload_, system->route, config_.domains, options_.seed);
    } catch (const std::invalid_argument& e) {
      throw SuiteConfigError(options_.suite_path + ": system '" + system->name + "': " + e.what() +
                             " (workload " + workload_path_ + ")");
    }
  }
}

json SuiteRunner::header() const {
  json domains = json::object();
  for (const WorkloadRequest& r : workload_) {
    const std::string d = r.domain.empty() ? "unlabelled" : r.domain;
    domains[d] = domains.value(d, 0) + 1;
  }
  return {{"suite", options_.suite_path},
          {"workload",
           {{"path", workload_path_}, {"requests", workload_.size()}, {"domains", domains}}},
          {"machine", machine_json()},
          {"started", iso_time_utc()},
          {"command", options_.command},
          {"concurrency", config_.concurrency},
          {"seed", options_.seed},
          {"systems", json::array()}};
}

void SuiteRunner::write_suite_json(const json& suite) const {
  const fs::path path = fs::path(options_.out_dir) / "suite.json";
  const fs::path partial = fs::path(options_.out_dir) / "suite.json.partial";
  {
    std::ofstream out(partial, std::ios::trunc);
    out << suite.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    out.flush();
    if (!out) throw std::runtime_error(partial.string() + ": write failed");
  }
  fs::rename(partial, path);  // a reader never sees half a file
}

SuiteOutcome SuiteRunner::run(std::ostream& log) {
  std::error_code ec;
  fs::create_directories(fs::path(options_.out_dir) / "logs", ec);
  if (ec) throw std::runtime_error(options_.out_dir + ": cannot create: " + ec.message());
  SuiteOutcome outcome;
  outcome.suite = header();
  write_suite_json(outcome.suite);
  for (size_t i = 0; i < selected_.size(); ++i) {
    json system = run_system(*selected_[i], i + 1, selected_.size(), log);
    if (system.contains("error")) {
      ++outcome.failed_systems;
      log << "calm bench suite: " << selected_[i]->name << ": "
          << system["error"].get<std::string>() << "\n";
    }
    outcome.suite["systems"].push_back(std::move(system));
    write_suite_json(outcome.suite);
  }
  outcome.suite["finished"] = iso_time_utc();
  write_suite_json(outcome.suite);
  return outcome;
}

json SuiteRunner::run_system(const SuiteSystem& system, size_t position, size_t count,
                             std::ostream& log) {
  json out = {{"name", system.name},
              {"description", system.description},
              {"group", system.group.empty() ? json(nullptr) : json(system.group)},
              {"config", system.config},
              {"route", system.route.text()}};
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on
  // the equivalent chain of operator+.
  std::string tag = "[";
  tag.append(std::to_string(position)).append("/").append(std::to_string(count)).append("] ");
  tag.append(system.name);
  const auto fail = [&](const std::string& why) {
    out["error"] = why;
    return out;
  };

  // The fleet: which GGUF (and context) answers for each model id.
  std::unique_ptr<OverriddenFleet> overridden;
  std::string fleet_path = system.config_path;
  FleetConfig fleet;
  try {
    if (system.has_overrides()) {
      overridden =
          std::make_unique<OverriddenFleet>(system.config_path, system.overrides, system.name);
      fleet_path = overridden->path();
    }
    fleet = load_fleet_config(fleet_path);
  } catch (const std::exception& e) {
    return fail(std::string("bad fleet file: ") + e.what());
  }
  std::unordered_map<std::string, const ModelConfig*> models;
  for (const ModelConfig& m : fleet.models) models[m.id] = &m;
  for (const std::string& id : routed_models(system.route, config_.domains)) {
    if (!models.count(id)) {
      return fail("route " + system.route.text() + " sends requests to '" + id +
                  "', which is not in " + system.config);
    }
  }
  const std::vector<WorkloadRequest> routed =
      assign_routes(workload_, system.route, config_.domains, options_.seed);

  // Serve.
  ScratchDir scratch;
  const std::string knowledge = scratch.file("knowledge.db");
  const std::string log_path =
      (fs::path(options_.out_dir) / "logs" / (system.name + ".log")).string();
  log << tag << ": starting calm serve -c " << system.config << " (log " << log_path << ")\n"
      << std::flush;
  std::unique_ptr<ServeProcess> server;
  try {
    server = std::make_unique<ServeProcess>(ServeProcess::Options{
        .executable =
            options_.calm_executable.empty() ? self_executable() : options_.calm_executable,
        .args = {"serve", "-c", fleet_path, "--host", "127.0.0.1", "--port", "0", "--knowledge",
                 knowledge},
        .log_path = log_path});
  } catch (const std::exception& e) {
    return fail(std::string("server did not start: ") + e.what());
  }

  // Replay.
  std::unique_ptr<ProgressBar> bar;
  if (options_.progress) {
    bar = std::make_unique<ProgressBar>(routed.size(), options_.terminal, tag);
  }
  ReplayOptions replay;
  replay.base_url = server->url();
  replay.concurrency = config_.concurrency;
  replay.read_timeout = std::chrono::seconds(options_.timeout_s);
  replay.on_record = [bar = bar.get()](const RequestRecord&, size_t done, size_t errors) {
    if (bar) bar->update(done, errors);
  };
  Replayer replayer(std::move(replay));
  ReplayResult result;
  try {
    result = replayer.run(routed);
  } catch (const std::exception& e) {
    return fail(std::string("replay failed: ") + e.what());
  }
  const json state = replayer.fetch_calm_state().value_or(json(nullptr));
  const std::optional<int> exit_code = server->stop();
  out["server_exit_status"] = exit_code ? json(*exit_code) : json(nullptr);
  if (exit_code && *exit_code != 0) {
    log << tag << ": calm serve exited with status " << *exit_code << " (see " << log_path << ")\n";
  }

  // Join what the server stored, by response id.
  std::unordered_map<std::string, ServedRequest> served;
  try {
    for (ServedRequest& r : KnowledgeStore::read_requests(knowledge)) {
      if (!r.response_id.empty()) served.emplace(r.response_id, std::move(r));
    }
  } catch (const std::exception& e) {
    log << tag << ": no server records (energy, confidence unknown): " << e.what() << "\n";
  }
  std::vector<SuiteRecord> records(result.records.size());
  size_t to_score = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    SuiteRecord& s = records[i];
    s.request = std::move(result.records[i]);
    s.request.text.clear();  // not kept in suite.json; the memory adds up
    s.has_reference = !routed[s.request.index].reference.empty();
    if (const auto it = served.find(s.request.response_id);
        !s.request.response_id.empty() && it != served.end()) {
      s.energy_j = it->second.energy_j;
      s.energy_source = it->second.energy_source;
      s.confidence = it->second.confidence;
    }
    to_score += s.request.ok() && s.has_reference ? 1 : 0;
  }

  // Score the references (the server has stopped: nothing competes).
  if (to_score > 0) log << tag << ": scoring " << to_score << " references\n" << std::flush;
  std::map<std::string, size_t> why_unscored;
  for (SuiteRecord& s : records) {
    if (!s.request.ok() || !s.has_reference) continue;
    const auto it = models.find(s.request.served_model);
    if (it == models.end() || it->second->gguf_path.empty()) {
      ++why_unscored["no local GGUF for '" + s.request.served_model + "'"];
      continue;
    }
    const auto score = scorer_.score(it->second->gguf_path, it->second->context, s.request.index,
                                     routed[s.request.index]);
    if (!score) {
      ++why_unscored[scorer_.reason()];
      continue;
    }
    s.ref_tokens = score->tokens;
    s.ref_mean_logprob = score->mean_logprob;
  }
  for (const auto& [why, n] : why_unscored) {
    log << tag << ": " << n << " reference(s) not scored: " << why << "\n";
  }

  out["summary"] =
      summarize_suite_system(records, state, system.route, config_.domains, result.wall_s);
  json list = json::array();
  for (const SuiteRecord& s : records) list.push_back(suite_record_json(s));
  out["records"] = std::move(list);
  return out;
}

}  // namespace calm
