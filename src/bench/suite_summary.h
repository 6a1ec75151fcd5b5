// The figures `calm bench suite` reports per system, computed from the
// joined per-request records (what the client measured, what the server
// stored, what the reference scorer found) and the server's final
// /v1/calm/state. Separate from the runner so the arithmetic can be tested on
// hand-made records.
//
// Definitions (all over completed requests unless said otherwise):
//   latency, ttft        as in bench_stats.h (nearest-rank percentiles)
//   energy_per_request_j mean of the server's energy_j where known
//   confidence_mean      mean of the server's confidence where known
//   quality[domain]      n: records scored; tokens: their reference tokens;
//                        mean_logprob: token-weighted (sum of per-token log
//                        probabilities / sum of tokens), so a long reference
//                        counts for its length; perplexity = exp(-mean_logprob);
//                        confidence: mean served confidence of the domain's
//                        completed requests. quality["all"] pools every domain.
//   unscored             completed requests with a reference that could not be
//                        scored (too long for the context, no local GGUF)
//   decision_accuracy    share of completed requests with a domain listed in
//                        the suite whose served model is that domain's model;
//                        null for a fixed route (model:<id>) or no such request
//   cache_hit_rate       hits / (hits + misses) summed over the state's models
//   loads                model loads summed over the state's models
// Unknown figures are JSON null, never 0.
//
// Free functions over values: safe from any thread.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bench/replayer.h"
#include "bench/suite_config.h"

namespace calm {

// One request of one system: the client's record joined with the server's
// and the reference score.
struct SuiteRecord {
  RequestRecord request;
  // From the knowledge store (joined by response id); unset when unknown.
  std::optional<double> energy_j;
  std::string energy_source;
  std::optional<double> confidence;
  bool has_reference = false;     // the workload gave a reference
  std::optional<int> ref_tokens;  // set when the reference was scored
  std::optional<double> ref_mean_logprob;
};

// The record as it appears in suite.json's "records".
nlohmann::json suite_record_json(const SuiteRecord& record);

// The "summary" object of one system. `state`: /v1/calm/state after the
// replay, or null when it could not be read (cache and memory figures are
// then null). `wall_s`: the replay's wall time.
nlohmann::json summarize_suite_system(const std::vector<SuiteRecord>& records,
                                      const nlohmann::json& state, const SuiteRoute& route,
                                      const std::map<std::string, std::string>& domains,
                                      double wall_s);

// A compact table for the terminal, one row per system of a suite.json:
// completed/requests, mean and p95 latency (ms), energy per request (J),
// perplexity over all scored references, decision accuracy, cache hit rate
// and loads; "-" for unknown, the error for a system that failed.
std::string suite_table(const nlohmann::json& suite);

}  // namespace calm
