// The `calm` command line, run as a user would.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using testing::CliRun;
using testing::run_calm;

TEST(Cli, ModelInfoPrintsJsonWithAMemoryEstimate) {
  const CliRun r = run_calm(
      {"model-info", testing::test_model("tiny-chatml.gguf"), "--json", "-c", "1024", "-p", "2"});
  ASSERT_EQ(r.code, 0) << r.output;
  const auto info = nlohmann::json::parse(r.output);
  EXPECT_EQ(info["architecture"], "llama");
  EXPECT_GT(info["parameters"].get<uint64_t>(), 0u);
  EXPECT_EQ(info["estimate"]["parallel"], 2);
  EXPECT_GT(info["estimate"]["total_bytes"].get<uint64_t>(),
            info["estimate"]["weights_bytes"].get<uint64_t>());
}

TEST(Cli, ModelInfoOnAMissingFileFailsNamingIt) {
  const CliRun r = run_calm({"model-info", "/nonexistent/x.gguf"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("/nonexistent/x.gguf: file not found"), std::string::npos) << r.output;
}

TEST(Cli, VersionNamesThePinnedLlamaCpp) {
  const CliRun r = run_calm({"version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("llama.cpp v0.4.0"), std::string::npos) << r.output;
}

TEST(Cli, NoSubcommandIsAUsageError) {
  const CliRun r = run_calm({});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("subcommand"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace calm
