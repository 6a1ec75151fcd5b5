#include "engines/llama_engine.h"

#include <ggml-backend.h>
#include <llama.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <future>
#include <limits>
#include <map>
#include <optional>
#include <random>

#include "engines/chat_template.h"
#include "engines/generation_limits.h"
#include "engines/gguf_info.h"
#include "engines/llama_backend.h"
#include "engines/tokenize.h"
#include "util/log_softmax.h"
#include "util/stop_matcher.h"
#include "util/utf8.h"

// From the pinned llama.cpp's staging header src/llama-ext.h, which its
// install does not ship: the per-buffer-type breakdown llama.cpp's own
// memory fitting (common/fit.cpp) reads. Exported with C++ linkage; the
// declarations must stay exactly as there (scripts/build-llama-cpp.sh pins
// the version by checksum). LlamaEngine.MemoryFigureMatchesTheContextsOwnParameters
// checks the layout against llama_model_size() and the KV cache's shape.
struct llama_memory_breakdown_data {
  size_t model = 0;
  size_t context = 0;
  size_t compute = 0;
  size_t total() const { return model + context + compute; }
};
using llama_memory_breakdown = std::map<ggml_backend_buffer_type_t, llama_memory_breakdown_data>;
LLAMA_API llama_memory_breakdown llama_get_memory_breakdown(const struct llama_context* ctx);

namespace calm {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct SamplerDeleter {
  void operator()(llama_sampler* s) const { llama_sampler_free(s); }
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerDeleter>;

// The same order llama.cpp's own server uses: cut the candidates (top-k,
// top-p), then flatten or sharpen (temperature), then draw. Greedy requests
// (temperature 0) have no chain: see LlamaEngine::greedy_token.
SamplerPtr make_sampler_chain(const SamplingParams& params, const std::vector<llama_token>& eog,
                              int32_t n_vocab) {
  SamplerPtr chain(llama_sampler_chain_init(llama_sampler_chain_default_params()));
  if (params.ignore_eos && !eog.empty()) {
    std::vector<llama_logit_bias> bias;
    for (llama_token t : eog) bias.push_back({t, -INFINITY});
    llama_sampler_chain_add(
        chain.get(),
        llama_sampler_init_logit_bias(n_vocab, static_cast<int32_t>(bias.size()), bias.data()));
  }
  assert(params.temperature > 0.0f);
  if (params.top_k > 0)
    llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(params.top_k));
  if (params.top_p < 1.0f) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(params.top_p, 1));
  }
  llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(params.temperature));
  const uint32_t seed = params.seed ? *params.seed : std::random_device{}();
  llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(seed));
  return chain;
}

std::string token_piece(const llama_vocab* vocab, llama_token token) {
  char buf[256];
  const int32_t n = llama_token_to_piece(vocab, token, buf, sizeof(buf), 0, /*special=*/false);
  if (n >= 0) return std::string(buf, static_cast<size_t>(n));
  std::string big(static_cast<size_t>(-n), '\0');
  llama_token_to_piece(vocab, token, big.data(), -n, 0, false);
  return big;
}

bool is_gpu(ggml_backend_dev_t dev) {
  if (dev == nullptr) return false;
  const auto type = ggml_backend_dev_type(dev);
  return type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU;
}

// Free memory summed over the GPU devices; 0 without any (a CPU build).
uint64_t gpu_free_bytes() {
  uint64_t sum = 0;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    if (!is_gpu(dev)) continue;
    size_t free = 0, total = 0;
    ggml_backend_dev_memory(dev, &free, &total);
    sum += free;
  }
  return sum;
}

