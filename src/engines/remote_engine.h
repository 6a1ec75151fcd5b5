// RemoteEngine: an Engine that forwards generations to a remote
// OpenAI-compatible server over HTTP or HTTPS and relays its token stream.
//
// Written against the streaming dialects of:
//   - llama.cpp's llama-server  (GET /health; "error:" lines mid-stream;
//                                understands ignore_eos and top_k)
//   - vLLM                      (GET /health; context overflow as a 400)
//   - Ollama's /v1 API          (no /health: liveness via GET /v1/models)
//   - another calm              (the same OpenAI surface)
//
// Every generation is sent with `stream: true` and
// `stream_options: {include_usage: true}`, so text reaches the caller as the
// upstream produces it (engines/openai_stream.h reads it). Chat requests go to
// {base}/v1/chat/completions, raw prompts to {base}/v1/completions.
//
// Lifecycle:
//
//   [unloaded] ──load(): health ok, start workers + watcher──► [loaded]
//       ▲                                                          │
//       └──── unload() / ~RemoteEngine(): fail queued, abort ◄─────┘
//             running (kUnavailable "engine stopping"), join all threads
//
// Per generation: submit() ──► [queued] ──a worker takes it──► [running] ──► done | error
//                                  │                               │
//                                  └───────── cancel() ────────────┴──► done ("cancelled")
//
// Threads: `workers` threads (Options::workers) take generations from one
// FIFO queue, so at most that many exchanges are in flight upstream; the rest
// wait in the queue (EngineStats::queued). Each exchange borrows a kept-alive
// httplib client from a pool of at most `workers` clients, the one used most
// recently first, so sequential requests reuse one connection. A connection
// the upstream closed while idle is retried once on a new one. A watcher
// thread notices cancelled streams (GenerationStream has no cancel callback,
// so it polls every 50 ms) and aborts their exchange even while the upstream
// is silent, e.g. still reading a long prompt; the worker is then free at
// once. Cancelled generations still queued are finished by the watcher.
//
// TLS: https:// base URLs use httplib's OpenSSL client. The server's
// certificate is verified against the system's CAs, or Options::ca_file when
// given, and must name the URL's host; Options::tls_verify = false skips both
// checks (self-signed test servers).
//
// Upstream text is passed through with invalid UTF-8 replaced by U+FFFD.
// Per-token log-probabilities are not requested, so
// GenerationResult::token_logprobs stays empty.
//
// Lock order: mutex_, then a running call's Call::mutex. Never held while
// waiting on the network, except that the watcher holds a Call::mutex while
// it stops that call's client (which may wait for a connect in progress).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engines/engine.h"
#include "engines/remote_exchange.h"
#include "util/url.h"

namespace calm {

struct ModelConfig;

class RemoteEngine : public Engine {
 public:
  struct Options {
    std::string id;  // calm's name for the model; used in messages
    // e.g. http://127.0.0.1:8080, https://host/prefix; the /v1/... paths are
    // appended. A trailing "/" or "/v1" is dropped, since people often paste
    // the OpenAI-style base that already ends in /v1.
    std::string base_url;
    std::string upstream_model;  // model name sent upstream; empty: the id
    std::string api_key;         // sent as "Authorization: Bearer ..." when set
    std::chrono::milliseconds connect_timeout{2000};  // also bounds health()
    std::chrono::milliseconds read_timeout{120000};   // longest silence mid-request
    int workers = 8;                                  // exchanges in flight upstream at once (>= 1)
    std::string ca_file;     // https: PEM file of CAs to trust instead of the system's
    bool tls_verify = true;  // https: verify the certificate and host name
    int max_tokens_cap = 0;  // engines/generation_limits.h; 0: none
  };

  // Does no I/O and starts no thread; never throws for a bad URL: the
  // problem is reported by load(), health() and submit(), so a fleet can
  // still start and show it.
  explicit RemoteEngine(Options options);
  // unload(): returns within about the connect timeout even when the
  // upstream hangs.
  ~RemoteEngine() override;

  RemoteEngine(const RemoteEngine&) = delete;
  RemoteEngine& operator=(const RemoteEngine&) = delete;

