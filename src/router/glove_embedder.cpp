#include "router/glove_embedder.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

namespace calm {

float cosine(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return 0.0f;
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  if (na == 0 || nb == 0) return 0.0f;
  double c = dot / (std::sqrt(na) * std::sqrt(nb));
  return static_cast<float>(std::clamp(c, -1.0, 1.0));
}

namespace {

constexpr char kMagic[8] = {'C', 'A', 'L', 'M', 'G', 'L', 'V', '1'};
constexpr uint64_t kHeaderBytes = sizeof(kMagic) + 4 + 4;
constexpr uint32_t kMaxDimension = 65535;

std::runtime_error file_error(const std::string& path, const std::string& what) {
  return std::runtime_error(path + ": " + what);
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>(v >> 8));
}
uint32_t get_u32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// Float rows are stored little-endian; swap on a big-endian host.
void to_from_little_endian(float* data, size_t n) {
  if constexpr (std::endian::native == std::endian::big) {
    for (size_t i = 0; i < n; ++i) {
      uint32_t u;
      std::memcpy(&u, &data[i], 4);
      u = __builtin_bswap32(u);
      std::memcpy(&data[i], &u, 4);
    }
  } else {
    (void)data;
    (void)n;
  }
}

std::string show_word(std::string_view word) {
  constexpr size_t kMax = 40;
  std::string out = "'";
  out += word.size() > kMax ? std::string(word.substr(0, kMax)) + "..." : std::string(word);
  return out + "'";
}

// ---- tokenisation ------------------------------------------------------------

enum class CharClass { kWord, kHyphen, kApostrophe, kSeparator };

// Classifies the character starting at text[i] and sets len to its byte length.
// ASCII letters and digits are word characters; non-ASCII code points are word
// characters (letters of other scripts) except punctuation, symbols and spaces.
CharClass classify(std::string_view text, size_t i, size_t& len) {
  const auto c = static_cast<unsigned char>(text[i]);
  len = 1;
  if (c < 0x80) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      return CharClass::kWord;
    }
    if (c == '\'') return CharClass::kApostrophe;
    if (c == '-') return CharClass::kHyphen;
    return CharClass::kSeparator;
  }
  size_t n;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    n = 2, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, cp = c & 0x07;
  } else {
    return CharClass::kSeparator;  // stray continuation byte or invalid lead byte
  }
  if (i + n > text.size()) return CharClass::kSeparator;
  for (size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(text[i + k]);
    if ((cc & 0xC0) != 0x80) return CharClass::kSeparator;
    cp = (cp << 6) | (cc & 0x3F);
  }
  len = n;
  if (cp == 0x2019 || cp == 0x2018 || cp == 0x02BC) return CharClass::kApostrophe;
  if (cp == 0x2010 || cp == 0x2011) return CharClass::kHyphen;
  const bool separator = cp < 0xC0 || cp == 0xD7 || cp == 0xF7 ||  // Latin-1 punctuation, signs
                         (cp >= 0x2000 && cp <= 0x2BFF) ||  // punctuation, symbols, arrows, shapes
                         (cp >= 0x2E00 && cp <= 0x2E7F) ||  // supplemental punctuation
                         (cp >= 0x3000 && cp <= 0x303F) ||  // CJK punctuation, ideographic space
                         (cp >= 0xFE30 && cp <= 0xFE4F) ||  // CJK compatibility forms
                         (cp >= 0xFF01 && cp <= 0xFF0F) ||  // full-width punctuation
                         cp == 0xFEFF ||                    // byte-order mark
                         (cp >= 0x1F000 && cp <= 0x1FAFF);  // emoji, pictographs
  return separator ? CharClass::kSeparator : CharClass::kWord;
}

bool is_joiner(char c) {
  return c == '-' || c == '\'';
}

// What a clitic after an apostrophe stands for ("" when it adds nothing).
std::optional<std::string_view> clitic_word(std::string_view clitic) {
  if (clitic == "s") return std::string_view{};
  if (clitic == "re") return std::string_view{"are"};
  if (clitic == "ll") return std::string_view{"will"};
  if (clitic == "ve") return std::string_view{"have"};
  if (clitic == "m") return std::string_view{"am"};
  if (clitic == "d") return std::string_view{"would"};
  return std::nullopt;
}

// ---- JSON streaming ----------------------------------------------------------

using json = nlohmann::json;

