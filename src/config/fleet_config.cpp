#include "config/fleet_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "config/policy_names.h"
#include "config/yaml_error.h"
#include "config/yaml_fields.h"
#include "util/url.h"

namespace calm {
namespace {

namespace fs = std::filesystem;

std::chrono::milliseconds seconds_field(Fields& fields, const std::string& key,
                                        std::chrono::milliseconds fallback) {
  return fields.seconds(key, fallback);
}

ServerConfig parse_server(const YAML::Node& node, const std::string& source,
                          const std::string& base_dir) {
  ServerConfig server;
  if (!node.IsDefined() || node.IsNull()) return server;
  Fields fields(node, source, "server");
  server.host = fields.string("host", server.host);
  server.port = static_cast<int>(fields.integer("port", server.port, 0, 65535));
  server.max_body_bytes = static_cast<size_t>(fields.integer(
      "max_body_bytes", static_cast<long long>(server.max_body_bytes), 1024, 1LL << 32));
  server.max_connections = static_cast<size_t>(fields.integer(
      "max_connections", static_cast<long long>(server.max_connections), 1, 1'000'000));
  server.http_threads =
      static_cast<int>(fields.integer("http_threads", server.http_threads, 1, 1024));
  server.drain_grace = seconds_field(fields, "drain_grace_s", server.drain_grace);
  server.insecure = fields.boolean("insecure", server.insecure);
  server.tls = parse_tls_config(fields.get("tls"), source, base_dir);
  fields.reject_unknown();
  return server;
}

// models[].max_prompt_tokens and max_tokens_cap, after `context` is known.
void parse_limits(Fields& fields, ModelConfig& model) {
  if (fields.has("max_prompt_tokens")) {
    if (!model.is_local()) {
      fields.fail("max_prompt_tokens",
                  "applies only to a local (gguf) model: calm does not tokenize a remote "
                  "model's prompts, its server checks its own context");
    }
    model.max_prompt_tokens =
        static_cast<int>(fields.integer("max_prompt_tokens", 0, 1, model.context - 1));
  } else if (model.is_local()) {
    model.max_prompt_tokens = model.context - 1;
  }
  const int default_cap = model.is_local() ? model.context : 0;
  model.max_tokens_cap =
      static_cast<int>(fields.integer("max_tokens_cap", default_cap, 1, 1 << 24));
}

ModelConfig parse_model(const YAML::Node& node, const std::string& source, size_t index,
                        const fs::path& base_dir) {
  Fields fields(node, source, "models[" + std::to_string(index) + "]");
  ModelConfig model;
  model.id = fields.string("id", "", /*required=*/true);
  if (model.id.empty() || model.id.find_first_of(" \t\r\n") != std::string::npos) {
    fields.fail("id", "must be a non-empty name without spaces");
  }
  model.description = fields.string("description", "");
  model.examples = fields.strings("examples");
  if (fields.has("examples_file")) {
    fs::path file = fields.string("examples_file", "");
    if (file.is_relative()) file = base_dir / file;
    std::ifstream in(file);
    if (!in) fields.fail("examples_file", "cannot read " + file.string());
    // One example a line: a JSON object with "query" (route-eval's format) or plain text.
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (line.front() == '{') {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.contains("query") || !j["query"].is_string()) {
          fields.fail("examples_file",
                      file.string() + ":" + std::to_string(n) + ": expected {\"query\": \"...\"}");
        }
        model.examples.push_back(j["query"].get<std::string>());
      } else {
        model.examples.push_back(line);
      }
    }
  }
  model.tags = fields.strings("tags");

