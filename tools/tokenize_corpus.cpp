// tokenize-corpus: turns the fleet's training text into the exact token ids
// calm will later feed the trained models.
//
// Why this exists: the evaluation fleet (fleet/) is trained in Python, but
// the models are served and scored by llama.cpp. If the trainer tokenized on
// its own, the slightest difference (a space prefix, how <|im_start|> is
// split) would make the served model see text it never saw in training. So
// tokenization is done here with the very functions calm uses:
// apply_chat_template() for the prompt, as the engine and the reference
// scorer do, and tokenize() for the reference as the scorer does; then the
// end-of-turn token the model must learn to stop on.
//
// Input: JSONL lines with "messages" (chat) and "reference" (fleet/prepare_data.py).
// Output: JSONL lines {"p": [prompt ids], "r": [reference ids..., eot]}.
//
// Example:
//   tokenize-corpus --vocab vocab.gguf --in maths/train.jsonl --out maths/train.tok.jsonl

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engines/chat_template.h"
#include "engines/llama_backend.h"
#include "engines/tokenize.h"
#include "pipeline/api_error.h"
#include "server/openai_schema.h"

namespace {

struct ModelDeleter {
  void operator()(llama_model* m) const { llama_model_free(m); }
};

}  // namespace

int main(int argc, char** argv) {
  std::string vocab_path, in_path, out_path;
  CLI::App app{"Tokenizes prompt/reference pairs exactly as calm serves and scores them."};
  app.add_option("--vocab", vocab_path, "GGUF whose vocabulary and chat template to use")
      ->required();
  app.add_option("--in", in_path, "JSONL with messages and reference")->required();
  app.add_option("--out", out_path, "JSONL of token ids to write")->required();
  CLI11_PARSE(app, argc, argv);

  calm::ensure_llama_backend();
  llama_model_params params = llama_model_default_params();
  params.vocab_only = true;
  std::unique_ptr<llama_model, ModelDeleter> model(
      llama_model_load_from_file(vocab_path.c_str(), params));
  if (!model) {
    std::cerr << "tokenize-corpus: cannot load " << vocab_path << "\n";
    return 1;
  }
  const llama_vocab* vocab = llama_model_get_vocab(model.get());
  const llama_token eot =
      llama_vocab_eot(vocab) != LLAMA_TOKEN_NULL ? llama_vocab_eot(vocab) : llama_vocab_eos(vocab);

  std::ifstream in(in_path);
  if (!in) {
    std::cerr << "tokenize-corpus: cannot read " << in_path << "\n";
    return 1;
  }
  std::ofstream out(out_path);
  std::string line;
  long tokens = 0;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      // The messages parsed as the server parses a request, so that training
      // sees exactly the prompt calm will serve.
      const calm::ApiRequest request =
          calm::parse_chat_request({{"model", "training"}, {"messages", j.at("messages")}});
      const std::string prompt =
          calm::apply_chat_template(model.get(), request.generation.messages);
      const auto p = calm::tokenize(vocab, prompt, true);
      auto r = calm::tokenize(vocab, j.at("reference").get<std::string>(), false, false);
      r.push_back(eot);
      out << nlohmann::json{{"p", p}, {"r", r}}.dump() << "\n";
      tokens += static_cast<long>(p.size() + r.size());
    } catch (const calm::ApiError& e) {  // messages the server would refuse
      std::cerr << "tokenize-corpus: " << in_path << ":" << n << ": " << e.message << "\n";
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "tokenize-corpus: " << in_path << ":" << n << ": " << e.what() << "\n";
      return 1;
    }
  }
  if (!out.flush()) {
    std::cerr << "tokenize-corpus: cannot write " << out_path << "\n";
    return 1;
  }
  std::printf("%s: %ld tokens\n", out_path.c_str(), tokens);
  return 0;
}
