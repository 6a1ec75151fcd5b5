// RemoteEngine: see remote_engine.h.
#include "engines/remote_engine.h"

#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <utility>
#include <variant>

#include "engines/generation_limits.h"
#include "engines/http_client.h"
#include "engines/openai_stream.h"
#include "engines/remote_exchange.h"
#include "util/utf8.h"

namespace calm {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Kind = EngineError::Kind;

// One generation. Shared by the queue or the worker running it and the
// watcher that may abort it, so neither outlives what it touches.
struct RemoteEngine::Call {
  std::shared_ptr<GenerationStream> stream = std::make_shared<GenerationStream>();
  GenerationRequest request;
  Clock::time_point start;  // submit(): latency and TTFT count the queue wait

  std::mutex mutex;  // after RemoteEngine::mutex_ in the lock order
  // The client of the exchange in flight; null before and after it. The
  // worker owns the client; the watcher only calls stop() on it, under mutex.
  httplib::ClientImpl* client = nullptr;  // guarded by mutex
};

namespace {

// How soon the watcher stops an aborted call's client again: a stop() that
// lands before the worker has opened its socket does nothing. It sleeps
// otherwise until a stream is cancelled (GenerationStream::set_on_cancel).
constexpr auto kRetryAbort = std::chrono::milliseconds(50);

bool is_success(int status) {
  return status >= 200 && status < 300;
}

// A kept-alive connection the upstream has closed (or is closing) reads as
// readable while idle: an HTTP/1.1 server sends nothing unasked, so what is
// there is the FIN or a TLS close_notify. Using it would fail the next
// request, so it is closed first and the client reconnects.
bool idle_connection_is_stale(const httplib::ClientImpl& client) {
  const int fd = client.socket();
  if (fd == INVALID_SOCKET) return false;
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;
}

// Names of the models a /v1/models answer lists (at most a few, for messages).
std::string list_models(const std::string& body) {
  const json answer = json::parse(repair_utf8(body), nullptr, false);
  if (!answer.is_object() || !answer.contains("data") || !answer["data"].is_array()) return "";
  std::string names;
  int listed = 0;
  for (const json& model : answer["data"]) {
    if (!model.is_object() || !model.contains("id") || !model["id"].is_string()) continue;
    if (listed == 5) {
      names += ", ...";
      break;
    }
    names += (listed++ ? ", " : "") + quote_upstream(model["id"].get<std::string>());
  }
  return names;
}

}  // namespace

RemoteEngine::RemoteEngine(Options options) : options_(std::move(options)) {
  waker_->engine = this;
  try {
    url_ = parse_url(options_.base_url);
    base_path_ = openai_base_path(url_.path);
  } catch (const UrlError& e) {
    url_error_ = e.what();
  }
}

RemoteEngine::~RemoteEngine() {
  unload();
  std::lock_guard lock(waker_->mutex);
  waker_->engine = nullptr;
}

std::string RemoteEngine::describe() const {
  return "remote model '" + options_.id + "' at " + options_.base_url;
}

RemoteEngine::ClientPtr RemoteEngine::make_client(std::chrono::milliseconds read_timeout) const {
  HttpClientSettings settings;
  settings.connect_timeout = options_.connect_timeout;
  settings.read_timeout = read_timeout;
  settings.api_key = options_.api_key;
  settings.ca_file = options_.ca_file;
  settings.tls_verify = options_.tls_verify;
  return make_http_client(url_, settings);
}

RemoteEngine::ClientPtr RemoteEngine::take_client() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_clients_.empty()) {
      ClientPtr client = std::move(idle_clients_.back());
      idle_clients_.pop_back();
      return client;
    }
  }
  return make_client(options_.read_timeout);
}

void RemoteEngine::return_client(ClientPtr client) {
  std::lock_guard lock(mutex_);
  idle_clients_.push_back(std::move(client));
}

