// calm: one OpenAI-compatible endpoint in front of a fleet of small models.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "app/commands.h"

namespace {

// A crash must say why: an exception that escaped a thread (or a destructor)
// is written to stderr, and so to the server's log, before the abort.
[[noreturn]] void report_termination() {
  const char* what = "no exception";
  std::string text;
  if (const std::exception_ptr error = std::current_exception()) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      text = e.what();
      what = text.c_str();
    } catch (...) {
      what = "an exception that is not a std::exception";
    }
  }
  std::fprintf(stderr, "calm: terminating: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  std::set_terminate(report_termination);
  CLI::App app{"calm: a self-adaptive orchestrator for fleets of small language models"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show the help of every subcommand");

  std::vector<std::pair<CLI::App*, calm::Command>> commands;
  auto add = [&](auto adder) {
    const size_t before = app.get_subcommands({}).size();
    calm::Command run = adder(app);
    commands.emplace_back(app.get_subcommands({})[before], std::move(run));
  };
  add(calm::add_serve_command);
  add(calm::add_model_info_command);
  add(calm::add_route_eval_command);
  add(calm::add_bench_command);
  add(calm::add_hash_key_command);
  add(calm::add_version_command);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2, like a bad file.
    return app.exit(e) == 0 ? 0 : 2;
  }
  for (auto& [sub, run] : commands) {
    if (sub->parsed()) return run();
  }
  return 1;
}