  const bool local = fields.has("gguf");
  const bool remote = fields.has("url");
  const bool placed = fields.has("nodes");
  if (local + remote + placed != 1) {
    fields.fail_at(node, fields.field("gguf"),
                   "give exactly one backend: 'gguf' (a file), 'url' or 'nodes'");
  }
  if (placed) {
    model.backend = ModelConfig::Backend::kNodes;
    model.nodes = fields.strings("nodes");
    if (model.nodes.empty()) fields.fail("nodes", "expected a list of at least one node id");
    model.upstream_model = fields.string("upstream_model", model.id);
    model.connect_timeout = seconds_field(fields, "connect_timeout_s", model.connect_timeout);
    model.read_timeout = seconds_field(fields, "read_timeout_s", model.read_timeout);
    if (fields.has("bytes")) {
      const YAML::Node value = fields.get("bytes");
      const auto bytes = value.IsScalar() ? parse_byte_size(value.Scalar()) : std::nullopt;
      if (!bytes) fields.fail("bytes", "expected a size such as 2GiB, 512MiB or a number of bytes");
      model.estimated_bytes = *bytes;
    }
  } else if (local) {
    model.backend = ModelConfig::Backend::kLlama;
    fs::path path = fields.string("gguf", "", true);
    if (path.is_relative()) path = base_dir / path;
    model.gguf_path = path.lexically_normal().string();
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) fields.fail("gguf", "file not found: " + model.gguf_path);
  } else {
    model.backend = ModelConfig::Backend::kRemote;
    model.base_url = fields.string("url", "", true);
    Url url;
    try {
      url = parse_url(model.base_url);
    } catch (const UrlError& e) {
      fields.fail("url", std::string(e.what()) + "; it must start with http:// or https://");
    }
    while (!model.base_url.empty() && model.base_url.back() == '/') model.base_url.pop_back();
    if (fields.has("ca_file")) {
      if (!url.tls()) fields.fail("ca_file", "applies only to an https:// url");
      fs::path file = fields.string("ca_file", "", true);
      if (file.is_relative()) file = base_dir / file;
      model.ca_file = file.lexically_normal().string();
      std::error_code ec;
      if (!fs::is_regular_file(file, ec))
        fields.fail("ca_file", "file not found: " + model.ca_file);
    }
    if (fields.has("tls_verify")) {
      if (!url.tls()) fields.fail("tls_verify", "applies only to an https:// url");
      model.tls_verify = fields.boolean("tls_verify", true);
      if (!model.tls_verify && !model.ca_file.empty()) {
        fields.fail("tls_verify", "tls_verify: false ignores ca_file; give one or the other");
      }
    }
    model.upstream_model = fields.string("upstream_model", model.id);
    model.api_key = fields.string("api_key", "");
    model.connect_timeout = seconds_field(fields, "connect_timeout_s", model.connect_timeout);
    model.read_timeout = seconds_field(fields, "read_timeout_s", model.read_timeout);
  }
  model.context = static_cast<int>(fields.integer("context", model.context, 16, 1 << 20));
  // A remote model's `parallel` is how many requests calm sends it at once
  // (the rest wait in calm's queue); its server batches them itself.
  const int default_parallel = model.is_local() ? model.parallel : kRemoteParallel;
  model.parallel = static_cast<int>(fields.integer("parallel", default_parallel, 1, 256));
  model.threads = static_cast<int>(fields.integer("threads", model.threads, 0, 1024));
  model.batch = static_cast<int>(fields.integer("batch", model.batch, 1, 1 << 16));
  model.gpu_layers = static_cast<int>(fields.integer("gpu_layers", model.gpu_layers, -1, 100000));
  model.pinned = fields.boolean("pinned", model.pinned);
  if (fields.has("preload")) model.preload = fields.boolean("preload", false);
  model.max_in_flight =
      static_cast<int>(fields.integer("max_in_flight", model.max_in_flight, 0, 1 << 20));
  model.fallbacks = fields.strings("fallbacks");
  model.inject_delay_ms =
      static_cast<int>(fields.integer("inject_delay_ms", model.inject_delay_ms, 0, 600000));
  model.inject_load_delay_ms = static_cast<int>(
      fields.integer("inject_load_delay_ms", model.inject_load_delay_ms, 0, 600000));
  parse_limits(fields, model);
  fields.reject_unknown();
  return model;
}

