// The tiny models made by tools/make_tiny_gguf.cpp during the build: their
// layout is what llama.cpp's LLM_ARCH_LLAMA loader and SPM tokenizer expect,
// and the tool is deterministic. Every other test that loads a model relies on
// this, so a broken model fails here with a precise message first.
#include <gguf.h>
#include <gtest/gtest.h>
#include <llama.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engines/llama_backend.h"
#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581

struct GgufDeleter {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
using Gguf = std::unique_ptr<gguf_context, GgufDeleter>;

Gguf open_gguf(const std::string& path) {
  gguf_init_params params = {/*no_alloc=*/true, /*ctx=*/nullptr};
  Gguf g(gguf_init_from_file(path.c_str(), params));
  if (!g) ADD_FAILURE() << "cannot read " << path;
  return g;
}

std::string str(const gguf_context* g, const char* key) {
  const int64_t id = gguf_find_key(g, key);
  return id < 0 ? "<missing>" : gguf_get_val_str(g, id);
}

uint32_t u32(const gguf_context* g, const char* key) {
  const int64_t id = gguf_find_key(g, key);
  return id < 0 ? 0xFFFFFFFFu : gguf_get_val_u32(g, id);
}

std::vector<std::string> tokens(const gguf_context* g) {
  const int64_t id = gguf_find_key(g, "tokenizer.ggml.tokens");
  std::vector<std::string> out;
  for (size_t i = 0; id >= 0 && i < gguf_get_arr_n(g, id); ++i)
    out.push_back(gguf_get_arr_str(g, id, i));
  return out;
}

std::vector<int32_t> token_types(const gguf_context* g) {
  const int64_t id = gguf_find_key(g, "tokenizer.ggml.token_type");
  if (id < 0) return {};
  const auto* data = static_cast<const int32_t*>(gguf_get_arr_data(g, id));
  return {data, data + gguf_get_arr_n(g, id)};
}

// The f32 values of one tensor, read straight from the file.
std::vector<float> f32_tensor(const std::string& path, const gguf_context* g, const char* name) {
  const int64_t id = gguf_find_tensor(g, name);
  if (id < 0 || gguf_get_tensor_type(g, id) != GGML_TYPE_F32) return {};
  std::vector<float> values(gguf_get_tensor_size(g, id) / sizeof(float));
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(gguf_get_data_offset(g) + gguf_get_tensor_offset(g, id)));
  in.read(reinterpret_cast<char*>(values.data()),
          static_cast<std::streamsize>(values.size() * sizeof(float)));
  return in ? values : std::vector<float>{};
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST(TinyGguf, ChatmlModelHasLlamaHyperparameters) {
  Gguf g = open_gguf(testing::test_model("tiny-chatml.gguf"));
  ASSERT_TRUE(g);
  EXPECT_EQ(str(g.get(), "general.architecture"), "llama");
  EXPECT_EQ(str(g.get(), "general.name"), "tiny-chatml");
  EXPECT_EQ(u32(g.get(), "general.file_type"), 0u);
  EXPECT_EQ(u32(g.get(), "llama.context_length"), 2048u);
  EXPECT_EQ(u32(g.get(), "llama.embedding_length"), 64u);
  EXPECT_EQ(u32(g.get(), "llama.block_count"), 2u);
  EXPECT_EQ(u32(g.get(), "llama.feed_forward_length"), 256u);
  EXPECT_EQ(u32(g.get(), "llama.attention.head_count"), 4u);
  EXPECT_EQ(u32(g.get(), "llama.attention.head_count_kv"), 4u);
  EXPECT_EQ(u32(g.get(), "llama.rope.dimension_count"), 16u);
  EXPECT_EQ(u32(g.get(), "llama.vocab_size"), 512u);
  EXPECT_EQ(str(g.get(), "tokenizer.ggml.model"), "llama");
  EXPECT_NE(str(g.get(), "tokenizer.chat_template").find("<|im_start|>"), std::string::npos);
}

TEST(TinyGguf, VocabularyHasSpecialsBytesAndUniqueNormalTokens) {
  Gguf g = open_gguf(testing::test_model("tiny-chatml.gguf"));
  ASSERT_TRUE(g);
  const auto text = tokens(g.get());
  const auto types = token_types(g.get());
  ASSERT_EQ(text.size(), 512u);
  ASSERT_EQ(types.size(), 512u);
  EXPECT_EQ(text[0], "<unk>");
  EXPECT_EQ(types[0], 2);
  EXPECT_EQ(text[1], "<s>");
  EXPECT_EQ(types[1], 3);
  EXPECT_EQ(text[2], "</s>");
  EXPECT_EQ(types[2], 3);
  for (int b = 0; b < 256; ++b) {
    char expected[8];
    std::snprintf(expected, sizeof(expected), "<0x%02X>", b);
    EXPECT_EQ(text[3 + b], expected);
    EXPECT_EQ(types[3 + b], 6);
  }
  EXPECT_EQ(text[259], "<|im_start|>");
  EXPECT_EQ(types[259], 3);
  EXPECT_EQ(text[260], "<|im_end|>");
  EXPECT_EQ(types[260], 3);
  EXPECT_EQ(u32(g.get(), "tokenizer.ggml.eot_token_id"), 260u);
  for (size_t i = 261; i < text.size(); ++i) EXPECT_EQ(types[i], 1) << text[i];
  EXPECT_EQ(std::set<std::string>(text.begin(), text.end()).size(), text.size())
      << "duplicate tokens";
}

TEST(TinyGguf, PlainModelHasNoChatTemplateNorChatmlTokens) {
  Gguf g = open_gguf(testing::test_model("tiny-plain.gguf"));
  ASSERT_TRUE(g);
  EXPECT_LT(gguf_find_key(g.get(), "tokenizer.chat_template"), 0);
  EXPECT_LT(gguf_find_key(g.get(), "tokenizer.ggml.eot_token_id"), 0);
  const auto text = tokens(g.get());
  ASSERT_GT(text.size(), 259u);
  EXPECT_EQ(text[259], kSpace);
}

TEST(TinyGguf, TensorsHaveLlamaNamesAndShapes) {
  Gguf g = open_gguf(testing::test_model("tiny-chatml.gguf"));
  ASSERT_TRUE(g);
  // name -> {ne0, ne1}; dim 64, ff 256, vocab 512, 2 layers.
  std::map<std::string, std::pair<int64_t, int64_t>> expected = {{"token_embd.weight", {64, 512}},
                                                                 {"output_norm.weight", {64, 1}},
                                                                 {"output.weight", {64, 512}}};
  for (int i = 0; i < 2; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    expected[p + "attn_norm.weight"] = {64, 1};
    expected[p + "attn_q.weight"] = {64, 64};
    expected[p + "attn_k.weight"] = {64, 64};
    expected[p + "attn_v.weight"] = {64, 64};
    expected[p + "attn_output.weight"] = {64, 64};
    expected[p + "ffn_norm.weight"] = {64, 1};
    expected[p + "ffn_gate.weight"] = {64, 256};
    expected[p + "ffn_up.weight"] = {64, 256};
    expected[p + "ffn_down.weight"] = {256, 64};
  }
  ASSERT_EQ(gguf_get_n_tensors(g.get()), static_cast<int64_t>(expected.size()));
  for (const auto& [name, shape] : expected) {
    const int64_t id = gguf_find_tensor(g.get(), name.c_str());
    ASSERT_GE(id, 0) << name;
    const int64_t* ne = gguf_get_tensor_ne(g.get(), id);
    EXPECT_EQ(ne[0], shape.first) << name;
    EXPECT_EQ(ne[1], shape.second) << name;
    EXPECT_EQ(gguf_get_tensor_type(g.get(), id), GGML_TYPE_F32) << name;
  }
}

TEST(TinyGguf, NormsAreOneAndMatricesAreScaledRandom) {
  const std::string path = testing::test_model("tiny-chatml.gguf");
  Gguf g = open_gguf(path);
  ASSERT_TRUE(g);
  const auto norm = f32_tensor(path, g.get(), "output_norm.weight");
  ASSERT_EQ(norm.size(), 64u);
  for (float x : norm) EXPECT_EQ(x, 1.0f);

  const auto q = f32_tensor(path, g.get(), "blk.0.attn_q.weight");
  ASSERT_EQ(q.size(), 64u * 64u);
  const float bound = std::sqrt(3.0f / 64.0f);
  double sum = 0, sum_sq = 0;
  for (float x : q) {
    ASSERT_LE(std::fabs(x), bound);
    sum += x;
    sum_sq += static_cast<double>(x) * x;
  }
  EXPECT_NEAR(sum / q.size(), 0.0, 0.01);
  EXPECT_NEAR(sum_sq / q.size(), 1.0 / 64.0, 0.002);  // variance 1/fan_in
}

// The SPM tokenizer merges up to whole words and falls back to bytes for the
// rest, so any text round-trips.
TEST(TinyGguf, LlamaCppTokenizesWordsAndFallsBackToBytes) {
  ensure_llama_backend();
  llama_model_params params = llama_model_default_params();
  params.vocab_only = true;
  llama_model* model =
      llama_model_load_from_file(testing::test_model("tiny-chatml.gguf").c_str(), params);
  ASSERT_NE(model, nullptr) << take_llama_errors();
  const llama_vocab* vocab = llama_model_get_vocab(model);

  auto tokenize = [&](const std::string& text, bool add_special) {
    std::vector<llama_token> out(text.size() + 8);
    const int32_t n =
        llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                       static_cast<int32_t>(out.size()), add_special, /*parse_special=*/true);
    out.resize(n < 0 ? 0 : n);
    return out;
  };
  auto piece = [&](llama_token t) {
    char buf[64];
    const int32_t n = llama_token_to_piece(vocab, t, buf, sizeof(buf), 0, /*special=*/true);
    return std::string(buf, n < 0 ? 0 : n);
  };

