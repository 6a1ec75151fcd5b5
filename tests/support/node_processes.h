// The nodes of the integration tests: real llama-servers of the pinned build,
// on loopback or, given a prefix such as `ip netns exec NAME` and that
// namespace's address, inside a network namespace (support/netns.h).
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/test_env.h"

namespace calm::testing {

// Where a node runs: the command prefix that puts it there, and the address
// and port it listens on.
struct NodePlace {
  std::vector<std::string> prefix;  // empty: this namespace
  std::string host = "127.0.0.1";
  int port = 0;  // 0: a free loopback port
};

// A router-mode llama-server with both tiny models in its models directory,
// and links to the test models named in `extra` (such as node-ascii.gguf).
class RouterNodeProcess {
 public:
  explicit RouterNodeProcess(NodePlace place = {}, const std::vector<std::string>& extra = {})
      : dir_(temp_path("models")), place_(std::move(place)) {
    if (place_.port == 0) place_.port = free_port();
    std::filesystem::create_directories(dir_);
    std::filesystem::copy_file(test_model("tiny-chatml.gguf"), dir_ / "tiny-chatml.gguf");
    std::filesystem::copy_file(test_model("tiny-plain.gguf"), dir_ / "tiny-plain.gguf");
    for (const std::string& name : extra) {
      std::filesystem::create_symlink(test_model(name), dir_ / name);
    }
    start();
  }

  bool healthy() const { return healthy_; }
  std::string url() const { return "http://" + place_.host + ":" + std::to_string(place_.port); }
  void stop() { process_->stop(); }
  // A new process on the same port and models directory (after stop()).
  void start() {
    std::vector<std::string> argv = place_.prefix;
    for (const std::string& arg :
         {env("CALM_LLAMA_SERVER"), std::string("--models-dir"), dir_.string(),
          std::string("--models-max"), std::string("4"), std::string("--host"), place_.host,
          std::string("--port"), std::to_string(place_.port), std::string("-c"), std::string("256"),
          std::string("-np"), std::string("1"), std::string("-t"), std::string("1"),
          std::string("--no-webui"), std::string("--metrics")}) {
      argv.push_back(arg);
    }
    process_ = std::make_unique<ChildProcess>(argv, temp_path("router.log"));
    healthy_ = wait_healthy(place_.port, "/health", std::chrono::seconds(60), place_.host);
  }

  // The models the node itself says are loaded.
  std::set<std::string> loaded() const {
    httplib::Client client(place_.host, place_.port);
    const auto res = client.Get("/models");
    std::set<std::string> ids;
    if (!res || res->status != 200) {
      ADD_FAILURE() << "GET /models on the node: "
                    << (res ? std::to_string(res->status) + " " + res->body
                            : httplib::to_string(res.error()));
      return ids;
    }
    const nlohmann::json answer = nlohmann::json::parse(res->body);  // kept: the loop reads it
    for (const nlohmann::json& model : answer["data"]) {
      if (model["status"]["value"] == "loaded") ids.insert(model["id"].get<std::string>());
    }
    return ids;
  }

 private:
  std::filesystem::path dir_;
  NodePlace place_;
  std::unique_ptr<ChildProcess> process_;
  bool healthy_ = false;
};

// A single-model llama-server (an OpenAI-compatible server with a fixed
// model set: a node of kind openai) serving tiny-chatml under that name.
class FixedModelServer {
 public:
  FixedModelServer() : port_(free_port()) {
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{env("CALM_LLAMA_SERVER"), "-m", test_model("tiny-chatml.gguf"),
                                 "--alias", "tiny-chatml", "--host", "127.0.0.1", "--port",
                                 std::to_string(port_), "-c", "256", "-np", "1", "-t", "1",
                                 "--no-webui", "--metrics"},
        temp_path("fixed.log"));
    healthy_ = wait_healthy(port_, "/health", std::chrono::seconds(60));
  }
  bool healthy() const { return healthy_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  std::unique_ptr<ChildProcess> process_;
  bool healthy_ = false;
};

}  // namespace calm::testing
