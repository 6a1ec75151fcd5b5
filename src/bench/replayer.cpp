#include "bench/replayer.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "engines/openai_stream.h"
#include "util/url.h"
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
    case httplib::Error::SSLConnection:
      why = "TLS handshake failed";
      break;
    case httplib::Error::SSLServerVerification:
      why = "the server's TLS certificate failed verification";
      break;
    default:
      why = "transfer failed";
  }
  return why + " (httplib error: " + httplib::to_string(error) + ")";
}

// The text of a stream problem, for a record.
std::string problem_text(const OpenAiStreamReader::Problem& problem) {
  switch (problem.kind) {
    case OpenAiStreamReader::Problem::Kind::kError:
      return "error in stream: " + shorten(problem.upstream.message);
    case OpenAiStreamReader::Problem::Kind::kMalformed:
      return shorten(problem.message);
    case OpenAiStreamReader::Problem::Kind::kTooLarge:
      break;
  }
  return "an SSE event exceeded the parser's limit";
}

// One HTTP exchange: follows the headers and body as they arrive and turns
// them into a record. Not thread-safe; used by one worker.
class Exchange {
 public:
  explicit Exchange(Clock::time_point scheduled)
      : scheduled_(scheduled), reader_([this](const std::string&) {
          if (!first_text_) first_text_ = Clock::now();
        }) {}

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
    reader_.feed(bytes);  // after a problem it ignores the rest; the record says why
  }

  // Fills the record once the exchange is over. `sent` and `error` are
  // httplib's verdict on the exchange as a whole.
  void finish(bool sent, httplib::Error error, RequestRecord& record) {
    const Clock::time_point end = Clock::now();
    record.latency_ms = ms_between(scheduled_, end);
    record.served_model = header_model_;
    record.cache = cache_;
    if (status_ == 0) {
      record.error = "no answer: " + transport_error(error);
      return;
    }
    if (!success()) {
      record.status = status_;
      record.error = "HTTP " + std::to_string(status_) + ": " +
                     shorten(parse_upstream_problem(body_, status_).message);
      return;
    }
    if (sse_) {
      reader_.finish();
    } else if (sent) {
      reader_.read_whole_answer(body_);
      if (reader_.text_chunks() > 0) first_text_ = end;
    }
    record.served_model = header_model_.empty() ? reader_.model() : header_model_;
    record.text = reader_.text();
    record.response_id = reader_.response_id();
    record.prompt_tokens = reader_.prompt_tokens();
    record.completion_tokens = reader_.completion_tokens();
    if (first_text_) record.ttft_ms = ms_between(scheduled_, *first_text_);
    if (reader_.problem()) {
      record.error = problem_text(*reader_.problem());
    } else if (!sent && !reader_.done()) {
      record.error =
          "stream broke after HTTP " + std::to_string(status_) + ": " + transport_error(error);
    } else if (sse_ && !reader_.answered()) {
      record.error = "stream ended without [DONE] or a finish_reason";
    } else {
      record.status = status_;
    }
  }

 private:
  bool success() const { return status_ >= 200 && status_ < 300; }

  const Clock::time_point scheduled_;
  int status_ = 0;
  bool sse_ = false;
  std::string header_model_;
  std::string cache_;  // header x-calm-cache
  std::string body_;   // a non-SSE answer
  OpenAiStreamReader reader_;
  std::optional<Clock::time_point> first_text_;
};

// A kept-alive client for the base URL: TLS for https://, verifying the
// server's certificate as the options say.
std::unique_ptr<httplib::ClientImpl> make_client(const BaseUrl& url, const ReplayOptions& options) {
  std::unique_ptr<httplib::ClientImpl> client;
  if (url.tls) {
    auto tls = std::make_unique<httplib::SSLClient>(url.host, url.port);
    tls->enable_server_certificate_verification(options.tls_verify);
    if (!options.ca_file.empty()) tls->set_ca_cert_path(options.ca_file);
    client = std::move(tls);
  } else {
    client = std::make_unique<httplib::ClientImpl>(url.host, url.port);
  }
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);
  client->set_connection_timeout(options.connect_timeout);
  client->set_read_timeout(options.read_timeout);
  client->set_write_timeout(options.read_timeout);
  return client;
}

}  // namespace

BaseUrl parse_bench_url(const std::string& url) {
  const Url parsed = parse_url(url);  // UrlError is an std::invalid_argument
  return BaseUrl{parsed.host, parsed.port, openai_base_path(parsed.path), parsed.tls()};
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
    const auto client = make_client(url_, options_);
    client->set_keep_alive(false);
    client->set_read_timeout(std::chrono::seconds(10));
    const std::string path = url_.prefix + "/v1/calm/state";
    const httplib::Result result = client->Get(path.c_str());
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

  const auto replay_one = [&](httplib::ClientImpl& client, size_t i) {
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
    const auto client = make_client(url_, options_);
    for (size_t i; (i = next.fetch_add(1)) < workload.size();) {
      replay_one(*client, i);
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
