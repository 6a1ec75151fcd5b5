// What `calm bench suite` needs from the replay and the child process: each
// record carries the response id of its stream (to join the server's
// records) and the x-calm-cache header; the port comes from calm's
// "listening on" line only once that line is complete.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <csignal>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench/replayer.h"
#include "bench/serve_process.h"

namespace calm {
namespace {

using json = nlohmann::json;

std::string event(const json& data) {
  return "data: " + data.dump() + "\n\n";
}

TEST(SuiteReplay, RecordsCarryTheResponseIdAndTheCacheHeader) {
  std::signal(SIGPIPE, SIG_IGN);
  httplib::Server server;
  server.Post("/v1/chat/completions", [](const httplib::Request& req, httplib::Response& res) {
    const json body = json::parse(req.body);
    const std::string model = body["model"];
    res.set_header("x-calm-model", model);
    if (model == "hot") res.set_header("x-calm-cache", "hit");
    if (model == "cold") res.set_header("x-calm-cache", "miss");
    const json chunk = {{"id", "chatcmpl-" + model},
                        {"model", model},
                        {"choices", {{{"index", 0}, {"delta", {{"content", "hi"}}}}}}};
    const json last = {
        {"id", "chatcmpl-" + model},
        {"choices", {{{"index", 0}, {"delta", json::object()}, {"finish_reason", "stop"}}}}};
    res.set_content(event(chunk) + event(last) + "data: [DONE]\n\n", "text/event-stream");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread thread([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  std::vector<WorkloadRequest> workload(3);
  const char* models[] = {"hot", "cold", "plain"};
  for (size_t i = 0; i < 3; ++i) {
    workload[i].model = models[i];
    workload[i].messages = json::array({{{"role", "user"}, {"content", "x"}}});
  }
  ReplayOptions options;
  options.base_url = "http://127.0.0.1:" + std::to_string(port);
  options.concurrency = 1;
  Replayer replayer(options);
  const ReplayResult result = replayer.run(workload);
  server.stop();
  thread.join();

  ASSERT_EQ(result.records.size(), 3u);
  for (const RequestRecord& r : result.records) ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(result.records[0].response_id, "chatcmpl-hot");
  EXPECT_EQ(result.records[0].cache, "hit");
  EXPECT_EQ(result.records[1].response_id, "chatcmpl-cold");
  EXPECT_EQ(result.records[1].cache, "miss");
  EXPECT_EQ(result.records[2].cache, "");  // a server that does not say
}

TEST(SuiteServeProcess, PortComesFromACompleteListeningLine) {
  EXPECT_EQ(find_listening_port("info\ncalm: listening on http://127.0.0.1:4321\n"), 4321);
  EXPECT_EQ(find_listening_port("calm: listening on http://[::1]:80\r\n"), 80);
  EXPECT_FALSE(find_listening_port("calm: listening on http://127.0.0.1:43").has_value());
  EXPECT_FALSE(find_listening_port("calm: listening on http://127.0.0.1:x\n").has_value());
  EXPECT_FALSE(find_listening_port("starting\n").has_value());
}

TEST(SuiteServeProcess, AChildThatExitsEarlyIsAnErrorWithItsLog) {
  const std::string log = ::testing::TempDir() + "suite-serve-process.log";
  try {
    ServeProcess process({.executable = "/bin/sh",
                          .args = {"-c", "echo no models here; exit 3"},
                          .log_path = log,
                          .start_timeout = std::chrono::seconds(10)});
    FAIL() << "started";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("status 3"), std::string::npos) << what;
    EXPECT_NE(what.find("no models here"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace calm
