// Node: one other machine's engine that calm places models on
// (nodes/node_fleet.h). The node does inference; calm decides which of its
// models are in use. Two kinds:
//
//   RouterNode  (kind llama-server-router, nodes/router_node.h): llama.cpp's
//               llama-server in router mode, which loads and unloads models
//               on request; calm drives that, under the node's byte budget.
//   OpenAiNode  (kind openai, nodes/openai_node.h): any OpenAI-compatible
//               server with a fixed model set (vLLM, Ollama, a single-model
//               llama-server). calm cannot load or unload there: a "load"
//               checks that the node lists the model, and its models are
//               never evicted (swaps() is false).
//   CalmNode    (kind calm, nodes/openai_node.h): another calm, an OpenAiNode
//               whose health and queue come from calm's own /health and
//               /metrics.
//
// Generation requests go to the node's /v1/chat/completions through a
// RemoteEngine (nodes/placed_engine.h); this interface is the rest: the
// model lifecycle, the queue and the health check.
//
// Thread-safe: every call may come from any thread (the monitor, the
// requests' workers) and uses a connection of its own.
#pragma once

#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "engines/engine.h"

namespace calm {

class NodeError : public std::runtime_error {
 public:
  enum class Kind {
    kUnreachable,  // no connection, or no answer in time
    kRefused,      // the node answered with an error (an unknown model, a bad key)
    kLoadFailed,   // the model's child process exited while loading
    kTimeout,      // the model did not settle within load_timeout
    kMalformed,    // an answer that is not what the node's kind sends
  };
  NodeError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// How calm reaches a node (from its entry in the fleet file).
struct NodeOptions {
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

class Node {
 public:
  // Requests on the node, from its /metrics: running and waiting.
  struct Queue {
    double processing = 0;
    double deferred = 0;
  };

  virtual ~Node() = default;

  // Blocks until the model (its name on the node) can be served there, and
  // returns the bytes its weights take as the node reports them (0: the node
  // does not say). Throws NodeError.
  virtual uint64_t make_ready(const std::string& upstream) const = 0;
  // Blocks until the node no longer holds the model. Throws NodeError.
  virtual void release(const std::string& upstream) const = 0;
  // The node's queue, over the models calm has there. Throws NodeError for
  // a node that cannot be read.
  virtual Queue queue_over(const std::vector<std::string>& upstreams) const = 0;
  // Bounded by the node's connect timeout. Never throws.
  virtual EngineHealth health() const = 0;
  // At start: gives back what an earlier calm left in use there among
  // `ours` (the names calm's fleet uses), so the charge starts from what
  // this calm knows. Throws NodeError.
  virtual void forget_earlier(const std::set<std::string>& ours) const = 0;
  // Whether calm may unload models there to make room.
  virtual bool swaps() const = 0;
};

}  // namespace calm
