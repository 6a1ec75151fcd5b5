#include <llama.h>

#include <iostream>

#include "app/commands.h"

namespace calm {

Command add_version_command(CLI::App& app) {
  app.add_subcommand("version", "Print calm's version and the llama.cpp it was built with");
  return [] {
    std::cout << "calm " << CALM_VERSION << "\n"
              << "llama.cpp " << CALM_LLAMA_PIN << "\n"
              << "system: " << llama_print_system_info() << "\n";
    return 0;
  };
}

}  // namespace calm
