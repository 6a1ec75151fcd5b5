// RouterNode: one llama.cpp `llama-server` in router mode (started with
// `--models-dir DIR`) on another machine, whose models calm loads and unloads.
// The node does inference; calm decides which of its models are loaded
// (placement/placement.h). Generation requests go to the node's
// /v1/chat/completions with `model` set, through a RemoteEngine: this class
// only drives the model lifecycle and reads the node's figures.
//
// What it uses of the node's HTTP API (llama.cpp tools/server/server-models.cpp):
//   GET  /health                          the router itself is up
//   GET  /models                          every model of its models directory:
//                                         {"data": [{"id", "status": {"value",
//                                         "failed", "exit_code"}, "meta": {"size"}}]}
//   POST /models/load   {"model": ID}     starts the model's child process; answers at once
//   POST /models/unload {"model": ID}     stops it
//   GET  /metrics?model=ID&autoload=false the child's Prometheus text (its queue),
//                                         without loading a model that is not running
//
// A model on the node, as llama-server reports it:
//
//   [unloaded] ──load──► [loading] ──child ready──► [loaded] ──unload──► [unloaded]
//        ▲                   │                         │
//        └── failed, with ◄──┘ child exited ◄──────────┘
//            its exit code
//
// load() and unload() start the change and then poll GET /models until the
// model settles (every Options::poll_interval, at most Options::load_timeout),
// so a caller gets the outcome, never "started". Loading a loaded model and
// unloading an unloaded one succeed at once.
//
// The node's own `--models-max` still applies: set it at least as high as the
// models calm may keep there, or the router evicts behind calm's back.
//
// Thread-safe: every call uses a connection of its own (these calls are rare
// beside generations: a load, an unload, one scrape a second). The api_key is
// cut out of every message (engines/http_client.h's without_secret).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engines/engine.h"
#include "engines/http_client.h"
#include "util/url.h"

namespace calm {

class NodeError : public std::runtime_error {
 public:
  enum class Kind {
    kUnreachable,  // no connection, or no answer in time
    kRefused,      // the node answered with an error (an unknown model, a bad key)
    kLoadFailed,   // the model's child process exited while loading
    kTimeout,      // the model did not settle within load_timeout
    kMalformed,    // an answer that is not what llama-server sends
  };
  NodeError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

class RouterNode {
 public:
  struct Options {
    std::string id;        // calm's name for the node; used in messages
    std::string base_url;  // http[s]://host:port[/prefix] (util/url.h)
    std::string api_key;   // the node's --api-key, sent as a Bearer token
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds request_timeout{10000};  // each call to the node
    std::chrono::milliseconds load_timeout{120000};    // a load or unload to settle
    std::chrono::milliseconds poll_interval{100};      // GET /models while settling
    std::string ca_file;     // https: PEM CAs to trust instead of the system's
    bool tls_verify = true;  // https: verify the certificate and host name
  };

  struct ModelStatus {
    std::string id;
    std::string state;  // llama-server's word: unloaded, loading, loaded, sleeping, ...
    bool failed = false;
    int exit_code = 0;
    uint64_t size_bytes = 0;  // the weights' bytes, reported once loaded; 0 before
    bool loaded() const { return state == "loaded" || state == "sleeping"; }
  };

  // The queue of one loaded model: llama-server's
  // llamacpp:requests_processing and llamacpp:requests_deferred.
  struct Queue {
    double processing = 0;
    double deferred = 0;
  };

  // Throws NodeError(kMalformed) for a URL util/url.h refuses. No I/O.
  explicit RouterNode(Options options);

  // Every model the node can serve, in its order. Throws NodeError.
  std::vector<ModelStatus> models() const;
  // One model's status; nullopt when the node has no such model. Throws NodeError.
  std::optional<ModelStatus> model(std::string_view id) const;

  // Blocks until the model is loaded and returns its status. Throws NodeError:
  // kRefused for a model the node does not have, kLoadFailed with the exit
  // code, kTimeout, kUnreachable.
  ModelStatus load(const std::string& id) const;
  // Blocks until the model is unloaded. Throws NodeError.
  void unload(const std::string& id) const;

  // The model's queue; nullopt when it is not loaded (its metrics cannot be
  // read without loading it). Throws NodeError for an unreachable node or a
  // child started without --metrics (the router passes its own flags on).
  std::optional<Queue> queue(const std::string& id) const;

  // GET /health, bounded by connect_timeout. Never throws.
  EngineHealth health() const;

  const Options& options() const { return options_; }

 private:
  // GET or POST on the node; returns the body of a 2xx answer, throws
  // NodeError otherwise (kRefused carrying the node's own message).
  std::string call(const std::string& method, const std::string& path,
                   const std::string& body = "") const;
  enum class Goal { kLoaded, kUnloaded };
  // Polls GET /models until the model reaches `goal`, or load_timeout.
  ModelStatus wait_until(const std::string& id, Goal goal) const;
  std::string describe() const;  // "node 'ID' (URL)"
  std::string scrub(std::string text) const;

  const Options options_;
  Url url_;
  std::string base_path_;  // url_.path without a trailing '/' or '/v1'
  HttpClientSettings client_settings_;
};

// The models of a router-mode GET /models answer. Throws std::invalid_argument
// naming what is wrong for a body that is not such a list. Safe from any thread.
std::vector<RouterNode::ModelStatus> parse_router_models(std::string_view body);

// The value of a Prometheus sample named exactly `name` (with or without
// labels; the first such line) in the text format; nullopt when absent or
// not a number. Safe from any thread.
std::optional<double> prometheus_sample(std::string_view text, std::string_view name);

}  // namespace calm