// What llama.cpp allocated for the model and its context, from its buffers.
LlamaMemory read_memory(const llama_model* model, const llama_context* ctx) {
  LlamaMemory m;
  for (const auto& [buft, b] : llama_get_memory_breakdown(ctx)) {
    m.weights += b.model;
    m.kv += b.context;
    m.compute += b.compute;
    if (is_gpu(ggml_backend_buft_get_device(buft))) m.device += b.total();
  }
  // The logits buffer is not in the breakdown: one row of n_vocab floats per
  // output, reserved for n_seq_max outputs at creation and never grown by
  // this engine (it asks at most one output per slot per batch).
  const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  m.compute += static_cast<uint64_t>(n_vocab) * llama_n_seq_max(ctx) * sizeof(float);
  return m;
}

}  // namespace

struct LlamaEngine::Job {
  GenerationRequest request;
  std::vector<llama_token> prompt;
  std::shared_ptr<GenerationStream> stream;
  Clock::time_point submitted = Clock::now();
};

struct LlamaEngine::Slot {
  llama_seq_id seq = 0;
  std::unique_ptr<Job> job;  // null: the slot is free
  SamplerPtr sampler;
  size_t prompt_done = 0;  // prompt tokens already in the KV cache
  // The tokens whose keys and values this sequence holds, position by
  // position. It outlives the request: the next request that starts with the
  // same tokens (a conversation's next turn, a shared system prompt) reads
  // only what follows them.
  std::vector<llama_token> cached;
  uint64_t last_used = 0;  // when it last took a request (admissions so far); 0: never
  llama_token last = 0;    // sampled, not yet decoded
  bool generating = false;
  int batch_index = -1;  // where this slot's logits are in the current batch
  Utf8Repairer utf8;
  std::optional<StopMatcher> stop;
  GenerationResult result;

  bool free() const { return job == nullptr; }
  bool reading_prompt() const { return job && !generating; }
  llama_pos n_past() const { return static_cast<llama_pos>(cached.size()); }
};