// SAX handler for wink-embeddings JSON: keeps the first max_words words of
// "words" and their rows of "vectors"; skips everything else.
class WinkSax : public nlohmann::json_sax<json> {
 public:
  explicit WinkSax(size_t max_words) : max_words_(max_words) {}

  bool null() override { return other_scalar("null"); }
  bool boolean(bool) override { return other_scalar("a boolean"); }
  bool number_integer(number_integer_t v) override { return number(static_cast<double>(v)); }
  bool number_unsigned(number_unsigned_t v) override { return number(static_cast<double>(v)); }
  bool number_float(number_float_t v, const string_t&) override { return number(v); }
  bool binary(binary_t&) override { return fail("unexpected binary value"); }

  bool string(string_t& s) override {
    if (stack_.empty()) return fail("the top level is not an object");
    switch (stack_.back()) {
      case Ctx::kWords:
        return add_word(s);
      case Ctx::kTop:
        return other_scalar("a string");
      case Ctx::kVectors:
        return fail("the vector of " + show_word(row_word_) + " is not an array");
      case Ctx::kRow:
        return fail("the vector of " + show_word(row_word_) + " holds a string");
      case Ctx::kSkip:
        return true;
    }
    return true;
  }

  bool key(string_t& k) override {
    if (stack_.back() == Ctx::kTop) {
      top_key_ = k;
    } else if (stack_.back() == Ctx::kVectors) {
      row_word_ = k;
      auto it = wanted_.find(k);
      row_rank_ = it == wanted_.end() ? kNone : it->second;
    }
    return true;
  }

  bool start_object(std::size_t) override {
    if (stack_.empty()) return push(Ctx::kTop);
    switch (stack_.back()) {
      case Ctx::kTop:
        if (top_key_ == "vectors") return start_vectors();
        if (top_key_ == "words") return fail("\"words\" is not an array");
        return push(Ctx::kSkip);
      case Ctx::kWords:
        return fail("\"words\" holds an object; it must hold only strings");
      case Ctx::kVectors:
        return fail("the vector of " + show_word(row_word_) + " is not an array");
      case Ctx::kRow:
        return fail("the vector of " + show_word(row_word_) + " holds an object");
      case Ctx::kSkip:
        return push(Ctx::kSkip);
    }
    return true;
  }

  bool start_array(std::size_t) override {
    if (stack_.empty()) return fail("the top level is not an object");
    switch (stack_.back()) {
      case Ctx::kTop:
        if (top_key_ == "words") {
          if (words_seen_) return fail("two \"words\" arrays");
          words_seen_ = true;
          return push(Ctx::kWords);
        }
        if (top_key_ == "vectors") return fail("\"vectors\" is not an object");
        return push(Ctx::kSkip);
      case Ctx::kWords:
        return fail("\"words\" holds an array; it must hold only strings");
      case Ctx::kVectors:
        row_count_ = 0;
        return push(Ctx::kRow);
      case Ctx::kRow:
        return fail("the vector of " + show_word(row_word_) + " holds an array");
      case Ctx::kSkip:
        return push(Ctx::kSkip);
    }
    return true;
  }

  bool end_object() override {
    stack_.pop_back();
    return true;
  }

