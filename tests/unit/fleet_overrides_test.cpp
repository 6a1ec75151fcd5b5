// A suite's `set:` laid over a fleet file (bench/fleet_overrides.h): what
// each ablation row of the evaluation changes, and nothing else.
#include "bench/fleet_overrides.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "bench/suite_config.h"
#include "config/fleet_config.h"
#include "support/process.h"

namespace calm {
namespace {

TEST(FleetOverrides, NestedMappingsMergeKeyByKey) {
  const YAML::Node base = YAML::Load("router: {similarity: classifier, policy: pro-latency}");
  const YAML::Node merged = merge_yaml(base, YAML::Load("router: {similarity: description}"));
  EXPECT_EQ(merged["router"]["similarity"].as<std::string>(), "description");
  EXPECT_EQ(merged["router"]["policy"].as<std::string>(), "pro-latency");
  EXPECT_EQ(base["router"]["similarity"].as<std::string>(), "classifier") << "base untouched";
}

TEST(FleetOverrides, NullRemovesTheKey) {
  const YAML::Node merged =
      merge_yaml(YAML::Load("cache: {budget: 48MiB}\nmodels: []"), YAML::Load("cache: null"));
  EXPECT_FALSE(merged["cache"].IsDefined());
  EXPECT_TRUE(merged["models"].IsDefined());
}

TEST(FleetOverrides, ScalarsAndListsReplaceAndNewKeysAppear) {
  const YAML::Node merged =
      merge_yaml(YAML::Load("a: 1\nl: [1, 2]"), YAML::Load("a: 2\nl: [3]\nloop: {enabled: false}"));
  EXPECT_EQ(merged["a"].as<int>(), 2);
  ASSERT_EQ(merged["l"].size(), 1u);
  EXPECT_FALSE(merged["loop"]["enabled"].as<bool>());
}

TEST(FleetOverrides, WrittenNextToTheFleetSoRelativePathsResolveAndRemovedAfter) {
  const std::filesystem::path dir = std::filesystem::path(testing::temp_path("f")).parent_path();
  std::filesystem::copy_file(testing::test_model("tiny-chatml.gguf"), dir / "m.gguf");
  const std::string fleet = (dir / "fleet.yaml").string();
  std::ofstream(fleet) << "scheduler: {policy: swap-aware}\n"
                          "models:\n  - id: m\n    gguf: m.gguf\n";
  std::string written;
  {
    OverriddenFleet overridden(fleet, YAML::Load("scheduler: {policy: fifo}"), "sys");
    written = overridden.path();
    EXPECT_EQ(std::filesystem::path(written).parent_path(), dir);
    const FleetConfig config = load_fleet_config(written);
    EXPECT_EQ(config.scheduler.policy, "fifo");
    EXPECT_EQ(config.models.at(0).gguf_path, (dir / "m.gguf").string());
  }
  EXPECT_FALSE(std::filesystem::exists(written));
}

TEST(FleetOverrides, SuiteRouteDefaultsToAutoAndKeepsSet) {
  const std::filesystem::path dir = std::filesystem::path(testing::temp_path("s")).parent_path();
  std::ofstream(dir / "fleet.yaml") << "models: []\n";
  std::ofstream(dir / "suite.yaml") << "systems:\n  - name: a\n    config: fleet.yaml\n"
                                       "    set: {loop: {enabled: false}}\n";
  const SuiteConfig suite = load_suite_config((dir / "suite.yaml").string());
  EXPECT_EQ(suite.systems.at(0).route.kind, SuiteRoute::Kind::kAuto);
  ASSERT_TRUE(suite.systems.at(0).has_overrides());
  EXPECT_FALSE(suite.systems.at(0).overrides["loop"]["enabled"].as<bool>());
}

}  // namespace
}  // namespace calm
