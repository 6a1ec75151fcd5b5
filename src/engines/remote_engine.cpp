// RemoteEngine: see remote_engine.h.
#include "engines/remote_engine.h"

#include <httplib.h>

#include <charconv>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include "engines/sse_parser.h"
#include "util/utf8.h"

namespace calm {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Kind = EngineError::Kind;

// One generation in flight. Shared by the worker thread that runs it and the
// watcher that may abort it, so neither outlives what it touches.
struct RemoteEngine::Call {
  std::shared_ptr<GenerationStream> stream = std::make_shared<GenerationStream>();
  std::unique_ptr<httplib::Client> client;
  std::thread thread;
  bool done = false;  // guarded by RemoteEngine::mutex_; set as the thread's last act
};

namespace {

// How often the watcher looks for cancelled streams. GenerationStream has no
// cancel callback, so a silent upstream can only be noticed by polling.
constexpr auto kWatchInterval = std::chrono::milliseconds(50);
constexpr size_t kMaxErrorBody = size_t{64} << 10;  // what we keep of an error answer
constexpr size_t kMaxJsonBody = size_t{16} << 20;   // a whole non-streamed answer
constexpr size_t kMaxQuotedChars = 300;             // upstream text quoted in messages

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Upstream bytes quoted in an error message: bounded and valid UTF-8.
std::string quote(std::string_view text) {
  const bool cut = text.size() > kMaxQuotedChars;
  std::string out = repair_utf8(text.substr(0, kMaxQuotedChars));
  if (cut) out += "...";
  return out;
}

bool is_success(int status) {
  return status >= 200 && status < 300;
}

// 0.8f widened to double is 0.800000011920929; send the float's shortest
// decimal form instead so upstream logs and request echoes read as given.
double as_decimal(float value) {
  char buffer[32];
  const auto printed = std::to_chars(buffer, buffer + sizeof buffer, value);
  double out = value;
  if (printed.ec == std::errc()) std::from_chars(buffer, printed.ptr, out);
  return out;
}

struct ParsedUrl {
  std::string host;
  int port = 80;
  std::string path_prefix;
};

// Splits http://host[:port][/prefix]. Returns why the URL is unusable, or "".
std::string parse_base_url(const std::string& url, ParsedUrl& out) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return "base URL '" + url + "' has no http:// scheme";
  const std::string scheme = lowercase(std::string_view(url).substr(0, scheme_end));
  if (scheme == "https") {
    return "https:// is not supported: this build's HTTP client has no TLS; use an http:// "
           "URL (e.g. a TLS-terminating proxy on localhost)";
  }
  if (scheme != "http") return "unsupported scheme '" + scheme + "://' (only http:// is served)";

  const std::string rest = url.substr(scheme_end + 3);
  if (rest.find_first_of("?#") != std::string::npos) {
    return "base URL '" + url + "' may not have a query or fragment";
  }
  const size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  if (authority.find('@') != std::string::npos) {
    return "credentials in the base URL are not supported; use api_key";
  }

  std::string port_text;
  if (!authority.empty() && authority.front() == '[') {  // IPv6 literal: [::1]:8080
    const size_t close = authority.find(']');
    if (close == std::string::npos) return "base URL '" + url + "' has an unclosed '['";
    out.host = authority.substr(1, close - 1);
    const std::string after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return "base URL '" + url + "' is malformed";
    if (!after.empty()) port_text = after.substr(1);
  } else {
    const size_t colon = authority.rfind(':');
    out.host = authority.substr(0, colon);
    if (colon != std::string::npos) port_text = authority.substr(colon + 1);
  }
  if (out.host.empty()) return "base URL '" + url + "' has no host";
  if (!port_text.empty()) {
    int port = 0;
    const auto parsed =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (parsed.ec != std::errc() || parsed.ptr != port_text.data() + port_text.size() || port < 1 ||
        port > 65535) {
      return "base URL '" + url + "' has a bad port '" + port_text + "'";
    }
    out.port = port;
  }

  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, "/v1") == 0) {
    path.resize(path.size() - 3);  // we append /v1/... ourselves
  }
  while (!path.empty() && path.back() == '/') path.pop_back();
  out.path_prefix = path;
  return "";
}

