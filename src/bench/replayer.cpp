#include "bench/replayer.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "engines/sse_parser.h"
#include "util/utf8.h"

namespace calm {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxErrorBody = 2000;  // bytes of an error answer kept in the record

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

std::string shorten(std::string text) {
  if (text.size() > kMaxErrorBody) {
    text.resize(kMaxErrorBody);
    text += "...";
  }
  return repair_utf8(text);
}

// The message of an OpenAI-shaped error ({"error": {"message": ...}} or
// {"error": "..."}), else the JSON itself.
std::string error_message(const json& error) {
  if (error.is_string()) return error.get<std::string>();
  if (error.is_object() && error.contains("message") && error["message"].is_string()) {
    return error["message"].get<std::string>();
  }
  return error.dump(-1, ' ', false, json::error_handler_t::replace);
}

int usage_field(const json& usage, const char* name) {
  if (!usage.contains(name) || !usage[name].is_number_integer()) return 0;
  return usage[name].get<int>();
}

// The text a choice carries: chat `delta.content` (stream) or
// `message.content` (whole answer), completions `text`.
std::string choice_text(const json& choice) {
  if (!choice.is_object()) return "";
  for (const char* key : {"delta", "message"}) {
    if (choice.contains(key) && choice[key].is_object()) {
      const json& m = choice[key];
      if (m.contains("content") && m["content"].is_string()) return m["content"].get<std::string>();
    }
  }
  if (choice.contains("text") && choice["text"].is_string())
    return choice["text"].get<std::string>();
  return "";
}

// Why an exchange got no (complete) answer, in words.
std::string transport_error(httplib::Error error) {
  std::string why;
  switch (error) {
    case httplib::Error::Connection:
      why = "connection failed (refused or unreachable)";
      break;
    case httplib::Error::ConnectionTimeout:
      why = "connect timed out";
      break;
    case httplib::Error::Read:
      why = "read failed, timed out or the connection closed";
      break;
    case httplib::Error::Write:
      why = "write failed";
      break;
    default:
      why = "transfer failed";
  }
  return why + " (httplib error: " + httplib::to_string(error) + ")";
}

// One HTTP exchange: follows the headers and body as they arrive and turns
// them into a record. Not thread-safe; used by one worker.
class Exchange {
 public:
  explicit Exchange(Clock::time_point scheduled) : scheduled_(scheduled) {}

  void on_headers(const httplib::Response& response) {
    status_ = response.status;
    sse_ = response.get_header_value("Content-Type").rfind("text/event-stream", 0) == 0;
    header_model_ = response.get_header_value("x-calm-model");
    cache_ = response.get_header_value("x-calm-cache");
  }

  void on_body(std::string_view bytes) {
    if (!sse_ || !success()) {
      if (body_.size() < 16 * kMaxErrorBody || success()) body_.append(bytes);
      return;
    }
    for (const SseEvent& event : parser_.feed(bytes)) handle(event);
  }

  // Fills the record once the exchange is over. `sent` and `error` are
  // httplib's verdict on the exchange as a whole.
  void finish(bool sent, httplib::Error error, RequestRecord& record) {
    const Clock::time_point end = Clock::now();
    record.latency_ms = ms_between(scheduled_, end);
    record.served_model = header_model_.empty() ? body_model_ : header_model_;
    record.cache = cache_;
    if (status_ == 0) {
      record.error = "no answer: " + transport_error(error);
      return;
    }
    if (!success()) {
      record.status = status_;
      const json body = json::parse(body_, nullptr, false);
      record.error = "HTTP " + std::to_string(status_) + ": " +
                     shorten(!body.is_discarded() && body.is_object() && body.contains("error")
                                 ? error_message(body["error"])
                                 : body_);
      return;
    }
    if (sse_) {
      for (const SseEvent& event : parser_.finish()) handle(event);
    } else if (sent) {
      whole_answer(end);
    }
    record.served_model = header_model_.empty() ? body_model_ : header_model_;
    record.text = repair_utf8(text_);
    record.response_id = response_id_;
    record.prompt_tokens = prompt_tokens_;
    record.completion_tokens = completion_tokens_;
    if (first_text_) record.ttft_ms = ms_between(scheduled_, *first_text_);
    if (!error_.empty()) {
      record.error = error_;
    } else if (!sent && !done_) {
      record.error =
          "stream broke after HTTP " + std::to_string(status_) + ": " + transport_error(error);
    } else if (sse_ && !done_ && !finished_) {
      record.error = "stream ended without [DONE] or a finish_reason";
    } else if (parser_.overflowed()) {
      record.error = "an SSE event exceeded the parser's limit";
    } else {
      record.status = status_;
    }
  }