void RemoteEngine::load() {
  if (!url_error_.empty()) throw EngineError(Kind::kUnavailable, describe() + ": " + url_error_);
  const EngineHealth status = health();
  if (!status.ok) throw EngineError(Kind::kUnavailable, status.detail);
  if (!workers_.empty()) return;  // already loaded: health checked again, threads run

  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
  }
  try {
    watcher_ = std::thread([this] { watch(); });
    for (int i = 0; i < std::max(1, options_.workers); ++i) {
      workers_.emplace_back([this] { work(); });
    }
  } catch (const std::system_error& e) {
    stop_threads("engine stopping");
    throw EngineError(Kind::kUnavailable, describe() + ": cannot start a thread: " + e.what());
  }
  {
    std::lock_guard lock(mutex_);
    workers_running_ = static_cast<int>(workers_.size());
  }
  loaded_ = true;
}

void RemoteEngine::unload() {
  loaded_ = false;
  stop_threads("engine stopping");
}

void RemoteEngine::stop_threads(const std::string& why) {
  std::deque<std::shared_ptr<Call>> queued;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    workers_running_ = 0;
    queued.swap(queue_);
  }
  work_cv_.notify_all();
  watcher_cv_.notify_all();
  for (const auto& call : queued) {
    call->stream->fail(EngineError(Kind::kUnavailable, describe() + ": " + why));
  }
  // Running calls are aborted by the watcher, which returns once they ended.
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  if (watcher_.joinable()) watcher_.join();
  std::lock_guard lock(mutex_);
  idle_clients_.clear();  // closes the kept-alive connections
}

bool RemoteEngine::loaded() const {
  return loaded_;
}

EngineHealth RemoteEngine::health() {
  EngineHealth health = check_health();
  health.detail = without_secret(std::move(health.detail), options_.api_key);
  return health;
}

EngineHealth RemoteEngine::check_health() {
  if (!url_error_.empty()) return {false, describe() + ": " + url_error_};
  try {
    // A client of its own with the short timeout: health must answer fast
    // even while every pooled connection streams a long answer.
    const ClientPtr client = make_client(options_.connect_timeout);
    client->set_keep_alive(false);
    const auto unreachable = [&](httplib::Error error) {
      long verify = 0;
      if (url_.tls())
        verify = static_cast<httplib::SSLClient&>(*client).get_openssl_verify_result();
      return EngineHealth{false, describe() + " is unreachable: " +
                                     transport_error_text(error, options_.connect_timeout,
                                                          options_.connect_timeout, verify)};
    };
    const std::string health_path = base_path_ + "/health";
    const httplib::Result health = client->Get(health_path.c_str());
    if (!health) return unreachable(health.error());
    if (is_success(health->status)) return {true, describe() + ": GET /health ok"};
    if (health->status == 503) {  // llama-server while loading, vLLM while starting
      return {false, describe() + " is not ready: GET /health answered 503: " +
                         parse_upstream_problem(health->body, 503).message};
    }

    // Ollama has no /health; its OpenAI layer answers /v1/models.
    const std::string models_path = base_path_ + "/v1/models";
    const httplib::Result models = client->Get(models_path.c_str());
    if (!models) return unreachable(models.error());
    if (!is_success(models->status)) {
      return {false, describe() + ": GET /health answered " + std::to_string(health->status) +
                         " and GET /v1/models answered " + std::to_string(models->status) + ": " +
                         parse_upstream_problem(models->body, models->status).message};
    }
    const std::string names = list_models(models->body);
    return {true, describe() + ": GET /v1/models ok" + (names.empty() ? "" : ", serving " + names)};
  } catch (const std::exception& e) {  // bad_alloc and the like: report, don't throw
    return {false, describe() + ": health check failed: " + e.what()};
  }
}

