// RouterNode: see router_node.h.
#include "nodes/router_node.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "util/utf8.h"

namespace calm {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Kind = NodeError::Kind;

namespace {

RouterNode::ModelStatus parse_status(const json& entry) {
  RouterNode::ModelStatus status;
  if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_string()) {
    throw std::invalid_argument("an entry of data[] has no string id");
  }
  status.id = entry["id"].get<std::string>();
  const auto found = entry.find("status");
  if (found != entry.end() && found->is_object()) {
    // Field by field with their types checked: json::value() throws
    // type_error for a field of another type, and this answer is untrusted.
    const auto value = found->find("value");
    if (value != found->end() && value->is_string()) status.state = value->get<std::string>();
    const auto failed = found->find("failed");
    status.failed = failed != found->end() && failed->is_boolean() && failed->get<bool>();
    const auto code = found->find("exit_code");
    if (code != found->end() && code->is_number_integer()) status.exit_code = code->get<int>();
  } else if (found != entry.end() && found->is_string()) {
    status.state = found->get<std::string>();
  }
  const auto meta = entry.find("meta");
  if (meta != entry.end() && meta->is_object()) {
    const auto size = meta->find("size");
    if (size != meta->end() && size->is_number_unsigned())
      status.size_bytes = size->get<uint64_t>();
  }
  return status;
}

bool is_unloaded(const RouterNode::ModelStatus& status) {
  return status.state == "unloaded";
}

// What llama-server answers when the change asked for is already so.
bool already(const NodeError& error, std::string_view message) {
  return error.kind() == Kind::kRefused &&
         std::string_view(error.what()).find(message) != std::string_view::npos;
}

}  // namespace

RouterNode::RouterNode(Options options) : options_(std::move(options)), client_(options_) {}

std::vector<RouterNode::ModelStatus> RouterNode::models() const {
  const std::string body = client_.call("GET", "/models");
  try {
    return parse_router_models(body);
  } catch (const std::invalid_argument& error) {
    throw NodeError(Kind::kMalformed, client_.describe() + ": GET /models: " + error.what());
  }
}

std::optional<RouterNode::ModelStatus> RouterNode::model(std::string_view id) const {
  for (ModelStatus& status : models()) {
    if (status.id == id) return std::move(status);
  }
  return std::nullopt;
}

RouterNode::ModelStatus RouterNode::wait_until(const std::string& id, Goal goal) const {
  const char* goal_word = goal == Goal::kLoaded ? "loaded" : "unloaded";
  const auto deadline = Clock::now() + options_.load_timeout;
  for (;;) {
    const std::optional<ModelStatus> status = model(id);
    if (!status) {
      throw NodeError(Kind::kRefused,
                      client_.describe() + ": model '" + id + "' left the node's list");
    }
    if (goal == Goal::kLoaded ? status->loaded() : is_unloaded(*status)) return *status;
    // Asked to load, the model went back to unloaded: its child exited.
    if (goal == Goal::kLoaded && is_unloaded(*status)) {
      throw NodeError(
          Kind::kLoadFailed,
          client_.describe() + ": model '" + id + "' failed to load (its llama-server exited" +
              (status->failed ? " with code " + std::to_string(status->exit_code) : std::string()) +
              ")");
    }
    if (Clock::now() >= deadline) {
      throw NodeError(Kind::kTimeout, client_.describe() + ": model '" + id + "' not " + goal_word +
                                          " within " +
                                          std::to_string(options_.load_timeout.count()) +
                                          " ms (still " + status->state + ")");
    }
    std::this_thread::sleep_for(options_.poll_interval);
  }
}

RouterNode::ModelStatus RouterNode::load(const std::string& id) const {
  const std::optional<ModelStatus> now = model(id);
  if (!now) throw NodeError(Kind::kRefused, client_.describe() + ": has no model '" + id + "'");
  if (now->loaded()) return *now;
  if (now->state != "loading") {
    try {
      client_.call("POST", "/models/load", json{{"model", id}}.dump());
    } catch (const NodeError& error) {
      if (!already(error, "already running")) throw;  // another caller started it
    }
  }
  return wait_until(id, Goal::kLoaded);
}

void RouterNode::unload(const std::string& id) const {
  const std::optional<ModelStatus> now = model(id);
  if (!now) throw NodeError(Kind::kRefused, client_.describe() + ": has no model '" + id + "'");
  if (is_unloaded(*now)) return;
  try {
    client_.call("POST", "/models/unload", json{{"model", id}}.dump());
  } catch (const NodeError& error) {
    if (!already(error, "not running")) throw;
  }
  wait_until(id, Goal::kUnloaded);
}

std::optional<RouterNode::Queue> RouterNode::queue(const std::string& id) const {
  std::string text;
  try {
    text = client_.call(
        "GET", "/metrics?model=" + httplib::detail::encode_query_param(id) + "&autoload=false");
  } catch (const NodeError& error) {
    if (already(error, "not loaded")) return std::nullopt;
    throw;
  }
  const std::optional<double> processing = prometheus_sample(text, "llamacpp:requests_processing");
  const std::optional<double> deferred = prometheus_sample(text, "llamacpp:requests_deferred");
  if (!processing || !deferred) {
    throw NodeError(Kind::kMalformed,
                    client_.describe() + ": model '" + id +
                        "': its /metrics has no llamacpp:requests_processing "
                        "and requests_deferred (is the node run with --metrics?)");
  }
  return Queue{*processing, *deferred};
}

uint64_t RouterNode::make_ready(const std::string& upstream) const {
  return load(upstream).size_bytes;
}

void RouterNode::release(const std::string& upstream) const {
  unload(upstream);
}

Node::Queue RouterNode::queue_over(const std::vector<std::string>& upstreams) const {
  Queue total;
  for (const std::string& upstream : upstreams) {
    try {
      if (const auto q = queue(upstream)) {
        total.processing += q->processing;
        total.deferred += q->deferred;
      }
    } catch (const NodeError& error) {
      if (error.kind() == Kind::kUnreachable) throw;
      spdlog::debug("{}", error.what());  // loading, or a child without --metrics
    }
  }
  return total;
}

void RouterNode::forget_earlier(const std::set<std::string>& ours) const {
  for (const ModelStatus& model : models()) {
    if (!model.loaded()) continue;
    if (!ours.count(model.id)) {
      spdlog::warn(
          "node '{}': model '{}' is loaded but not in calm's fleet: its memory is not counted "
          "in the node's budget",
          options_.id, model.id);
      continue;
    }
    spdlog::info("node '{}': unloading '{}', loaded before calm started", options_.id, model.id);
    unload(model.id);
  }
}

EngineHealth RouterNode::health() const {
  return client_.check("/health");
}

std::vector<RouterNode::ModelStatus> parse_router_models(std::string_view body) {
  const json answer = json::parse(repair_utf8(body), nullptr, false);
  if (!answer.is_object() || !answer.contains("data") || !answer["data"].is_array()) {
    throw std::invalid_argument("not a model list (no data array)");
  }
  std::vector<RouterNode::ModelStatus> models;
  for (const json& entry : answer["data"]) models.push_back(parse_status(entry));
  return models;
}

}  // namespace calm
