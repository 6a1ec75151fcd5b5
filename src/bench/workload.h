// A benchmark workload: the requests `calm bench run` replays, each with the
// time it arrives. Kept as JSONL so a workload can be generated once, stored
// next to its results and replayed unchanged against calm, llama-server or
// any other OpenAI-compatible server; that is what makes two runs comparable.
//
// One request per line:
//   {"t": 0.25, "model": "m3", "domain": "maths",
//    "messages": [{"role": "user", "content": "..."}],
//    "max_tokens": 32, "reference": "optional reference answer"}
//   t           arrival, seconds from the start of the run (required, >= 0)
//   model       optional; empty means the replayer's default model
//   messages    chat messages, sent to /v1/chat/completions; or
//   prompt      a string, sent to /v1/completions (exactly one of the two)
//   max_tokens  optional, default 32, > 0
//   domain, reference  optional strings, carried into the results
// Other fields are ignored. Blank lines are skipped.
//
// The generator makes synthetic workloads deterministically from a seed: the
// same options give the same file on every machine (it uses its own
// distributions, not the standard library's implementation-defined ones).
//
// Everything here is free functions over values: safe to call from any
// number of threads at once.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace calm {

struct WorkloadRequest {
  double t = 0;                       // arrival, seconds from the start
  std::string model;                  // empty: the replayer's default
  std::string domain;                 // optional label
  nlohmann::json messages;            // array of messages, or null when prompt is set
  std::optional<std::string> prompt;  // set: a /v1/completions request
  int max_tokens = 32;
  std::string reference;  // optional reference answer

  bool is_chat() const { return !prompt.has_value(); }
};

// A bad workload file. what() reads "FILE:LINE: field 'F': problem".
class WorkloadError : public std::runtime_error {
 public:
  WorkloadError(std::string file, int line, std::string field, const std::string& problem);

  const std::string& file() const { return file_; }
  int line() const { return line_; }                   // 1-based; 0 when about the whole file
  const std::string& field() const { return field_; }  // empty when not about one field

 private:
  std::string file_;
  int line_;
  std::string field_;
};

// Parses one JSONL line. `file` and `line` only label errors.
WorkloadRequest parse_workload_line(const std::string& text, const std::string& file, int line);

// Reads a workload file and returns its requests sorted by t (stable: equal
// times keep file order). Throws WorkloadError for the first bad line, for an
// unreadable file and for a file with no request.
std::vector<WorkloadRequest> load_workload(const std::string& path);

// One request as its JSONL line (without the newline).
std::string workload_line(const WorkloadRequest& request);

// Writes the requests, one line each. Throws std::runtime_error when the
// file cannot be written.
void save_workload(const std::string& path, const std::vector<WorkloadRequest>& requests);

// One item of a request pool (`calm bench workload --pool`): a prompt with
// its domain and, optionally, a reference answer. A pool file is JSONL, one
// item a line:
//   {"domain": "maths", "messages": [...] or "prompt": "...",
//    "reference": "optional", "max_tokens": optional}
//   domain      required, a non-empty string
//   messages / prompt, max_tokens  as in a workload line
//   reference   optional string: the answer the quality metric scores
// Other fields are ignored. Blank lines are skipped.
struct PoolItem {
  std::string domain;
  nlohmann::json messages;            // array of messages, or null when prompt is set
  std::optional<std::string> prompt;  // set: a /v1/completions request
  std::optional<int> max_tokens;      // unset: the generator's max_tokens
  std::string reference;
};

// Parses one pool line. `file` and `line` only label errors (WorkloadError).
PoolItem parse_pool_line(const std::string& text, const std::string& file, int line);

// Reads a pool file in file order. Throws WorkloadError for the first bad
// line (naming file:line:field), an unreadable file and a file with no item.
std::vector<PoolItem> load_pool(const std::string& path);

struct GeneratorOptions {
  // "poisson": exponential gaps at `rate`. "bursty": a two-state
  // Markov-modulated Poisson process: a calm state at `rate` and a burst
  // state at burst_factor x rate, each lasting an exponentially distributed
  // time with the given means (the shape of flash crowds such as the 1998
  // World Cup web trace). The run starts calm.
  std::string arrival = "poisson";
  int requests = 500;
  double rate = 4;  // requests per second (calm state for "bursty")
  double burst_factor = 5;
  double calm_mean_s = 20;
  double burst_mean_s = 5;
  int max_tokens = 32;
  std::vector<std::string> models = {"auto"};
  // Popularity of each model (same length as models, weights >= 0 with a
  // positive sum; normalised). Empty: uniform.
  std::vector<double> mix;
  // With this probability a request goes to the previous request's model;
  // otherwise to a model drawn from the mix. 0 with a uniform mix over many
  // models gives a swap-heavy trace; near 1 gives long runs per model.
  double locality = 0;
  // Prompt texts, each drawn uniformly; empty: short synthetic prompts
  // ("request 17 for model m3: tell me something").
  std::vector<std::string> prompts;
  // When not empty, each request is drawn from this pool instead of the
  // models, mix, locality and prompts above: first a domain (by
  // domain_mix, else uniformly over the pool's domains), then an item
  // uniformly within that domain. The request carries the item's domain,
  // messages or prompt, reference and max_tokens (else max_tokens above);
  // its model stays empty (the replayer's default, "auto").
  std::vector<PoolItem> pool;
  // Domain -> weight >= 0, positive sum; each must be a domain of the pool;
  // pool domains left out get weight 0. Empty: uniform over the domains.
  std::vector<std::pair<std::string, double>> domain_mix;
  uint64_t seed = 1;
};

// Throws std::invalid_argument naming the bad option.
void validate(const GeneratorOptions& options);

// Chat requests in arrival order, deterministic given the options. Throws
// std::invalid_argument for bad options.
std::vector<WorkloadRequest> generate_workload(const GeneratorOptions& options);

}  // namespace calm
