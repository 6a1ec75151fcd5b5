// RemoteEngine: an Engine that forwards generations to a remote
// OpenAI-compatible server over HTTP and relays its token stream.
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
// upstream produces it. Chat requests go to {base}/v1/chat/completions, raw
// prompts to {base}/v1/completions. Each generation runs on its own thread;
// a watcher thread aborts the HTTP exchange of a cancelled generation (or of
// every generation when the engine is destroyed) even while the upstream is
// silent, e.g. still reading a long prompt.
//
// Only http:// base URLs are served: the https:// scheme is refused with an
// EngineError from load(), health() and submit(). Upstream text is passed
// through with invalid UTF-8 replaced by U+FFFD. Per-token log-probabilities
// are not requested, so GenerationResult::token_logprobs stays empty.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engines/engine.h"

namespace calm {

class RemoteEngine : public Engine {
 public:
  struct Options {
    std::string id;  // calm's name for the model; used in messages
    // e.g. http://127.0.0.1:8080 or http://host:port/prefix; the /v1/... paths
    // are appended. A trailing "/" or "/v1" is dropped, since people often
    // paste the OpenAI-style base that already ends in /v1.
    std::string base_url;
    std::string upstream_model;  // model name sent upstream; empty: the id
    std::string api_key;         // sent as "Authorization: Bearer ..." when set
    std::chrono::milliseconds connect_timeout{2000};  // also bounds health()
    std::chrono::milliseconds read_timeout{120000};   // longest silence mid-request
  };

  // Does no I/O and never throws for a bad URL: the problem is reported by
  // load(), health() and submit(), so a fleet can still start and show it.
  explicit RemoteEngine(Options options);
  // Aborts generations still in flight (their streams fail with kUnavailable,
  // "engine stopping") and joins every thread. Returns within about the
  // connect timeout even when the upstream hangs.
  ~RemoteEngine() override;

  RemoteEngine(const RemoteEngine&) = delete;
  RemoteEngine& operator=(const RemoteEngine&) = delete;

  // Checks health(); throws EngineError(kUnavailable) naming the id and URL
  // when the remote is unusable. Not thread-safe with unload().
  void load() override;
  // Marks the engine not loaded; generations in flight run to their end.
  // Not thread-safe with load().
  void unload() override;
  // Thread-safe.
  bool loaded() const override;

  // Thread-safe; returns at once. Throws EngineError(kUnavailable) when the
  // engine is not loaded, the URL is unusable, or no thread can be started.
  // Upstream failures arrive through the stream:
  //   connection failure or timeout      -> kUnavailable
  //   upstream 503                        -> kUnavailable
  //   upstream 4xx about context length   -> kContextOverflow
  //   other non-2xx, malformed events,
  //   an error event mid-stream           -> kUpstream
  // Cancelling the stream aborts the HTTP request and finishes the stream
  // with finish_reason "cancelled" and the text received so far.
  std::shared_ptr<GenerationStream> submit(GenerationRequest request) override;

  // GET {base}/health (llama-server, vLLM, calm); when that is not found,
  // GET {base}/v1/models (Ollama). Both bounded by connect_timeout.
  // Thread-safe; does not need load().
  EngineHealth health() override;

  // Thread-safe. slots_busy counts generations in flight; the remote's own
  // capacity and queue are unknown, so slots_total and queued stay 0. The
  // counts are updated just after a stream's final event, so they may lag it
  // by a moment.
  EngineStats stats() const override;

  // Thread-safe (immutable after construction).
  const Options& options() const { return options_; }

 private:
  struct Endpoint {
    std::string host;
    int port = 80;
    std::string path_prefix;  // "" or "/something", no trailing slash
  };
  struct Call;  // one generation in flight

  // Returns true when the generation ended cancelled.
  bool run_call(Call& call, const GenerationRequest& request,
                std::chrono::steady_clock::time_point start);
  void watch_calls();
  std::string describe() const;  // "remote model 'id' at URL", for messages

  const Options options_;
  Endpoint endpoint_;
  std::string url_error_;  // why base_url is unusable; empty when fine
  std::atomic<bool> loaded_{false};

  std::atomic<uint64_t> completed_{0};
  std::atomic<uint64_t> cancelled_{0};

  mutable std::mutex mutex_;
  std::condition_variable watcher_cv_;
  std::vector<std::shared_ptr<Call>> calls_;  // guarded by mutex_
  bool stopping_ = false;                     // guarded by mutex_
  std::thread watcher_;                       // last: starts after the rest exists
};

}  // namespace calm
