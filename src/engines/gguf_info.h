// What a GGUF file holds, read from its header without loading the weights,
// and how much memory serving it will take.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace calm {

struct GgufInfo {
  std::string path;
  std::string architecture;  // general.architecture, e.g. "llama"
  std::string name;          // general.name, may be empty
  uint64_t file_bytes = 0;
  uint64_t tensor_bytes = 0;  // weights as stored
  uint64_t n_params = 0;
  int64_t n_tensors = 0;
  uint32_t context_length = 0;  // trained context ({arch}.context_length)
  uint32_t n_layer = 0;
  uint32_t n_embd = 0;
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;
  uint32_t n_ff = 0;  // {arch}.feed_forward_length
  uint32_t n_vocab = 0;
  bool has_chat_template = false;
};

// Throws std::runtime_error naming the file when it is missing or not a GGUF.
GgufInfo read_gguf_info(const std::string& path);

// Checks, before llama.cpp reads the file, what llama.cpp's loader would
// answer with an abort of the whole process (a GGML_ASSERT) instead of a
// failed load: a block_count of 0 or over llama.cpp's 512 layers, an expert
// count that does not match the experts used, a norm epsilon
// (*.layer_norm_rms_epsilon, ...) that is negative or not finite, or a
// vocabulary (tokenizer.ggml.tokens) in which a token repeats.
// Throws std::runtime_error naming the file and the problem; a file it cannot
// read is left to llama.cpp, which fails it cleanly. LlamaEngine::load calls
// it first, so a corrupt GGUF costs its model, never the server.
void check_llama_loadable(const std::string& path);

// What llama.cpp will allocate to serve the model with `parallel` slots of
// `context` tokens, worked out from the header the way llama.cpp sizes its
// buffers, so that a model is charged about the same before its first load as
// after (the cache then charges llama.cpp's own figures,
// LlamaEngine::memory()):
// - weights: the tensors as stored (llama_model_size);
// - KV cache: f16 K and V for every layer over the context's cells, which
//   llama.cpp rounds up to 256 per slot;
// - compute: the graph's buffer for one micro-batch of `ubatch` tokens, the
//   larger of its two peaks (the output projection: logits plus its input;
//   a layer's feed-forward beside the f16 attention mask), plus the logits
//   buffer (one row per slot). Fitted to llama.cpp's figures for llama models
//   on the CPU with flash attention; gguf_info_test.cpp holds it to them.
struct MemoryEstimate {
  uint64_t weights = 0;
  uint64_t kv_cache = 0;
  uint64_t compute = 0;
  uint64_t total() const { return weights + kv_cache + compute; }
};
// `ubatch` is LlamaEngine's llama_context n_ubatch before llama.cpp caps it
// at the context's cells.
MemoryEstimate estimate_memory(const GgufInfo& info, int context, int parallel, int ubatch = 512);

}  // namespace calm