// Why an HTTP exchange failed, in words an operator can act on.
std::string transport_error(httplib::Error error, std::chrono::milliseconds connect_timeout,
                            std::chrono::milliseconds read_timeout) {
  std::string hint;
  switch (error) {
    case httplib::Error::Connection:
      hint = "cannot connect";
      break;
    case httplib::Error::ConnectionTimeout:
      hint = "no connection within " + std::to_string(connect_timeout.count()) + " ms";
      break;
    case httplib::Error::Read:
      hint = "connection lost, or no data within the read timeout of " +
             std::to_string(read_timeout.count()) + " ms";
      break;
    case httplib::Error::Write:
      hint = "connection lost while sending the request";
      break;
    default:
      hint = "request failed";
      break;
  }
  return hint + " (httplib error: " + httplib::to_string(error) + ")";
}

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
  if (!value || !value->is_number()) return std::nullopt;
  return value->get<int>();
}

// What the upstream said went wrong. Dialects:
//   OpenAI, llama-server, vLLM: {"error": {"message": "...", "type": ..., "code": ...}}
//   Ollama:                     {"error": "..."}
//   vLLM (older), FastAPI:      {"message": "..."} / {"detail": "..."}
struct UpstreamProblem {
  int status = 0;  // HTTP status, or the error object's "code" mid-stream
  std::string message;
  std::string type;
};

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

UpstreamProblem problem_from_text(std::string_view body, int status) {
  const json parsed = json::parse(repair_utf8(body), nullptr, false);
  UpstreamProblem problem{status, "", ""};
  if (parsed.is_object()) problem = problem_from_json(parsed, status);
  if (problem.message.empty()) problem.message = body.empty() ? "(empty body)" : quote(body);
  return problem;
}

// llama-server: "the request exceeds the available context size" (type
// exceed_context_size_error); vLLM: "This model's maximum context length is ...".
bool is_context_overflow(const UpstreamProblem& problem) {
  if (problem.type == "exceed_context_size_error") return true;
  const std::string message = lowercase(problem.message);
  return message.find("context") != std::string::npos &&
         (message.find("exceed") != std::string::npos ||
          message.find("maximum context length") != std::string::npos);
}

// in_stream: the problem came inside a 2xx event stream (llama-server sends
// {"error": {...}} as an event when its output parser fails mid-answer);
// its "code" then stands in for the status.
EngineError to_engine_error(const UpstreamProblem& problem, const std::string& who,
                            bool in_stream) {
  const std::string code = problem.status > 0 ? std::to_string(problem.status) : "";
  const std::string message =
      who + ": upstream " +
      (in_stream ? "reported an error mid-stream" + (code.empty() ? "" : " (code " + code + ")")
                 : "answered HTTP " + code) +
      ": " + problem.message;
  if (problem.status == 503) return EngineError(Kind::kUnavailable, message);
  if (problem.status >= 400 && problem.status < 500 && is_context_overflow(problem)) {
    return EngineError(Kind::kContextOverflow, message);
  }
  return EngineError(Kind::kUpstream, message);
}

json build_body(const GenerationRequest& request, const std::string& model) {
  json body = json::object();
  body["model"] = model;
  if (request.is_chat()) {
    json messages = json::array();
    for (const ChatMessage& message : request.messages) {
      messages.push_back({{"role", message.role}, {"content", message.content}});
    }
    body["messages"] = std::move(messages);
  } else {
    body["prompt"] = *request.prompt;
  }
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};

  const SamplingParams& sampling = request.sampling;
  body["temperature"] = as_decimal(sampling.temperature);
  body["top_p"] = as_decimal(sampling.top_p);
  // Optional fields go out only when set: a missing seed means "random"
  // everywhere, and a top_k of 0 is not portable (older vLLM rejects it and
  // wants -1). The price: with top_k 0 ("disabled") the upstream applies its
  // own default instead (llama-server: 40).
  if (sampling.top_k > 0) body["top_k"] = sampling.top_k;
  if (sampling.seed) body["seed"] = *sampling.seed;
  body["max_tokens"] = sampling.max_tokens;
  if (!sampling.stop.empty()) body["stop"] = sampling.stop;
  if (sampling.ignore_eos) body["ignore_eos"] = true;  // llama-server and vLLM know it
  return body;
}

