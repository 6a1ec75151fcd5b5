// Slow clients against the real `calm serve`: connections that send part of
// a request and then nothing hold a socket and a coroutine, never one of the
// two HTTP threads, so everyone else is still served.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "support/process.h"
#include "support/raw_connection.h"
#include "support/test_env.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;
// A connection that has sent part of a request and then goes quiet.
using HalfSentRequest = testing::RawConnection;

// One tiny model, with `server` settings (a YAML flow mapping's inside).
std::string tiny_fleet(const std::string& server) {
  return "server: {" + server +
         "}\nmodels:\n  - id: tiny\n    gguf: " + testing::test_model("tiny-chatml.gguf") +
         "\n    context: 256\n    threads: 1\n";
}

TEST(SlowClients, SixtyFourHalfSentRequestsLeaveHealthAndChatServed) {
  CalmServer server(tiny_fleet("http_threads: 2"));
  std::vector<std::unique_ptr<HalfSentRequest>> slow;
  for (int i = 0; i < 64; ++i) {
    // Half of them stop inside the head, half inside the body.
    const std::string part =
        i % 2 == 0 ? "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le"
                   : "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"mod";
    slow.push_back(std::make_unique<HalfSentRequest>(server.port(), part));
    ASSERT_TRUE(slow.back()->connected()) << i;
  }
  auto client = server.client();
  client.set_read_timeout(10, 0);  // far longer than an answer takes; the slow ones wait 30-60 s
  auto health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  const std::string chat = json{
      {"model", "tiny"},
      {"messages", {{{"role", "user"}, {"content", "hi"}}}},
      {"max_tokens", 2}}.dump();
  auto answer = client.Post("/v1/chat/completions", chat, "application/json");
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200) << answer->body;
}

// Polls GET /health (bounded, 10 s) until it answers `status`.
httplib::Result health_until(const CalmServer& server, int status) {
  httplib::Result res = server.client().Get("/health");
  for (int i = 0; i < 200 && !(res && res->status == status); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    res = server.client().Get("/health");
  }
  return res;
}

TEST(SlowClients, PastMaxConnectionsANewConnectionGets503WithRetryAfterUntilOneCloses) {
  CalmServer server(tiny_fleet("max_connections: 4"));
  std::vector<std::unique_ptr<HalfSentRequest>> slow;
  for (int i = 0; i < 4; ++i) {
    slow.push_back(std::make_unique<HalfSentRequest>(server.port(), "GET /health HTTP/1.1\r\n"));
    ASSERT_TRUE(slow.back()->connected());
  }
  auto refused = health_until(server, 503);
  ASSERT_TRUE(refused);
  ASSERT_EQ(refused->status, 503) << refused->body;
  EXPECT_EQ(refused->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(refused->body)["error"]["code"], "too_many_connections");
  slow.pop_back();  // one closes: the next connection is served again
  auto served = health_until(server, 200);
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200);
}

}  // namespace
}  // namespace calm
