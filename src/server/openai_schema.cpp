#include "server/openai_schema.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace calm {
namespace {

using nlohmann::json;

constexpr int kDefaultChatMaxTokens = 512;
constexpr int kDefaultCompletionMaxTokens = 16;
constexpr int kMaxStopStrings = 4;

void require_object(const json& body) {
  if (!body.is_object()) throw ApiError::bad_request("the request body must be a JSON object");
}

std::string parse_model(const json& body) {
  const auto it = body.find("model");
  if (it == body.end() || !it->is_string() || it->get<std::string>().empty()) {
    throw ApiError::bad_request("'model' is required and must be a non-empty string", "model");
  }
  return it->get<std::string>();
}

// A number field within [min, max]; absent or null keeps the default.
float number_field(const json& body, const char* name, float fallback, double min, double max,
                   bool min_exclusive = false) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number())
    throw ApiError::bad_request(std::string("'") + name + "' must be a number", name);
  const double value = it->get<double>();
  const bool low = min_exclusive ? value <= min : value < min;
  if (!std::isfinite(value) || low || value > max) {
    throw ApiError::bad_request(std::string("'") + name + "' must be " +
                                    (min_exclusive ? "greater than " : "between ") +
                                    json(min).dump() + (min_exclusive ? " and at most " : " and ") +
                                    json(max).dump() + ", got " + it->dump(),
                                name);
  }
  return static_cast<float>(value);
}

long long integer_field(const json& body, const char* name, long long fallback, long long min,
                        long long max) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) {
    throw ApiError::bad_request(std::string("'") + name + "' must be an integer", name);
  }
  const long long value = it->get<long long>();
  if (value < min || value > max) {
    throw ApiError::bad_request(std::string("'") + name + "' must be between " +
                                    std::to_string(min) + " and " + std::to_string(max) + ", got " +
                                    std::to_string(value),
                                name);
  }
  return value;
}

bool bool_field(const json& body, const char* name, bool fallback) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    throw ApiError::bad_request(std::string("'") + name + "' must be a boolean", name);
  return it->get<bool>();
}

std::vector<std::string> parse_stop(const json& body) {
  const auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return {};
  std::vector<std::string> stops;
  if (it->is_string()) {
    stops.push_back(it->get<std::string>());
  } else if (it->is_array()) {
    for (const auto& s : *it) {
      if (!s.is_string())
        throw ApiError::bad_request("'stop' must be a string or an array of strings", "stop");
      stops.push_back(s.get<std::string>());
    }
  } else {
    throw ApiError::bad_request("'stop' must be a string or an array of strings", "stop");
  }
  if (stops.size() > kMaxStopStrings) {
    throw ApiError::bad_request("'stop' takes at most 4 strings", "stop");
  }
  for (const auto& s : stops) {
    if (s.empty()) throw ApiError::bad_request("'stop' strings must not be empty", "stop");
  }
  return stops;
}

void parse_common(const json& body, ApiRequest& request, int default_max_tokens) {
  SamplingParams& s = request.generation.sampling;
  s.temperature = number_field(body, "temperature", s.temperature, 0.0, 2.0);
  s.top_p = number_field(body, "top_p", s.top_p, 0.0, 1.0, /*min_exclusive=*/true);
  s.top_k = static_cast<int>(integer_field(body, "top_k", s.top_k, 0, 1 << 20));
  if (body.contains("seed") && !body["seed"].is_null()) {
    s.seed = static_cast<uint32_t>(
        integer_field(body, "seed", 0, 0, std::numeric_limits<uint32_t>::max()));
  }
  // max_completion_tokens is the newer name for the same limit.
  const long long legacy = integer_field(body, "max_tokens", default_max_tokens, 1, 1 << 24);
  s.max_tokens = static_cast<int>(integer_field(body, "max_completion_tokens", legacy, 1, 1 << 24));
  for (const char* name : {"max_completion_tokens", "max_tokens"}) {
    const auto it = body.find(name);
    if (it != body.end() && !it->is_null()) {
      s.max_tokens_field = name;
      break;
    }
  }
  s.stop = parse_stop(body);
  s.ignore_eos = bool_field(body, "ignore_eos", false);
  if (integer_field(body, "n", 1, 1, 1) != 1) {
    throw ApiError::bad_request("'n' must be 1", "n");
  }
  request.stream = bool_field(body, "stream", false);
  const auto options = body.find("stream_options");
  if (options != body.end() && !options->is_null()) {
    if (!options->is_object())
      throw ApiError::bad_request("'stream_options' must be an object", "stream_options");
    request.include_usage = bool_field(*options, "include_usage", false);
  }
}

