// The engine interface: something that turns a chat or a prompt into tokens.
//
// Two implementations sit behind it:
//   - LlamaEngine   (llama_engine.h): llama.cpp in this process, one GGUF file.
//   - RemoteEngine  (remote_engine.h): an OpenAI-compatible server elsewhere
//                   (llama.cpp's llama-server, vLLM, Ollama, another calm).
//
// A generation is asynchronous. submit() hands back a GenerationStream at once;
// the engine pushes text deltas into it from its own thread and closes it with
// either a final GenerationResult or an EngineError. The HTTP layer pulls from
// the stream (next(), or try_next() when its listener calls) and may cancel()
// it when the client goes away; the
// engine then stops generating for that request and frees its slot.
//
//   submit() ──► [queued] ──► [running: delta, delta, …] ──► done | error
//                    │                    │
//                    └──── cancel() ──────┴──► done (finish_reason "cancelled")
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace calm {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool"
  std::string content;
};

struct SamplingParams {
  float temperature = 0.8f;      // 0 means greedy
  float top_p = 0.95f;           // (0, 1]
  int top_k = 40;                // 0 disables
  std::optional<uint32_t> seed;  // unset: a fresh random seed per request
  int max_tokens = 256;          // > 0
  // The request field that set max_tokens ("max_tokens" or
  // "max_completion_tokens"); empty: the API's default. A model's
  // max_tokens_cap refuses an asked-for value above it and lowers a default
  // to it (engines/generation_limits.h).
  std::string max_tokens_field;
  std::vector<std::string> stop;  // at most 4, none empty
  bool ignore_eos = false;        // keep generating past end-of-generation (benchmarks)
};

struct GenerationRequest {
  // Exactly one of the two is used: chat messages go through the model's chat
  // template; a raw prompt (the legacy /v1/completions) is tokenized as is.
  std::vector<ChatMessage> messages;
  std::optional<std::string> prompt;
  SamplingParams sampling;

  bool is_chat() const { return !prompt.has_value(); }
};

struct GenerationResult {
  std::string text;           // the whole answer, valid UTF-8, stop string removed
  std::string finish_reason;  // "stop", "length" or "cancelled"
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;  // of prompt_tokens, read from a kept KV cache
  int completion_tokens = 0;
  // Natural log-probability of every generated token under the model's
  // unmodified distribution (before temperature/top-k/top-p), kept for the
  // confidence meter. Empty for engines that cannot report it.
  std::vector<float> token_logprobs;
  double time_to_first_token_ms = 0;
  double total_ms = 0;
};

// Why a generation could not be served. The HTTP layer maps each kind to a
// status code (see server/api_error.h).
class EngineError : public std::runtime_error {
 public:
  enum class Kind {
    kBadRequest,       // 400: the request cannot be served by this model as given
    kContextOverflow,  // 400: prompt longer than the model's context
    kUnavailable,      // 503: model failed to load, backend down, engine stopping
    kUpstream,         // 502: a remote backend answered with an error or garbage
    kTimeout,          // 504: a remote backend did not connect or answer in time
    kInternal,         // 500
  };
  // param: the request field at fault ("" for none, or the kind's usual
  // one); code: a machine-readable reason ("" for the kind's usual one).
  EngineError(Kind kind, const std::string& message, std::string param = "", std::string code = "")
      : std::runtime_error(message),
        kind_(kind),
        param_(std::move(param)),
        code_(std::move(code)) {}
  Kind kind() const { return kind_; }
  // The backend failed (down, broken, too slow), not the request: another
  // model may answer it (failover), and it counts against the backend's
  // circuit breaker.
  bool backend_failure() const {
    return kind_ == Kind::kUnavailable || kind_ == Kind::kUpstream || kind_ == Kind::kTimeout ||
           kind_ == Kind::kInternal;
  }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

 private:
  Kind kind_;
  std::string param_;
  std::string code_;
};

// A one-way channel of events for one generation. Thread-safe: one producer
// (the engine) and one consumer (the HTTP handler).
class GenerationStream {
 public:
  struct Delta {
    std::string text;  // valid UTF-8, never splits a character
  };
  using Event = std::variant<Delta, GenerationResult, EngineError>;

  // Producer side.
  void push_delta(std::string text);
  void finish(GenerationResult result);
  void fail(EngineError error);

  // Consumer side, without blocking: `listener` is called (on the producer's
  // thread, without the stream's lock) after each event is pushed, or only
  // after the final one when `final_only`; the consumer then drains with
  // try_next(). Called at once if events are already waiting. Set once.
  void set_listener(std::function<void()> listener, bool final_only);
  // The next event, or std::nullopt if none is waiting. The final event is
  // returned once only: after it, std::nullopt.
  std::optional<Event> try_next();

  // Consumer side. Blocks until an event arrives or the timeout passes
  // (std::nullopt). After the final event (result or error) it returns that
  // same final event again.
  std::optional<Event> next(std::chrono::milliseconds timeout);
  // Blocks until the final event, concatenating nothing: deltas are dropped,
  // the result already holds the whole text. Throws the EngineError.
  GenerationResult wait();

  // Either side. Asks the producer to stop; it finishes with "cancelled".
  void cancel();
  // Producer side: called once (on the canceller's thread, without the
  // stream's lock) when cancel() is first called, or at once if it already
  // was, so a producer blocked elsewhere needs no polling to notice. Set once.
  void set_on_cancel(std::function<void()> on_cancel);
  bool cancelled() const;
  bool closed() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Event> events_;          // guarded by mutex_
  std::optional<Event> final_;        // guarded by mutex_; set once
  bool cancelled_ = false;            // guarded by mutex_
  bool final_taken_ = false;          // guarded by mutex_; try_next() returned the final event
  std::function<void()> listener_;    // guarded by mutex_ (set once, then only read)
  bool listener_final_only_ = false;  // guarded by mutex_
  std::function<void()> on_cancel_;   // guarded by mutex_

  void notify(bool is_final);
};

struct EngineHealth {
  bool ok = false;
  std::string detail;  // why not, or what is serving
};

// A snapshot of what an engine is doing, for the state endpoint and tests.
struct EngineStats {
  int slots_total = 0;     // requests it can decode at once
  int slots_busy = 0;      // requests decoding now
  int queued = 0;          // requests waiting for a slot
  uint64_t completed = 0;  // generations finished (any reason)
  uint64_t cancelled = 0;  // of which ended by cancel()
};

class Engine {
 public:
  virtual ~Engine() = default;

  // Makes the model ready to serve (loads a GGUF, or checks a remote is up).
  // Throws EngineError(kUnavailable) with a clear message when it cannot.
  // Not thread-safe with unload(); the registry serializes them.
  virtual void load() = 0;
  virtual void unload() = 0;
  // Thread-safe.
  virtual bool loaded() const = 0;

  // Starts a generation. Thread-safe; never blocks on inference. Validation
  // errors (context overflow, unusable sampling values) may be thrown here
  // as EngineError before a stream exists.
  virtual std::shared_ptr<GenerationStream> submit(GenerationRequest request) = 0;

  // Cheap liveness check. Thread-safe.
  virtual EngineHealth health() = 0;

  // Thread-safe. Engines that cannot tell report zeros.
  virtual EngineStats stats() const { return {}; }
};

}  // namespace calm