namespace {

size_t common_prefix(const std::vector<llama_token>& a, const std::vector<llama_token>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

LlamaEngine::LlamaEngine(Options options) : options_(std::move(options)) {}

LlamaEngine::~LlamaEngine() {
  unload();
}

bool LlamaEngine::loaded() const {
  return loaded_.load();
}

void LlamaEngine::load() {
  if (loaded_) return;
  ensure_llama_backend();
  take_llama_errors();

  try {
    check_llama_loadable(options_.gguf_path);  // what llama.cpp would abort on
  } catch (const std::runtime_error& e) {
    throw EngineError(EngineError::Kind::kUnavailable,
                      "model '" + options_.id + "': cannot load GGUF file " + e.what());
  }

  const uint64_t gpu_free_before = gpu_free_bytes();
  llama_model_params mparams = llama_model_default_params();
  mparams.n_gpu_layers = options_.gpu_layers < 0 ? 999 : options_.gpu_layers;
  model_ = llama_model_load_from_file(options_.gguf_path.c_str(), mparams);
  if (model_ == nullptr) {
    const std::string why = take_llama_errors();
    throw EngineError(EngineError::Kind::kUnavailable,
                      "model '" + options_.id + "': cannot load GGUF file " + options_.gguf_path +
                          " (corrupt, truncated or unsupported)" + (why.empty() ? "" : ": " + why));
  }

  const int threads = options_.threads > 0
                          ? options_.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  llama_context_params cparams = llama_context_default_params();
  cparams.n_seq_max = static_cast<uint32_t>(options_.parallel);
  cparams.n_ctx = static_cast<uint32_t>(options_.context * options_.parallel);
  cparams.n_batch = static_cast<uint32_t>(std::max(options_.batch, options_.parallel));
  cparams.n_ubatch = std::min(cparams.n_batch, 512u);
  cparams.n_threads = threads;
  cparams.n_threads_batch = threads;
  cparams.kv_unified = false;  // each slot owns `context` cells: no slot can starve another
  cparams.no_perf = true;
  ctx_ = llama_init_from_model(model_, cparams);
  if (ctx_ == nullptr) {
    const std::string why = take_llama_errors();
    llama_model_free(model_);
    model_ = nullptr;
    throw EngineError(EngineError::Kind::kUnavailable,
                      "model '" + options_.id + "': cannot create a llama.cpp context for " +
                          std::to_string(options_.parallel) + " x " +
                          std::to_string(options_.context) + " tokens" +
                          (why.empty() ? "" : ": " + why));
  }
  // End-of-generation tokens, for requests that ask to ignore them.
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  eog_tokens_.clear();
  for (llama_token t = 0; t < llama_vocab_n_tokens(vocab); ++t) {
    if (llama_vocab_is_eog(vocab, t)) eog_tokens_.push_back(t);
  }
  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
  }
  // The worker thread starts before the warm-up and runs it: every llama.cpp
  // computation of this context then happens on one thread. With llama.cpp
  // built on OpenMP, each thread that runs a graph becomes the master of its
  // own OpenMP pool; a second pool (the loading thread's, left idle) makes
  // libgomp count more threads than cores and stop spinning between graph
  // runs, so each token's barriers sleep and wake through futexes. That cost
  // decode about a third of its speed on 2 cores (bench/RESULTS.md).
  std::promise<void> warmed;
  std::future<void> warmed_up = warmed.get_future();
  worker_ = std::thread([this, &warmed] {
    warm_up();
    warmed.set_value();
    run_worker();
  });
  warmed_up.wait();
  LlamaMemory memory = read_memory(model_, ctx_);
  const uint64_t gpu_free_after = gpu_free_bytes();
  if (gpu_free_before > gpu_free_after) memory.device_measured = gpu_free_before - gpu_free_after;
  {
    std::lock_guard lock(mutex_);
    memory_ = memory;
  }
  loaded_ = true;
  spdlog::info(
      "model '{}' loaded from {} ({} slots x {} tokens, {} threads): llama.cpp holds {:.2f} MiB "
      "(weights {:.2f}, KV cache {:.2f}, compute {:.2f})",
      options_.id, options_.gguf_path, options_.parallel, options_.context, threads,
      memory.total() / 1048576.0, memory.weights / 1048576.0, memory.kv / 1048576.0,
      memory.compute / 1048576.0);
}

void LlamaEngine::unload() {
  std::unique_lock lifecycle(lifecycle_);  // waits for submit() calls in progress
  {
    std::lock_guard lock(mutex_);
    if (!loaded_) return;
    loaded_ = false;
    stopping_ = true;
    memory_.reset();
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  llama_free(ctx_);
  llama_model_free(model_);
  ctx_ = nullptr;
  model_ = nullptr;
  spdlog::info("model '{}' unloaded", options_.id);
}

std::optional<LlamaMemory> LlamaEngine::memory() const {
  std::lock_guard lock(mutex_);
  return memory_;
}

std::vector<int32_t> LlamaEngine::tokenize_request(const GenerationRequest& request) const {
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  if (request.is_chat()) {
    return tokenize(vocab, apply_chat_template(model_, request.messages), /*parse_special=*/true);
  }
  return tokenize(vocab, *request.prompt, /*parse_special=*/false);
}

std::shared_ptr<GenerationStream> LlamaEngine::submit(GenerationRequest request) {
  std::shared_lock lifecycle(lifecycle_);  // model_ stays valid while we tokenize
  if (!loaded_) {
    throw EngineError(EngineError::Kind::kUnavailable, "model '" + options_.id + "' is not loaded");
  }
  apply_max_tokens_cap(options_.id, options_.max_tokens_cap, request.sampling);
  auto job = std::make_unique<Job>();
  job->prompt = tokenize_request(request);
  const int n_prompt = static_cast<int>(job->prompt.size());
  const char* prompt_param = request.is_chat() ? "messages" : "prompt";
  if (n_prompt == 0) {
    throw EngineError(EngineError::Kind::kBadRequest, "the prompt is empty", prompt_param);
  }
  if (n_prompt >= options_.context) {
    throw EngineError(EngineError::Kind::kContextOverflow,
                      "the prompt is " + std::to_string(n_prompt) + " tokens but model '" +
                          options_.id + "' has a context of " + std::to_string(options_.context) +
                          " tokens per request, which leaves no room for an answer",
                      prompt_param);
  }
  check_prompt_tokens(options_.id, n_prompt, options_.max_prompt_tokens,
                      "models[].max_prompt_tokens", request.is_chat());
  job->request = std::move(request);
  job->stream = std::make_shared<GenerationStream>();
  auto stream = job->stream;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_all();
  return stream;
}

EngineHealth LlamaEngine::health() {
  if (!loaded_) return {false, "not loaded"};
  return {true, "llama.cpp in process: " + options_.gguf_path};
}

EngineStats LlamaEngine::stats() const {
  EngineStats s;
  s.slots_total = options_.parallel;
  s.slots_busy = busy_.load();
  {
    std::lock_guard lock(mutex_);
    s.queued = static_cast<int>(queue_.size());
  }
  s.completed = completed_.load();
  s.cancelled = cancelled_.load();
  return s;
}

// ---------------------------------------------------------------------------
// The worker thread: the only code that runs ctx_'s computations.

// One token through the whole model pages in the weights (they are
// memory-mapped) and the compute buffers, so that the first request does not
// pay for it and the cache measures what serving really holds.
void LlamaEngine::warm_up() {
  llama_token warm = llama_vocab_bos(llama_model_get_vocab(model_));
  if (warm == LLAMA_TOKEN_NULL) warm = 0;
  if (llama_decode(ctx_, llama_batch_get_one(&warm, 1)) != 0) {
    spdlog::warn("model '{}': warm-up decode failed: {}", options_.id, take_llama_errors());
  }
  llama_memory_clear(llama_get_memory(ctx_), true);
}

void LlamaEngine::run_worker() {
  std::vector<Slot> slots(static_cast<size_t>(options_.parallel));
  for (size_t i = 0; i < slots.size(); ++i) slots[i].seq = static_cast<llama_seq_id>(i);
  // One batch for the worker's life: llama_batch_init allocates per token.
  llama_batch batch = llama_batch_init(static_cast<int32_t>(llama_n_batch(ctx_)), 0, 1);

  while (true) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] {
        return stopping_ || !queue_.empty() ||
               std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return !s.free(); });
      });
      if (stopping_) break;
    }
    for (auto& slot : slots) {
      if (!slot.free() && slot.job->stream->cancelled()) finish_slot(slot, "cancelled");
    }
    admit_jobs(slots);
    if (std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return !s.free(); })) {
      decode_step(slots, batch);
    }
  }
  llama_batch_free(batch);
  fail_everything("model '" + options_.id + "' was unloaded", slots);
}