// The answer to one POST as it arrives: headers, then body bytes, then the
// end. Turns them into stream deltas and, at the end, a result or an error.
class Reply {
 public:
  Reply(GenerationStream& stream, bool chat, Clock::time_point start, std::string who)
      : stream_(stream), chat_(chat), start_(start), who_(std::move(who)) {}

  void on_headers(int status, const std::string& content_type) {
    status_ = status;
    sse_ = is_success(status) &&
           lowercase(content_type).find("text/event-stream") != std::string::npos;
  }

  // Returns false to abort the exchange (error() says why).
  bool on_body(std::string_view bytes) {
    if (error_) return false;
    if (!sse_) return keep_body(bytes);
    for (const SseEvent& event : parser_.feed(bytes)) {
      if (!on_event(event)) return false;
    }
    if (parser_.overflowed()) {
      fail(Kind::kUpstream, "upstream sent an event larger than " +
                                std::to_string(SseParser::kDefaultMaxEventBytes) + " bytes");
      return false;
    }
    return true;
  }

  // The exchange ended without a transport error: settle the stream.
  void on_end() {
    if (sse_) {
      for (const SseEvent& event : parser_.finish()) {
        if (!on_event(event)) break;
      }
    } else if (is_success(status_)) {
      on_plain_body();
    } else {
      error_ = to_engine_error(problem_from_text(body_, status_), who_, false);
    }
    if (error_) {
      stream_.fail(*error_);
    } else if (!answered()) {
      stream_.fail(
          EngineError(Kind::kUpstream, who_ + ": upstream closed the stream before it finished "
                                              "(no finish_reason, no [DONE])"));
    } else {
      stream_.finish(result(finish_reason()));
    }
  }

  // True once the upstream said the generation is over.
  bool answered() const { return saw_done_ || !finish_reason_.empty(); }
  // What the upstream gave, "stop" when it ended with [DONE] alone.
  std::string finish_reason() const { return finish_reason_.empty() ? "stop" : finish_reason_; }
  const std::optional<EngineError>& error() const { return error_; }
  GenerationResult result(const std::string& finish_reason) const {
    GenerationResult result;
    result.text = text_;
    result.finish_reason = finish_reason;
    if (usage_seen_) {
      result.prompt_tokens = prompt_tokens_;
      result.completion_tokens = completion_tokens_;
    } else {
      // The upstream sent no usage (an old server ignoring stream_options, or
      // a cancelled stream). Servers stream about one token per chunk, so the
      // number of content chunks is the best estimate we have; the prompt
      // size is unknown and reported as 0.
      result.prompt_tokens = 0;
      result.completion_tokens = content_chunks_;
    }
    result.time_to_first_token_ms = first_token_ms_;
    result.total_ms = ms_since(start_);
    return result;
  }

 private:
  void fail(Kind kind, const std::string& what) {
    if (!error_) error_ = EngineError(kind, who_ + ": " + what);
  }

  bool keep_body(std::string_view bytes) {
    const size_t limit = is_success(status_) ? kMaxJsonBody : kMaxErrorBody;
    if (body_.size() + bytes.size() <= limit) {
      body_.append(bytes);
    } else if (is_success(status_)) {
      fail(Kind::kUpstream, "upstream answer larger than " + std::to_string(limit) + " bytes");
      return false;
    }
    return true;  // an error body is cut, but read to the end to keep the status
  }