  bool end_array() override {
    if (stack_.back() == Ctx::kRow) {
      if (row_count_ < dimension_) {
        return fail("the vector of " + show_word(row_word_) + " has " + std::to_string(row_count_) +
                    " numbers, fewer than the " + std::to_string(dimension_) + " dimensions");
      }
      if (row_rank_ != kNone) {
        if (have_[row_rank_]) return fail("two vectors for " + show_word(row_word_));
        have_[row_rank_] = true;
      }
    }
    stack_.pop_back();
    return true;
  }

  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    error_ = std::string("not valid JSON: ") + ex.what();
    return false;
  }

  const std::string& error() const { return error_; }
  bool words_seen() const { return words_seen_; }
  bool vectors_seen() const { return vectors_seen_; }
  uint32_t dimension() const { return dimension_; }
  size_t source_words() const { return source_words_; }
  std::vector<std::string>& words() { return words_; }
  std::vector<float>& vectors() { return vectors_; }
  const std::vector<bool>& have() const { return have_; }

 private:
  enum class Ctx { kTop, kWords, kVectors, kRow, kSkip };
  static constexpr uint32_t kNone = UINT32_MAX;

  bool fail(std::string message) {
    error_ = std::move(message);
    return false;
  }
  bool push(Ctx c) {
    stack_.push_back(c);
    return true;
  }

  bool other_scalar(const char* what) {
    if (stack_.empty()) return fail("the top level is not an object");
    switch (stack_.back()) {
      case Ctx::kTop:
        if (top_key_ == "dimensions" || top_key_ == "wordIndex") {
          return fail("\"" + top_key_ + "\" is " + what + ", not a number");
        }
        return true;
      case Ctx::kWords:
        return fail(std::string("\"words\" holds ") + what + "; it must hold only strings");
      case Ctx::kVectors:
        return fail("the vector of " + show_word(row_word_) + " is not an array");
      case Ctx::kRow:
        return fail("the vector of " + show_word(row_word_) + " holds " + what);
      case Ctx::kSkip:
        return true;
    }
    return true;
  }

  bool number(double v) {
    if (stack_.empty()) return fail("the top level is not an object");
    switch (stack_.back()) {
      case Ctx::kTop:
        if (top_key_ == "dimensions") {
          if (vectors_seen_) return fail("\"dimensions\" comes after \"vectors\"");
          if (v != std::floor(v) || v < 1 || v > kMaxDimension) {
            return fail("\"dimensions\" must be an integer from 1 to " +
                        std::to_string(kMaxDimension));
          }
          dimension_ = static_cast<uint32_t>(v);
        } else if (top_key_ == "wordIndex") {
          if (v != std::floor(v) || v < 0 || v > kMaxDimension + 2.0) {
            return fail("\"wordIndex\" must be a small non-negative integer");
          }
          word_index_pos_ = static_cast<uint32_t>(v);
        }
        return true;
      case Ctx::kWords:
        return fail("\"words\" holds a number; it must hold only strings");
      case Ctx::kVectors:
        return fail("the vector of " + show_word(row_word_) + " is not an array");
      case Ctx::kRow:
        if (row_rank_ != kNone) {
          if (row_count_ < dimension_) {
            const auto f = static_cast<float>(v);
            if (!std::isfinite(f)) {
              return fail("the vector of " + show_word(row_word_) + " holds a value out of range");
            }
            vectors_[size_t(row_rank_) * dimension_ + row_count_] = f;
          } else if (row_count_ == word_index_pos_ && v != row_rank_) {
            return fail("the vector of " + show_word(row_word_) + " says it is word #" +
                        std::to_string(static_cast<long long>(v)) + " but \"words\" has it at #" +
                        std::to_string(row_rank_));
          }
        }
        ++row_count_;
        return true;
      case Ctx::kSkip:
        return true;
    }
    return true;
  }

  bool add_word(const std::string& w) {
    const size_t rank = source_words_++;
    if (rank >= max_words_) return true;
    if (w.empty()) return fail("\"words\" holds an empty string at #" + std::to_string(rank));
    if (w.size() > UINT16_MAX) return fail("word #" + std::to_string(rank) + " is too long");
    if (!wanted_.emplace(w, static_cast<uint32_t>(rank)).second) {
      return fail("the word " + show_word(w) + " appears twice in \"words\"");
    }
    words_.push_back(w);
    return true;
  }

  bool start_vectors() {
    if (vectors_seen_) return fail("two \"vectors\" objects");
    if (!words_seen_) return fail("\"vectors\" comes before \"words\" (expected wink's order)");
    if (dimension_ == 0) return fail("\"vectors\" comes before \"dimensions\"");
    vectors_seen_ = true;
    vectors_.assign(words_.size() * dimension_, 0.0f);
    have_.assign(words_.size(), false);
    return push(Ctx::kVectors);
  }

  size_t max_words_;
  std::vector<Ctx> stack_;
  std::string error_;
  std::string top_key_;
  uint32_t dimension_ = 0;
  uint32_t word_index_pos_ = kNone;  // position of the rank inside each vector row
  bool words_seen_ = false;
  bool vectors_seen_ = false;
  size_t source_words_ = 0;
  std::vector<std::string> words_;                    // the kept words, by rank
  std::unordered_map<std::string, uint32_t> wanted_;  // kept word -> rank
  std::vector<float> vectors_;
  std::vector<bool> have_;
  std::string row_word_;
  uint32_t row_rank_ = kNone;
  uint32_t row_count_ = 0;
};

}  // namespace

// ---- the binary file -----------------------------------------------------------

