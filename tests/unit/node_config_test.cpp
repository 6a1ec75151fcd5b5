// The fleet file's `nodes:` section and the models they serve
// (config/node_config.h): every mistake names the file, the line and the field.
#include "config/node_config.h"

#include <gtest/gtest.h>

#include <string>

#include "config/fleet_config.h"

namespace calm {
namespace {

constexpr const char* kNodes =
    "nodes:\n"
    "  - id: box-a\n"
    "    url: http://127.0.0.1:9001\n"
    "    budget: 1GiB\n"
    "  - id: box-b\n"
    "    kind: llama-server-router\n"
    "    url: https://10.0.0.3:8443/prefix\n"
    "    budget: 500000000\n"
    "    api_key: sk-node\n"
    "    max_queue: 8\n"
    "    connect_timeout_s: 1\n"
    "    load_timeout_s: 30\n";

FleetConfig parse(const std::string& yaml) {
  return parse_fleet_config(yaml, "fleet.yaml", "/tmp");
}

std::string error_of(const std::string& yaml) {
  try {
    parse(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(NodeConfig, ReadsEachNodeAndTheModelsTheyServeWithDefaults) {
  const FleetConfig config = parse(std::string(kNodes) +
                                   "models:\n"
                                   "  - id: maths\n"
                                   "    nodes: [box-a, box-b]\n"
                                   "    upstream_model: maths-expert\n"
                                   "    bytes: 300MiB\n"
                                   "  - id: code\n"
                                   "    nodes: box-b\n");
  ASSERT_EQ(config.nodes.size(), 2u);
  EXPECT_EQ(config.nodes[0].id, "box-a");
  EXPECT_EQ(config.nodes[0].kind, "llama-server-router");
  EXPECT_EQ(config.nodes[0].budget_bytes, 1ull << 30);
  EXPECT_EQ(config.nodes[0].max_queue, 0u);
  EXPECT_EQ(config.nodes[0].load_timeout, std::chrono::seconds(120));
  EXPECT_EQ(config.nodes[1].api_key, "sk-node");
  EXPECT_EQ(config.nodes[1].max_queue, 8u);
  EXPECT_EQ(config.nodes[1].connect_timeout, std::chrono::seconds(1));
  EXPECT_EQ(config.nodes[1].load_timeout, std::chrono::seconds(30));

  const ModelConfig& maths = config.models[0];
  EXPECT_EQ(maths.backend, ModelConfig::Backend::kNodes);
  EXPECT_FALSE(maths.is_local());
  EXPECT_EQ(maths.nodes, (std::vector<std::string>{"box-a", "box-b"}));
  EXPECT_EQ(maths.upstream_model, "maths-expert");
  EXPECT_EQ(maths.estimated_bytes, 300ull << 20);
  EXPECT_EQ(maths.parallel, kRemoteParallel);
  EXPECT_EQ(config.models[1].nodes, std::vector<std::string>{"box-b"});
  EXPECT_EQ(config.models[1].upstream_model, "code");
  EXPECT_EQ(config.models[1].estimated_bytes, 0u);
}

TEST(NodeConfig, AModelNamingANodeThatIsNotListedIsAnErrorAtItsLine) {
  const std::string error =
      error_of(std::string(kNodes) + "models:\n  - id: m\n    nodes: [box-a, box-z]\n");
  EXPECT_NE(error.find("fleet.yaml:15"), std::string::npos) << error;
  EXPECT_NE(error.find("models[0].nodes"), std::string::npos) << error;
  EXPECT_NE(error.find("unknown node 'box-z'"), std::string::npos) << error;
}

TEST(NodeConfig, AModelWithNodesAndAnotherBackendIsAnError) {
  const std::string error = error_of(std::string(kNodes) +
                                     "models:\n  - id: m\n    nodes: [box-a]\n"
                                     "    url: http://127.0.0.1:1\n");
  EXPECT_NE(error.find("exactly one backend"), std::string::npos) << error;
}

TEST(NodeConfig, AnOpenAiNodeNeedsNoBudget) {
  const FleetConfig config = parse(
      "nodes:\n  - id: vllm\n    kind: openai\n    url: http://127.0.0.1:8000/v1\n"
      "models:\n  - id: m\n    nodes: [vllm]\n");
  ASSERT_EQ(config.nodes.size(), 1u);
  EXPECT_EQ(config.nodes[0].kind, "openai");
  EXPECT_EQ(config.nodes[0].budget_bytes, 0u) << "no limit";
}

TEST(NodeConfig, EachBadNodeFieldIsNamed) {
  const std::string model = "models:\n  - id: m\n    nodes: [n]\n";
  const struct {
    const char* node;
    const char* expected;
  } cases[] = {
      {"  - id: n\n    url: http://127.0.0.1:1\n", "nodes[0].budget: is required"},
      {"  - id: n\n    url: http://127.0.0.1:1\n    budget: lots\n", "nodes[0].budget"},
      {"  - id: n\n    url: ftp://x\n    budget: 1GiB\n", "nodes[0].url"},
      {"  - id: n\n    budget: 1GiB\n", "nodes[0].url: is required"},
      {"  - id: n\n    kind: openai\n    url: http://x:1\n    budget: 0\n",
       "nodes[0].budget: must be a size"},
      {"  - id: n\n    kind: vllm\n    url: http://x:1\n    budget: 1GiB\n", "unknown kind 'vllm'"},
      {"  - id: n\n    url: http://x:1\n    budget: 1GiB\n    colour: red\n", "colour"},
      {"  - id: n\n    url: http://x:1\n    budget: 1GiB\n  - id: n\n    url: http://y:1\n"
       "    budget: 1GiB\n",
       "duplicate node id 'n'"},
  };
  for (const auto& c : cases) {
    const std::string error = error_of(std::string("nodes:\n") + c.node + model);
    EXPECT_NE(error.find("fleet.yaml:"), std::string::npos) << c.node << "\n" << error;
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.node << "\n" << error;
  }
  EXPECT_NE(error_of("nodes: {id: n}\n" + model).find("expected a list of nodes"),
            std::string::npos);
}

}  // namespace
}  // namespace calm