std::shared_ptr<GenerationStream> RemoteEngine::submit(GenerationRequest request) {
  if (!url_error_.empty()) throw EngineError(Kind::kUnavailable, describe() + ": " + url_error_);
  apply_max_tokens_cap(options_.id, options_.max_tokens_cap, request.sampling);
  auto call = std::make_shared<Call>();
  call->request = std::move(request);
  call->start = Clock::now();
  call->stream->set_on_cancel([waker = std::weak_ptr<Waker>(waker_)] {
    if (auto w = waker.lock()) {
      std::lock_guard lock(w->mutex);
      if (!w->engine) return;
      // Taken and released so the watcher is either before its scan (and
      // sees the cancel) or already waiting (and is woken).
      { std::lock_guard engine_lock(w->engine->mutex_); }
      w->engine->watcher_cv_.notify_all();
    }
  });
  {
    std::lock_guard lock(mutex_);
    if (!loaded_ || stopping_ || workers_running_ == 0) {
      throw EngineError(Kind::kUnavailable, describe() + " is not loaded");
    }
    queue_.push_back(call);
  }
  work_cv_.notify_one();
  return call->stream;
}

void RemoteEngine::work() {
  while (true) {
    std::shared_ptr<Call> call;
    {
      std::unique_lock lock(mutex_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;  // stop_threads() fails what is still queued
      call = std::move(queue_.front());
      queue_.pop_front();
      running_.push_back(call);
    }
    watcher_cv_.notify_all();

    std::optional<RemoteOutcome> outcome;
    try {
      ClientPtr client = take_client();
      outcome = run_call(*call, *client);
      return_client(std::move(client));
    } catch (const std::exception& e) {  // never let an exception escape a worker
      outcome = EngineError(Kind::kInternal, describe() + ": " + e.what());
    }
    // Counted and released before the stream's final event, so a caller that
    // saw it finds the stats settled and the connection back in the pool.
    const auto* result = std::get_if<GenerationResult>(&*outcome);
    if (result && result->finish_reason == "cancelled") ++cancelled_;
    ++completed_;
    {
      std::lock_guard lock(mutex_);
      running_.erase(std::find(running_.begin(), running_.end(), call));
    }
    if (const auto* error = std::get_if<EngineError>(&*outcome)) {
      outcome = EngineError(error->kind(), without_secret(error->what(), options_.api_key),
                            error->param(), error->code());
    }
    deliver(*call->stream, std::move(*outcome));
  }
}

RemoteOutcome RemoteEngine::run_call(Call& call, httplib::ClientImpl& client) {
  GenerationStream& stream = *call.stream;
  const auto is_stopping = [&] {
    std::lock_guard lock(mutex_);
    return stopping_;
  };
  if (stream.cancelled()) {  // cancelled before a worker got to it
    return RemoteReply(stream, call.start, describe()).result("cancelled");
  }
  const GenerationRequest& request = call.request;
  const std::string model = options_.upstream_model.empty() ? options_.id : options_.upstream_model;
  const std::string body =
      remote_request_body(request, model).dump(-1, ' ', false, json::error_handler_t::replace);

  for (int attempt = 0;; ++attempt) {
    RemoteReply reply(stream, call.start, describe());
    httplib::Request http;
    http.method = "POST";
    http.path = base_path_ + (request.is_chat() ? "/v1/chat/completions" : "/v1/completions");
    // identity: a compressed event stream would be buffered, not streamed.
    http.headers = {{"Accept", "text/event-stream"}, {"Accept-Encoding", "identity"}};
    http.set_header("Content-Type", "application/json");
    http.body = body;
    http.response_handler = [&](const httplib::Response& response) {
      reply.on_headers(response.status, response.get_header_value("Content-Type"));
      return !stream.cancelled();
    };
    // Returning false aborts the exchange; that is how cancellation reaches
    // the upstream while it is sending. The watcher covers silent upstreams.
    http.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
      return !stream.cancelled() && reply.on_body(std::string_view(data, size));
    };

    if (idle_connection_is_stale(client)) client.stop();
    const bool reused = client.is_socket_open() != 0;
    const Clock::time_point attempt_start = Clock::now();
    {
      std::lock_guard lock(call.mutex);
      call.client = &client;
    }
    httplib::Response response;
    httplib::Error error = httplib::Error::Success;
    const bool sent = client.send(http, response, error);
    {
      std::lock_guard lock(call.mutex);
      call.client = nullptr;
    }

    if (stream.cancelled() && !(sent && reply.answered())) return reply.result("cancelled");
    const bool stopping = is_stopping();
    // A kept-alive connection can still be closed by the upstream between
    // the staleness check and the write. Then the write fails, or the read
    // fails at once, with no answer started: one retry on a fresh connection.
    // A read that failed only after half the read timeout was a slow
    // upstream that may be working on the request: never sent twice.
    const bool quick_read_failure =
        error == httplib::Error::Read && Clock::now() - attempt_start < options_.read_timeout / 2;
    if (!sent && reused && attempt == 0 && !stopping && !reply.received_anything() &&
        (error == httplib::Error::Write || quick_read_failure)) {
      continue;
    }
    if (stopping && !sent) return EngineError(Kind::kUnavailable, describe() + ": engine stopping");
    if (auto failure = reply.error()) return std::move(*failure);
    // The connection broke after the upstream said it was done (typically
    // between the last chunk and [DONE]): the answer is whole.
    if (!sent && reply.answered()) return reply.result(reply.finish_reason());
    if (!sent) {
      long verify = 0;
      if (url_.tls()) verify = static_cast<httplib::SSLClient&>(client).get_openssl_verify_result();
      // No connection in time, or a connection that stayed silent for the
      // whole read timeout: too slow (504), rather than down (503).
      const bool timed_out = error == httplib::Error::ConnectionTimeout ||
                             (error == httplib::Error::Read && !reply.received_anything() &&
                              Clock::now() - attempt_start >= options_.read_timeout * 9 / 10);
      return EngineError(
          timed_out ? Kind::kTimeout : Kind::kUnavailable,
          describe() + ": " +
              transport_error_text(error, options_.connect_timeout, options_.read_timeout, verify));
    }
    return reply.on_end();
  }
}

