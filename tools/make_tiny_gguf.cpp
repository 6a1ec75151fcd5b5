// make-tiny-gguf: writes a tiny llama-architecture GGUF model with random weights
// (or, with --weights, the trained weights of the evaluation fleet: fleet/train.py).
//
// Why this exists: calm's tests, demos and benchmarks need a model that the pinned
// llama.cpp can load and generate with, but a fresh machine (CI, a sandbox with no
// network) has no model and must not download one. This tool makes one from
// nothing: a standard LLM_ARCH_LLAMA file with a SentencePiece-style vocabulary
// (byte fallback, so any input tokenizes), deterministic pseudo-random weights
// and, optionally, a chat template. The output is meaningless text, which is the
// point: among it are byte tokens that form invalid UTF-8, which the server must
// repair. Same arguments => byte-identical file, on any platform.
//
// Example:
//   make-tiny-gguf --out tiny.gguf
//   make-tiny-gguf --out bench.gguf --dim 512 --layers 8 --vocab 32000 --type f16

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ggml.h"
#include "gguf.h"

namespace {

// Token types as llama.cpp reads them from tokenizer.ggml.token_type
// (enum llama_token_type in llama.h; duplicated so we need only ggml).
constexpr int32_t kTokenNormal = 1;
constexpr int32_t kTokenUnknown = 2;
constexpr int32_t kTokenControl = 3;
constexpr int32_t kTokenUnused = 5;
constexpr int32_t kTokenByte = 6;

// general.file_type values (enum llama_ftype).
constexpr uint32_t kFileTypeAllF32 = 0;
constexpr uint32_t kFileTypeMostlyF16 = 1;

constexpr int kMaxVocab = 262144;
constexpr const char* kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's word boundary.

constexpr const char* kChatMlTemplate =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

struct Options {
  std::string out;
  int dim = 64;
  int layers = 2;
  int heads = 4;
  int kv_heads = 0;  // 0: same as heads.
  int ff = 0;        // 0: 4 * dim.
  int vocab = 512;
  int ctx = 2048;
  uint64_t seed = 42;
  std::string type = "f32";
  std::string name = "calm-tiny";
  std::string chat_template = "chatml";
  bool ascii_output = false;
  std::string weights;  // trained weights (raw f32) instead of random ones
};

// ---------------------------------------------------------------------------
// Vocabulary

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  std::unordered_set<std::string> seen;
  int32_t eot_id = -1;  // <|im_end|> when the ChatML tokens are present.

  void Add(const std::string& text, int32_t type, float score) {
    if (!seen.insert(text).second) return;  // No duplicates: llama.cpp asserts on them.
    tokens.push_back(text);
    scores.push_back(score);
    types.push_back(type);
  }
  int Size() const { return static_cast<int>(tokens.size()); }
};

