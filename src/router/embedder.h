// The embedder seam: text in, a unit-length vector out, for semantic routing.
//
// Two implementations are planned: GloveEmbedder (pretrained GloVe word vectors,
// SIF-weighted mean; src/router/glove_embedder.h) and a GGUF sentence-embedding
// model through llama.cpp. The router compares vectors with cosine() and never
// needs to know which one made them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace calm {

// Turns text into a unit-length vector for routing. Implementations are thread-safe.
class Embedder {
 public:
  virtual ~Embedder() = default;
  virtual std::string name() const = 0;  // e.g. "glove-100d (100000 words)"
  virtual size_t dimension() const = 0;
  // Unit length; all zeros when the text holds nothing the embedder knows
  // (callers treat that as "no signal" and fall back). Thread-safe.
  virtual std::vector<float> embed(std::string_view text) = 0;
};

// Cosine similarity in [-1, 1]; 0 when either vector is all zeros (no signal),
// and 0 when the sizes differ. Works on vectors of any length, unit or not.
float cosine(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace calm
