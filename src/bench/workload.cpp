#include "bench/workload.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <random>

namespace calm {
namespace {

using json = nlohmann::json;

std::string describe_error(const std::string& file, int line, const std::string& field,
                           const std::string& problem) {
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on
  // the equivalent chain of operator+.
  std::string out = file;
  if (line > 0) out.append(":").append(std::to_string(line));
  out.append(": ");
  if (!field.empty()) out.append("field '").append(field).append("': ");
  return out.append(problem);
}

const char* type_name(const json& value) {
  return value.is_number_integer() ? "an integer"
         : value.is_number()       ? "a number"
         : value.is_string()       ? "a string"
         : value.is_boolean()      ? "a boolean"
         : value.is_array()        ? "an array"
         : value.is_object()       ? "an object"
                                   : "null";
}

// Checks a chat message list: a non-empty array of {role: string, content:
// string or array of parts}.
void check_messages(const json& messages, const std::string& file, int line) {
  if (!messages.is_array()) {
    throw WorkloadError(file, line, "messages",
                        std::string("must be an array, not ") + type_name(messages));
  }
  if (messages.empty()) throw WorkloadError(file, line, "messages", "must not be empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) {
      throw WorkloadError(file, line, at, std::string("must be an object, not ") + type_name(m));
    }
    if (!m.contains("role") || !m["role"].is_string()) {
      throw WorkloadError(file, line, at + ".role", "must be a string");
    }
    if (!m.contains("content") || !(m["content"].is_string() || m["content"].is_array())) {
      throw WorkloadError(file, line, at + ".content",
                          "must be a string or an array of content parts");
    }
  }
}

std::string optional_string(const json& j, const char* field, const std::string& file, int line) {
  if (!j.contains(field)) return "";
  const json& value = j[field];
  if (!value.is_string()) {
    throw WorkloadError(file, line, field,
                        std::string("must be a string, not ") + type_name(value));
  }
  return value.get<std::string>();
}

// What a workload line and a pool line share: messages or prompt (exactly
// one), and an optional max_tokens > 0.
struct RequestBody {
  json messages;
  std::optional<std::string> prompt;
  std::optional<int> max_tokens;
};

RequestBody parse_body(const json& j, const std::string& file, int line) {
  RequestBody body;
  const bool has_messages = j.contains("messages"), has_prompt = j.contains("prompt");
  if (has_messages && has_prompt) {
    throw WorkloadError(file, line, "prompt", "give messages or prompt, not both");
  }
  if (!has_messages && !has_prompt) {
    throw WorkloadError(file, line, "messages", "missing (give messages or prompt)");
  }
  if (has_messages) {
    check_messages(j["messages"], file, line);
    body.messages = j["messages"];
  } else {
    body.prompt = optional_string(j, "prompt", file, line);
  }
  if (j.contains("max_tokens")) {
    const json& m = j["max_tokens"];
    if (!m.is_number_integer()) {
      throw WorkloadError(file, line, "max_tokens",
                          std::string("must be an integer, not ") + type_name(m));
    }
    const int64_t value = m.get<int64_t>();
    if (value <= 0 || value > INT_MAX) {
      throw WorkloadError(file, line, "max_tokens", "must be > 0, got " + m.dump());
    }
    body.max_tokens = static_cast<int>(value);
  }
  return body;
}

json parse_object(const std::string& text, const std::string& file, int line) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) throw WorkloadError(file, line, "", "not valid JSON");
  if (!j.is_object()) {
    throw WorkloadError(file, line, "", std::string("must be a JSON object, not ") + type_name(j));
  }
  return j;
}

// Uniform in [0, 1) from the top 53 bits: the same on every platform, unlike
// std::uniform_real_distribution.
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

double exponential(std::mt19937_64& rng, double rate) {
  return -std::log1p(-uniform01(rng)) / rate;
}

size_t draw_index(std::mt19937_64& rng, const std::vector<double>& cumulative) {
  const double u = uniform01(rng) * cumulative.back();
  const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
  return std::min(static_cast<size_t>(it - cumulative.begin()), cumulative.size() - 1);
}

// Arrival times of an open-loop source, one call per request.
class ArrivalProcess {
 public:
  ArrivalProcess(const GeneratorOptions& o, std::mt19937_64& rng)
      : options_(o), rng_(rng), bursty_(o.arrival == "bursty") {
    if (bursty_) state_end_ = exponential(rng_, 1 / o.calm_mean_s);
  }