void write_glove_bin(const std::string& path, uint32_t dimension,
                     const std::vector<std::string>& words, const std::vector<float>& vectors) {
  if (dimension == 0) throw file_error(path, "cannot write dimension 0");
  if (words.empty()) throw file_error(path, "cannot write a file with no words");
  if (words.size() > UINT32_MAX) throw file_error(path, "too many words");
  if (vectors.size() != words.size() * dimension) {
    throw file_error(path, "have " + std::to_string(vectors.size()) + " floats for " +
                               std::to_string(words.size()) + " words of dimension " +
                               std::to_string(dimension));
  }
  std::string head(kMagic, sizeof(kMagic));
  put_u32(head, dimension);
  put_u32(head, static_cast<uint32_t>(words.size()));
  std::unordered_map<std::string_view, size_t> seen;
  seen.reserve(words.size());
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w.empty()) throw file_error(path, "word #" + std::to_string(i) + " is empty");
    if (w.size() > UINT16_MAX)
      throw file_error(path, "word #" + std::to_string(i) + " is too long");
    if (!seen.emplace(w, i).second) throw file_error(path, "the word " + show_word(w) + " repeats");
    put_u16(head, static_cast<uint16_t>(w.size()));
    head += w;
  }
  for (float f : vectors) {
    if (!std::isfinite(f)) throw file_error(path, "a vector holds a non-finite value");
  }

  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw file_error(tmp, std::string("cannot create: ") + std::strerror(errno));
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    if constexpr (std::endian::native == std::endian::little) {
      out.write(reinterpret_cast<const char*>(vectors.data()),
                static_cast<std::streamsize>(vectors.size() * sizeof(float)));
    } else {
      std::vector<float> row(dimension);
      for (size_t i = 0; i < words.size(); ++i) {
        std::copy_n(vectors.begin() + i * dimension, dimension, row.begin());
        to_from_little_endian(row.data(), dimension);
        out.write(reinterpret_cast<const char*>(row.data()), dimension * sizeof(float));
      }
    }
    out.close();
    if (!out) {
      std::filesystem::remove(tmp, ec);
      throw file_error(tmp, "write failed (disk full?)");
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw file_error(path, "cannot rename " + tmp + " into place: " + ec.message());
  }
}

GloveConversion convert_glove_json(std::istream& in, const std::string& source_name,
                                   const std::string& out_path, size_t max_words) {
  if (max_words == 0) throw file_error(source_name, "asked to keep 0 words");
  WinkSax sax(max_words);
  const bool ok = json::sax_parse(in, &sax);
  if (!ok) throw file_error(source_name, sax.error().empty() ? "not valid JSON" : sax.error());
  if (!sax.words_seen()) throw file_error(source_name, "no \"words\" array");
  if (!sax.vectors_seen()) throw file_error(source_name, "no \"vectors\" object");

  GloveConversion result;
  result.dimension = sax.dimension();
  result.source_words = sax.source_words();
  // Compact in place: drop the kept words that had no vector.
  std::vector<std::string>& words = sax.words();
  std::vector<float>& vectors = sax.vectors();
  const size_t d = result.dimension;
  size_t w = 0;
  for (size_t r = 0; r < words.size(); ++r) {
    if (!sax.have()[r]) continue;
    if (w != r) {
      words[w] = std::move(words[r]);
      std::copy_n(vectors.begin() + r * d, d, vectors.begin() + w * d);
    }
    ++w;
  }
  result.missing_vectors = words.size() - w;
  words.resize(w);
  vectors.resize(w * d);
  if (w == 0) throw file_error(source_name, "none of the kept words has a vector");
  write_glove_bin(out_path, result.dimension, words, vectors);
  result.written_words = w;
  std::error_code ec;
  result.output_bytes = std::filesystem::file_size(out_path, ec);
  return result;
}

// ---- GloveEmbedder -------------------------------------------------------------

std::unique_ptr<GloveEmbedder> GloveEmbedder::load(const std::string& path) {
  return load(path, Options{});
}

