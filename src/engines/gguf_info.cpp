#include "engines/gguf_info.h"

#include <gguf.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string_view>
#include <unordered_map>

namespace calm {
namespace {

struct GgufDeleter {
  void operator()(gguf_context* ctx) const { gguf_free(ctx); }
};

uint64_t get_uint(const gguf_context* ctx, const std::string& key) {
  const int64_t id = gguf_find_key(ctx, key.c_str());
  if (id < 0) return 0;
  switch (gguf_get_kv_type(ctx, id)) {
    case GGUF_TYPE_UINT32:
      return gguf_get_val_u32(ctx, id);
    case GGUF_TYPE_INT32:
      return static_cast<uint64_t>(std::max(0, gguf_get_val_i32(ctx, id)));
    case GGUF_TYPE_UINT64:
      return gguf_get_val_u64(ctx, id);
    case GGUF_TYPE_INT64:
      return static_cast<uint64_t>(std::max<int64_t>(0, gguf_get_val_i64(ctx, id)));
    case GGUF_TYPE_UINT16:
      return gguf_get_val_u16(ctx, id);
    default:
      return 0;
  }
}

std::string get_string(const gguf_context* ctx, const char* key) {
  const int64_t id = gguf_find_key(ctx, key);
  if (id < 0 || gguf_get_kv_type(ctx, id) != GGUF_TYPE_STRING) return {};
  return gguf_get_val_str(ctx, id);
}

}  // namespace

GgufInfo read_gguf_info(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw std::runtime_error(path + ": file not found");
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  std::unique_ptr<gguf_context, GgufDeleter> ctx(gguf_init_from_file(path.c_str(), params));
  if (!ctx)
    throw std::runtime_error(path + ": not a valid GGUF file (corrupt or truncated header)");

  GgufInfo info;
  info.path = path;
  info.file_bytes = std::filesystem::file_size(path, ec);
  info.architecture = get_string(ctx.get(), "general.architecture");
  info.name = get_string(ctx.get(), "general.name");
  const std::string a = info.architecture;
  info.context_length = static_cast<uint32_t>(get_uint(ctx.get(), a + ".context_length"));
  info.n_layer = static_cast<uint32_t>(get_uint(ctx.get(), a + ".block_count"));
  info.n_embd = static_cast<uint32_t>(get_uint(ctx.get(), a + ".embedding_length"));
  info.n_head = static_cast<uint32_t>(get_uint(ctx.get(), a + ".attention.head_count"));
  info.n_head_kv = static_cast<uint32_t>(get_uint(ctx.get(), a + ".attention.head_count_kv"));
  if (info.n_head_kv == 0) info.n_head_kv = info.n_head;
  info.n_ff = static_cast<uint32_t>(get_uint(ctx.get(), a + ".feed_forward_length"));
  const int64_t tokens = gguf_find_key(ctx.get(), "tokenizer.ggml.tokens");
  info.n_vocab = tokens >= 0 ? static_cast<uint32_t>(gguf_get_arr_n(ctx.get(), tokens)) : 0;
  info.has_chat_template = gguf_find_key(ctx.get(), "tokenizer.chat_template") >= 0;

  info.n_tensors = gguf_get_n_tensors(ctx.get());
  for (int64_t i = 0; i < info.n_tensors; ++i) {
    info.tensor_bytes += gguf_get_tensor_size(ctx.get(), i);
    const int64_t* ne = gguf_get_tensor_ne(ctx.get(), i);
    uint64_t n = 1;
    for (int d = 0; d < GGML_MAX_DIMS; ++d) n *= static_cast<uint64_t>(ne[d]);
    info.n_params += n;
  }
  const uint64_t data_end = gguf_get_data_offset(ctx.get()) + info.tensor_bytes;
  if (info.n_tensors > 0 && info.file_bytes + gguf_get_alignment(ctx.get()) < data_end) {
    throw std::runtime_error(path + ": truncated GGUF file: tensors need " +
                             std::to_string(data_end) + " bytes, the file has " +
                             std::to_string(info.file_bytes));
  }
  return info;
}

void check_llama_loadable(const std::string& path) {
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  std::unique_ptr<gguf_context, GgufDeleter> ctx(gguf_init_from_file(path.c_str(), params));
  if (!ctx) return;  // llama.cpp refuses it cleanly
  // llama.cpp asserts 0 < block_count <= LLAMA_MAX_LAYERS (512) and that an
  // expert mixture uses some but not more experts than it has
  // (llama-model.cpp, load_hparams). A missing key it refuses cleanly.
  const std::string arch = get_string(ctx.get(), "general.architecture");
  const std::string layers_key = arch + ".block_count";
  if (gguf_find_key(ctx.get(), layers_key.c_str()) >= 0) {
    const uint64_t layers = get_uint(ctx.get(), layers_key);
    if (layers == 0 || layers > 512) {
      throw std::runtime_error(path + ": corrupt header: " + layers_key + " is " +
                               std::to_string(layers) + ", not between 1 and 512");
    }
  }
  const uint64_t experts = get_uint(ctx.get(), arch + ".expert_count");
  const uint64_t experts_used = get_uint(ctx.get(), arch + ".expert_used_count");
  if (experts_used > experts || (experts > 0 && experts_used == 0)) {
    throw std::runtime_error(path + ": corrupt header: " + arch + ".expert_used_count is " +
                             std::to_string(experts_used) + " of " + std::to_string(experts) +
                             " experts");
  }
  // Every norm of the graph asserts eps >= 0 (ggml-cpu ops.cpp) when the
  // first batch runs: llama.cpp reads the epsilons unchecked.
  for (int64_t k = 0; k < gguf_get_n_kv(ctx.get()); ++k) {
    const std::string_view key = gguf_get_key(ctx.get(), k);
    if (key.find("epsilon") == std::string_view::npos) continue;
    const auto type = gguf_get_kv_type(ctx.get(), k);
    const double eps = type == GGUF_TYPE_FLOAT32   ? gguf_get_val_f32(ctx.get(), k)
                       : type == GGUF_TYPE_FLOAT64 ? gguf_get_val_f64(ctx.get(), k)
                                                   : 0.0;
    if (!(eps >= 0.0) || std::isinf(eps)) {  // NaN fails eps >= 0 too
      throw std::runtime_error(path + ": corrupt header: " + std::string(key) + " is " +
                               std::to_string(eps) + ", not a finite number >= 0");
    }
  }
  const int64_t tokens = gguf_find_key(ctx.get(), "tokenizer.ggml.tokens");
  if (tokens < 0 || gguf_get_kv_type(ctx.get(), tokens) != GGUF_TYPE_ARRAY ||
      gguf_get_arr_type(ctx.get(), tokens) != GGUF_TYPE_STRING) {
    return;
  }
  // llama.cpp maps each token's text to its id and asserts that no two
  // share one (llama-vocab.cpp: id_to_token.size() == token_to_id.size()).
  const size_t n = gguf_get_arr_n(ctx.get(), tokens);
  std::unordered_map<std::string_view, size_t> seen;
  seen.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string_view text = gguf_get_arr_str(ctx.get(), tokens, i);
    const auto [it, added] = seen.emplace(text, i);
    if (!added) {
      throw std::runtime_error(path + ": corrupt vocabulary: tokenizer.ggml.tokens[" +
                               std::to_string(i) + "] repeats token " + std::to_string(it->second) +
                               " ('" + std::string(text.substr(0, 40)) + "')");
    }
  }
}

