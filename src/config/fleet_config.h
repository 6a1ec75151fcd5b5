// The fleet file: which models calm serves and how the server listens.
//
//   server:
//     host: 127.0.0.1          # bind address; 127.0.0.1 unless told otherwise
//     port: 8080               # 0 picks a free port (printed at start)
//     max_body_bytes: 1048576  # larger request bodies get 413
//     http_threads: 32         # concurrent HTTP connections served
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
//
// Every error names the file, the line and the field, e.g.
//   fleet.yaml:7: models[0].gguf: file not found: /abs/path/tiny.gguf
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace calm {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ModelConfig {
  enum class Backend { kLlama, kRemote };

  std::string id;
  std::string description;
  std::vector<std::string> examples;  // inline ones, then those of examples_file
  std::vector<std::string> tags;
  Backend backend = Backend::kLlama;

  // kLlama
  std::string gguf_path;  // absolute after loading
  int context = 2048;     // tokens per slot
  int parallel = 1;       // slots decoded together
  int threads = 0;        // 0: all cores
  int batch = 512;        // tokens per llama_decode call while reading prompts
  int gpu_layers = -1;    // layers offloaded when a GPU backend exists; -1 all

  // kRemote
  std::string base_url;
  std::string upstream_model;
  std::string api_key;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds read_timeout{120000};

  bool is_local() const { return backend == Backend::kLlama; }
};

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  size_t max_body_bytes = 1 << 20;
  int http_threads = 32;
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

struct FleetConfig {
  std::string source;  // the file it came from
  ServerConfig server;
  std::vector<ModelConfig> models;
  std::optional<RouterConfig> router;  // absent: requests name their model
};

// Where scripts/fetch-glove.sh puts the default embeddings.
std::string default_embeddings_path();

// Reads and validates a fleet file. Throws ConfigError naming file, line and field.
FleetConfig load_fleet_config(const std::string& path);
// Same, from text (source names it in messages); relative GGUF paths resolve against base_dir.
FleetConfig parse_fleet_config(const std::string& yaml_text, const std::string& source,
                               const std::string& base_dir);

}  // namespace calm