int CountCodepoints(const std::string& s) {
  int n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Adds a normal token. llama.cpp's SPM tokenizer merges adjacent pieces, best
// score first, only when the merged text is itself a token; scoring by length
// makes it prefer long pieces, and the id term keeps scores distinct so ties
// never depend on the order of a priority queue.
void AddNormal(Vocab& v, int limit, const std::string& text) {
  if (v.Size() >= limit) return;
  const float score = static_cast<float>(CountCodepoints(text)) - 1e-6f * v.Size();
  v.Add(text, kTokenNormal, score);
}

// Adds `word` and every prefix of it, so the merge path to it always exists.
// (A whole word alone is useless to SPM: "hello" is only reachable through
// "he", "hel", ... being tokens too.)
void AddWithPrefixes(Vocab& v, int limit, const std::string& prefix, const std::string& word) {
  for (size_t n = 1; n <= word.size(); ++n) AddNormal(v, limit, prefix + word.substr(0, n));
}

// Every lowercase string of `length` letters, with and without the word
// boundary, in lexicographic order. Used to fill large vocabularies; since
// all shorter strings come first, each one's prefix is already a token.
void AddLetterStrings(Vocab& v, int limit, int length) {
  std::string s(length, 'a');
  while (v.Size() < limit) {
    AddNormal(v, limit, kSpace + s);
    AddNormal(v, limit, s);
    int i = length - 1;  // Increment s like an odometer.
    while (i >= 0 && s[i] == 'z') s[i--] = 'a';
    if (i < 0) return;
    ++s[i];
  }
}

Vocab BuildVocab(int size, bool chatml, bool ascii_output) {
  Vocab v;
  // Llama's layout: the specials, then the 256 byte-fallback tokens, so that
  // <0x0A> etc. are where every SPM model has them.
  v.Add("<unk>", kTokenUnknown, 0.0f);
  v.Add("<s>", kTokenControl, 0.0f);
  v.Add("</s>", kTokenControl, 0.0f);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    // --ascii-output: bytes >= 0x80 render as nothing, so no output is ever
    // invalid UTF-8 (servers that parse their own output, like llama-server's
    // chat parser, reject it and fail the request).
    v.Add(buf, ascii_output && b >= 0x80 ? kTokenUnused : kTokenByte, 0.0f);
  }
  if (chatml) {
    // Control tokens so that a ChatML prompt tokenizes into real turn markers;
    // llama.cpp recognizes <|im_end|> as end-of-turn by its text as well.
    v.Add("<|im_start|>", kTokenControl, 0.0f);
    v.eot_id = v.Size();
    v.Add("<|im_end|>", kTokenControl, 0.0f);
  }

  AddNormal(v, size, kSpace);
  for (char c = 'a'; c <= 'z'; ++c) AddNormal(v, size, std::string(1, c));
  for (char c = 'a'; c <= 'z'; ++c) AddNormal(v, size, kSpace + std::string(1, c));
  for (char c = '0'; c <= '9'; ++c) AddNormal(v, size, std::string(1, c));
  for (const char* p = ".,!?'\"-:;()/"; *p; ++p) AddNormal(v, size, std::string(1, *p));
  for (char c = 'A'; c <= 'Z'; ++c) AddNormal(v, size, std::string(1, c));

  // Frequent words first, so even the smallest vocabulary tokenizes a typical
  // prompt ("hello world") into words rather than letters.
  static const char* const kWords[] = {
      "hello", "world",  "the",   "and",  "of",    "to",     "a",      "in",      "is",   "it",
      "you",   "that",   "he",    "was",  "for",   "on",     "are",    "as",      "with", "his",
      "they",  "i",      "at",    "be",   "this",  "have",   "from",   "or",      "one",  "had",
      "by",    "word",   "but",   "not",  "what",  "all",    "were",   "we",      "when", "your",
      "can",   "said",   "there", "use",  "an",    "each",   "which",  "she",     "do",   "how",
      "their", "if",     "will",  "up",   "other", "about",  "out",    "many",    "then", "them",
      "these", "so",     "some",  "her",  "would", "make",   "like",   "him",     "into", "time",
      "has",   "look",   "two",   "more", "write", "go",     "see",    "number",  "no",   "way",
      "could", "people", "my",    "than", "first", "water",  "been",   "call",    "who",  "now",
      "find",  "long",   "down",  "day",  "did",   "get",    "come",   "made",    "may",  "part",
      "model", "test",   "hi",    "yes",  "thank", "please", "answer", "question"};
  static const char* const kSuffixes[] = {"ing", "ed", "er", "es", "ly", "tion", "s"};
  for (const char* w : kWords) AddWithPrefixes(v, size, kSpace, w);
  for (const char* s : kSuffixes) AddWithPrefixes(v, size, "", s);

  for (int length = 2; v.Size() < size; ++length) AddLetterStrings(v, size, length);
  return v;
}

// ---------------------------------------------------------------------------
// Weights