MemoryEstimate estimate_memory(const GgufInfo& info, int context, int parallel, int ubatch) {
  constexpr uint64_t kPad = 256;  // llama.cpp pads each slot's cells to this
  const auto pad = [](uint64_t n) { return (n + kPad - 1) / kPad * kPad; };
  const uint64_t slots = static_cast<uint64_t>(std::max(parallel, 1));
  // As llama_context does: the total padded, split per slot, padded again.
  const uint64_t per_slot = pad(pad(static_cast<uint64_t>(std::max(context, 1)) * slots) / slots);
  const uint64_t cells = per_slot * slots;

  MemoryEstimate m;
  m.weights = info.tensor_bytes;
  const uint64_t head_dim = info.n_head ? info.n_embd / info.n_head : 0;
  const uint64_t kv_width = head_dim * info.n_head_kv;
  m.kv_cache = 2ull * info.n_layer * cells * kv_width * 2 /* f16 */;

  // The micro-batch llama.cpp reserves its graph for: n_batch and n_ubatch
  // are both capped at the context asked for (before its padding).
  const uint64_t asked = static_cast<uint64_t>(std::max(context, 1)) * slots;
  const uint64_t ub = std::min<uint64_t>(static_cast<uint64_t>(std::max(ubatch, 1)), asked);
  // Bytes per token of the two peaks (f32 activations): the logits and the
  // normed input of the output projection; or the feed-forward's gate, up
  // and product beside the f16 attention mask over one slot's cells and the
  // graph's small per-token tensors (positions, norms: 1052 bytes, fitted).
  const uint64_t output_peak = 4ull * info.n_vocab + 8ull * info.n_embd + 4;
  const uint64_t layer_peak = 2ull * per_slot + 12ull * info.n_ff + 1052;
  m.compute = ub * std::max(output_peak, layer_peak) + 4ull * info.n_vocab * slots;
  return m;
}

}  // namespace calm