  double next() {
    if (!bursty_) return now_ += exponential(rng_, options_.rate);
    // Memoryless states: when the gap drawn runs past the state's end, move
    // to the end, switch state and draw again at the new rate.
    while (true) {
      const double rate = burst_ ? options_.rate * options_.burst_factor : options_.rate;
      const double candidate = now_ + exponential(rng_, rate);
      if (candidate <= state_end_) return now_ = candidate;
      now_ = state_end_;
      burst_ = !burst_;
      state_end_ =
          now_ + exponential(rng_, 1 / (burst_ ? options_.burst_mean_s : options_.calm_mean_s));
    }
  }

 private:
  const GeneratorOptions& options_;
  std::mt19937_64& rng_;
  const bool bursty_;
  bool burst_ = false;
  double now_ = 0;
  double state_end_ = 0;
};

}  // namespace

WorkloadError::WorkloadError(std::string file, int line, std::string field,
                             const std::string& problem)
    : std::runtime_error(describe_error(file, line, field, problem)),
      file_(std::move(file)),
      line_(line),
      field_(std::move(field)) {}

WorkloadRequest parse_workload_line(const std::string& text, const std::string& file, int line) {
  const json j = parse_object(text, file, line);
  WorkloadRequest r;

  if (!j.contains("t")) throw WorkloadError(file, line, "t", "missing (arrival time in seconds)");
  if (!j["t"].is_number()) {
    throw WorkloadError(file, line, "t", std::string("must be a number, not ") + type_name(j["t"]));
  }
  r.t = j["t"].get<double>();
  if (!std::isfinite(r.t) || r.t < 0) {
    throw WorkloadError(file, line, "t", "must be >= 0, got " + j["t"].dump());
  }

  RequestBody body = parse_body(j, file, line);
  r.messages = std::move(body.messages);
  r.prompt = std::move(body.prompt);
  if (body.max_tokens) r.max_tokens = *body.max_tokens;
  r.model = optional_string(j, "model", file, line);
  r.domain = optional_string(j, "domain", file, line);
  r.reference = optional_string(j, "reference", file, line);
  return r;
}

PoolItem parse_pool_line(const std::string& text, const std::string& file, int line) {
  const json j = parse_object(text, file, line);
  PoolItem item;
  if (!j.contains("domain")) throw WorkloadError(file, line, "domain", "missing");
  item.domain = optional_string(j, "domain", file, line);
  if (item.domain.empty()) throw WorkloadError(file, line, "domain", "must not be empty");
  RequestBody body = parse_body(j, file, line);
  item.messages = std::move(body.messages);
  item.prompt = std::move(body.prompt);
  item.max_tokens = body.max_tokens;
  item.reference = optional_string(j, "reference", file, line);
  return item;
}

std::vector<PoolItem> load_pool(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw WorkloadError(path, 0, "", "cannot open");
  std::vector<PoolItem> out;
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    out.push_back(parse_pool_line(text, path, line));
  }
  if (in.bad()) throw WorkloadError(path, 0, "", "read failed");
  if (out.empty()) throw WorkloadError(path, 0, "", "no item in the pool");
  return out;
}

std::vector<WorkloadRequest> load_workload(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw WorkloadError(path, 0, "", "cannot open");
  std::vector<WorkloadRequest> out;
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    out.push_back(parse_workload_line(text, path, line));
  }
  if (in.bad()) throw WorkloadError(path, 0, "", "read failed");
  if (out.empty()) throw WorkloadError(path, 0, "", "no request in the file");
  std::stable_sort(out.begin(), out.end(),
                   [](const WorkloadRequest& a, const WorkloadRequest& b) { return a.t < b.t; });
  return out;
}

std::string workload_line(const WorkloadRequest& r) {
  nlohmann::ordered_json j = {{"t", r.t}};  // fields in the documented order
  if (!r.model.empty()) j["model"] = r.model;
  if (!r.domain.empty()) j["domain"] = r.domain;
  if (r.prompt) {
    j["prompt"] = *r.prompt;
  } else {
    j["messages"] = r.messages;
  }
  j["max_tokens"] = r.max_tokens;
  if (!r.reference.empty()) j["reference"] = r.reference;
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void save_workload(const std::string& path, const std::vector<WorkloadRequest>& requests) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) throw std::runtime_error(path + ": cannot open for writing");
  for (const auto& r : requests) out << workload_line(r) << "\n";
  out.flush();
  if (!out) throw std::runtime_error(path + ": write failed");
}

