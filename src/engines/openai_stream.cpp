// OpenAiStreamReader: see openai_stream.h.
#include "engines/openai_stream.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "util/utf8.h"

namespace calm {
namespace {

using json = nlohmann::json;

const json* find_member(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

const std::string* find_string(const json& object, const char* key) {
  const json* value = find_member(object, key);
  return value && value->is_string() ? &value->get_ref<const std::string&>() : nullptr;
}

std::optional<int> find_int(const json& object, const char* key) {
  const json* value = find_member(object, key);
  if (!value || !value->is_number_integer()) return std::nullopt;
  return value->get<int>();
}

// nlohmann rejects strings that are not UTF-8, and the text must come out
// valid anyway, so bytes are repaired before parsing.
json parse(std::string_view text) {
  return json::parse(repair_utf8(text), nullptr, false);
}

UpstreamProblem problem_from_json(const json& body, int status) {
  UpstreamProblem problem{status, "", ""};
  const json* error = find_member(body, "error");
  const json& source = error && error->is_object() ? *error : body;
  if (error && error->is_string()) {
    problem.message = error->get<std::string>();
  } else if (const std::string* message = find_string(source, "message")) {
    problem.message = *message;
  } else if (const std::string* detail = find_string(source, "detail")) {
    problem.message = *detail;
  }
  if (const std::string* type = find_string(source, "type")) problem.type = *type;
  if (problem.status == 0) problem.status = find_int(source, "code").value_or(0);
  return problem;
}

}  // namespace

std::string quote_upstream(std::string_view text, size_t limit) {
  const bool cut = text.size() > limit;
  std::string out = repair_utf8(text.substr(0, limit));
  if (cut) out += "...";
  return out;
}

UpstreamProblem parse_upstream_problem(std::string_view body, int status) {
  const json parsed = parse(body);
  UpstreamProblem problem{status, "", ""};
  if (parsed.is_object()) problem = problem_from_json(parsed, status);
  if (problem.message.empty()) {
    problem.message = body.empty() ? "(empty body)" : quote_upstream(body);
  }
  return problem;
}

OpenAiStreamReader::OpenAiStreamReader(TextCallback on_text, size_t max_event_bytes)
    : on_text_(std::move(on_text)), parser_(max_event_bytes) {}

bool OpenAiStreamReader::feed(std::string_view bytes) {
  if (problem_) return false;
  for (const SseEvent& event : parser_.feed(bytes)) {
    on_event(event);
    if (problem_) return false;
  }
  if (parser_.overflowed()) {
    fail(Problem::Kind::kTooLarge, "an event of the stream exceeded the reader's limit");
    return false;
  }
  return true;
}

void OpenAiStreamReader::finish() {
  if (problem_) return;
  for (const SseEvent& event : parser_.finish()) {
    on_event(event);
    if (problem_) return;
  }
}

void OpenAiStreamReader::read_whole_answer(std::string_view body) {
  if (problem_) return;
  const json answer = parse(body);
  if (!answer.is_object()) {
    fail(Problem::Kind::kMalformed,
         "answer is neither an event stream nor JSON: " + quote_upstream(body));
    return;
  }
  if (find_member(answer, "error")) {
    fail_upstream(problem_from_json(answer, 0));
    return;
  }
  take_chunk(answer, "message");
  if (finish_reason_.empty()) finish_reason_ = "stop";  // a whole answer is finished
  done_ = true;
}

void OpenAiStreamReader::on_event(const SseEvent& event) {
  if (done_) return;                                      // nothing counts after [DONE]
  if (const std::string* error = event.extra("error")) {  // llama-server's bare error line
    fail_upstream(parse_upstream_problem(*error));
    return;
  }
  if (event.type == "error") {
    fail_upstream(parse_upstream_problem(event.data));
    return;
  }
  if (event.data == "[DONE]") {
    done_ = true;
    return;
  }
  if (event.data.empty()) return;
  const json chunk = parse(event.data);
  if (!chunk.is_object()) {
    fail(Problem::Kind::kMalformed,
         "event data is not a JSON object: " + quote_upstream(event.data));
    return;
  }
  take_chunk(chunk, "delta");
}

void OpenAiStreamReader::take_chunk(const nlohmann::json& chunk, const char* choice_key) {
  if (find_member(chunk, "error")) {
    fail_upstream(problem_from_json(chunk, 0));
    return;
  }
  if (id_.empty()) {
    if (const std::string* id = find_string(chunk, "id")) id_ = *id;
  }
  if (model_.empty()) {
    if (const std::string* model = find_string(chunk, "model")) model_ = *model;
  }
  if (const json* usage = find_member(chunk, "usage"); usage && usage->is_object()) {
    usage_seen_ = true;
    prompt_tokens_ = find_int(*usage, "prompt_tokens").value_or(prompt_tokens_);
    completion_tokens_ = find_int(*usage, "completion_tokens").value_or(completion_tokens_);
  }
  const json* choices = find_member(chunk, "choices");
  if (!choices || !choices->is_array() || choices->empty()) return;
  const json& choice = (*choices)[0];
  const std::string* content = nullptr;
  if (const json* message = find_member(choice, choice_key)) {
    content = find_string(*message, "content");  // null in role-only chunks
  }
  if (!content) content = find_string(choice, "text");
  if (content && !content->empty()) {
    ++text_chunks_;
    text_ += *content;
    if (on_text_) on_text_(*content);
  }
  if (const std::string* reason = find_string(choice, "finish_reason")) {
    if (!reason->empty()) finish_reason_ = *reason;
  }
}

void OpenAiStreamReader::fail(Problem::Kind kind, std::string message) {
  if (problem_) return;
  problem_ = Problem{kind, std::move(message), {}};
}

void OpenAiStreamReader::fail_upstream(UpstreamProblem problem) {
  if (problem_) return;
  problem_ = Problem{Problem::Kind::kError, problem.message, std::move(problem)};
}

}  // namespace calm