RouterConfig parse_router(const YAML::Node& node, const std::string& source,
                          const fs::path& base_dir) {
  RouterConfig router;
  // `router:` with nothing under it means every default.
  Fields fields(node.IsNull() ? YAML::Node(YAML::NodeType::Map) : node, source, "router");
  router.auto_model = fields.string("auto_model", router.auto_model);
  if (router.auto_model.empty()) fields.fail("auto_model", "must not be empty");
  fs::path embeddings = fields.string("embeddings", default_embeddings_path());
  if (embeddings.string().rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    embeddings = fs::path(home ? home : "") / embeddings.string().substr(2);
  }
  if (embeddings.is_relative()) embeddings = base_dir / embeddings;
  router.embeddings = embeddings.lexically_normal().string();
  std::error_code ec;
  if (!fs::is_regular_file(embeddings, ec)) {
    fields.fail("embeddings",
                "file not found: " + router.embeddings + " (scripts/fetch-glove.sh makes it)");
  }
  router.similarity = fields.string("similarity", router.similarity);
  if (router.similarity != "description" && router.similarity != "examples" &&
      router.similarity != "combined" && router.similarity != "classifier" &&
      router.similarity != "centroid") {
    fields.fail("similarity", "must be description, centroid, examples, combined or classifier");
  }
  router.knn = static_cast<int>(fields.integer("knn", router.knn, 1, 1000));
  router.policy = fields.string("policy", router.policy);
  if (router.policy != "pro-latency" && router.policy != "pro-energy" &&
      router.policy != "pro-confidence" && router.policy != "pro-cache") {
    fields.fail("policy", "must be pro-latency, pro-energy, pro-confidence or pro-cache");
  }
  router.lambda = fields.number("lambda", router.lambda, 0, 100);
  router.lambda_cache = fields.number("lambda_cache", router.lambda_cache, 0, 100);
  router.correlation_aware = fields.boolean("correlation_aware", router.correlation_aware);
  router.window = static_cast<int>(fields.integer("window", router.window, 1, 1000000));
  fields.reject_unknown();
  return router;
}

CacheConfig parse_cache(const YAML::Node& node, const std::string& source) {
  CacheConfig cache;
  if (!node.IsDefined() || node.IsNull()) return cache;
  Fields fields(node, source, "cache");
  if (fields.has("budget")) {
    const YAML::Node value = fields.get("budget");
    const auto bytes = value.IsScalar() ? parse_byte_size(value.Scalar()) : std::nullopt;
    if (!bytes || *bytes == 0) {
      fields.fail("budget", "expected a size such as 2GiB, 512MiB or a number of bytes");
    }
    cache.budget_bytes = *bytes;
  }
  cache.max_resident = static_cast<size_t>(fields.integer("max_resident", 0, 0, 1 << 20));
  cache.eviction = one_of(fields, "eviction", cache.eviction, eviction_policy_names());
  if (fields.has("idle_unload_s")) {
    cache.idle_unload = seconds_field(fields, "idle_unload_s", cache.idle_unload);
  }
  cache.prefetch = fields.boolean("prefetch", cache.prefetch);
  fields.reject_unknown();
  return cache;
}

FailoverConfig parse_failover(const YAML::Node& node, const std::string& source) {
  FailoverConfig failover;
  if (!node.IsDefined() || node.IsNull()) return failover;
  Fields fields(node, source, "failover");
  failover.max_retries =
      static_cast<int>(fields.integer("max_retries", failover.max_retries, 0, 16));
  failover.breaker_failures =
      static_cast<int>(fields.integer("breaker_failures", failover.breaker_failures, 1, 1000));
  failover.breaker_cooldown =
      seconds_field(fields, "breaker_cooldown_s", failover.breaker_cooldown);
  fields.reject_unknown();
  return failover;
}

// Every fallback names another model of the fleet, once.
void check_fallbacks(const FleetConfig& config, const YAML::Node& models,
                     const std::string& source) {
  std::set<std::string> ids;
  for (const auto& m : config.models) ids.insert(m.id);
  for (size_t i = 0; i < config.models.size(); ++i) {
    const ModelConfig& model = config.models[i];
    std::set<std::string> seen;
    for (const std::string& fallback : model.fallbacks) {
      Fields fields(models[i], source, "models[" + std::to_string(i) + "]");
      if (fallback == model.id) fields.fail("fallbacks", "'" + fallback + "' is the model itself");
      if (!ids.count(fallback)) {
        fields.fail("fallbacks", "'" + fallback + "' is not a model of this fleet");
      }
      if (!seen.insert(fallback).second) {
        fields.fail("fallbacks", "'" + fallback + "' is listed twice");
      }
    }
  }
}