void validate(const GeneratorOptions& o) {
  const auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
  if (o.arrival != "poisson" && o.arrival != "bursty") {
    bad("arrival must be poisson or bursty, got '" + o.arrival + "'");
  }
  if (o.requests < 1) bad("requests must be >= 1");
  if (!std::isfinite(o.rate) || o.rate <= 0) bad("rate must be > 0");
  if (!std::isfinite(o.burst_factor) || o.burst_factor < 1) bad("burst factor must be >= 1");
  if (!std::isfinite(o.calm_mean_s) || o.calm_mean_s <= 0) bad("calm duration must be > 0");
  if (!std::isfinite(o.burst_mean_s) || o.burst_mean_s <= 0) bad("burst duration must be > 0");
  if (o.max_tokens < 1) bad("max tokens must be >= 1");
  if (o.models.empty()) bad("models must name at least one model");
  for (const auto& m : o.models) {
    if (m.empty()) bad("models must not contain an empty name");
  }
  if (!o.mix.empty()) {
    if (o.mix.size() != o.models.size()) {
      bad("mix has " + std::to_string(o.mix.size()) + " weights for " +
          std::to_string(o.models.size()) + " models");
    }
    double sum = 0;
    for (double w : o.mix) {
      if (!std::isfinite(w) || w < 0) bad("mix weights must be >= 0");
      sum += w;
    }
    if (sum <= 0) bad("mix weights must not all be 0");
  }
  if (!(o.locality >= 0 && o.locality <= 1)) bad("locality must be in [0, 1]");
  if (!o.domain_mix.empty()) {
    if (o.pool.empty()) bad("a domain mix needs a pool");
    double sum = 0;
    for (const auto& [domain, w] : o.domain_mix) {
      // A named copy for the lambda: clang before 16 cannot capture a structured binding.
      const std::string& name = domain;
      const bool known = std::any_of(o.pool.begin(), o.pool.end(),
                                     [&](const PoolItem& item) { return item.domain == name; });
      if (!known) bad("domain mix: no pool item has domain '" + domain + "'");
      if (!std::isfinite(w) || w < 0) bad("domain mix weights must be >= 0");
      sum += w;
    }
    if (sum <= 0) bad("domain mix weights must not all be 0");
  }
}

namespace {

// Requests drawn from a pool: a domain by weight, then an item uniformly
// within it. Domains are taken in sorted order so that the draw does not
// depend on the order of the pool file's lines across domains.
std::vector<WorkloadRequest> generate_from_pool(const GeneratorOptions& o) {
  std::map<std::string, std::vector<const PoolItem*>> by_domain;
  for (const PoolItem& item : o.pool) by_domain[item.domain].push_back(&item);
  std::vector<const std::vector<const PoolItem*>*> domains;
  std::vector<double> cumulative;
  double sum = 0;
  for (const auto& [domain, items] : by_domain) {
    double weight = o.domain_mix.empty() ? 1.0 : 0.0;
    for (const auto& [name, w] : o.domain_mix) {
      if (name == domain) weight = w;
    }
    if (weight <= 0) continue;
    sum += weight;
    cumulative.push_back(sum);
    domains.push_back(&items);
  }

  std::mt19937_64 rng(o.seed);
  ArrivalProcess arrivals(o, rng);
  std::vector<WorkloadRequest> out;
  out.reserve(static_cast<size_t>(o.requests));
  for (int i = 0; i < o.requests; ++i) {
    WorkloadRequest r;
    r.t = std::round(arrivals.next() * 1e6) / 1e6;
    const auto& items = *domains[draw_index(rng, cumulative)];
    const PoolItem& item = *items[std::min(
        items.size() - 1, static_cast<size_t>(uniform01(rng) * static_cast<double>(items.size())))];
    r.domain = item.domain;
    r.messages = item.messages;
    r.prompt = item.prompt;
    r.max_tokens = item.max_tokens.value_or(o.max_tokens);
    r.reference = item.reference;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

std::vector<WorkloadRequest> generate_workload(const GeneratorOptions& o) {
  validate(o);
  if (!o.pool.empty()) return generate_from_pool(o);
  std::mt19937_64 rng(o.seed);
  std::vector<double> cumulative;
  double sum = 0;
  for (size_t i = 0; i < o.models.size(); ++i) {
    sum += o.mix.empty() ? 1.0 : o.mix[i];
    cumulative.push_back(sum);
  }

  ArrivalProcess arrivals(o, rng);
  std::vector<WorkloadRequest> out;
  out.reserve(static_cast<size_t>(o.requests));
  size_t model = draw_index(rng, cumulative);
  for (int i = 0; i < o.requests; ++i) {
    WorkloadRequest r;
    // Microsecond resolution keeps the file short and loads back exactly.
    r.t = std::round(arrivals.next() * 1e6) / 1e6;
    if (i > 0 && !(uniform01(rng) < o.locality)) model = draw_index(rng, cumulative);
    r.model = o.models[model];
    const std::string content =
        o.prompts.empty()
            ? "request " + std::to_string(i) + " for model " + r.model + ": tell me something"
            : o.prompts[static_cast<size_t>(uniform01(rng) *
                                            static_cast<double>(o.prompts.size()))];
    r.messages = json::array({{{"role", "user"}, {"content", content}}});
    r.max_tokens = o.max_tokens;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace calm