  bool on_event(const SseEvent& event) {
    if (saw_done_) return true;  // nothing counts after [DONE]
    if (const std::string* error = event.extra("error")) return on_error_event(*error);
    if (event.type == "error") return on_error_event(event.data);
    if (event.data == "[DONE]") {
      saw_done_ = true;
      return true;
    }
    if (event.data.empty()) return true;
    // nlohmann rejects strings that are not UTF-8, and we promised to pass
    // text through with bad bytes replaced, so repair before parsing.
    const json chunk = json::parse(repair_utf8(event.data), nullptr, false);
    if (!chunk.is_object()) {
      fail(Kind::kUpstream, "malformed event from upstream: " + quote(event.data));
      return false;
    }
    if (find_member(chunk, "error")) {
      error_ = to_engine_error(problem_from_json(chunk, 0), who_, true);
      return false;
    }
    take_chunk(chunk, "delta");
    return true;
  }

  bool on_error_event(std::string_view payload) {
    error_ = to_engine_error(problem_from_text(payload, 0), who_, true);
    return false;
  }

  // A streamed chunk (choice key "delta") or a whole answer ("message").
  void take_chunk(const json& chunk, const char* choice_key) {
    if (const json* usage = find_member(chunk, "usage"); usage && usage->is_object()) {
      usage_seen_ = true;
      prompt_tokens_ = find_int(*usage, "prompt_tokens").value_or(prompt_tokens_);
      completion_tokens_ = find_int(*usage, "completion_tokens").value_or(completion_tokens_);
    }
    const json* choices = find_member(chunk, "choices");
    if (!choices || !choices->is_array() || choices->empty()) return;
    const json& choice = (*choices)[0];
    const std::string* content = nullptr;
    if (chat_) {
      if (const json* message = find_member(choice, choice_key)) {
        content = find_string(*message, "content");  // null in role-only chunks
      }
    }
    if (!content) content = find_string(choice, "text");
    if (content) push(*content);
    if (const std::string* reason = find_string(choice, "finish_reason")) {
      if (!reason->empty()) finish_reason_ = *reason;
    }
  }

  // A 2xx answer that is not an event stream: a server that ignored
  // `stream: true` and sent the whole completion as one JSON object.
  void on_plain_body() {
    const json answer = json::parse(repair_utf8(body_), nullptr, false);
    if (!answer.is_object()) {
      fail(Kind::kUpstream, "upstream answered neither an event stream nor JSON: " + quote(body_));
      return;
    }
    if (find_member(answer, "error")) {
      error_ = to_engine_error(problem_from_json(answer, status_), who_, false);
      return;
    }
    take_chunk(answer, "message");
    if (finish_reason_.empty()) finish_reason_ = "stop";  // a whole answer is finished
  }

  void push(const std::string& piece) {
    if (piece.empty()) return;
    if (content_chunks_ == 0) first_token_ms_ = ms_since(start_);
    ++content_chunks_;
    text_ += piece;
    stream_.push_delta(piece);
  }

  GenerationStream& stream_;
  const bool chat_;
  const Clock::time_point start_;
  const std::string who_;

  int status_ = 0;
  bool sse_ = false;
  SseParser parser_;
  std::string body_;  // a non-SSE answer (JSON or an error)

  std::string text_;
  std::string finish_reason_;
  bool saw_done_ = false;
  bool usage_seen_ = false;
  int prompt_tokens_ = 0;
  int completion_tokens_ = 0;
  int content_chunks_ = 0;
  double first_token_ms_ = 0;  // stays 0 when no text ever came
  std::optional<EngineError> error_;
};

std::unique_ptr<httplib::Client> make_client(const std::string& host, int port,
                                             const RemoteEngine::Options& options,
                                             std::chrono::milliseconds read_timeout) {
  auto client = std::make_unique<httplib::Client>(host, port);
  client->set_connection_timeout(options.connect_timeout);
  client->set_read_timeout(read_timeout);
  client->set_write_timeout(read_timeout);
  client->set_keep_alive(false);  // one exchange per client
  if (!options.api_key.empty()) client->set_bearer_token_auth(options.api_key);
  return client;
}

// Names of the models a /v1/models answer lists (at most a few, for messages).
std::string list_models(const std::string& body) {
  const json answer = json::parse(repair_utf8(body), nullptr, false);
  const json* data = find_member(answer, "data");
  if (!data || !data->is_array()) return "";
  std::string names;
  int listed = 0;
  for (const json& model : *data) {
    const std::string* id = find_string(model, "id");
    if (!id) continue;
    if (listed == 5) {
      names += ", ...";
      break;
    }
    names += (listed++ ? ", " : "") + quote(*id);
  }
  return names;
}

}  // namespace

