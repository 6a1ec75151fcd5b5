// The suite file of `calm bench suite`: a good file reads back with paths
// resolved against the suite's folder, and every bad input is refused with a
// message that names file, line and field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "bench/suite_config.h"
#include "support/helpers.h"

namespace calm {
namespace {

// A scratch folder with a fleet file, where suite files are written.
class SuiteFile : public ::testing::Test {
 protected:
  void SetUp() override { std::ofstream(dir_.file("fleet.yaml")) << "models: []\n"; }

  std::string write(const std::string& yaml) {
    const std::string path = dir_.file("suite.yaml");
    std::ofstream(path) << yaml;
    return path;
  }

  // The message load_suite_config throws for this suite text.
  std::string error_of(const std::string& yaml) {
    const std::string path = write(yaml);
    try {
      load_suite_config(path);
    } catch (const SuiteConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "accepted:\n" << yaml;
    return "";
  }

  testing::TempDir dir_{"calm-suite-config"};
};

// Found by fuzz/suite_config_fuzzer: a key that is a list or a mapping made
// yaml-cpp throw its own bad conversion, with neither the file nor the field.
TEST_F(SuiteFile, AKeyThatIsAListOrAMappingIsAClearError) {
  std::string e = error_of("systems:\n  - {name: a, config: fleet.yaml, {b: 1}: 2}\n");
  EXPECT_NE(e.find("suite.yaml:2: systems[0]: a key must be a plain name"), std::string::npos) << e;
  e = error_of("domains: {[maths]: m}\nsystems: [{name: a, config: fleet.yaml}]\n");
  EXPECT_NE(e.find("suite.yaml:1: domains: a domain must be a plain name"), std::string::npos) << e;
}

TEST_F(SuiteFile, GoodFileReadsBackWithPathsRelativeToTheSuite) {
  const std::string path = write(R"(workload: w.jsonl
concurrency: 4
domains:
  maths: maths-expert
  code: code-expert
systems:
  - name: generalist
    description: "one model"
    config: fleet.yaml
    route: model:generalist
  - name: full
    config: ./fleet.yaml
    route: auto
    group: headline
  - name: oracle
    config: fleet.yaml
    route: oracle
  - name: random
    config: fleet.yaml
    route: random
)");
  const SuiteConfig c = load_suite_config(path);
  const std::string folder = std::filesystem::path(path).parent_path().string();
  EXPECT_EQ(c.workload, folder + "/w.jsonl");
  EXPECT_EQ(c.concurrency, 4);
  EXPECT_EQ(c.domains.at("maths"), "maths-expert");
  EXPECT_EQ(c.domains.at("code"), "code-expert");
  ASSERT_EQ(c.systems.size(), 4u);
  EXPECT_EQ(c.systems[0].name, "generalist");
  EXPECT_EQ(c.systems[0].description, "one model");
  EXPECT_EQ(c.systems[0].route.kind, SuiteRoute::Kind::kModel);
  EXPECT_EQ(c.systems[0].route.model, "generalist");
  EXPECT_EQ(c.systems[0].route.text(), "model:generalist");
  EXPECT_EQ(c.systems[1].config, "./fleet.yaml");
  EXPECT_EQ(c.systems[1].config_path, folder + "/fleet.yaml");
  EXPECT_EQ(c.systems[1].group, "headline");
  EXPECT_EQ(c.systems[1].route.kind, SuiteRoute::Kind::kAuto);
  EXPECT_EQ(c.systems[2].route.kind, SuiteRoute::Kind::kOracle);
  EXPECT_EQ(c.systems[3].route.kind, SuiteRoute::Kind::kRandom);
}

TEST_F(SuiteFile, WorkloadAndConcurrencyAreOptional) {
  const SuiteConfig c =
      load_suite_config(write("systems:\n  - name: a\n    config: fleet.yaml\n    route: auto\n"));
  EXPECT_TRUE(c.workload.empty());
  EXPECT_EQ(c.concurrency, 8);
  EXPECT_TRUE(c.domains.empty());
}

struct BadSuite {
  std::string name;
  std::string yaml;
  std::string where;     // "LINE: FIELD" the message must name after the file
  std::string fragment;  // a piece of the message
};

class SuiteFileBadInput : public SuiteFile, public ::testing::WithParamInterface<BadSuite> {};

TEST_P(SuiteFileBadInput, MessageNamesFileLineAndField) {
  const BadSuite& bad = GetParam();
  const std::string what = error_of(bad.yaml);
  const std::string prefix = dir_.file("suite.yaml") + ":" + bad.where;
  EXPECT_EQ(what.rfind(prefix, 0), 0u) << what << "\nexpected prefix: " << prefix;
  EXPECT_NE(what.find(bad.fragment), std::string::npos) << what;
}

const std::string kSystem = "systems:\n  - name: a\n    config: fleet.yaml\n";

INSTANTIATE_TEST_SUITE_P(
    Suite, SuiteFileBadInput,
    ::testing::Values(
        BadSuite{"MissingSystems", "workload: w.jsonl\n", "1: systems", "is required"},
        BadSuite{"EmptySystems", "workload: w.jsonl\nsystems: []\n", "2: systems",
                 "at least one system"},
        BadSuite{"MissingName", "systems:\n  - config: fleet.yaml\n    route: auto\n",
                 "2: systems[0].name", "is required"},
        BadSuite{"MissingConfig", "systems:\n  - name: a\n    route: auto\n",
                 "2: systems[0].config", "is required"},
        BadSuite{"SetIsNotAMapping", kSystem + "    set: [1]\n", "4: systems[0].set",
                 "expected a mapping"},
        BadSuite{"UnknownRoute", kSystem + "    route: smart\n", "4: systems[0].route",
                 "unknown route 'smart'"},
        BadSuite{"EmptyModelRoute", kSystem + "    route: 'model:'\n", "4: systems[0].route",
                 "unknown route"},
        BadSuite{"ConfigNotFound",
                 "systems:\n  - name: a\n    config: missing.yaml\n    route: auto\n",
                 "3: systems[0].config", "fleet file not found"},
        BadSuite{"OracleWithoutDomains", kSystem + "    route: oracle\n", "4: systems[0].route",
                 "needs a `domains:`"},
        BadSuite{"RandomWithoutDomains", kSystem + "    route: random\n", "4: systems[0].route",
                 "needs a `domains:`"},
        BadSuite{
            "DuplicateName",
            kSystem + "    route: auto\n  - name: a\n    config: fleet.yaml\n    route: auto\n",
            "5: systems[1].name", "duplicate name 'a'"},
        BadSuite{"NameWithASlash",
                 "systems:\n  - name: a/b\n    config: fleet.yaml\n    route: auto\n",
                 "2: systems[0].name", "must be letters"},
        BadSuite{"UnknownSystemField", kSystem + "    route: auto\n    rout: auto\n",
                 "5: systems[0].rout", "unknown field"},
        BadSuite{"UnknownTopField", "concurency: 3\n" + kSystem + "    route: auto\n",
                 "1: concurency", "unknown field"},
        BadSuite{"ConcurrencyNotANumber", "concurrency: lots\n" + kSystem + "    route: auto\n",
                 "1: concurrency", "expected an integer"},
        BadSuite{"ConcurrencyZero", "concurrency: 0\n" + kSystem + "    route: auto\n",
                 "1: concurrency", "between 1 and 4096"},
        BadSuite{"DomainsNotAMapping", "domains: [maths]\n" + kSystem + "    route: auto\n",
                 "1: domains", "expected a mapping"},
        BadSuite{"SystemNotAMapping", "systems:\n  - just-a-name\n", "2: systems[0]",
                 "expected a mapping"}),
    [](const ::testing::TestParamInfo<BadSuite>& info) { return info.param.name; });

TEST_F(SuiteFile, InvalidYamlNamesTheLine) {
  const std::string what = error_of("systems:\n  - name: [a\n");
  EXPECT_EQ(what.rfind(dir_.file("suite.yaml") + ":", 0), 0u) << what;
  EXPECT_NE(what.find("invalid YAML"), std::string::npos) << what;
}

TEST_F(SuiteFile, MissingSuiteFileNamesIt) {
  try {
    load_suite_config(dir_.file("nope.yaml"));
    FAIL() << "accepted a missing file";
  } catch (const SuiteConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("nope.yaml"), std::string::npos) << e.what();
  }
}

TEST(SuiteRoute, TextRoundTrips) {
  for (const std::string text : {"auto", "oracle", "random", "model:m-1"}) {
    EXPECT_EQ(parse_suite_route(text).text(), text);
  }
  EXPECT_THROW(parse_suite_route("model"), std::invalid_argument);
  EXPECT_THROW(parse_suite_route(""), std::invalid_argument);
}

}  // namespace
}  // namespace calm