// A small deterministic generator. std::normal_distribution and friends are
// implementation-defined (libstdc++ and libc++ differ), which would break
// "same arguments => same bytes" across platforms; splitmix64 is fully specified.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1), computed with exact float arithmetic (24-bit ints).
  float Symmetric() {
    return static_cast<float>(static_cast<int32_t>(Next() >> 40) - (1 << 23)) / (1 << 23);
  }

 private:
  uint64_t state_;
};

struct TensorSpec {
  std::string name;
  int64_t ne0;  // Row length (the input dimension of a matmul).
  int64_t ne1;  // Number of rows; 1 for a norm vector.
  bool is_norm;
};

std::vector<TensorSpec> ModelTensors(const Options& o, int n_vocab) {
  const int64_t head_dim = o.dim / o.heads;
  const int64_t q_dim = head_dim * o.heads;
  const int64_t kv_dim = head_dim * o.kv_heads;
  // Names and shapes as llama.cpp's llama_model_llama::load_arch_tensors wants them.
  std::vector<TensorSpec> t = {
      {"token_embd.weight", o.dim, n_vocab, false},
      {"output_norm.weight", o.dim, 1, true},
      {"output.weight", o.dim, n_vocab, false},
  };
  for (int i = 0; i < o.layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    t.push_back({p + "attn_norm.weight", o.dim, 1, true});
    t.push_back({p + "attn_q.weight", o.dim, q_dim, false});
    t.push_back({p + "attn_k.weight", o.dim, kv_dim, false});
    t.push_back({p + "attn_v.weight", o.dim, kv_dim, false});
    t.push_back({p + "attn_output.weight", q_dim, o.dim, false});
    t.push_back({p + "ffn_norm.weight", o.dim, 1, true});
    t.push_back({p + "ffn_gate.weight", o.dim, o.ff, false});
    t.push_back({p + "ffn_up.weight", o.dim, o.ff, false});
    t.push_back({p + "ffn_down.weight", o.ff, o.dim, false});
  }
  return t;
}

// Norms are 1 (identity scale); matrices are uniform with variance 1/fan_in,
// which keeps activations O(1) through the layers so the logits are neither
// flat nor one-hot and sampling produces varied tokens.
std::vector<float> TensorValues(const TensorSpec& t, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(t.ne0 * t.ne1), 1.0f);
  if (t.is_norm) return v;
  const float scale = std::sqrt(3.0f / static_cast<float>(t.ne0));
  for (float& x : v) x = scale * rng.Symmetric();
  return v;
}

// ---------------------------------------------------------------------------
// File writing

struct GgufDeleter {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
struct GgmlDeleter {
  void operator()(ggml_context* c) const { ggml_free(c); }
};
using GgufPtr = std::unique_ptr<gguf_context, GgufDeleter>;
using GgmlPtr = std::unique_ptr<ggml_context, GgmlDeleter>;

void SetMetadata(gguf_context* g, const Options& o, const Vocab& v) {
  const bool f16 = o.type == "f16";
  gguf_set_val_str(g, "general.architecture", "llama");
  gguf_set_val_str(g, "general.name", o.name.c_str());
  gguf_set_val_u32(g, "general.file_type", f16 ? kFileTypeMostlyF16 : kFileTypeAllF32);
  gguf_set_val_u32(g, "llama.vocab_size", static_cast<uint32_t>(v.Size()));
  gguf_set_val_u32(g, "llama.context_length", static_cast<uint32_t>(o.ctx));
  gguf_set_val_u32(g, "llama.embedding_length", static_cast<uint32_t>(o.dim));
  gguf_set_val_u32(g, "llama.block_count", static_cast<uint32_t>(o.layers));
  gguf_set_val_u32(g, "llama.feed_forward_length", static_cast<uint32_t>(o.ff));
  gguf_set_val_u32(g, "llama.attention.head_count", static_cast<uint32_t>(o.heads));
  gguf_set_val_u32(g, "llama.attention.head_count_kv", static_cast<uint32_t>(o.kv_heads));
  gguf_set_val_u32(g, "llama.rope.dimension_count", static_cast<uint32_t>(o.dim / o.heads));
  gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
  gguf_set_val_f32(g, "llama.rope.freq_base", 10000.0f);

  std::vector<const char*> texts;
  texts.reserve(v.tokens.size());
  for (const auto& t : v.tokens) texts.push_back(t.c_str());
  gguf_set_val_str(g, "tokenizer.ggml.model", "llama");
  gguf_set_arr_str(g, "tokenizer.ggml.tokens", texts.data(), texts.size());
  gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v.scores.data(),
                    v.scores.size());
  gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v.types.data(),
                    v.types.size());
  gguf_set_val_u32(g, "tokenizer.ggml.unknown_token_id", 0);
  gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id", 1);
  gguf_set_val_u32(g, "tokenizer.ggml.eos_token_id", 2);
  if (v.eot_id >= 0) {
    gguf_set_val_u32(g, "tokenizer.ggml.eot_token_id", static_cast<uint32_t>(v.eot_id));
  }
  gguf_set_val_bool(g, "tokenizer.ggml.add_bos_token", true);
  gguf_set_val_bool(g, "tokenizer.ggml.add_eos_token", false);
  if (o.chat_template != "none") {
    const std::string& tmpl = o.chat_template == "chatml" ? kChatMlTemplate : o.chat_template;
    gguf_set_val_str(g, "tokenizer.chat_template", tmpl.c_str());
  }
}

