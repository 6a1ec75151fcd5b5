// The fleet file: which models calm serves and how the server listens.
// clang-format off
//
//   server:
//     host: 127.0.0.1          # bind address; 127.0.0.1 unless told otherwise
//     port: 8080               # 0 picks a free port (printed at start)
//     max_body_bytes: 1048576  # larger request bodies get 413
//     max_connections: 1024    # open connections; a new one past it gets 503 and is closed
//     http_threads: 2          # threads that parse and write HTTP (waiting holds none)
//     drain_grace_s: 10        # SIGTERM: how long requests in flight may finish
//     insecure: false          # allow a non-loopback host with no API keys
//     tls: {cert: calm.pem, key: calm-key.pem}   # optional: HTTPS (config/tls_config.h)
//   models:
//     - id: tiny-chat                       # the name clients send as `model`
//       description: "short general chat"   # what it is good at (for routing)
//       gguf: models/tiny-chat.gguf         # in-process llama.cpp; relative to this file
//       context: 2048                       # tokens per request slot
//       parallel: 4                         # requests decoded together in one batch
//       threads: 2                          # CPU threads; 0 = all cores
//     - id: big-remote
//       description: "..."
//       url: http://127.0.0.1:8081          # a remote OpenAI-compatible server
//       upstream_model: qwen2.5-7b          # model name sent upstream (default: id)
//       # https:// URLs verify the server's certificate against the system's CAs;
//       # ca_file: ca.pem trusts the CAs in that PEM file instead (relative to this
//       # file), tls_verify: false skips the check (self-signed test servers only)
//     - id: placed                          # served by nodes (config/node_config.h)
//       nodes: [box-a, box-b]
//       examples: ["a query it answers well"]  # for routing; or examples_file: x.jsonl
//       tags: [maths]                       # labels (route-eval matches on id or tag)
//   router:                                 # optional: route `model: auto` by meaning and QoS
//     auto_model: auto                      # the model name clients send to be routed
//     embeddings: ~/.cache/calm/embeddings/glove-100d-100000w.bin   # or a GGUF embedding model
//     similarity: combined                  # description | centroid | examples | combined | classifier
//     knn: 5                                # nearest examples averaged
//     policy: pro-confidence                # pro-latency | pro-energy | pro-confidence | pro-cache
//     lambda: 0.5
//     lambda_cache: 0.2
//     correlation_aware: false
//     window: 100                           # observations per model in the QoS windows
//   cache:                                  # optional: keep models resident within a budget
//     budget: 2GiB                          # bytes for models (B, KiB, MiB, GiB, KB, MB, GB)
//     max_resident: 0                       # also bound the count; 0 = no count limit
//     eviction: gdsf                        # lru | lfu | gdsf (cost-aware)
//     idle_unload_s: 0                      # unload a model idle this long; 0 = never
//     prefetch: false                       # load the model the trace predicts next, if it fits
//   scheduler:                              # optional: the global queue in front of every model
//     policy: swap-aware                    # fifo | stcf | swap-aware
//     max_wait_ms: 5000                     # swap-aware: no request waits longer to be preferred
//     max_queue: 1024                       # more queued requests get 503 with Retry-After
//     queue_timeout_s: 300                  # a request not started by then gets 503
//     max_active_models: 0                  # models decoding at once (CPU: cores / threads); 0 = no limit
//   loop:                                   # optional: the MAPE-K loop
//     period_s: 1                           # how often it analyses, plans and adapts
//     goals_file: goals.yaml                # latency_p95_ms, energy_per_request_j, confidence_min
//     knowledge: calm-knowledge.db          # SQLite file that keeps what it learnt across restarts,
//                                           # or postgresql://user@host/db shared by replicas
//     energy_meter: auto                    # auto | nvml | rapl | cpu-time
//     watts_per_core: 15                    # power figure of the cpu-time estimate
//   knowledge:                              # optional: what the knowledge file keeps
//     keep_text: false                      # true: also each request's prompt and answer text
//     replica: calm-a                       # this process's name among replicas (default host-pid)
//   auth:                                   # optional: API keys (config/auth_config.h)
//     keys: [{name: alice, sha256: 9f86d0..., scope: inference, requests_per_minute: 60}]
//   (per model: `pinned: true` is never evicted, `preload: true` loads at start,
//    `max_in_flight: N` answers 429 beyond N queued + running requests,
//    `inject_delay_ms: N` delays its answers and `inject_load_delay_ms: N` its
//    loads, for fault-injection tests; `max_prompt_tokens: N` (local models;
//    default context - 1) and `max_tokens_cap: N` (default: the context for
//    a local model, none for a remote one) refuse larger requests with 400)
//
// Every error names the file, the line and the field, e.g.
//   fleet.yaml:7: models[0].gguf: file not found: /abs/path/tiny.gguf
// clang-format on
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/auth_config.h"
#include "config/config_error.h"
#include "config/node_config.h"
#include "config/tls_config.h"

