// RouterNode against a real llama-server in router mode (the pinned build,
// `--models-dir` with the project's own test GGUFs), on a loopback port.
#include "nodes/router_node.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// One llama-server in router mode over a models directory holding the two
// tiny test models and a file named .gguf that is not one.
class RouterNodeTest : public ::testing::Test {
 protected:
  void start(const std::vector<std::string>& extra = {}) {
    dir_ = fs::path(testing::temp_path("models"));
    fs::create_directories(dir_);
    fs::copy_file(testing::test_model("tiny-chatml.gguf"), dir_ / "tiny-chatml.gguf");
    fs::copy_file(testing::test_model("tiny-plain.gguf"), dir_ / "tiny-plain.gguf");
    std::ofstream(dir_ / "broken.gguf") << "GGUF but not really a model file";
    port_ = testing::free_port();
    std::vector<std::string> argv = {testing::env("CALM_LLAMA_SERVER"),
                                     "--models-dir",
                                     dir_.string(),
                                     "--models-max",
                                     "4",
                                     "--host",
                                     "127.0.0.1",
                                     "--port",
                                     std::to_string(port_),
                                     "-c",
                                     "256",
                                     "-np",
                                     "1",
                                     "-t",
                                     "1",
                                     "--no-webui",
                                     "--metrics"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    server_ = std::make_unique<testing::ChildProcess>(argv, testing::temp_path("router.log"));
    ASSERT_TRUE(testing::wait_healthy(port_, "/health", std::chrono::seconds(60)))
        << server_->log();
  }

  RouterNode::Options options() const {
    RouterNode::Options options;
    options.id = "n1";
    options.base_url = "http://127.0.0.1:" + std::to_string(port_);
    options.load_timeout = 60s;
    return options;
  }

  fs::path dir_;
  int port_ = 0;
  std::unique_ptr<testing::ChildProcess> server_;
};

TEST_F(RouterNodeTest, ListsEveryModelOfItsDirectoryUnloadedAtStart) {
  start();
  RouterNode node(options());
  EXPECT_TRUE(node.health().ok);
  const auto models = node.models();
  std::vector<std::string> ids;
  for (const auto& model : models) {
    ids.push_back(model.id);
    EXPECT_EQ(model.state, "unloaded") << model.id;
    EXPECT_FALSE(model.loaded());
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"broken", "tiny-chatml", "tiny-plain"}));
}

TEST_F(RouterNodeTest, LoadReturnsOnceTheModelServesAndUnloadOnceItIsGone) {
  start();
  RouterNode node(options());
  EXPECT_FALSE(node.queue("tiny-chatml").has_value()) << "not loaded: no queue, and no load";
  EXPECT_EQ(node.model("tiny-chatml")->state, "unloaded");

  const RouterNode::ModelStatus loaded = node.load("tiny-chatml");
  EXPECT_TRUE(loaded.loaded());
  EXPECT_GT(loaded.size_bytes, 0u);
  EXPECT_EQ(node.model("tiny-plain")->state, "unloaded") << "only the asked model loads";
  const auto queue = node.queue("tiny-chatml");
  ASSERT_TRUE(queue.has_value());
  EXPECT_EQ(queue->processing, 0);
  EXPECT_EQ(queue->deferred, 0);

  // The node serves it at once. A greedy completion whose answer parses:
  // llama-server answers 500 for a random-weight model's output that does
  // not (nodes_test.cpp says more).
  httplib::Client client("127.0.0.1", port_);
  client.set_read_timeout(30s);
  const json completion = {
      {"model", "tiny-chatml"}, {"prompt", "x"}, {"max_tokens", 4}, {"temperature", 0}};
  const auto answer = client.Post("/v1/completions", completion.dump(), "application/json");
  ASSERT_TRUE(answer);
  if (answer->body.find("does not match the expected") == std::string::npos) {
    EXPECT_EQ(answer->status, 200) << answer->body;  // (else another CPU's greedy answer)
  }

  EXPECT_TRUE(node.load("tiny-chatml").loaded()) << "loading a loaded model succeeds at once";
  node.unload("tiny-chatml");
  EXPECT_EQ(node.model("tiny-chatml")->state, "unloaded");
  EXPECT_FALSE(node.queue("tiny-chatml").has_value());
  EXPECT_NO_THROW(node.unload("tiny-chatml")) << "unloading an unloaded model succeeds";
}

TEST_F(RouterNodeTest, AModelTheNodeDoesNotHaveIsRefusedNamingNodeAndModel) {
  start();
  RouterNode node(options());
  try {
    node.load("no-such-model");
    FAIL() << "loaded a model the node does not have";
  } catch (const NodeError& error) {
    EXPECT_EQ(error.kind(), NodeError::Kind::kRefused);
    EXPECT_NE(std::string(error.what()).find("node 'n1'"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("no-such-model"), std::string::npos) << error.what();
  }
}

TEST_F(RouterNodeTest, AFileThatIsNoModelFailsToLoadWithALoadFailedErrorAndTheNodeServesOn) {
  start();
  RouterNode node(options());
  try {
    node.load("broken");
    FAIL() << "a file that is not a GGUF model loaded";
  } catch (const NodeError& error) {
    EXPECT_EQ(error.kind(), NodeError::Kind::kLoadFailed) << error.what();
    EXPECT_NE(std::string(error.what()).find("'broken' failed to load"), std::string::npos)
        << error.what();
  }
  EXPECT_TRUE(node.load("tiny-plain").loaded());
}

TEST_F(RouterNodeTest, TheApiKeyOpensTheNodeAndAWrongOneIsRefusedWithoutBeingQuoted) {
  start({"--api-key", "sk-node-key-1"});
  RouterNode::Options good = options();
  good.api_key = "sk-node-key-1";
  EXPECT_EQ(RouterNode(good).models().size(), 3u);
  RouterNode::Options bad = options();
  bad.api_key = "sk-wrong-key-2";
  try {
    RouterNode(bad).models();
    FAIL() << "a wrong key was let in";
  } catch (const NodeError& error) {
    EXPECT_EQ(error.kind(), NodeError::Kind::kRefused);
    EXPECT_NE(std::string(error.what()).find("401"), std::string::npos) << error.what();
    EXPECT_EQ(std::string(error.what()).find("sk-wrong-key-2"), std::string::npos) << error.what();
  }
}

TEST(RouterNode, ANodeThatIsNotListeningIsUnreachableAndUnhealthy) {
  RouterNode::Options options;
  options.id = "gone";
  options.base_url = "http://127.0.0.1:" + std::to_string(testing::free_port());
  RouterNode node(options);
  EXPECT_FALSE(node.health().ok);
  try {
    node.models();
    FAIL() << "a node with nothing listening answered";
  } catch (const NodeError& error) {
    EXPECT_EQ(error.kind(), NodeError::Kind::kUnreachable);
    EXPECT_NE(std::string(error.what()).find("node 'gone'"), std::string::npos) << error.what();
  }
}

TEST(RouterNode, ABadUrlIsAMalformedErrorNamingTheNode) {
  RouterNode::Options options;
  options.id = "typo";
  options.base_url = "ftp://127.0.0.1:1";
  try {
    RouterNode node(options);
    FAIL() << "accepted an ftp:// URL";
  } catch (const NodeError& error) {
    EXPECT_EQ(error.kind(), NodeError::Kind::kMalformed);
    EXPECT_NE(std::string(error.what()).find("node 'typo'"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace calm
