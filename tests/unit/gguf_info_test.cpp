#include "engines/gguf_info.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "engines/llama_engine.h"
#include "support/test_env.h"

namespace calm {
namespace {

std::string truncated_copy(const std::string& from, double fraction) {
  std::ifstream in(from, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const auto path =
      std::filesystem::temp_directory_path() /
      ("calm-gguf-info-" + std::to_string(static_cast<int>(fraction * 100)) + ".gguf");
  std::ofstream(path, std::ios::binary)
      << bytes.substr(0, static_cast<size_t>(bytes.size() * fraction));
  return path.string();
}

TEST(GgufInfo, ReadsTheHeaderOfATinyModel) {
  const GgufInfo info = read_gguf_info(testing::test_model("tiny-chatml.gguf"));
  EXPECT_EQ(info.architecture, "llama");
  EXPECT_EQ(info.name, "tiny-chatml");
  EXPECT_EQ(info.n_layer, 2u);
  EXPECT_EQ(info.n_embd, 64u);
  EXPECT_EQ(info.n_head, 4u);
  EXPECT_EQ(info.n_vocab, 512u);
  EXPECT_EQ(info.n_ff, 256u);
  EXPECT_EQ(info.context_length, 2048u);
  EXPECT_TRUE(info.has_chat_template);
  // Embeddings and output (2 x 512 x 64), per layer 4 x 64 x 64 attention,
  // 3 x 64 x 256 feed-forward and two norms, plus the output norm.
  const uint64_t per_layer = 4 * 64 * 64 + 3 * 64 * 256 + 2 * 64;
  EXPECT_EQ(info.n_params, 2ull * 512 * 64 + 2 * per_layer + 64);
  EXPECT_LE(info.tensor_bytes, info.file_bytes);
}

TEST(GgufInfo, KvCacheEstimateScalesWithContextAndSlots) {
  const GgufInfo info = read_gguf_info(testing::test_model("tiny-chatml.gguf"));
  const MemoryEstimate one = estimate_memory(info, 1024, 1);
  const MemoryEstimate four = estimate_memory(info, 1024, 4);
  // K and V, 2 layers, 64 wide, f16.
  EXPECT_EQ(one.kv_cache, 2ull * 2 * 1024 * 64 * 2);
  EXPECT_EQ(four.kv_cache, 4 * one.kv_cache);
  EXPECT_EQ(one.weights, info.tensor_bytes);
  EXPECT_EQ(one.total(), one.weights + one.kv_cache + one.compute);
}

TEST(GgufInfo, MissingFileIsAClearError) {
  EXPECT_THROW(
      {
        try {
          read_gguf_info("/nonexistent/model.gguf");
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf: file not found"),
                    std::string::npos);
          throw;
        }
      },
      std::runtime_error);
}

TEST(GgufInfo, TruncatedHeaderIsAClearError) {
  const std::string path = truncated_copy(testing::test_model("tiny-plain.gguf"), 0.001);
  EXPECT_THROW(read_gguf_info(path), std::runtime_error);
  std::filesystem::remove(path);
}

TEST(GgufInfo, TruncatedTensorDataIsAClearError) {
  const std::string path = truncated_copy(testing::test_model("tiny-plain.gguf"), 0.9);
  try {
    read_gguf_info(path);
    FAIL() << "a truncated file was read as whole";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated GGUF file"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

// Found by fuzz/gguf_fuzzer: a vocabulary in which a token repeats made
// llama.cpp's loader abort the whole process (GGML_ASSERT in llama-vocab.cpp)
// instead of failing the load; calm now refuses the file before llama.cpp
// reads it, and only that model is unavailable.
TEST(GgufInfo, ARepeatedTokenIsAClearLoadErrorNotAnAbort) {
  std::ifstream in(testing::test_model("tiny-plain.gguf"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const size_t at = bytes.find("<0x01>");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 6, "<0x00>");  // token 4 now repeats token 3
  const auto path = std::filesystem::temp_directory_path() / "calm-gguf-repeated-token.gguf";
  std::ofstream(path, std::ios::binary) << bytes;

  try {
    check_llama_loadable(path.string());
    ADD_FAILURE() << "a repeated token was not found";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt vocabulary: tokenizer.ggml.tokens["),
              std::string::npos)
        << e.what();
  }
  LlamaEngine::Options options;
  options.id = "dup";
  options.gguf_path = path.string();
  options.context = 64;
  LlamaEngine engine(options);
  try {
    engine.load();
    ADD_FAILURE() << "loaded";
  } catch (const EngineError& e) {
    EXPECT_EQ(e.kind(), EngineError::Kind::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("model 'dup': cannot load GGUF file"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(check_llama_loadable(testing::test_model("tiny-plain.gguf")));
  std::filesystem::remove(path);
}

// A copy of tiny-plain.gguf with `size` bytes of `value` written over the
// value of the header key that ends in `key` (after the key come its type,
// 4 bytes, then its value).
std::filesystem::path with_value(const std::string& key, const void* value, size_t size) {
  std::ifstream in(testing::test_model("tiny-plain.gguf"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const size_t at = bytes.find(key);
  if (at == std::string::npos) throw std::runtime_error("no key " + key);
  std::memcpy(bytes.data() + at + key.size() + 4, value, size);
  const auto path = std::filesystem::temp_directory_path() / "calm-gguf-patched.gguf";
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// check_llama_loadable refuses the file with a message that holds
// `expected`, and so LlamaEngine::load fails cleanly instead of letting
// llama.cpp abort the process. Removes the file.
void expect_refused(const std::filesystem::path& path, const std::string& expected) {
  try {
    check_llama_loadable(path.string());
    ADD_FAILURE() << "not refused: expected '" << expected << "'";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
  LlamaEngine::Options options;
  options.id = "patched";
  options.gguf_path = path.string();
  options.context = 64;
  LlamaEngine engine(options);
  EXPECT_THROW(engine.load(), EngineError);
  std::filesystem::remove(path);
}

// Found by fuzz/gguf_fuzzer (the long run of 2026-12-04): a negative norm
// epsilon loaded, and then llama.cpp's first batch aborted the process
// (GGML_ASSERT(eps >= 0.0f) in ggml-cpu ops.cpp); calm refuses the file
// before llama.cpp reads it.
TEST(GgufInfo, ANegativeNormEpsilonIsAClearLoadErrorNotAnAbort) {
  const float negative = -1.0f;
  expect_refused(with_value("layer_norm_rms_epsilon", &negative, sizeof negative),
                 "layer_norm_rms_epsilon is -1");
}

// Found by fuzz/gguf_fuzzer: a block_count of 0 or past llama.cpp's layer
// limit made llama.cpp abort the process (GGML_ASSERT in llama-model.cpp);
// calm refuses such a file before llama.cpp reads it.
TEST(GgufInfo, ABlockCountOutOfRangeIsAClearLoadErrorNotAnAbort) {
  for (const uint32_t layers : {0u, 513u, 0xffffffffu}) {  // a uint32 in this file
    expect_refused(with_value(".block_count", &layers, sizeof layers),
                   "block_count is " + std::to_string(layers));
  }
}

// The estimate is what the cache charges a model before its first load; the
// real charge is what llama.cpp allocated (LlamaEngine::memory()). Both are
// deterministic, so they are compared exactly, not against RSS. Tolerance:
// weights and KV cache exact; the total within 0.5% (the compute buffer's
// small per-token tensors are fitted, and a context that does not split
// evenly into slots pads its micro-batch a little).
TEST(GgufInfo, EstimateMatchesLlamaCppsOwnFiguresForTheTestModels) {
  struct Case {
    std::string file;
    int context, parallel;
  };
  const std::vector<Case> cases = {{"tiny-chatml.gguf", 256, 1}, {"tiny-chatml.gguf", 1000, 3},
                                   {"tiny-plain.gguf", 4096, 1}, {"tiny-plain.gguf", 100, 1},
                                   {"tiny-plain.gguf", 512, 2},  {"cache-a.gguf", 256, 1},
                                   {"cache-a.gguf", 512, 1},     {"cache-b.gguf", 1024, 4}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file + " context " + std::to_string(c.context) + " x " +
                 std::to_string(c.parallel));
    const std::string path = testing::test_model(c.file);
    LlamaEngine engine({.id = "m",
                        .gguf_path = path,
                        .context = c.context,
                        .parallel = c.parallel,
                        .threads = 1,
                        .gpu_layers = 0});
    engine.load();
    const LlamaMemory real = *engine.memory();
    const MemoryEstimate estimate = estimate_memory(read_gguf_info(path), c.context, c.parallel);
    EXPECT_EQ(estimate.weights, real.weights);
    EXPECT_EQ(estimate.kv_cache, real.kv);
    const double off = std::abs(static_cast<double>(estimate.total()) - real.total());
    EXPECT_LE(off, 0.005 * real.total())
        << "estimate " << estimate.total() << " (compute " << estimate.compute << "), llama.cpp "
        << real.total() << " (compute " << real.compute << ")";
  }
}

}  // namespace
}  // namespace calm