namespace calm {

struct ModelConfig {
  enum class Backend { kLlama, kRemote, kNodes };

  std::string id;
  std::string description;
  std::vector<std::string> examples;  // inline ones, then those of examples_file
  std::vector<std::string> tags;
  Backend backend = Backend::kLlama;

  // kLlama
  std::string gguf_path;        // absolute after loading
  int context = 2048;           // tokens per slot
  int parallel = 1;             // slots decoded together
  int threads = 0;              // 0: all cores
  int batch = 512;              // tokens per llama_decode call while reading prompts
  int gpu_layers = -1;          // layers offloaded when a GPU backend exists; -1 all
  bool pinned = false;          // never evicted from the cache
  std::optional<bool> preload;  // load at start; unset: yes unless cache.budget is set
  int max_in_flight = 0;        // queued + running; more get 429; 0: no limit
  // Other model ids that answer when this one's backend fails before the
  // first token (failover:, pipeline/request_pipeline.h), tried in order.
  // Empty: a request naming this model has none; a routed one gets the
  // router's next candidates.
  std::vector<std::string> fallbacks;
  // Fault injection, for tests: every answer of this model is delayed this
  // long before it starts; every load of it takes this much longer (a slow
  // disk, a large file). 0: none.
  int inject_delay_ms = 0;
  int inject_load_delay_ms = 0;

  // kRemote (and kNodes: upstream_model, api_key is the node's, the timeouts)
  std::string base_url;
  std::string upstream_model;
  std::string api_key;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds read_timeout{120000};
  std::string ca_file;     // https: CAs to trust instead of the system's; absolute; "" none
  bool tls_verify = true;  // https: verify the server's certificate and host name

  // kNodes (config/node_config.h): the nodes that serve it, and what it
  // takes loaded before calm has seen a load (0: unknown).
  std::vector<std::string> nodes;
  uint64_t estimated_bytes = 0;

  // --- Per-request limits (engines/generation_limits.h) ---
  // Prompt tokens a request may bring, after the chat template; local models
  // only (calm tokenizes only those). Default: context - 1 (one token of
  // room for the answer). More: 400 context_length_exceeded.
  int max_prompt_tokens = 0;
  // The largest max_tokens (or max_completion_tokens) a request may ask for;
  // a request that asks for none gets its default lowered to it. Default:
  // the context for a local model, none (0) for a remote one, whose server
  // has its own. More: 400 max_tokens_exceeded.
  int max_tokens_cap = 0;

  bool is_local() const { return backend == Backend::kLlama; }
};

// Requests calm sends a remote model at once when its `parallel` is not given.
inline constexpr int kRemoteParallel = 4;

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  size_t max_body_bytes = 1 << 20;
  // Connections open at once (each costs a socket and a little memory, never
  // a thread); a new one past it is answered 503 with Retry-After and closed.
  size_t max_connections = 1024;
  // Threads that parse and write HTTP. A request waiting in the queue or for
  // a load holds none of them, so a few serve any number of connections.
  int http_threads = 2;
  // On SIGTERM or SIGINT: how long requests in flight may take to finish
  // while new ones get 503; what is left then is cancelled.
  std::chrono::milliseconds drain_grace{10000};
  // Listen on an address other than loopback with no API keys (auth.keys):
  // anyone who reaches the port may then run, reload and read the fleet.
  bool insecure = false;

  // --- TLS (server.tls) ---
  // Set: the listener speaks HTTPS only, with this certificate and key.
  std::optional<TlsConfig> tls;
};