void LlamaEngine::admit_jobs(std::vector<Slot>& slots) {
  const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model_));
  llama_memory_t memory = llama_get_memory(ctx_);
  while (std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return s.free(); })) {
    std::unique_ptr<Job> job;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    if (job->stream->cancelled()) {
      GenerationResult result;
      result.finish_reason = "cancelled";
      result.prompt_tokens = static_cast<int>(job->prompt.size());
      ++completed_;
      ++cancelled_;
      job->stream->finish(std::move(result));
      continue;
    }
    // The free slot whose cache shares the longest prefix with this prompt,
    // if that prefix is at least half of the prompt or of what the slot
    // holds; else the least recently used free slot (a shared BOS token is
    // no reason to overwrite another conversation's cache).
    Slot* best = nullptr;
    Slot* oldest = nullptr;
    size_t reuse = 0;
    for (auto& slot : slots) {
      if (!slot.free()) continue;
      if (oldest == nullptr || slot.last_used < oldest->last_used) oldest = &slot;
      const size_t common = common_prefix(slot.cached, job->prompt);
      const bool worth_it =
          common > 0 && (2 * common >= job->prompt.size() || 2 * common >= slot.cached.size());
      if (worth_it && (best == nullptr || common > reuse)) {
        best = &slot;
        reuse = common;
      }
    }
    if (best == nullptr) {
      best = oldest;
      reuse = common_prefix(best->cached, job->prompt);
    }
    Slot& slot = *best;
    slot.last_used = ++admissions_;
    // At least the last prompt token is decoded again: its logits give the
    // first answer token.
    reuse = std::min(reuse, job->prompt.size() - 1);
    if (!llama_memory_seq_rm(memory, slot.seq, static_cast<llama_pos>(reuse), -1)) {
      llama_memory_seq_rm(memory, slot.seq, -1, -1);  // cannot trim this model's cache
      reuse = 0;
    }
    slot.cached.resize(reuse);
    slot.prompt_done = reuse;
    if (job->request.sampling.temperature > 0.0f) {
      slot.sampler = make_sampler_chain(job->request.sampling, eog_tokens_, n_vocab);
    }
    slot.generating = false;
    slot.utf8 = Utf8Repairer();
    slot.stop.emplace(job->request.sampling.stop);
    slot.result = GenerationResult();
    slot.result.prompt_tokens = static_cast<int>(job->prompt.size());
    slot.result.cached_prompt_tokens = static_cast<int>(reuse);
    slot.job = std::move(job);
    ++busy_;
  }
}