std::unique_ptr<GloveEmbedder> GloveEmbedder::load(const std::string& path,
                                                   const Options& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw file_error(path, "file not found");
  if (fs::is_directory(status)) throw file_error(path, "is a directory, not an embeddings file");
  const uint64_t file_size = fs::file_size(path, ec);
  if (ec) throw file_error(path, "cannot stat: " + ec.message());
  std::ifstream f(path, std::ios::binary);
  if (!f) throw file_error(path, std::string("cannot open: ") + std::strerror(errno));

  const std::string sizes = "the file has " + std::to_string(file_size) + " bytes";
  if (file_size < kHeaderBytes) {
    throw file_error(
        path, "truncated: the header needs " + std::to_string(kHeaderBytes) + " bytes, " + sizes);
  }
  unsigned char header[kHeaderBytes];
  if (!f.read(reinterpret_cast<char*>(header), kHeaderBytes)) throw file_error(path, "read failed");
  if (std::memcmp(header, kMagic, sizeof(kMagic)) != 0) {
    throw file_error(path,
                     "bad magic: not a calm GloVe embeddings file (expected \"CALMGLV1\"; "
                     "make one with scripts/fetch-glove.sh)");
  }
  const uint32_t dim = get_u32(header + 8);
  const uint32_t count = get_u32(header + 12);
  if (dim == 0) throw file_error(path, "dimension 0");
  if (dim > kMaxDimension) throw file_error(path, "implausible dimension " + std::to_string(dim));
  if (count == 0) throw file_error(path, "holds no words");
  const uint64_t vector_bytes = uint64_t(count) * dim * sizeof(float);
  const uint64_t minimum = kHeaderBytes + 3 * uint64_t(count) + vector_bytes;
  if (file_size < minimum) {
    throw file_error(path, "truncated: " + std::to_string(count) + " words of dimension " +
                               std::to_string(dim) + " need at least " + std::to_string(minimum) +
                               " bytes, " + sizes);
  }

  std::unique_ptr<GloveEmbedder> e(new GloveEmbedder(options));
  e->dimension_ = dim;
  e->words_.reserve(count);
  e->index_.reserve(count);
  uint64_t offset = kHeaderBytes;
  for (uint32_t i = 0; i < count; ++i) {
    unsigned char len_bytes[2];
    if (!f.read(reinterpret_cast<char*>(len_bytes), 2)) {
      throw file_error(path,
                       "truncated in word #" + std::to_string(i) + " of " + std::to_string(count));
    }
    const size_t len = size_t(len_bytes[0]) | size_t(len_bytes[1]) << 8;
    if (len == 0) throw file_error(path, "word #" + std::to_string(i) + " is empty");
    std::string word(len, '\0');
    if (!f.read(word.data(), static_cast<std::streamsize>(len))) {
      throw file_error(path,
                       "truncated in word #" + std::to_string(i) + " of " + std::to_string(count));
    }
    offset += 2 + len;
    if (!e->index_.emplace(word, i).second) {
      throw file_error(path, "the word " + show_word(word) + " appears twice");
    }
    e->words_.push_back(std::move(word));
  }
  const uint64_t left = file_size - offset;
  if (left < vector_bytes) {
    throw file_error(path, "truncated: the vectors need " + std::to_string(vector_bytes) +
                               " bytes, " + std::to_string(left) + " are left");
  }
  if (left > vector_bytes) {
    throw file_error(path, std::to_string(left - vector_bytes) +
                               " unexpected bytes after the vectors (corrupt file?)");
  }
  e->vectors_.resize(size_t(count) * dim);
  if (!f.read(reinterpret_cast<char*>(e->vectors_.data()),
              static_cast<std::streamsize>(vector_bytes))) {
    throw file_error(path, "truncated: read failed in the vectors");
  }
  to_from_little_endian(e->vectors_.data(), e->vectors_.size());
  for (size_t i = 0; i < e->vectors_.size(); ++i) {
    if (!std::isfinite(e->vectors_[i])) {
      throw file_error(
          path, "the vector of " + show_word(e->words_[i / dim]) + " holds a non-finite value");
    }
  }

  // SIF weights from Zipf's law: p(r) = 1 / ((r + 1) H_V).
  double harmonic = 0;
  for (uint32_t r = count; r >= 1; --r) harmonic += 1.0 / r;  // small terms first
  e->weights_.resize(count);
  const double a = options.sif_a;
  for (uint32_t r = 0; r < count; ++r) {
    const double p = 1.0 / ((r + 1.0) * harmonic);
    e->weights_[r] = static_cast<float>(a / (a + p));
  }
  return e;
}

std::string GloveEmbedder::name() const {
  return "glove-" + std::to_string(dimension_) + "d (" + std::to_string(words_.size()) + " words)";
}

std::optional<float> GloveEmbedder::weight(std::string_view word) const {
  auto it = index_.find(word);
  if (it == index_.end()) return std::nullopt;
  return weights_[it->second];
}

void GloveEmbedder::add_if_known(std::string_view word, std::vector<uint32_t>& out) const {
  if (word.empty()) return;
  auto it = index_.find(word);
  if (it != index_.end()) out.push_back(it->second);
}

