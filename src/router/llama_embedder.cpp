#include "router/llama_embedder.h"

#include <llama.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "engines/llama_backend.h"

namespace calm {
namespace {

std::runtime_error file_error(const std::string& path, const std::string& what) {
  return std::runtime_error(path + ": " + what);
}

std::string with_reason(std::string what, const std::string& why) {
  return why.empty() ? what : what + ": " + why;
}

bool blank(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

std::string meta_string(const llama_model* model, const char* key) {
  char buf[256];
  const int32_t n = llama_model_meta_val_str(model, key, buf, sizeof(buf));
  if (n < 0) return "";
  if (static_cast<size_t>(n) < sizeof(buf)) return std::string(buf, static_cast<size_t>(n));
  std::string big(static_cast<size_t>(n) + 1, '\0');
  llama_model_meta_val_str(model, key, big.data(), big.size());
  big.resize(static_cast<size_t>(n));
  return big;
}

const char* pooling_name(int type) {
  switch (type) {
    case LLAMA_POOLING_TYPE_MEAN:
      return "mean";
    case LLAMA_POOLING_TYPE_CLS:
      return "cls";
    case LLAMA_POOLING_TYPE_LAST:
      return "last";
    case LLAMA_POOLING_TYPE_RANK:
      return "rank";
    case LLAMA_POOLING_TYPE_NONE:
      return "none";
    default:
      return "unspecified";
  }
}

struct BatchGuard {
  llama_batch batch;
  ~BatchGuard() { llama_batch_free(batch); }
};

}  // namespace

std::unique_ptr<LlamaEmbedder> LlamaEmbedder::load(const std::string& gguf_path) {
  return load(gguf_path, Options{});
}

std::unique_ptr<LlamaEmbedder> LlamaEmbedder::load(const std::string& gguf_path,
                                                   const Options& options) {
  if (options.context <= 0) {
    throw std::invalid_argument("LlamaEmbedder: context must be positive, not " +
                                std::to_string(options.context));
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(gguf_path, ec)) {
    throw file_error(gguf_path, std::filesystem::exists(gguf_path, ec)
                                    ? "not a regular file"
                                    : "cannot open GGUF file: no such file");
  }

  ensure_llama_backend();
  take_llama_errors();

  // Freed by ~LlamaEmbedder when a later step throws.
  std::unique_ptr<LlamaEmbedder> e(new LlamaEmbedder(options));
  e->path_ = gguf_path;

  llama_model_params mparams = llama_model_default_params();
  e->model_ = llama_model_load_from_file(gguf_path.c_str(), mparams);
  if (e->model_ == nullptr) {
    throw file_error(gguf_path, with_reason("llama.cpp cannot load this GGUF file (corrupt, "
                                            "truncated or unsupported)",
                                            take_llama_errors()));
  }
  const llama_vocab* vocab = llama_model_get_vocab(e->model_);
  if (vocab == nullptr || llama_vocab_type(vocab) == LLAMA_VOCAB_TYPE_NONE) {
    throw file_error(gguf_path, "the model has no tokenizer, so it cannot embed text");
  }

  const int32_t n_ctx_train = llama_model_n_ctx_train(e->model_);
  e->context_ = n_ctx_train > 0 ? std::min(options.context, n_ctx_train) : options.context;
  const int threads = options.threads > 0
                          ? options.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  auto make_context = [&](enum llama_pooling_type pooling) {
    llama_context_params cparams = llama_context_default_params();
    cparams.embeddings = true;
    cparams.pooling_type = pooling;
    cparams.n_seq_max = 1;
    cparams.n_ctx = static_cast<uint32_t>(e->context_);
    // The whole text in one physical batch: non-causal models must see it at once.
    cparams.n_batch = static_cast<uint32_t>(e->context_);
    cparams.n_ubatch = static_cast<uint32_t>(e->context_);
    cparams.n_threads = threads;
    cparams.n_threads_batch = threads;
    cparams.no_perf = true;
    llama_context* ctx = llama_init_from_model(e->model_, cparams);
    if (ctx == nullptr) {
      throw file_error(gguf_path, with_reason("cannot create a llama.cpp embedding context of " +
                                                  std::to_string(e->context_) + " tokens",
                                              take_llama_errors()));
    }
    return ctx;
  };

  // Let the model choose its pooling; per-token output (NONE, every generative
  // model) or a reranker's score (RANK) is not a sentence vector: mean-pool instead.
  e->ctx_ = make_context(LLAMA_POOLING_TYPE_UNSPECIFIED);
  enum llama_pooling_type chosen = llama_pooling_type(e->ctx_);
  if (chosen == LLAMA_POOLING_TYPE_NONE || chosen == LLAMA_POOLING_TYPE_RANK ||
      chosen == LLAMA_POOLING_TYPE_UNSPECIFIED) {
    llama_free(e->ctx_);
    e->ctx_ = nullptr;
    e->ctx_ = make_context(LLAMA_POOLING_TYPE_MEAN);
    chosen = llama_pooling_type(e->ctx_);
  }
  e->pooling_type_ = chosen;

  const int32_t n_embd_out = llama_model_n_embd_out(e->model_);
  const int32_t n_embd = n_embd_out > 0 ? n_embd_out : llama_model_n_embd(e->model_);
  if (n_embd <= 0) throw file_error(gguf_path, "the model has no embedding dimension");
  e->dimension_ = static_cast<size_t>(n_embd);
  e->use_encode_ = llama_model_has_encoder(e->model_) && !llama_model_has_decoder(e->model_);

  e->model_name_ = meta_string(e->model_, "general.name");
  if (e->model_name_.empty()) e->model_name_ = std::filesystem::path(gguf_path).stem().string();

  spdlog::info("embedder {} loaded from {} ({} pooling, {} tokens, {} threads)", e->name(),
               gguf_path, pooling_name(chosen), e->context_, threads);
  return e;
}

LlamaEmbedder::~LlamaEmbedder() {
  if (ctx_ != nullptr) llama_free(ctx_);
  if (model_ != nullptr) llama_model_free(model_);
}

std::string LlamaEmbedder::name() const {
  return "gguf:" + model_name_ + " (" + std::to_string(dimension_) + "-d)";
}

std::string LlamaEmbedder::pooling() const {
  return pooling_name(pooling_type_);
}

std::vector<float> LlamaEmbedder::compute(std::string_view text) {
  std::vector<float> out(dimension_, 0.0f);

  // Tokenize outside the context's lock: the vocabulary is read-only. No token
  // is hundreds of bytes long, so bytes far past the context cannot matter.
  const size_t max_bytes =
      std::min<size_t>(static_cast<size_t>(context_) * 256, static_cast<size_t>(INT32_MAX));
  if (text.size() > max_bytes) text = text.substr(0, max_bytes);
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  const auto len = static_cast<int32_t>(text.size());
  int32_t n = llama_tokenize(vocab, text.data(), len, nullptr, 0, /*add_special=*/true,
                             /*parse_special=*/false);
  if (n == INT32_MIN) throw file_error(path_, "text is too long to tokenize");
  std::vector<llama_token> tokens(static_cast<size_t>(std::abs(n)));
  n = llama_tokenize(vocab, text.data(), len, tokens.data(), static_cast<int32_t>(tokens.size()),
                     true, false);
  tokens.resize(static_cast<size_t>(std::max(n, 0)));
  if (tokens.empty()) return out;

  const auto limit = static_cast<size_t>(context_);
  if (tokens.size() > limit) {
    // Keep an end token the tokenizer appended (BERT's [SEP], an EOS): models
    // that pool on it (or were trained with it) expect it last.
    const llama_token tail = tokens.back();
    const bool special_tail = (llama_vocab_get_add_eos(vocab) && tail == llama_vocab_eos(vocab)) ||
                              (llama_vocab_get_add_sep(vocab) && tail == llama_vocab_sep(vocab));
    tokens.resize(limit);
    if (special_tail) tokens.back() = tail;
  }

  BatchGuard holder{llama_batch_init(static_cast<int32_t>(tokens.size()), 0, 1)};
  llama_batch& batch = holder.batch;
  for (size_t i = 0; i < tokens.size(); ++i) {
    batch.token[i] = tokens[i];
    batch.pos[i] = static_cast<llama_pos>(i);
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = true;  // every token's state goes into the pool
  }
  batch.n_tokens = static_cast<int32_t>(tokens.size());

  std::lock_guard<std::mutex> lock(model_mutex_);
  take_llama_errors();
  if (llama_memory_t mem = llama_get_memory(ctx_); mem != nullptr) llama_memory_clear(mem, true);
  const int32_t rc = use_encode_ ? llama_encode(ctx_, batch) : llama_decode(ctx_, batch);
  if (rc != 0) {
    throw file_error(path_, with_reason(std::string(use_encode_ ? "llama_encode" : "llama_decode") +
                                            " failed with " + std::to_string(rc) + " for " +
                                            std::to_string(tokens.size()) + " tokens",
                                        take_llama_errors()));
  }
  const float* pooled = llama_get_embeddings_seq(ctx_, 0);
  if (pooled == nullptr) {
    throw file_error(path_,
                     with_reason("llama.cpp returned no pooled embedding", take_llama_errors()));
  }
  double norm = 0;
  for (size_t i = 0; i < dimension_; ++i) norm += double(pooled[i]) * pooled[i];
  norm = std::sqrt(norm);
  if (!(norm > 0) || !std::isfinite(norm)) return out;  // no signal
  for (size_t i = 0; i < dimension_; ++i) out[i] = static_cast<float>(pooled[i] / norm);
  return out;
}

std::vector<float> LlamaEmbedder::embed(std::string_view text) {
  if (blank(text)) return std::vector<float>(dimension_, 0.0f);
  if (auto hit = cache_.get(text)) return std::move(*hit);
  std::vector<float> v = compute(text);  // outside the cache's lock
  cache_.put(text, v);
  return v;
}

}  // namespace calm
