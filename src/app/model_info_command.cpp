#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "engines/gguf_info.h"

namespace calm {
namespace {

std::string mib(uint64_t bytes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << bytes / (1024.0 * 1024.0) << " MiB";
  return out.str();
}

}  // namespace

Command add_model_info_command(CLI::App& app) {
  struct Args {
    std::string file;
    int context = 2048;
    int parallel = 1;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "model-info",
      "Describe a GGUF file: architecture, parameters, size, context, memory estimate");
  cmd->add_option("file", args->file, "GGUF file")->required();
  cmd->add_option("-c,--context", args->context, "Tokens per request slot for the estimate")
      ->check(CLI::Range(16, 1 << 20));
  cmd->add_option("-p,--parallel", args->parallel, "Parallel slots for the estimate")
      ->check(CLI::Range(1, 256));
  cmd->add_flag("--json", args->json, "Print JSON");

  return [args] {
    GgufInfo info;
    try {
      info = read_gguf_info(args->file);
    } catch (const std::exception& e) {
      std::cerr << "calm model-info: " << e.what() << "\n";
      return 1;
    }
    const MemoryEstimate m = estimate_memory(info, args->context, args->parallel);
    if (args->json) {
      nlohmann::json out = {{"file", info.path},
                            {"architecture", info.architecture},
                            {"name", info.name},
                            {"parameters", info.n_params},
                            {"file_bytes", info.file_bytes},
                            {"context_length", info.context_length},
                            {"layers", info.n_layer},
                            {"embedding", info.n_embd},
                            {"heads", info.n_head},
                            {"kv_heads", info.n_head_kv},
                            {"vocabulary", info.n_vocab},
                            {"chat_template", info.has_chat_template},
                            {"estimate",
                             {{"context", args->context},
                              {"parallel", args->parallel},
                              {"weights_bytes", m.weights},
                              {"kv_cache_bytes", m.kv_cache},
                              {"compute_bytes", m.compute},
                              {"total_bytes", m.total()}}}};
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    std::cout << "file:           " << info.path << "\n"
              << "architecture:   " << info.architecture << "\n"
              << "name:           " << (info.name.empty() ? "-" : info.name) << "\n"
              << "parameters:     " << info.n_params << "\n"
              << "file size:      " << mib(info.file_bytes) << " (" << info.file_bytes
              << " bytes)\n"
              << "context length: " << info.context_length << " (trained)\n"
              << "layers:         " << info.n_layer << ", embedding " << info.n_embd << ", heads "
              << info.n_head << " (kv " << info.n_head_kv << ")\n"
              << "vocabulary:     " << info.n_vocab << " tokens\n"
              << "chat template:  " << (info.has_chat_template ? "yes" : "no (plain fallback)")
              << "\n"
              << "memory estimate at context " << args->context << " x " << args->parallel
              << " slots:\n"
              << "  weights       " << mib(m.weights) << "\n"
              << "  KV cache      " << mib(m.kv_cache) << "\n"
              << "  compute       " << mib(m.compute) << "\n"
              << "  total         " << mib(m.total()) << "\n";
    return 0;
  };
}

}  // namespace calm