SchedulerConfig parse_scheduler(const YAML::Node& node, const std::string& source) {
  SchedulerConfig scheduler;
  if (!node.IsDefined() || node.IsNull()) return scheduler;
  Fields fields(node, source, "scheduler");
  scheduler.policy = one_of(fields, "policy", scheduler.policy, queue_policy_names());
  scheduler.max_wait = std::chrono::milliseconds(
      fields.integer("max_wait_ms", scheduler.max_wait.count(), 0, 86'400'000));
  scheduler.max_queue = static_cast<size_t>(
      fields.integer("max_queue", static_cast<long long>(scheduler.max_queue), 1, 1 << 24));
  scheduler.queue_timeout = seconds_field(fields, "queue_timeout_s", scheduler.queue_timeout);
  scheduler.max_active_models =
      static_cast<size_t>(fields.integer("max_active_models", 0, 0, 1 << 16));
  fields.reject_unknown();
  return scheduler;
}

LoopConfig parse_loop(const YAML::Node& node, const std::string& source, const fs::path& base_dir) {
  LoopConfig loop;
  Fields fields(node.IsNull() ? YAML::Node(YAML::NodeType::Map) : node, source, "loop");
  loop.enabled = fields.boolean("enabled", loop.enabled);
  loop.period = seconds_field(fields, "period_s", loop.period);
  if (fields.has("goals_file")) {
    loop.goals_file = resolve_path(fields.string("goals_file", ""), base_dir).string();
    try {
      loop.goals = load_goals_file(loop.goals_file);
    } catch (const ConfigError& e) {
      fields.fail("goals_file", e.what());
    }
  }
  if (fields.has("knowledge")) {
    // A PostgreSQL URL (replicas sharing one database) is libpq's to read.
    const std::string knowledge = fields.string("knowledge", "");
    loop.knowledge =
        is_postgres_url(knowledge) ? knowledge : resolve_path(knowledge, base_dir).string();
  }
  loop.energy_meter =
      one_of(fields, "energy_meter", loop.energy_meter, {"auto", "nvml", "rapl", "cpu-time"});
  loop.watts_per_core = fields.number("watts_per_core", loop.watts_per_core, 0.001, 10000);
  fields.reject_unknown();
  return loop;
}

KnowledgeConfig parse_knowledge(const YAML::Node& node, const std::string& source) {
  KnowledgeConfig knowledge;
  if (!node.IsDefined() || node.IsNull()) return knowledge;
  Fields fields(node, source, "knowledge");
  knowledge.keep_text = fields.boolean("keep_text", knowledge.keep_text);
  knowledge.replica = fields.string("replica", knowledge.replica);
  fields.reject_unknown();
  return knowledge;
}

// Every node a model names is in `nodes:`.
void check_model_nodes(const FleetConfig& config, const YAML::Node& models,
                       const std::string& source) {
  std::set<std::string> known;
  for (const NodeConfig& node : config.nodes) known.insert(node.id);
  for (size_t i = 0; i < config.models.size(); ++i) {
    for (const std::string& id : config.models[i].nodes) {
      if (!known.count(id)) {
        Fields(models[i], source, "models[" + std::to_string(i) + "]")
            .fail("nodes", "unknown node '" + id + "': every node must be listed in nodes:");
      }
    }
  }
}

}  // namespace

Goals load_goals_file(const std::string& path) {
  const std::optional<std::string> text = read_text_file(path);
  if (!text) throw ConfigError(path + ": cannot open the goals file");
  const YAML::Node root = parse_yaml_mapping(*text, path, "'goals'");
  Goals goals;
  Fields top(root, path, "");
  const YAML::Node list = top.get("goals");
  if (!list.IsDefined() || list.IsNull()) top.fail("goals", "is required");
  Fields g(list, path, "goals");
  auto optional_number = [&](const std::string& key, double min, double max) {
    return g.has(key) ? std::optional<double>(g.number(key, 0, min, max)) : std::nullopt;
  };
  goals.latency_p95_ms = optional_number("latency_p95_ms", 0.001, 1e9);
  goals.energy_per_request_j = optional_number("energy_per_request_j", 1e-9, 1e12);
  goals.confidence_min = optional_number("confidence_min", 0, 1);
  g.reject_unknown();
  goals.window =
      static_cast<size_t>(top.integer("window", static_cast<long long>(goals.window), 5, 1000000));
  if (top.has("controller")) {
    Fields c(top.get("controller"), path, "controller");
    goals.lambda_step = c.number("lambda_step", goals.lambda_step, 1e-6, 100);
    goals.lambda_max = c.number("lambda_max", goals.lambda_max, 0, 1000);
    goals.relax_margin = c.number("relax_margin", goals.relax_margin, 0.01, 1);
    goals.relax_after = static_cast<int>(c.integer("relax_after", goals.relax_after, 1, 100000));
    c.reject_unknown();
  }
  top.reject_unknown();
  return goals;
}