void LlamaEngine::decode_step(std::vector<Slot>& slots, llama_batch& batch) {
  const int capacity = static_cast<int>(llama_n_batch(ctx_));
  batch.n_tokens = 0;
  auto add = [&](llama_token token, llama_pos pos, llama_seq_id seq, bool logits) {
    const int i = batch.n_tokens++;
    batch.token[i] = token;
    batch.pos[i] = pos;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = seq;
    batch.logits[i] = logits;
    return i;
  };

  // Generating slots first: one token each keeps every answer moving while
  // long prompts are read in chunks with the room that is left.
  for (auto& slot : slots) {
    slot.batch_index = -1;
    if (slot.free() || !slot.generating) continue;
    slot.batch_index = add(slot.last, slot.n_past(), slot.seq, true);
    slot.cached.push_back(slot.last);
  }
  for (auto& slot : slots) {
    if (!slot.reading_prompt()) continue;
    const auto& prompt = slot.job->prompt;
    while (slot.prompt_done < prompt.size() && batch.n_tokens < capacity) {
      const bool last = slot.prompt_done + 1 == prompt.size();
      const llama_token token = prompt[slot.prompt_done++];
      const int i = add(token, slot.n_past(), slot.seq, last);
      slot.cached.push_back(token);
      if (last) slot.batch_index = i;
    }
  }

  const int32_t rc = llama_decode(ctx_, batch);
  if (rc != 0) {
    const std::string why = take_llama_errors();
    spdlog::error("model '{}': llama_decode failed ({}): {}", options_.id, rc, why);
    for (auto& slot : slots) {
      if (slot.free()) continue;
      llama_memory_seq_rm(llama_get_memory(ctx_), slot.seq, -1, -1);
      slot.cached.clear();
      --busy_;
      ++completed_;
      auto job = std::move(slot.job);
      job->stream->fail(EngineError(EngineError::Kind::kInternal,
                                    "llama_decode failed with code " + std::to_string(rc)));
    }
    return;
  }
  for (auto& slot : slots) {
    if (!slot.free() && slot.batch_index >= 0) sample_slot(slot, slot.batch_index);
  }
}

