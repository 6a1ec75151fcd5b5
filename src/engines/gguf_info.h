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
  uint32_t n_vocab = 0;
  bool has_chat_template = false;
};

// Throws std::runtime_error naming the file when it is missing or not a GGUF.
GgufInfo read_gguf_info(const std::string& path);

// An estimate, not a measurement: the cache corrects it by what a load really
// took. KV cache in f16 for context x parallel tokens; compute buffers from
// llama.cpp's graph for one micro-batch (logits plus activations plus the
// attention scores).
struct MemoryEstimate {
  uint64_t weights = 0;
  uint64_t kv_cache = 0;
  uint64_t compute = 0;
  uint64_t total() const { return weights + kv_cache + compute; }
};
MemoryEstimate estimate_memory(const GgufInfo& info, int context, int parallel, int ubatch = 512);

}  // namespace calm
