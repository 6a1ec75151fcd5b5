// The `calm` subcommands. Each registers its options on a CLI11 app and
// returns the process exit code when run.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace calm {

using Command = std::function<int()>;

Command add_serve_command(CLI::App& app);
Command add_model_info_command(CLI::App& app);
Command add_version_command(CLI::App& app);
Command add_route_eval_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_hash_key_command(CLI::App& app);

}  // namespace calm