// Failover and circuit breakers (failover/circuit_breakers.h).
struct FailoverConfig {
  int max_retries = 2;       // fallbacks tried per request after the first model fails
  int breaker_failures = 3;  // failures in a row that open a breaker
  std::chrono::milliseconds breaker_cooldown{10000};  // open this long before a health check
};

struct RouterConfig {
  std::string auto_model = "auto";
  std::string embeddings;  // absolute path of a GloVe .bin (scripts/fetch-glove.sh)
  std::string similarity = "combined";
  int knn = 5;
  std::string policy = "pro-confidence";
  double lambda = 0.5;
  double lambda_cache = 0.2;
  bool correlation_aware = false;
  int window = 100;
};

struct CacheConfig {
  uint64_t budget_bytes = 0;  // 0: no budget given (every model fits)
  size_t max_resident = 0;    // 0: no count limit
  std::string eviction = "lru";
  std::chrono::milliseconds idle_unload{0};  // 0: never
  bool prefetch = false;
};

struct SchedulerConfig {
  std::string policy = "fifo";
  std::chrono::milliseconds max_wait{5000};
  size_t max_queue = 1024;
  std::chrono::milliseconds queue_timeout{300000};
  size_t max_active_models = 0;  // 0: no limit
};

// The MAPE-K loop's goals (a goals file). Unset goals are not checked.
struct Goals {
  std::optional<double> latency_p95_ms;        // p95 end-to-end latency, at most
  std::optional<double> energy_per_request_j;  // mean energy per request, at most
  std::optional<double> confidence_min;        // mean confidence, at least
  size_t window = 50;                          // recent requests the checks read
  double lambda_step = 0.5;                    // how much one plan moves the routing weight
  double lambda_max = 8;                       // the weight never goes above this
  double relax_margin = 0.8;  // relax once the metric is below this share of its goal
  int relax_after = 5;        // ... in this many analyses in a row
};

struct LoopConfig {
  bool enabled = true;
  std::chrono::milliseconds period{1000};
  std::string goals_file;  // absolute; empty: no goals (the loop only monitors)
  Goals goals;             // read from goals_file
  // A SQLite file (absolute), or a PostgreSQL URL as given; empty: in memory only.
  std::string knowledge;
  std::string energy_meter = "auto";  // auto | nvml | rapl | cpu-time
  double watts_per_core = 15;         // for the cpu-time estimate
};

// --- The knowledge file's privacy (`knowledge:`) ---
// By default the knowledge file (loop.knowledge or --knowledge) keeps what
// each request cost, never what it said; keeping the text is this explicit
// option, and needs a knowledge file.
struct KnowledgeConfig {
  bool keep_text = false;  // each answered request's prompt and answer
  // This process's name among the replicas that share a PostgreSQL
  // knowledge database; empty: host name and pid.
  std::string replica;
};

struct FleetConfig {
  std::string source;  // the file it came from
  ServerConfig server;
  std::vector<ModelConfig> models;
  std::optional<RouterConfig> router;  // absent: requests name their model
  CacheConfig cache;
  SchedulerConfig scheduler;
  FailoverConfig failover;
  std::optional<LoopConfig> loop;  // absent: no MAPE-K loop
  AuthConfig auth;                 // no keys: every endpoint is open
  KnowledgeConfig knowledge;
  std::vector<NodeConfig> nodes;  // config/node_config.h; none: every model is here or at a url
};

// Reads a goals file. Throws ConfigError naming file, line and field.
Goals load_goals_file(const std::string& path);

// "2GiB", "512MiB", "1.5GB", "1048576" → bytes; std::nullopt when not a size.
std::optional<uint64_t> parse_byte_size(const std::string& text);

// Where scripts/fetch-glove.sh puts the default embeddings.
std::string default_embeddings_path();

// Reads and validates a fleet file. Throws ConfigError naming file, line and field.
FleetConfig load_fleet_config(const std::string& path);
// Same, from text (source names it in messages); relative GGUF paths resolve against base_dir.
FleetConfig parse_fleet_config(const std::string& yaml_text, const std::string& source,
                               const std::string& base_dir);

}  // namespace calm