std::optional<uint64_t> parse_byte_size(const std::string& text) {
  size_t end = 0;
  double number = 0;
  try {
    number = std::stod(text, &end);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::string unit = text.substr(end);
  unit.erase(0, unit.find_first_not_of(' '));
  static const std::vector<std::pair<std::string, double>> units{
      {"", 1},
      {"B", 1},
      {"KiB", 1024.0},
      {"MiB", 1024.0 * 1024},
      {"GiB", 1024.0 * 1024 * 1024},
      {"KB", 1e3},
      {"MB", 1e6},
      {"GB", 1e9},
      {"TiB", 1024.0 * 1024 * 1024 * 1024}};
  for (const auto& [name, scale] : units) {
    if (unit == name && number >= 0 && number * scale < 1.8e19) {
      return static_cast<uint64_t>(number * scale);
    }
  }
  return std::nullopt;
}

std::string default_embeddings_path() {
  const char* cache = std::getenv("CALM_CACHE");
  const char* home = std::getenv("HOME");
  const fs::path root = cache ? fs::path(cache) : fs::path(home ? home : "") / ".cache" / "calm";
  return (root / "embeddings" / "glove-100d-100000w.bin").string();
}

FleetConfig parse_fleet_config(const std::string& yaml_text, const std::string& source,
                               const std::string& base_dir) {
  const YAML::Node root = parse_yaml_mapping(yaml_text, source, "'server' and 'models'");

  FleetConfig config;
  config.source = source;
  Fields top(root, source, "");
  config.server = parse_server(top.get("server"), source, base_dir);

  const YAML::Node models = top.get("models");
  if (!models.IsDefined() || !models.IsSequence() || models.size() == 0) {
    top.fail("models", "is required: a list of at least one model");
  }
  std::set<std::string> ids;
  for (size_t i = 0; i < models.size(); ++i) {
    ModelConfig model = parse_model(models[i], source, i, base_dir);
    if (!ids.insert(model.id).second) {
      Fields(models[i], source, "models[" + std::to_string(i) + "]")
          .fail("id", "duplicate model id '" + model.id + "'");
    }
    config.models.push_back(std::move(model));
  }
  const YAML::Node router = top.get("router");
  if (router.IsDefined()) {
    config.router = parse_router(router, source, base_dir);
    for (size_t i = 0; i < config.models.size(); ++i) {
      if (config.models[i].description.empty() && config.models[i].examples.empty()) {
        Fields(models[i], source, "models[" + std::to_string(i) + "]")
            .fail("description", "a routed fleet needs a description or examples for every model");
      }
    }
  }
  config.cache = parse_cache(top.get("cache"), source);
  config.scheduler = parse_scheduler(top.get("scheduler"), source);
  config.failover = parse_failover(top.get("failover"), source);
  check_fallbacks(config, models, source);
  const YAML::Node loop = top.get("loop");
  if (loop.IsDefined()) config.loop = parse_loop(loop, source, base_dir);
  config.auth = parse_auth_config(top.get("auth"), source, base_dir);
  config.knowledge = parse_knowledge(top.get("knowledge"), source);
  config.nodes = parse_nodes(top.get("nodes"), source);
  check_model_nodes(config, models, source);
  top.reject_unknown();
  return config;
}

FleetConfig load_fleet_config(const std::string& path) {
  const std::optional<std::string> text = read_text_file(path);
  if (!text) throw ConfigError(path + ": cannot open the fleet file");
  const fs::path base = fs::absolute(fs::path(path)).parent_path();
  return parse_fleet_config(*text, path, base.string());
}

}  // namespace calm