// OpenAI content is a string or an array of parts; only text parts carry
// anything a text model can read.
std::string message_text(const json& content, size_t index) {
  const std::string param = "messages[" + std::to_string(index) + "].content";
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {
    std::string text;
    bool any_text = false;
    for (const auto& part : content) {
      if (!part.is_object()) throw ApiError::bad_request(param + " parts must be objects", param);
      const auto type = part.find("type");
      if (type == part.end() || !type->is_string() || type->get<std::string>() != "text") continue;
      const auto t = part.find("text");
      if (t == part.end() || !t->is_string()) {
        throw ApiError::bad_request(param + " text parts need a string 'text'", param);
      }
      if (any_text) text += "\n";
      text += t->get<std::string>();
      any_text = true;
    }
    if (!any_text) throw ApiError::bad_request(param + " has no text part", param);
    return text;
  }
  throw ApiError::bad_request(param + " must be a string or an array of content parts", param);
}

}  // namespace

json parse_request_body(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number such as 1e999
    throw ApiError::bad_request(std::string("the request body is not valid JSON: ") + e.what());
  }
}

ApiRequest parse_chat_request(const json& body) {
  require_object(body);
  ApiRequest request;
  request.model = parse_model(body);
  const auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array() || messages->empty()) {
    throw ApiError::bad_request("'messages' is required and must be a non-empty array", "messages");
  }
  static const std::vector<std::string> kRoles = {"system", "developer", "user", "assistant",
                                                  "tool"};
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw ApiError::bad_request(where + " must be an object", where);
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string() ||
        std::find(kRoles.begin(), kRoles.end(), role->get<std::string>()) == kRoles.end()) {
      throw ApiError::bad_request(
          where + ".role must be one of system, developer, user, assistant, tool", where + ".role");
    }
    const auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      throw ApiError::bad_request(where + ".content is required", where + ".content");
    }
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // the newer name; templates know "system"
    request.generation.messages.push_back({r, message_text(*content, i)});
  }
  parse_common(body, request, kDefaultChatMaxTokens);
  return request;
}

ApiRequest parse_completion_request(const json& body) {
  require_object(body);
  ApiRequest request;
  request.model = parse_model(body);
  const auto prompt = body.find("prompt");
  std::string text;
  if (prompt != body.end() && prompt->is_string()) {
    text = prompt->get<std::string>();
  } else if (prompt != body.end() && prompt->is_array() && prompt->size() == 1 &&
             (*prompt)[0].is_string()) {
    text = (*prompt)[0].get<std::string>();
  } else {
    throw ApiError::bad_request(
        "'prompt' is required: a string (or an array of exactly one string)", "prompt");
  }
  if (text.empty()) throw ApiError::bad_request("'prompt' must not be empty", "prompt");
  request.generation.prompt = std::move(text);
  parse_common(body, request, kDefaultCompletionMaxTokens);
  return request;
}

json usage_json(const GenerationResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", r.cached_prompt_tokens}}}};
}

namespace {
json finish_json(const std::string& reason) {
  return reason.empty() ? json(nullptr) : json(reason);
}
}  // namespace

json chat_response(const ResponseMeta& meta, const GenerationResult& result) {
  return {{"id", meta.id},
          {"object", "chat.completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array({{{"index", 0},
                                    {"message", {{"role", "assistant"}, {"content", result.text}}},
                                    {"logprobs", nullptr},
                                    {"finish_reason", finish_json(result.finish_reason)}}})},
          {"usage", usage_json(result)}};
}

json chat_chunk(const ResponseMeta& meta, const json& delta, const std::string& finish_reason) {
  return {{"id", meta.id},
          {"object", "chat.completion.chunk"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array({{{"index", 0},
                                    {"delta", delta},
                                    {"logprobs", nullptr},
                                    {"finish_reason", finish_json(finish_reason)}}})}};
}

json completion_response(const ResponseMeta& meta, const GenerationResult& result) {
  return {{"id", meta.id},
          {"object", "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array({{{"index", 0},
                                    {"text", result.text},
                                    {"logprobs", nullptr},
                                    {"finish_reason", finish_json(result.finish_reason)}}})},
          {"usage", usage_json(result)}};
}

json completion_chunk(const ResponseMeta& meta, const std::string& text,
                      const std::string& finish_reason) {
  return {{"id", meta.id},
          {"object", "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array({{{"index", 0},
                                    {"text", text},
                                    {"logprobs", nullptr},
                                    {"finish_reason", finish_json(finish_reason)}}})}};
}

json usage_chunk(const ResponseMeta& meta, const std::string& object,
                 const GenerationResult& result) {
  return {{"id", meta.id},       {"object", object},         {"created", meta.created},
          {"model", meta.model}, {"choices", json::array()}, {"usage", usage_json(result)}};
}

}  // namespace calm
