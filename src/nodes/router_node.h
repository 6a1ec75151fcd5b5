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
// Thread-safe: every call uses a connection of its own, and the api_key is
// cut out of every message (nodes/node_client.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "nodes/node.h"
#include "nodes/node_client.h"

namespace calm {

class RouterNode : public Node {
 public:
  using Options = NodeOptions;

  struct ModelStatus {
    std::string id;
    std::string state;  // llama-server's word: unloaded, loading, loaded, sleeping, ...
    bool failed = false;
    int exit_code = 0;
    uint64_t size_bytes = 0;  // the weights' bytes, reported once loaded; 0 before
    bool loaded() const { return state == "loaded" || state == "sleeping"; }
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
  EngineHealth health() const override;

  // Node (nodes/node.h), in the calls above: make_ready is load() (the
  // weights' size it reports), release is unload(), queue_over sums queue()
  // (llama-server's llamacpp:requests_processing and requests_deferred) over
  // the models, forget_earlier unloads those of `ours` that are loaded.
  uint64_t make_ready(const std::string& upstream) const override;
  void release(const std::string& upstream) const override;
  Queue queue_over(const std::vector<std::string>& upstreams) const override;
  void forget_earlier(const std::set<std::string>& ours) const override;
  bool swaps() const override { return true; }

  const Options& options() const { return options_; }

 private:
  enum class Goal { kLoaded, kUnloaded };
  // Polls GET /models until the model reaches `goal`, or load_timeout.
  ModelStatus wait_until(const std::string& id, Goal goal) const;

  const Options options_;
  NodeClient client_;
};

// The models of a router-mode GET /models answer. Throws std::invalid_argument
// naming what is wrong for a body that is not such a list. Safe from any thread.
std::vector<RouterNode::ModelStatus> parse_router_models(std::string_view body);

}  // namespace calm