void LlamaEngine::sample_slot(Slot& slot, int batch_index) {
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  const int32_t n_vocab = llama_vocab_n_tokens(vocab);
  const SamplingParams& params = slot.job->request.sampling;

  const float* logits = llama_get_logits_ith(ctx_, batch_index);
  const llama_token token = slot.sampler
                                ? llama_sampler_sample(slot.sampler.get(), ctx_, batch_index)
                                : greedy_token(logits, n_vocab, params.ignore_eos);
  if (!slot.generating) {
    slot.generating = true;
    slot.result.time_to_first_token_ms = ms_since(slot.job->submitted);
  }
  if (!params.ignore_eos && llama_vocab_is_eog(vocab, token)) {
    finish_slot(slot, "stop");
    return;
  }
  slot.result.completion_tokens++;
  slot.result.token_logprobs.push_back(
      log_softmax_at(logits, static_cast<size_t>(n_vocab), static_cast<size_t>(token)));

  const StopMatcher::Step step = slot.stop->push(slot.utf8.push(token_piece(vocab, token)));
  if (!step.release.empty()) {
    slot.result.text += step.release;
    slot.job->stream->push_delta(step.release);
  }
  if (step.stopped) {
    finish_slot(slot, "stop");
  } else if (slot.result.completion_tokens >= params.max_tokens ||
             slot.n_past() + 1 >= options_.context) {
    // n_past + 1: prompt and answer together never exceed the slot's context.
    finish_slot(slot, "length");
  } else {
    slot.last = token;
  }
}

// Greedy decoding without a llama.cpp sampler chain, which would copy all
// n_vocab logits into a candidate array per token only to take the largest:
// with 16 slots on a 32k vocabulary that was 2% of a decode step, spent on
// this thread while the other llama.cpp threads wait. Same choice as
// logit_bias(-inf on end-of-generation tokens when ignored) + greedy.
llama_token LlamaEngine::greedy_token(const float* logits, int32_t n_vocab, bool ignore_eos) const {
  const auto n = static_cast<size_t>(n_vocab);
  const auto best = static_cast<llama_token>(argmax_logit(logits, n));
  if (!ignore_eos || !std::binary_search(eog_tokens_.begin(), eog_tokens_.end(), best)) {
    return best;
  }
  std::vector<float> masked(logits, logits + n);
  // lowest(), not -INFINITY: argmax_logit is built with -ffast-math.
  for (llama_token t : eog_tokens_)
    masked[static_cast<size_t>(t)] = std::numeric_limits<float>::lowest();
  return static_cast<llama_token>(argmax_logit(masked.data(), n));
}

void LlamaEngine::finish_slot(Slot& slot, const std::string& reason) {
  assert(!slot.free());
  if (reason != "cancelled") {
    // Release what was held back: an incomplete character (as U+FFFD) and a
    // possible stop-string prefix that never completed. After a stop string
    // the matcher releases nothing more.
    std::string tail = slot.stop->push(slot.utf8.flush()).release + slot.stop->flush();
    if (!tail.empty()) {
      slot.result.text += tail;
      slot.job->stream->push_delta(tail);
    }
  }
  slot.result.finish_reason = reason;
  slot.result.total_ms = ms_since(slot.job->submitted);
  // The sequence's cache stays: slot.cached says what it holds.
  // Counters first: whoever waits on the stream sees them already updated.
  --busy_;
  ++completed_;
  if (reason == "cancelled") ++cancelled_;
  auto job = std::move(slot.job);
  slot.sampler.reset();
  slot.stop.reset();
  job->stream->finish(std::move(slot.result));
}

void LlamaEngine::fail_everything(const std::string& why, std::vector<Slot>& slots) {
  for (auto& slot : slots) {
    if (slot.free()) continue;
    --busy_;
    auto job = std::move(slot.job);
    job->stream->fail(EngineError(EngineError::Kind::kUnavailable, why));
  }
  std::lock_guard lock(mutex_);
  for (auto& job : queue_) job->stream->fail(EngineError(EngineError::Kind::kUnavailable, why));
  queue_.clear();
}

}  // namespace calm