EngineStats RemoteEngine::stats() const {
  EngineStats stats;
  {
    std::lock_guard lock(mutex_);
    stats.slots_total = workers_running_;
    stats.slots_busy = static_cast<int>(running_.size());
    stats.queued = static_cast<int>(queue_.size());
  }
  stats.completed = completed_;
  stats.cancelled = cancelled_;
  return stats;
}

void RemoteEngine::watch() {
  std::unique_lock lock(mutex_);
  while (true) {
    // Cancelled generations still queued end here: no worker may be free
    // for a while, and a cancel must not wait for one.
    std::vector<std::shared_ptr<Call>> dropped;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->stream->cancelled()) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    std::vector<std::shared_ptr<Call>> to_abort;
    for (const auto& call : running_) {
      if (stopping_ || call->stream->cancelled()) to_abort.push_back(call);
    }
    // Unlocked: stop() waits while a connect is in progress, and submit()
    // and stats() must never wait for that.
    lock.unlock();
    for (const auto& call : dropped) {
      call->stream->finish(RemoteReply(*call->stream, call->start, describe()).result("cancelled"));
      ++cancelled_;
      ++completed_;
    }
    // Repeated each round until the call ends: a stop() that lands before
    // the worker has opened its socket does nothing.
    for (const auto& call : to_abort) {
      std::lock_guard call_lock(call->mutex);
      if (call->client) call->client->stop();
    }
    lock.lock();

    if (stopping_ && running_.empty()) return;
    if (!to_abort.empty()) {
      watcher_cv_.wait_for(lock, kRetryAbort);  // until the aborted calls have ended
    } else {
      // Woken by a cancel (the streams' callback), a new running call or stopping.
      watcher_cv_.wait(lock);
    }
  }
}

}  // namespace calm