  const auto hello = tokenize("hello world", true);
  ASSERT_EQ(hello.size(), 3u);
  EXPECT_EQ(hello[0], llama_vocab_bos(vocab));
  EXPECT_EQ(piece(hello[1]), " hello");
  EXPECT_EQ(piece(hello[2]), " world");

  const std::string any =
      "Caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC\n\xF0\x9F\x99\x82 42!";  // Café 日本 🙂
  const auto ids = tokenize(any, false);
  ASSERT_FALSE(ids.empty());
  std::vector<char> back(any.size() + 16);
  const int32_t n =
      llama_detokenize(vocab, ids.data(), static_cast<int32_t>(ids.size()), back.data(),
                       static_cast<int32_t>(back.size()), /*remove_special=*/false,
                       /*unparse_special=*/false);
  ASSERT_GE(n, 0);
  EXPECT_EQ(std::string(back.data(), n), any);

  const auto turn = tokenize("<|im_start|>user\nhi<|im_end|>", false);
  ASSERT_GE(turn.size(), 2u);
  EXPECT_EQ(turn.front(), 259);
  EXPECT_EQ(turn.back(), 260);
  EXPECT_TRUE(llama_vocab_is_eog(vocab, 260));
  EXPECT_TRUE(llama_vocab_is_eog(vocab, llama_vocab_eos(vocab)));
  EXPECT_EQ(llama_vocab_eot(vocab), 260);
  llama_model_free(model);
}

