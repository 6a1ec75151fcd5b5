// OpenAiNode: a node of kind `openai` (nodes/node.h): any OpenAI-compatible
// server with a fixed model set, such as vLLM, Ollama or a single-model
// llama-server. calm cannot load or unload models there, so:
//   make_ready   checks that GET /v1/models lists the model (kRefused naming
//                what it lists, when not); it reports no bytes
//   release      does nothing (its models are pinned in placement, so calm
//                never asks: swaps() is false)
//   queue_over   the node's whole queue from GET /metrics, whichever of these
//                it has: vLLM's vllm:num_requests_running and
//                vllm:num_requests_waiting, llama-server's
//                llamacpp:requests_processing and llamacpp:requests_deferred;
//                none (no /metrics, as on Ollama): an empty queue, and calm's
//                own count of its requests there is what placement goes by
//   health       GET /v1/models answered 200 (every such server has it)
//
// Thread-safe: every call uses a connection of its own (nodes/node_client.h).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "nodes/node.h"
#include "nodes/node_client.h"

namespace calm {

class OpenAiNode : public Node {
 public:
  // Throws NodeError(kMalformed) for a URL util/url.h refuses. No I/O.
  explicit OpenAiNode(NodeOptions options);

  // The model ids of GET /v1/models. Throws NodeError.
  std::vector<std::string> models() const;

  uint64_t make_ready(const std::string& upstream) const override;
  void release(const std::string&) const override {}
  Queue queue_over(const std::vector<std::string>& upstreams) const override;
  EngineHealth health() const override;
  void forget_earlier(const std::set<std::string>&) const override {}
  bool swaps() const override { return false; }

 protected:
  const NodeClient& client() const { return client_; }

 private:
  const NodeOptions options_;
  NodeClient client_;
};

// The ids of an OpenAI GET /v1/models answer ({"data": [{"id": ...}]}).
// Throws std::invalid_argument naming what is wrong. Safe from any thread.
std::vector<std::string> parse_openai_model_ids(std::string_view body);

// The queue in a Prometheus text of vLLM or llama-server (see the top);
// nullopt when it has neither pair. Safe from any thread.
std::optional<Node::Queue> openai_node_queue(std::string_view metrics);

// CalmNode: a node of kind `calm`, another calm serving its own fleet. To
// this calm it is an OpenAI-compatible server with a fixed model set (its
// fleet's ids), so it is an OpenAiNode but for two calls:
//   health      GET /health answered 200 (it says 503 while it stops or
//               when none of its models serves)
//   queue_over  from its /metrics, over the models asked: the sum of
//               calm_requests_running and calm_queue_depth; an empty queue
//               when /metrics is refused (an inference-only API key: /metrics
//               is an admin endpoint there) or absent
class CalmNode : public OpenAiNode {
 public:
  using OpenAiNode::OpenAiNode;
  Queue queue_over(const std::vector<std::string>& upstreams) const override;
  EngineHealth health() const override;
};

// The queue of `models` in another calm's /metrics text (see CalmNode).
// Safe from any thread.
Node::Queue calm_node_queue(std::string_view metrics, const std::vector<std::string>& models);

}  // namespace calm
