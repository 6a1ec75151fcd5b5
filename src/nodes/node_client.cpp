// NodeClient: see node_client.h.
#include "nodes/node_client.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "util/utf8.h"

namespace calm {

using json = nlohmann::json;
using Kind = NodeError::Kind;

std::string node_error_message(const std::string& body) {
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

NodeClient::NodeClient(const NodeOptions& options)
    : id_(options.id), api_key_(options.api_key), connect_timeout_(options.connect_timeout) {
  try {
    url_ = parse_url(options.base_url);
  } catch (const UrlError& error) {
    throw NodeError(Kind::kMalformed, "node '" + options.id + "': " + error.what());
  }
  base_path_ = openai_base_path(url_.path);
  settings_.connect_timeout = options.connect_timeout;
  settings_.read_timeout = options.request_timeout;
  settings_.api_key = options.api_key;
  settings_.ca_file = options.ca_file;
  settings_.tls_verify = options.tls_verify;
  settings_.keep_alive = false;  // one call, one connection
}

std::string NodeClient::describe() const {
  return "node '" + id_ + "' (" + url_.origin() + base_path_ + ")";
}

std::string NodeClient::scrub(std::string text) const {
  return without_secret(std::move(text), api_key_);
}

std::string NodeClient::call(const std::string& method, const std::string& path,
                             const std::string& body) const {
  const auto client = make_http_client(url_, settings_);
  const std::string target = base_path_ + path;
  const httplib::Result result =
      method == "POST" ? client->Post(target, body, "application/json") : client->Get(target);
  if (!result) {
    throw NodeError(Kind::kUnreachable, scrub(describe() + ": " + method + " " + path + ": " +
                                              httplib::to_string(result.error())));
  }
  if (result->status < 200 || result->status >= 300) {
    throw NodeError(Kind::kRefused, scrub(describe() + ": " + method + " " + path + " answered " +
                                          std::to_string(result->status) + ": " +
                                          node_error_message(result->body)));
  }
  return result->body;
}

EngineHealth NodeClient::check(const std::string& path) const {
  HttpClientSettings settings = settings_;
  settings.read_timeout = connect_timeout_;
  const auto client = make_http_client(url_, settings);
  const httplib::Result result = client->Get(base_path_ + path);
  if (!result) {
    return {false, scrub(describe() + ": GET " + path + ": " + httplib::to_string(result.error()))};
  }
  if (result->status != 200) {
    return {false, scrub(describe() + ": GET " + path + " answered " +
                         std::to_string(result->status) + ": " + node_error_message(result->body))};
  }
  return {true, describe() + ": healthy"};
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
