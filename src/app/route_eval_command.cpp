// calm route-eval: how often the router picks the right model, and how fast.
//
// Reads labelled queries (JSONL: {"query": "...", "domain": "maths"} or
// {"query": "...", "model": "id"}) and ranks each with the fleet file's
// router, without loading or running any model. A decision is right when the
// chosen model's id, or one of its tags, equals the label.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "config/fleet_config.h"
#include "router/router_factory.h"
#include "util/percentile.h"

namespace calm {
namespace {

struct Labelled {
  std::string query;
  std::string label;
};

std::vector<Labelled> read_labelled(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::vector<Labelled> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    const std::string where = path + ":" + std::to_string(n) + ": ";
    if (j.is_discarded() || !j.is_object()) throw std::runtime_error(where + "not a JSON object");
    if (!j.contains("query") || !j["query"].is_string())
      throw std::runtime_error(where + "needs a string 'query'");
    const char* key = j.contains("domain") ? "domain" : "model";
    if (!j.contains(key) || !j[key].is_string())
      throw std::runtime_error(where + "needs a string 'domain' or 'model'");
    out.push_back({j["query"].get<std::string>(), j[key].get<std::string>()});
  }
  if (out.empty()) throw std::runtime_error(path + ": no labelled query");
  return out;
}

// The label a model answers for: its first tag, else its id.
std::string model_label(const RouteProfileSpec& spec) {
  return spec.tags.empty() ? spec.id : spec.tags.front();
}

bool matches(const RouteProfileSpec& spec, const std::string& label) {
  return spec.id == label ||
         std::find(spec.tags.begin(), spec.tags.end(), label) != spec.tags.end();
}

}  // namespace

Command add_route_eval_command(CLI::App& app) {
  struct Args {
    std::string file;
    std::string config;
    std::string similarity;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "route-eval",
      "Score the router on labelled queries: accuracy, per-domain accuracy, confusion, latency");
  cmd->add_option("file", args->file, "Labelled queries (JSONL: query + domain or model)")
      ->required();
  cmd->add_option("-c,--config", args->config, "Fleet file with a router section")->required();
  cmd->add_option("--similarity", args->similarity, "Override router.similarity")
      ->check(CLI::IsMember({"description", "centroid", "examples", "combined", "classifier"}));
  cmd->add_flag("--json", args->json, "Print JSON");

  return [args]() -> int {
    std::shared_ptr<SemanticRouter> router;
    std::vector<Labelled> queries;
    try {
      FleetConfig config = load_fleet_config(args->config);
      if (!config.router) throw std::runtime_error(args->config + ": has no router section");
      if (!args->similarity.empty()) config.router->similarity = args->similarity;
      router = make_semantic_router(config);
      queries = read_labelled(args->file);
    } catch (const std::exception& e) {
      std::cerr << "calm route-eval: " << e.what() << "\n";
      return 2;
    }
    const auto& specs = router->profiles();
    std::map<std::string, std::map<std::string, int>> confusion;  // label -> chosen label -> count
    std::map<std::string, std::pair<int, int>> per_label;         // label -> (right, total)
    std::vector<double> latencies_ms;
    int right = 0, unknown = 0;
    for (const auto& q : queries) {
      const auto start = std::chrono::steady_clock::now();
      const Ranking ranking = router->rank(q.query, nullptr);
      latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
      unknown += ranking.query_known ? 0 : 1;
      const auto& best = *std::find_if(specs.begin(), specs.end(), [&](const RouteProfileSpec& s) {
        return s.id == ranking.candidates.front().id;
      });
      const bool ok = matches(best, q.label);
      right += ok ? 1 : 0;
      per_label[q.label].first += ok ? 1 : 0;
      per_label[q.label].second += 1;
      confusion[q.label][model_label(best)] += 1;
    }
    const double accuracy = static_cast<double>(right) / static_cast<double>(queries.size());
    const double p50 = nearest_rank_percentile(latencies_ms, 50),
                 p99 = nearest_rank_percentile(latencies_ms, 99);

    if (args->json) {
      nlohmann::json out = {{"queries", queries.size()},
                            {"accuracy", accuracy},
                            {"similarity", similarity_mode_name(router->settings().similarity)},
                            {"unknown_queries", unknown},
                            {"decision_ms_p50", p50},
                            {"decision_ms_p99", p99}};
      for (const auto& [label, rt] : per_label) {
        out["per_domain"][label] = static_cast<double>(rt.first) / rt.second;
      }
      out["confusion"] = confusion;
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    std::cout << std::fixed << std::setprecision(1);
    std::cout << "queries: " << queries.size() << " (" << unknown << " with no known word)\n"
              << "similarity: " << similarity_mode_name(router->settings().similarity) << "\n"
              << "accuracy: " << 100 * accuracy << "%\n";
    size_t width = 0;  // the longest label, so the figures line up however long it is
    for (const auto& entry : per_label) width = std::max(width, entry.first.size());
    for (const auto& [label, rt] : per_label) {
      std::cout << "  " << std::setw(static_cast<int>(width + 1)) << std::left << label
                << std::right << std::setw(5) << 100.0 * rt.first / rt.second << "% of "
                << rt.second << "\n";
    }
    std::vector<std::string> columns;
    for (const auto& s : specs) {
      if (std::find(columns.begin(), columns.end(), model_label(s)) == columns.end())
        columns.push_back(model_label(s));
    }
    std::cout << "confusion (rows: label, columns: chosen):\n" << std::setw(12) << "";
    for (const auto& c : columns) std::cout << std::setw(10) << c.substr(0, 9);
    std::cout << "\n";
    for (const auto& [label, row] : confusion) {
      std::cout << std::setw(12) << std::left << label.substr(0, 11) << std::right;
      for (const auto& c : columns) std::cout << std::setw(10) << (row.count(c) ? row.at(c) : 0);
      std::cout << "\n";
    }
    std::cout << std::setprecision(3) << "decision latency: p50 " << p50 << " ms, p99 " << p99
              << " ms\n";
    return 0;
  };
}

}  // namespace calm
