#include "engines/tokenize.h"

#include <climits>
#include <cstdlib>

#include "engines/engine.h"

namespace calm {

std::vector<llama_token> tokenize(const llama_vocab* vocab, const std::string& text,
                                  bool parse_special, bool add_special) {
  const int32_t len = static_cast<int32_t>(text.size());
  int32_t n = llama_tokenize(vocab, text.data(), len, nullptr, 0, add_special, parse_special);
  if (n == INT32_MIN)
    throw EngineError(EngineError::Kind::kBadRequest, "prompt is too long to tokenize");
  std::vector<llama_token> tokens(static_cast<size_t>(std::abs(n)));
  n = llama_tokenize(vocab, text.data(), len, tokens.data(), static_cast<int32_t>(tokens.size()),
                     add_special, parse_special);
  tokens.resize(static_cast<size_t>(std::max(n, 0)));
  return tokens;
}

}  // namespace calm
