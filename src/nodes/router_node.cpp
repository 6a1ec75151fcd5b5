// RouterNode: see router_node.h.
#include "nodes/router_node.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "util/utf8.h"

namespace calm {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Kind = NodeError::Kind;

namespace {

// The node's own message from an OpenAI-style error body, else the body
// itself (cut short: it is for a log line).
std::string error_message(const std::string& body) {
  const json answer = json::parse(repair_utf8(body), nullptr, false);
  if (answer.is_object() && answer.contains("error")) {
    const json& error = answer["error"];
    if (error.is_object() && error.contains("message") && error["message"].is_string()) {
      return error["message"].get<std::string>();
    }
    if (error.is_string()) return error.get<std::string>();
  }
  std::string text = repair_utf8(body.substr(0, 200));
  return text.empty() ? "no message" : text;
}

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

RouterNode::RouterNode(Options options) : options_(std::move(options)) {
  try {
    url_ = parse_url(options_.base_url);
  } catch (const UrlError& error) {
    throw NodeError(Kind::kMalformed, "node '" + options_.id + "': " + error.what());
  }
  base_path_ = openai_base_path(url_.path);
  client_settings_.connect_timeout = options_.connect_timeout;
  client_settings_.read_timeout = options_.request_timeout;
  client_settings_.api_key = options_.api_key;
  client_settings_.ca_file = options_.ca_file;
  client_settings_.tls_verify = options_.tls_verify;
  client_settings_.keep_alive = false;  // one call, one connection
}

std::string RouterNode::describe() const {
  return "node '" + options_.id + "' (" + url_.origin() + base_path_ + ")";
}

std::string RouterNode::scrub(std::string text) const {
  return without_secret(std::move(text), options_.api_key);
}

std::string RouterNode::call(const std::string& method, const std::string& path,
                             const std::string& body) const {
  const auto client = make_http_client(url_, client_settings_);
  const std::string target = base_path_ + path;
  const httplib::Result result =
      method == "POST" ? client->Post(target, body, "application/json") : client->Get(target);
  if (!result) {
    throw NodeError(Kind::kUnreachable, scrub(describe() + ": " + method + " " + path + ": " +
                                              httplib::to_string(result.error())));
  }
  if (result->status < 200 || result->status >= 300) {
    throw NodeError(Kind::kRefused,
                    scrub(describe() + ": " + method + " " + path + " answered " +
                          std::to_string(result->status) + ": " + error_message(result->body)));
  }
  return result->body;
}

std::vector<RouterNode::ModelStatus> RouterNode::models() const {
  const std::string body = call("GET", "/models");
  try {
    return parse_router_models(body);
  } catch (const std::invalid_argument& error) {
    throw NodeError(Kind::kMalformed, describe() + ": GET /models: " + error.what());
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
      throw NodeError(Kind::kRefused, describe() + ": model '" + id + "' left the node's list");
    }
    if (goal == Goal::kLoaded ? status->loaded() : is_unloaded(*status)) return *status;
    // Asked to load, the model went back to unloaded: its child exited.
    if (goal == Goal::kLoaded && is_unloaded(*status)) {
      throw NodeError(
          Kind::kLoadFailed,
          describe() + ": model '" + id + "' failed to load (its llama-server exited" +
              (status->failed ? " with code " + std::to_string(status->exit_code) : std::string()) +
              ")");
    }
    if (Clock::now() >= deadline) {
      throw NodeError(Kind::kTimeout, describe() + ": model '" + id + "' not " + goal_word +
                                          " within " +
                                          std::to_string(options_.load_timeout.count()) +
                                          " ms (still " + status->state + ")");
    }
    std::this_thread::sleep_for(options_.poll_interval);
  }
}

RouterNode::ModelStatus RouterNode::load(const std::string& id) const {
  const std::optional<ModelStatus> now = model(id);
  if (!now) throw NodeError(Kind::kRefused, describe() + ": has no model '" + id + "'");
  if (now->loaded()) return *now;
  if (now->state != "loading") {
    try {
      call("POST", "/models/load", json{{"model", id}}.dump());
    } catch (const NodeError& error) {
      if (!already(error, "already running")) throw;  // another caller started it
    }
  }
  return wait_until(id, Goal::kLoaded);
}

void RouterNode::unload(const std::string& id) const {
  const std::optional<ModelStatus> now = model(id);
  if (!now) throw NodeError(Kind::kRefused, describe() + ": has no model '" + id + "'");
  if (is_unloaded(*now)) return;
  try {
    call("POST", "/models/unload", json{{"model", id}}.dump());
  } catch (const NodeError& error) {
    if (!already(error, "not running")) throw;
  }
  wait_until(id, Goal::kUnloaded);
}

std::optional<RouterNode::Queue> RouterNode::queue(const std::string& id) const {
  std::string text;
  try {
    text = call("GET",
                "/metrics?model=" + httplib::detail::encode_query_param(id) + "&autoload=false");
  } catch (const NodeError& error) {
    if (already(error, "not loaded")) return std::nullopt;
    throw;
  }
  const std::optional<double> processing = prometheus_sample(text, "llamacpp:requests_processing");
  const std::optional<double> deferred = prometheus_sample(text, "llamacpp:requests_deferred");
  if (!processing || !deferred) {
    throw NodeError(Kind::kMalformed,
                    describe() + ": model '" + id +
                        "': its /metrics has no llamacpp:requests_processing "
                        "and requests_deferred (is the node run with --metrics?)");
  }
  return Queue{*processing, *deferred};
}

EngineHealth RouterNode::health() const {
  HttpClientSettings settings = client_settings_;
  settings.read_timeout = options_.connect_timeout;
  const auto client = make_http_client(url_, settings);
  const httplib::Result result = client->Get(base_path_ + "/health");
  if (!result) {
    return {false, scrub(describe() + ": GET /health: " + httplib::to_string(result.error()))};
  }
  if (result->status != 200) {
    return {false, scrub(describe() + ": GET /health answered " + std::to_string(result->status) +
                         ": " + error_message(result->body))};
  }
  return {true, describe() + ": healthy"};
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

std::optional<double> prometheus_sample(std::string_view text, std::string_view name) {
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (line.size() <= name.size() || line.substr(0, name.size()) != name) continue;
    line.remove_prefix(name.size());
    if (line.front() == '{') {  // labels: skip to the closing brace, outside quotes
      bool quoted = false;
      size_t close = 1;
      for (; close < line.size(); ++close) {
        if (line[close] == '\\' && quoted) {
          ++close;
        } else if (line[close] == '"') {
          quoted = !quoted;
        } else if (line[close] == '}' && !quoted) {
          break;
        }
      }
      if (close >= line.size()) return std::nullopt;
      line.remove_prefix(close + 1);
    }
    if (line.empty() || (line.front() != ' ' && line.front() != '\t')) continue;  // a longer name
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    const size_t value_end = line.find_first_of(" \t\r");
    line = line.substr(0, value_end);
    double value = 0;
    const auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), value);
    if (ec != std::errc() || ptr != line.data() + line.size() || !std::isfinite(value)) {
      return std::nullopt;
    }
    return value;
  }
  return std::nullopt;
}

}  // namespace calm