RemoteEngine::RemoteEngine(Options options) : options_(std::move(options)) {
  ParsedUrl parsed;
  url_error_ = parse_base_url(options_.base_url, parsed);
  endpoint_ = Endpoint{parsed.host, parsed.port, parsed.path_prefix};
  watcher_ = std::thread([this] { watch_calls(); });
}

RemoteEngine::~RemoteEngine() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  watcher_cv_.notify_all();
  watcher_.join();  // returns once every call has ended and been joined
}

std::string RemoteEngine::describe() const {
  return "remote model '" + options_.id + "' at " + options_.base_url;
}

void RemoteEngine::load() {
  if (!url_error_.empty()) throw EngineError(Kind::kUnavailable, describe() + ": " + url_error_);
  const EngineHealth status = health();
  if (!status.ok) throw EngineError(Kind::kUnavailable, status.detail);
  loaded_ = true;
}

void RemoteEngine::unload() {
  loaded_ = false;
}

bool RemoteEngine::loaded() const {
  return loaded_;
}

EngineHealth RemoteEngine::health() {
  if (!url_error_.empty()) return {false, describe() + ": " + url_error_};
  const auto unreachable = [&](httplib::Error error) {
    return EngineHealth{
        false, describe() + " is unreachable: " +
                   transport_error(error, options_.connect_timeout, options_.connect_timeout)};
  };
  try {
    auto client = make_client(endpoint_.host, endpoint_.port, options_, options_.connect_timeout);
    const std::string health_path = endpoint_.path_prefix + "/health";
    const httplib::Result health = client->Get(health_path.c_str());
    if (!health) return unreachable(health.error());
    if (is_success(health->status)) return {true, describe() + ": GET /health ok"};
    if (health->status == 503) {  // llama-server while loading, vLLM while starting
      return {false, describe() + " is not ready: GET /health answered 503: " +
                         problem_from_text(health->body, 503).message};
    }

    // Ollama has no /health; its OpenAI layer answers /v1/models.
    const std::string models_path = endpoint_.path_prefix + "/v1/models";
    const httplib::Result models = client->Get(models_path.c_str());
    if (!models) return unreachable(models.error());
    if (!is_success(models->status)) {
      return {false, describe() + ": GET /health answered " + std::to_string(health->status) +
                         " and GET /v1/models answered " + std::to_string(models->status) + ": " +
                         problem_from_text(models->body, models->status).message};
    }
    const std::string names = list_models(models->body);
    return {true, describe() + ": GET /v1/models ok" + (names.empty() ? "" : ", serving " + names)};
  } catch (const std::exception& e) {  // bad_alloc and the like: report, don't throw
    return {false, describe() + ": health check failed: " + e.what()};
  }
}

std::shared_ptr<GenerationStream> RemoteEngine::submit(GenerationRequest request) {
  if (!url_error_.empty()) throw EngineError(Kind::kUnavailable, describe() + ": " + url_error_);
  if (!loaded()) throw EngineError(Kind::kUnavailable, describe() + " is not loaded");
  const Clock::time_point start = Clock::now();

  auto call = std::make_shared<Call>();
  call->client = make_client(endpoint_.host, endpoint_.port, options_, options_.read_timeout);
  {
    std::lock_guard lock(mutex_);
    calls_.push_back(call);
    try {
      call->thread = std::thread([this, call, request = std::move(request), start] {
        if (run_call(*call, request, start)) ++cancelled_;
        ++completed_;
        {
          std::lock_guard done_lock(mutex_);
          call->done = true;
        }
        watcher_cv_.notify_all();  // the watcher joins this thread
      });
    } catch (const std::system_error& e) {
      calls_.pop_back();
      throw EngineError(Kind::kUnavailable, describe() + ": cannot start a thread: " + e.what());
    }
  }
  watcher_cv_.notify_all();
  return call->stream;
}