 private:
  bool success() const { return status_ >= 200 && status_ < 300; }

  void handle(const SseEvent& event) {
    if (const std::string* error = event.extra("error")) {  // llama-server's bare error line
      if (error_.empty()) error_ = "error in stream: " + shorten(*error);
      return;
    }
    if (event.data.empty()) return;
    if (event.data == "[DONE]") {
      done_ = true;
      return;
    }
    const json data = json::parse(event.data, nullptr, false);
    if (data.is_discarded() || !data.is_object()) {
      if (error_.empty()) error_ = "SSE data is not a JSON object: " + shorten(event.data);
      return;
    }
    take_chunk(data, Clock::now());
  }

  // One chunk of a stream, or a whole non-streamed answer.
  void take_chunk(const json& data, Clock::time_point now) {
    if (data.contains("error")) {
      if (error_.empty()) error_ = "error in stream: " + shorten(error_message(data["error"]));
      return;
    }
    if (body_model_.empty() && data.contains("model") && data["model"].is_string()) {
      body_model_ = data["model"].get<std::string>();
    }
    if (response_id_.empty() && data.contains("id") && data["id"].is_string()) {
      response_id_ = data["id"].get<std::string>();
    }
    if (data.contains("usage") && data["usage"].is_object()) {
      prompt_tokens_ = usage_field(data["usage"], "prompt_tokens");
      completion_tokens_ = usage_field(data["usage"], "completion_tokens");
    }
    if (!data.contains("choices") || !data["choices"].is_array()) return;
    for (const json& choice : data["choices"]) {
      const std::string text = choice_text(choice);
      if (!text.empty()) {
        if (!first_text_) first_text_ = now;
        text_ += text;
      }
      if (choice.is_object() && choice.contains("finish_reason") &&
          choice["finish_reason"].is_string()) {
        finished_ = true;
      }
    }
  }

  // A server that ignored `stream: true` and answered one JSON body.
  void whole_answer(Clock::time_point end) {
    const json data = json::parse(body_, nullptr, false);
    if (data.is_discarded() || !data.is_object()) {
      error_ = "answer is neither an event stream nor JSON: " + shorten(body_);
      return;
    }
    take_chunk(data, end);
    done_ = true;
  }

  const Clock::time_point scheduled_;
  int status_ = 0;
  bool sse_ = false;
  std::string header_model_, body_model_;
  std::string cache_;        // header x-calm-cache
  std::string response_id_;  // the first chunk's "id"
  std::string body_;         // a non-SSE answer
  SseParser parser_;
  std::string text_;
  std::optional<Clock::time_point> first_text_;
  int prompt_tokens_ = 0, completion_tokens_ = 0;
  bool done_ = false, finished_ = false;
  std::string error_;
};

void configure(httplib::Client& client, const ReplayOptions& options) {
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  client.set_connection_timeout(options.connect_timeout);
  client.set_read_timeout(options.read_timeout);
  client.set_write_timeout(options.read_timeout);
}

}  // namespace

BaseUrl parse_bench_url(const std::string& url) {
  const auto bad = [&](const std::string& why) {
    throw std::invalid_argument("URL '" + url + "': " + why);
  };
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) bad("needs http://host:port");
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme == "https") bad("https is not supported (this client has no TLS)");
  if (scheme != "http") bad("scheme must be http");
  const std::string rest = url.substr(scheme_end + 3);
  if (rest.find_first_of("?#@") != std::string::npos) bad("no query, fragment or credentials");
  const size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  BaseUrl out;
  out.prefix = slash == std::string::npos ? "" : rest.substr(slash);
  const size_t colon = authority.rfind(':');
  out.host = authority.substr(0, colon);
  if (out.host.empty()) bad("no host");
  if (colon != std::string::npos) {
    const std::string port = authority.substr(colon + 1);
    const auto parsed = std::from_chars(port.data(), port.data() + port.size(), out.port);
    if (parsed.ec != std::errc() || parsed.ptr != port.data() + port.size() || out.port < 1 ||
        out.port > 65535) {
      bad("bad port '" + port + "'");
    }
  }
  while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
  if (out.prefix.size() >= 3 && out.prefix.compare(out.prefix.size() - 3, 3, "/v1") == 0) {
    out.prefix.resize(out.prefix.size() - 3);  // the /v1/... paths are appended
  }
  while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
  return out;
}