// The build puts make-tiny-gguf next to the test-models folder.
std::string tool_path() {
  const auto path =
      std::filesystem::path(testing::env("CALM_TEST_MODELS")).parent_path() / "make-tiny-gguf";
  return std::filesystem::exists(path) ? path.string() : "";
}

int run_tool(std::vector<std::string> args, const std::string& log) {
  args.insert(args.begin(), tool_path());
  testing::ChildProcess tool(args, log);
  return tool.wait_exit(std::chrono::seconds(60)).value_or(-1);
}

TEST(TinyGguf, ToolIsDeterministic) {
  if (tool_path().empty()) GTEST_SKIP() << "make-tiny-gguf not found";
  const std::string same = testing::temp_path("same.gguf");
  ASSERT_EQ(run_tool({"--out", same, "--seed", "1", "--name", "tiny-chatml"}, same + ".log"), 0);
  EXPECT_TRUE(read_bytes(same) == read_bytes(testing::test_model("tiny-chatml.gguf")));

  const std::string other = testing::temp_path("other.gguf");
  ASSERT_EQ(run_tool({"--out", other, "--seed", "3", "--name", "tiny-chatml"}, other + ".log"), 0);
  EXPECT_EQ(std::filesystem::file_size(other), std::filesystem::file_size(same));
  EXPECT_FALSE(read_bytes(other) == read_bytes(same));
  std::filesystem::remove_all(std::filesystem::path(same).parent_path());
  std::filesystem::remove_all(std::filesystem::path(other).parent_path());
}

TEST(TinyGguf, ToolRejectsBadOptionsWithoutLeavingFiles) {
  if (tool_path().empty()) GTEST_SKIP() << "make-tiny-gguf not found";
  const std::string out = testing::temp_path("bad.gguf");
  const auto dir = std::filesystem::path(out).parent_path();
  EXPECT_NE(run_tool({"--out", out, "--dim", "65"}, (dir / "a.log").string()),
            0);  // not a multiple of heads
  EXPECT_NE(run_tool({"--out", out, "--vocab", "100"}, (dir / "b.log").string()), 0);
  EXPECT_NE(run_tool({"--out", out, "--type", "q4"}, (dir / "c.log").string()), 0);
  EXPECT_NE(run_tool({"--out", (dir / "missing" / "x.gguf").string()}, (dir / "d.log").string()),
            0);
  EXPECT_NE(run_tool({"--out", dir.string()}, (dir / "e.log").string()), 0);  // a directory
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().extension(), ".log") << "left behind: " << entry.path();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace calm