  // Checks health(), then starts the worker and watcher threads. Throws
  // EngineError(kUnavailable) naming the id and URL when the remote is
  // unusable or no thread can be started. Loading a loaded engine only
  // checks health again. Not thread-safe with unload().
  void load() override;
  // Fails queued generations and aborts running ones (kUnavailable, "engine
  // stopping"), then joins every thread. Not thread-safe with load().
  void unload() override;
  // Thread-safe.
  bool loaded() const override;

  // Thread-safe; returns at once (the generation waits in the queue for a
  // worker). Throws EngineError(kUnavailable) when the engine is not loaded
  // or the URL is unusable. Upstream failures arrive through the stream:
  //   connection refused or lost          -> kUnavailable
  //   no connection within connect_timeout,
  //   or silence for the whole read_timeout -> kTimeout
  //   TLS handshake or certificate failure -> kUnavailable
  //   upstream 503                         -> kUnavailable
  //   upstream 4xx about context length    -> kContextOverflow
  //   other non-2xx, malformed events,
  //   an error event mid-stream            -> kUpstream
  // Cancelling the stream aborts the HTTP request and finishes the stream
  // with finish_reason "cancelled" and the text received so far.
  std::shared_ptr<GenerationStream> submit(GenerationRequest request) override;

  // GET {base}/health (llama-server, vLLM, calm); when that is not found,
  // GET {base}/v1/models (Ollama). Both bounded by connect_timeout, on a
  // connection of their own. Thread-safe; does not need load().
  EngineHealth health() override;

  // Thread-safe. slots_total: the workers while loaded; slots_busy: the
  // exchanges in flight; queued: generations waiting for a worker. The
  // remote's own capacity is unknown. Counts are settled before a stream's
  // final event is delivered.
  EngineStats stats() const override;

  // Thread-safe (immutable after construction).
  const Options& options() const { return options_; }

 private:
  struct Call;  // one generation, queued or running
  using ClientPtr = std::unique_ptr<httplib::ClientImpl>;

  void work();  // a worker thread's loop
  // health() before the upstream api_key is cut out of its detail.
  EngineHealth check_health();
  void watch();  // the watcher thread's loop
  // Runs one exchange (retrying once on a stale kept-alive connection) and
  // returns how it ended; the caller delivers that to the call's stream.
  RemoteOutcome run_call(Call& call, httplib::ClientImpl& client);
  ClientPtr make_client(std::chrono::milliseconds read_timeout) const;
  ClientPtr take_client();               // from the pool, or a new one
  void return_client(ClientPtr client);  // to the pool
  void stop_threads(const std::string& why);
  std::string describe() const;  // "remote model 'id' at URL", for messages

  const Options options_;
  Url url_;                // valid when url_error_ is empty
  std::string base_path_;  // url_.path without trailing "/" or "/v1"
  std::string url_error_;  // why base_url is unusable; empty when fine
  std::atomic<bool> loaded_{false};

  std::atomic<uint64_t> completed_{0};
  std::atomic<uint64_t> cancelled_{0};

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;     // queue_ grew, or stopping_
  std::condition_variable watcher_cv_;  // running_ grew, a stream was cancelled, or stopping_
  // What a stream's cancel callback wakes: the watcher, while this engine
  // lives (a stream may outlive its engine). Shared with the callbacks.
  struct Waker {
    std::mutex mutex;                // before RemoteEngine::mutex_ in the lock order
    RemoteEngine* engine = nullptr;  // guarded by mutex; null once the engine is gone
  };
  std::shared_ptr<Waker> waker_ = std::make_shared<Waker>();
  bool stopping_ = false;    // guarded by mutex_
  int workers_running_ = 0;  // guarded by mutex_; what stats() and submit() read

  std::deque<std::shared_ptr<Call>> queue_;     // guarded by mutex_
  std::vector<std::shared_ptr<Call>> running_;  // guarded by mutex_
  std::vector<ClientPtr> idle_clients_;         // guarded by mutex_; last used at the back

  // Written only by load() and unload(), which are not called concurrently.
  std::vector<std::thread> workers_;
  std::thread watcher_;
};

}  // namespace calm