Replayer::Replayer(ReplayOptions options)
    : options_(std::move(options)), url_(parse_bench_url(options_.base_url)) {
  if (options_.concurrency < 1) throw std::invalid_argument("concurrency must be >= 1");
}

json Replayer::request_body(const WorkloadRequest& request) const {
  json body = {{"model", request.model.empty() ? options_.default_model : request.model},
               {"max_tokens", request.max_tokens},
               {"temperature", 0},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  if (request.prompt) {
    body["prompt"] = *request.prompt;
  } else {
    body["messages"] = request.messages;
  }
  if (options_.ignore_eos) body["ignore_eos"] = true;
  return body;
}

std::optional<json> Replayer::fetch_calm_state() const {
  try {
    httplib::Client client(url_.host, url_.port);
    client.set_connection_timeout(options_.connect_timeout);
    client.set_read_timeout(std::chrono::seconds(10));
    const std::string path = url_.prefix + "/v1/calm/state";
    const httplib::Result result = client.Get(path.c_str());
    if (!result || result->status != 200) return std::nullopt;
    json state = json::parse(result->body, nullptr, false);
    if (state.is_discarded() || !state.is_object()) return std::nullopt;
    return state;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

ReplayResult Replayer::run(const std::vector<WorkloadRequest>& workload) {
  ReplayResult result;
  result.records.resize(workload.size());
  std::atomic<size_t> next{0};
  std::mutex mutex;  // guards the counters and serialises on_record
  size_t done = 0, errors = 0;
  result.started = Clock::now();
  const Clock::time_point started = result.started;

  const auto replay_one = [&](httplib::Client& client, size_t i) {
    const WorkloadRequest& request = workload[i];
    RequestRecord& record = result.records[i];  // this worker's alone
    record.index = i;
    record.t = request.t;
    record.model = request.model.empty() ? options_.default_model : request.model;
    record.domain = request.domain;
    const auto scheduled = started + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(request.t));
    std::this_thread::sleep_until(scheduled);
    Exchange exchange(scheduled);
    try {
      httplib::Request http;
      http.method = "POST";
      http.path = url_.prefix + (request.is_chat() ? "/v1/chat/completions" : "/v1/completions");
      // identity: a compressed event stream would arrive in lumps.
      http.headers = {{"Accept", "text/event-stream"}, {"Accept-Encoding", "identity"}};
      http.set_header("Content-Type", "application/json");
      http.body = request_body(request).dump(-1, ' ', false, json::error_handler_t::replace);
      http.response_handler = [&](const httplib::Response& response) {
        exchange.on_headers(response);
        return true;
      };
      http.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
        exchange.on_body(std::string_view(data, size));
        return true;
      };
      httplib::Response response;
      httplib::Error error = httplib::Error::Success;
      record.sent_ms = ms_between(started, Clock::now());
      const bool sent = client.send(http, response, error);
      exchange.finish(sent, error, record);
    } catch (const std::exception& e) {  // bad_alloc and the like: record, never crash
      record.status = 0;
      record.error = std::string("client failure: ") + e.what();
      record.latency_ms = ms_between(scheduled, Clock::now());
    }
  };

  const auto worker = [&] {
    httplib::Client client(url_.host, url_.port);
    configure(client, options_);
    for (size_t i; (i = next.fetch_add(1)) < workload.size();) {
      replay_one(client, i);
      std::lock_guard lock(mutex);
      ++done;
      errors += result.records[i].ok() ? 0 : 1;
      if (!options_.on_record) continue;
      try {
        options_.on_record(result.records[i], done, errors);
      } catch (...) {  // a progress display must not end the run
      }
    }
  };

  const size_t workers =
      std::min(workload.size(), static_cast<size_t>(std::max(1, options_.concurrency)));
  std::vector<std::thread> threads;
  for (size_t w = 0; w < workers; ++w) {
    try {
      threads.emplace_back(worker);
    } catch (const std::system_error&) {
      if (threads.empty()) throw;  // nothing runs; the caller reports it
      break;                       // fewer workers than asked, still correct
    }
  }
  for (auto& thread : threads) thread.join();
  result.wall_s = std::chrono::duration<double>(Clock::now() - started).count();
  return result;
}

}  // namespace calm