bool RemoteEngine::run_call(Call& call, const GenerationRequest& request, Clock::time_point start) {
  GenerationStream& stream = *call.stream;
  try {
    Reply reply(stream, request.is_chat(), start, describe());
    const std::string model =
        options_.upstream_model.empty() ? options_.id : options_.upstream_model;

    httplib::Request http;
    http.method = "POST";
    http.path =
        endpoint_.path_prefix + (request.is_chat() ? "/v1/chat/completions" : "/v1/completions");
    // identity: a compressed event stream would be buffered, not streamed.
    http.headers = {{"Accept", "text/event-stream"}, {"Accept-Encoding", "identity"}};
    http.set_header("Content-Type", "application/json");
    http.body = build_body(request, model).dump(-1, ' ', false, json::error_handler_t::replace);
    http.response_handler = [&](const httplib::Response& response) {
      reply.on_headers(response.status, response.get_header_value("Content-Type"));
      return !stream.cancelled();
    };
    // Returning false aborts the exchange; that is how cancellation reaches
    // the upstream while it is sending. The watcher covers silent upstreams.
    http.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
      return !stream.cancelled() && reply.on_body(std::string_view(data, size));
    };

    httplib::Response response;
    httplib::Error error = httplib::Error::Success;
    const bool sent = call.client->send(http, response, error);

    bool stopping = false;
    {
      std::lock_guard lock(mutex_);
      stopping = stopping_;
    }
    if (stream.cancelled() && !(sent && reply.answered())) {
      stream.finish(reply.result("cancelled"));
      return true;
    }
    if (stopping && !sent) {
      stream.fail(EngineError(Kind::kUnavailable, describe() + ": engine stopping"));
    } else if (reply.error()) {
      stream.fail(*reply.error());
    } else if (!sent && reply.answered()) {
      // The connection broke after the upstream said it was done (typically
      // between the last chunk and [DONE]): the answer is whole.
      stream.finish(reply.result(reply.finish_reason()));
    } else if (!sent) {
      stream.fail(
          EngineError(Kind::kUnavailable,
                      describe() + ": " +
                          transport_error(error, options_.connect_timeout, options_.read_timeout)));
    } else {
      reply.on_end();
    }
  } catch (const std::exception& e) {  // never let an exception escape a worker
    stream.fail(EngineError(Kind::kInternal, describe() + ": " + e.what()));
  } catch (...) {
    stream.fail(EngineError(Kind::kInternal, describe() + ": unknown failure"));
  }
  return false;
}

EngineStats RemoteEngine::stats() const {
  EngineStats stats;
  {
    std::lock_guard lock(mutex_);
    for (const auto& call : calls_) stats.slots_busy += call->done ? 0 : 1;
  }
  stats.completed = completed_;
  stats.cancelled = cancelled_;
  return stats;
}

void RemoteEngine::watch_calls() {
  std::unique_lock lock(mutex_);
  while (true) {
    std::vector<std::shared_ptr<Call>> finished;
    std::vector<std::shared_ptr<Call>> to_abort;
    for (auto it = calls_.begin(); it != calls_.end();) {
      if ((*it)->done) {
        finished.push_back(std::move(*it));
        it = calls_.erase(it);
        continue;
      }
      if (stopping_ || (*it)->stream->cancelled()) to_abort.push_back(*it);
      ++it;
    }
    // Joining and stopping happen unlocked: stop() waits while a connect is
    // in progress, and submit() must never wait for that.
    lock.unlock();
    for (const auto& call : finished) call->thread.join();
    // Repeated each round until the call ends: a stop() that lands before the
    // worker has opened its socket does nothing.
    for (const auto& call : to_abort) call->client->stop();
    finished.clear();
    to_abort.clear();
    lock.lock();

    if (stopping_ && calls_.empty()) return;
    if (calls_.empty()) {
      watcher_cv_.wait(lock, [&] { return stopping_ || !calls_.empty(); });
    } else {
      watcher_cv_.wait_for(lock, kWatchInterval);
    }
  }
}

}  // namespace calm
