// OpenAiNode: see openai_node.h.
#include "nodes/openai_node.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "util/utf8.h"

namespace calm {

using json = nlohmann::json;
using Kind = NodeError::Kind;

OpenAiNode::OpenAiNode(NodeOptions options) : options_(std::move(options)), client_(options_) {}

std::vector<std::string> OpenAiNode::models() const {
  const std::string body = client_.call("GET", "/v1/models");
  try {
    return parse_openai_model_ids(body);
  } catch (const std::invalid_argument& error) {
    throw NodeError(Kind::kMalformed, client_.describe() + ": GET /v1/models: " + error.what());
  }
}

uint64_t OpenAiNode::make_ready(const std::string& upstream) const {
  const std::vector<std::string> ids = models();
  for (const std::string& id : ids) {
    if (id == upstream) return 0;
  }
  std::string listed;
  for (size_t i = 0; i < ids.size() && i < 10; ++i) listed += (i ? ", " : "") + ids[i];
  if (ids.size() > 10) listed += ", ...";
  throw NodeError(Kind::kRefused, client_.describe() + ": serves no model '" + upstream +
                                      "' (it lists: " + (listed.empty() ? "none" : listed) + ")");
}

Node::Queue OpenAiNode::queue_over(const std::vector<std::string>&) const {
  std::string text;
  try {
    text = client_.call("GET", "/metrics");
  } catch (const NodeError& error) {
    if (error.kind() == Kind::kRefused) return {};  // no /metrics here (Ollama)
    throw;
  }
  return openai_node_queue(text).value_or(Queue{});
}

EngineHealth OpenAiNode::health() const {
  return client_.check("/v1/models");
}

std::vector<std::string> parse_openai_model_ids(std::string_view body) {
  const json answer = json::parse(repair_utf8(std::string(body)), nullptr, false);
  if (!answer.is_object() || !answer.contains("data") || !answer["data"].is_array()) {
    throw std::invalid_argument("not a model list (no data array)");
  }
  std::vector<std::string> ids;
  for (const json& entry : answer["data"]) {
    if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_string()) {
      throw std::invalid_argument("an entry of data[] has no string id");
    }
    ids.push_back(entry["id"].get<std::string>());
  }
  return ids;
}

std::optional<Node::Queue> openai_node_queue(std::string_view metrics) {
  for (const auto& [running, waiting] :
       {std::pair{"vllm:num_requests_running", "vllm:num_requests_waiting"},
        std::pair{"llamacpp:requests_processing", "llamacpp:requests_deferred"}}) {
    const auto r = prometheus_sample(metrics, running);
    const auto w = prometheus_sample(metrics, waiting);
    if (r && w) return Node::Queue{*r, *w};
  }
  return std::nullopt;
}

Node::Queue CalmNode::queue_over(const std::vector<std::string>& upstreams) const {
  std::string text;
  try {
    text = client().call("GET", "/metrics");
  } catch (const NodeError& error) {
    if (error.kind() == Kind::kRefused) return {};  // an inference key, or metrics off
    throw;
  }
  return calm_node_queue(text, upstreams);
}

EngineHealth CalmNode::health() const {
  return client().check("/health");
}

Node::Queue calm_node_queue(std::string_view metrics, const std::vector<std::string>& models) {
  Node::Queue queue;
  for (const std::string& model : models) {
    // Label values are written escaped; a model id with a quote or a
    // backslash is looked up as calm writes it.
    std::string label;
    for (const char c : model) {
      if (c == '"' || c == '\\') label += '\\';
      label += c;
    }
    const std::string running = "calm_requests_running{model=\"" + label + "\"}";
    const std::string queued = "calm_queue_depth{model=\"" + label + "\"}";
    queue.processing += prometheus_sample(metrics, running).value_or(0);
    queue.deferred += prometheus_sample(metrics, queued).value_or(0);
  }
  return queue;
}

}  // namespace calm