// A piece holds letters, digits and apostrophes (no hyphens).
void GloveEmbedder::piece_ids(std::string_view piece, std::vector<uint32_t>& out) const {
  if (piece.empty()) return;
  if (auto it = index_.find(piece); it != index_.end()) {
    out.push_back(it->second);
    return;
  }
  const size_t pos = piece.rfind('\'');
  if (pos == std::string_view::npos) return;  // an unknown word
  const std::string_view stem = piece.substr(0, pos);
  const std::string_view clitic = piece.substr(pos + 1);
  if (clitic == "t" && stem.size() >= 2 && stem.back() == 'n') {  // GloVe splits "do|n't"
    piece_ids(stem.substr(0, stem.size() - 1), out);
    add_if_known("not", out);
    return;
  }
  if (auto word = clitic_word(clitic)) {
    piece_ids(stem, out);
    add_if_known(*word, out);
    return;
  }
  size_t start = 0;  // any other apostrophe: its parts ("o'neill" -> "o", "neill")
  while (start <= piece.size()) {
    size_t end = piece.find('\'', start);
    if (end == std::string_view::npos) end = piece.size();
    add_if_known(piece.substr(start, end - start), out);
    start = end + 1;
  }
}

// A chunk is word characters joined by single hyphens or apostrophes.
void GloveEmbedder::chunk_ids(std::string_view chunk, std::vector<uint32_t>& out) const {
  if (chunk.empty()) return;
  if (auto it = index_.find(chunk); it != index_.end()) {  // "state-of-the-art"
    out.push_back(it->second);
    return;
  }
  size_t start = 0;
  while (start <= chunk.size()) {
    size_t end = chunk.find('-', start);
    if (end == std::string_view::npos) end = chunk.size();
    piece_ids(chunk.substr(start, end - start), out);
    start = end + 1;
  }
}

void GloveEmbedder::word_ids(std::string_view text, std::vector<uint32_t>& out) const {
  std::string chunk;
  auto flush = [&] {
    while (!chunk.empty() && is_joiner(chunk.back())) chunk.pop_back();
    chunk_ids(chunk, out);
    chunk.clear();
  };
  for (size_t i = 0; i < text.size();) {
    size_t len;
    const CharClass cls = classify(text, i, len);
    switch (cls) {
      case CharClass::kWord:
        if (len == 1) {
          const char c = text[i];
          chunk.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
        } else {
          chunk.append(text.substr(i, len));
        }
        break;
      case CharClass::kHyphen:
      case CharClass::kApostrophe: {
        const char joiner = cls == CharClass::kHyphen ? '-' : '\'';
        if (chunk.empty()) break;       // leading joiner: drop
        if (is_joiner(chunk.back())) {  // two joiners in a row end the chunk
          flush();
        } else {
          chunk.push_back(joiner);
        }
        break;
      }
      case CharClass::kSeparator:
        flush();
        break;
    }
    i += len;
  }
  flush();
}

std::vector<std::string> GloveEmbedder::tokens(std::string_view text) const {
  std::vector<uint32_t> ids;
  word_ids(text, ids);
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (uint32_t id : ids) out.push_back(words_[id]);
  return out;
}

std::vector<float> GloveEmbedder::compute(std::string_view text) const {
  std::vector<uint32_t> ids;
  word_ids(text, ids);
  std::vector<float> out(dimension_, 0.0f);
  if (ids.empty()) return out;
  // Sum in rank order: the result is bit-identical whatever the word order.
  std::sort(ids.begin(), ids.end());
  for (uint32_t id : ids) {
    const float w = weights_[id];
    const float* row = vectors_.data() + size_t(id) * dimension_;
    for (size_t d = 0; d < dimension_; ++d) out[d] += w * row[d];
  }
  double norm = 0;
  for (float x : out) norm += double(x) * x;
  norm = std::sqrt(norm);
  if (!(norm > 0) || !std::isfinite(norm)) {
    std::fill(out.begin(), out.end(), 0.0f);
    return out;
  }
  const auto inv = static_cast<float>(1.0 / norm);
  for (float& x : out) x *= inv;
  return out;
}

std::vector<float> GloveEmbedder::embed(std::string_view text) {
  if (auto hit = cache_.get(text)) return std::move(*hit);
  std::vector<float> v = compute(text);  // outside the cache's lock
  cache_.put(text, v);
  return v;
}

}  // namespace calm