// Registers the tensors' names, shapes and types; the data is streamed later,
// one tensor at a time, so a large model never has to sit in memory whole.
bool AddTensorInfos(gguf_context* g, const std::vector<TensorSpec>& specs, ggml_type matrix_type) {
  const ggml_init_params params = {ggml_tensor_overhead() * (specs.size() + 1), nullptr, true};
  GgmlPtr ctx(ggml_init(params));
  if (!ctx) return false;
  for (const auto& s : specs) {
    ggml_tensor* t = s.is_norm ? ggml_new_tensor_1d(ctx.get(), GGML_TYPE_F32, s.ne0)
                               : ggml_new_tensor_2d(ctx.get(), matrix_type, s.ne0, s.ne1);
    ggml_set_name(t, s.name.c_str());
    gguf_add_tensor(g, t);  // Copies the tensor's description.
  }
  return true;
}

bool WriteBytes(FILE* f, const void* data, size_t n) {
  return n == 0 || std::fwrite(data, 1, n, f) == n;
}

bool WritePadding(FILE* f, size_t written, size_t alignment) {
  static const char kZeros[64] = {};
  const size_t pad = (alignment - written % alignment) % alignment;
  for (size_t left = pad; left > 0;) {
    const size_t n = left < sizeof(kZeros) ? left : sizeof(kZeros);
    if (!WriteBytes(f, kZeros, n)) return false;
    left -= n;
  }
  return true;
}

// Where tensor values come from: the seeded generator, or --weights, a raw
// little-endian f32 file holding every tensor in ModelTensors() order, each
// row-major with ne0 (the input dimension) fastest, which is exactly how
// PyTorch stores nn.Linear.weight ([out, in]) and nn.Embedding.weight.
class TensorSource {
 public:
  TensorSource(uint64_t seed, FILE* weights) : rng_(seed), weights_(weights) {}
  bool Next(const TensorSpec& t, std::vector<float>& values) {
    if (!weights_) {
      values = TensorValues(t, rng_);
      return true;
    }
    values.resize(static_cast<size_t>(t.ne0 * t.ne1));
    return std::fread(values.data(), sizeof(float), values.size(), weights_) == values.size();
  }

 private:
  Rng rng_;
  FILE* weights_;
};

