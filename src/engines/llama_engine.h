// LlamaEngine: one GGUF model served by llama.cpp inside this process.
//
// Lifecycle:
//
//   [unloaded] ──load()──► [loaded: worker thread decoding] ──unload()──► [unloaded]
//        │                                                        ▲
//        └── load() throws EngineError(kUnavailable) ─────────────┘ (stays unloaded)
//
// Batching: the model has `parallel` slots, each a llama.cpp sequence with
// its own share of the KV cache (`context` tokens). One worker thread owns
// the llama_context and runs all its computations, the load's warm-up
// included (one OpenMP pool per model: see load()); every step it gathers one token from each
// generating slot plus a chunk of any prompt still being read into a single llama_decode call, so
// requests to one model are decoded together. Requests beyond `parallel` wait in a FIFO until a
// slot frees.
//
// Prompt caching: a slot keeps its sequence's KV cache after a request ends.
// A new request goes to the free slot whose cache shares the longest prefix
// with its prompt and reads only the tokens after that prefix (reported as
// usage.prompt_tokens_details.cached_tokens), as llama-server does. A prefix
// shorter than half of the prompt and half of what the slot holds (a shared
// BOS token, another conversation) does not count: the request then takes
// the least recently used free slot, and the other caches stay.
//
// Per slot:
//   [free] ─admit─► [reading prompt] ─last prompt token decoded─► [generating]
//                                                                     │
//     ◄── free ◄── eog / stop string / max_tokens / context full / cancel
//
// Memory: once loaded, memory() says what llama.cpp allocated for this model,
// read from its own buffers (not from the process's RSS): the weights, the KV
// cache, the compute buffers and the logits buffer. These figures are the same
// on every machine and every load for the same file and settings, so the
// model cache charges them (cache/resident_set.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "engines/engine.h"

struct llama_model;
struct llama_context;
struct llama_batch;

namespace calm {

// What llama.cpp allocated for one loaded model, in bytes.
struct LlamaMemory {
  uint64_t weights = 0;  // the model's tensor buffers (mapped or copied)
  uint64_t kv = 0;       // the KV cache: context x slots cells, every layer, K and V
  uint64_t compute = 0;  // the graph's compute buffers plus the logits buffer
  uint64_t total() const { return weights + kv + compute; }
  // The part of the total held in GPU device buffers (0 on a CPU build).
  uint64_t device = 0;
  // With a GPU: how much the devices' free memory fell across the load, as
  // the driver counts it (ggml_backend_dev_memory); a cross-check only.
  uint64_t device_measured = 0;
};

class LlamaEngine : public Engine {
 public:
  struct Options {
    std::string id;
    std::string gguf_path;
    int context = 2048;   // tokens per slot
    int parallel = 1;     // slots
    int threads = 0;      // 0: hardware concurrency
    int batch = 512;      // max tokens per llama_decode
    int gpu_layers = -1;  // -1: all (ignored without a GPU backend)
    // Per-request limits (engines/generation_limits.h); 0: none beyond the
    // context (a prompt of context - 1 tokens at most).
    int max_prompt_tokens = 0;
    int max_tokens_cap = 0;
  };

  explicit LlamaEngine(Options options);
  ~LlamaEngine() override;  // unloads

  void load() override;          // not thread-safe with unload()
  void unload() override;        // fails queued and running requests with kUnavailable
  bool loaded() const override;  // thread-safe

  // Thread-safe. Throws EngineError: kUnavailable when not loaded,
  // kContextOverflow when the prompt does not fit one slot's context or
  // exceeds max_prompt_tokens, kBadRequest when it asks for more than
  // max_tokens_cap.
  std::shared_ptr<GenerationStream> submit(GenerationRequest request) override;

  EngineHealth health() override;      // thread-safe
  EngineStats stats() const override;  // thread-safe

  // What llama.cpp allocated for the model; nullopt while not loaded.
  // Thread-safe.
  std::optional<LlamaMemory> memory() const;

  // Thread-safe once loaded: the prompt tokens a request would use.
  std::vector<int32_t> tokenize_request(const GenerationRequest& request) const;

 private:
  struct Job;
  struct Slot;

  void warm_up();
  void run_worker();
  void admit_jobs(std::vector<Slot>& slots);
  void decode_step(std::vector<Slot>& slots, llama_batch& batch);
  void sample_slot(Slot& slot, int batch_index);
  int32_t greedy_token(const float* logits, int32_t n_vocab, bool ignore_eos) const;
  void finish_slot(Slot& slot, const std::string& reason);
  void fail_everything(const std::string& why, std::vector<Slot>& slots);

  const Options options_;
  llama_model* model_ = nullptr;     // owned; written only by load()/unload()
  llama_context* ctx_ = nullptr;     // owned; used only by the worker thread
  std::vector<int32_t> eog_tokens_;  // ascending; written by load(), read by the worker
  uint64_t admissions_ = 0;          // requests given a slot; used only by the worker thread
  std::thread worker_;

  // submit() holds it shared while it reads model_; unload() exclusively.
  std::shared_mutex lifecycle_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;  // guarded by mutex_
  std::optional<LlamaMemory> memory_;       // guarded by mutex_; set by load()
  bool stopping_ = false;                   // guarded by mutex_
  std::atomic<bool> loaded_{false};
  std::atomic<int> busy_{0};
  std::atomic<uint64_t> completed_{0};
  std::atomic<uint64_t> cancelled_{0};
};

}  // namespace calm