// Writes the header, then each tensor's data in the order the header lists
// them, each padded to the file's alignment (what gguf_write_to_file does).
bool WriteModel(FILE* f, const gguf_context* g, const std::vector<TensorSpec>& specs, bool f16,
                TensorSource& source) {
  std::vector<char> meta(gguf_get_meta_size(g));
  gguf_get_meta_data(g, meta.data());
  if (!WriteBytes(f, meta.data(), meta.size())) return false;

  const size_t alignment = gguf_get_alignment(g);
  std::vector<ggml_fp16_t> half;
  std::vector<float> values;
  for (const auto& s : specs) {
    if (!source.Next(s, values)) {
      errno = EINVAL;
      std::fprintf(stderr, "make-tiny-gguf: --weights ends before tensor %s\n", s.name.c_str());
      return false;
    }
    size_t bytes = values.size() * sizeof(float);
    bool ok;
    if (f16 && !s.is_norm) {
      half.resize(values.size());
      ggml_fp32_to_fp16_row(values.data(), half.data(), static_cast<int64_t>(values.size()));
      bytes = half.size() * sizeof(ggml_fp16_t);
      ok = WriteBytes(f, half.data(), bytes);
    } else {
      ok = WriteBytes(f, values.data(), bytes);
    }
    if (!ok || !WritePadding(f, bytes, alignment)) return false;
  }
  return true;
}

// Returns an error message, or "" when the options describe a loadable model.
std::string Validate(Options& o) {
  if (o.kv_heads == 0) o.kv_heads = o.heads;
  if (o.ff == 0) o.ff = 4 * o.dim;
  if (o.dim % o.heads != 0) return "--dim must be a multiple of --heads";
  if ((o.dim / o.heads) % 2 != 0) return "--dim / --heads (the head size) must be even for RoPE";
  if (o.heads % o.kv_heads != 0) return "--heads must be a multiple of --kv-heads";
  const int min_vocab = 3 + 256 + (o.chat_template == "chatml" ? 2 : 0);
  if (o.vocab < min_vocab) {
    return "--vocab must be at least " + std::to_string(min_vocab) +
           " (3 special + 256 byte tokens" +
           (o.chat_template == "chatml" ? std::string(" + 2 ChatML tokens)") : ")");
  }
  if (o.chat_template.empty()) return "--chat-template must not be empty";
  if (o.name.empty()) return "--name must not be empty";
  return "";
}

// A file written under a temporary name next to its destination and renamed
// onto it only when complete, so that a failed or interrupted run never leaves
// a truncated model behind, and concurrent runs (parallel tests making the same
// model) never see each other's half-written files. Removed unless committed.
class TempFile {
 public:
  explicit TempFile(std::string dest)
      : dest_(std::move(dest)), path_(dest_ + ".tmp." + std::to_string(getpid())) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (file_) std::fclose(file_);
    if (!committed_) std::remove(path_.c_str());
  }

  // Returns "" on success, or an error message.
  std::string Open() {
    file_ = std::fopen(path_.c_str(), "wb");
    return file_ ? "" : "cannot write " + path_ + ": " + std::strerror(errno);
  }
  FILE* file() const { return file_; }

  std::string Commit() {
    const int close_result = std::fclose(file_);
    file_ = nullptr;
    if (close_result != 0) return "error writing " + path_ + ": " + std::strerror(errno);
    std::error_code ec;
    std::filesystem::rename(path_, dest_, ec);
    if (ec) return "cannot rename " + path_ + " to " + dest_ + ": " + ec.message();
    committed_ = true;
    return "";
  }

  const std::string& path() const { return path_; }

 private:
  std::string dest_;
  std::string path_;
  FILE* file_ = nullptr;
  bool committed_ = false;
};

// Returns "" on success, or an error message.
std::string Run(const Options& o) {
  const Vocab vocab = BuildVocab(o.vocab, o.chat_template == "chatml", o.ascii_output);
  const std::vector<TensorSpec> specs = ModelTensors(o, vocab.Size());
  const bool f16 = o.type == "f16";

  GgufPtr g(gguf_init_empty());
  if (!g) return "out of memory";
  SetMetadata(g.get(), o, vocab);
  if (!AddTensorInfos(g.get(), specs, f16 ? GGML_TYPE_F16 : GGML_TYPE_F32)) {
    return "out of memory";
  }

  std::unique_ptr<FILE, int (*)(FILE*)> weights(nullptr, std::fclose);
  if (!o.weights.empty()) {
    weights.reset(std::fopen(o.weights.c_str(), "rb"));
    if (!weights) return "cannot read " + o.weights + ": " + std::strerror(errno);
    size_t expected = 0;
    for (const auto& s : specs) expected += static_cast<size_t>(s.ne0 * s.ne1) * sizeof(float);
    std::error_code ec;
    const auto actual = std::filesystem::file_size(o.weights, ec);
    if (ec || actual != expected) {
      return o.weights + " holds " + std::to_string(ec ? 0 : actual) +
             " bytes; these options need " + std::to_string(expected) +
             " (f32, in make-tiny-gguf's tensor order)";
    }
  }
  TensorSource source(o.seed, weights.get());

  TempFile out(o.out);
  if (std::string error = out.Open(); !error.empty()) return error;
  errno = 0;
  if (!WriteModel(out.file(), g.get(), specs, f16, source)) {
    return "error writing " + out.path() + ": " + std::strerror(errno ? errno : EIO);
  }
  if (std::string error = out.Commit(); !error.empty()) return error;

  std::printf("wrote %s: llama, dim %d, %d layers, %d/%d heads, ff %d, vocab %d, %s\n",
              o.out.c_str(), o.dim, o.layers, o.heads, o.kv_heads, o.ff, vocab.Size(),
              o.type.c_str());
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "Writes a tiny llama-architecture GGUF model with deterministic random weights and a\n"
      "SentencePiece-style byte-fallback vocabulary, for tests, demos and benchmarks.\n"
      "Same arguments => byte-identical file."};
  app.add_option("--out", o.out, "output .gguf file")->required();
  app.add_option("--dim", o.dim, "embedding length (n_embd)")
      ->capture_default_str()
      ->check(CLI::Range(2, 16384));
  app.add_option("--layers", o.layers, "number of transformer blocks")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--heads", o.heads, "attention heads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--kv-heads", o.kv_heads, "key/value heads (default: --heads)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--ff", o.ff, "feed-forward length (default: 4 * --dim)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--vocab", o.vocab, "vocabulary size (at least 259, 261 with chatml)")
      ->capture_default_str()
      ->check(CLI::Range(259, kMaxVocab));
  app.add_option("--ctx", o.ctx, "training context length stored in the file")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  app.add_option("--seed", o.seed, "seed for the weights")->capture_default_str();
  app.add_option("--type", o.type, "type of the weight matrices (norms stay f32)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16"}));
  app.add_option("--name", o.name, "general.name")->capture_default_str();
  app.add_option("--weights", o.weights,
                 "trained weights: raw f32, every tensor in this tool's order (fleet/train.py)\n"
                 "instead of random ones");
  app.add_flag("--ascii-output", o.ascii_output,
               "byte tokens >= 0x80 produce no text, so output is always valid UTF-8 "
               "(for benchmarks against servers that reject invalid UTF-8)");
  app.add_option("--chat-template", o.chat_template,
                 "'none', 'chatml' (adds <|im_start|>/<|im_end|> control tokens), or a\n"
                 "literal Jinja template stored as tokenizer.chat_template")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  const std::string error = Validate(o);
  if (!error.empty()) {
    std::fprintf(stderr, "make-tiny-gguf: %s\n", error.c_str());
    return 2;
  }
  std::string run_error;
  try {
    run_error = Run(o);
  } catch (const std::exception& e) {  // std::bad_alloc for absurd sizes.
    run_error = e.what();
  }
  if (!run_error.empty()) {
    std::fprintf(stderr, "make-tiny-gguf: %s\n", run_error.c_str());
    return 1;
  }
  return 0;
}
