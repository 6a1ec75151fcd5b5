// The workload replayer against a fake OpenAI-compatible server: an
// httplib::Server on 127.0.0.1 (a port the kernel picks) that answers with
// canned event streams, chosen by the request's model name, and notes when
// each request arrived and how many were in flight.
#include "bench/replayer.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace calm {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string event(const json& data) {
  return "data: " + data.dump() + "\n\n";
}

std::string chat_chunk(const json& delta, const json& finish = nullptr) {
  return event({{"object", "chat.completion.chunk"},
                {"model", "body-model"},
                {"choices", {{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}}}});
}

const std::string kRole = chat_chunk({{"role", "assistant"}, {"content", ""}});
const std::string kUsage = event(
    {{"choices", json::array()}, {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 3}}}});
const std::string kDone = "data: [DONE]\n\n";

// A request as the fake server saw it.
struct Arrival {
  Clock::time_point at;
  std::string path;
  json body;
};

// Model names select the answer:
//   "slow"          holds the request 100 ms, then streams "Hello"
//   "held"          holds the request until two requests are in flight at
//                   once (at most 10 s), then streams "Hello"
//   "role-then-gap" sends the role chunk, waits 200 ms, then the text
//   "fail"          503 with an OpenAI-shaped error
//   "broken"        streams one chunk, then drops the connection
//   "error-event"   a 200 stream carrying an error event
//   "no-header"     streams "Hello" without the x-calm-model header
//   anything else   streams "Hello" at once
class FakeServer {
 public:
  explicit FakeServer(bool calm_state = false) {
    server_.new_task_queue = [] { return new httplib::ThreadPool(64); };
    server_.set_socket_options([this](int fd) {
      int yes = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
      listen_fd_ = fd;
    });
    const auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res);
    };
    server_.Post("/v1/chat/completions", handler);
    server_.Post("/v1/completions", handler);
    if (calm_state) {
      server_.Get("/v1/calm/state", [this](const httplib::Request&, httplib::Response& res) {
        res.set_content(json{{"models", {{"state_calls", ++state_calls_}}}}.dump(),
                        "application/json");
      });
    }
    port_ = server_.bind_to_any_port("127.0.0.1");
    ::listen(listen_fd_, 1024);  // wider than the backlog of 5 Debian's httplib uses
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    const auto deadline = Clock::now() + 2s;
    while (!server_.is_running() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  }
  ~FakeServer() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<Arrival> arrivals() {
    std::lock_guard lock(mutex_);
    auto out = arrivals_;
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.at < b.at; });
    return out;
  }
  int max_in_flight() {
    std::lock_guard lock(mutex_);
    return max_in_flight_;
  }

 private:
  void handle(const httplib::Request& req, httplib::Response& res) {
    const json body = json::parse(req.body, nullptr, false);
    const std::string model = body.value("model", "");
    {
      std::lock_guard lock(mutex_);
      arrivals_.push_back({Clock::now(), req.path, body});
      max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
    }
    arrived_.notify_all();
    if (model == "slow") std::this_thread::sleep_for(100ms);
    if (model == "held") {
      std::unique_lock lock(mutex_);
      arrived_.wait_for(lock, 10s, [&] { return max_in_flight_ >= 2; });
    }
    {
      std::lock_guard lock(mutex_);
      --in_flight_;
    }
    if (model != "no-header") res.set_header("x-calm-model", "served-" + model);

    std::vector<std::string> pieces;
    if (model == "fail") {
      res.status = 503;
      res.set_content(R"({"error": {"message": "all slots busy", "type": "server_error"}})",
                      "application/json");
      return;
    } else if (model == "broken") {
      pieces = {kRole, chat_chunk({{"content", "Hel"}}), "<drop>"};
    } else if (model == "error-event") {
      pieces = {kRole, event({{"error", {{"message", "decode failed"}}}}), kDone};
    } else if (req.path == "/v1/completions") {
      pieces = {event({{"model", "body-model"}, {"choices", {{{"index", 0}, {"text", "Once"}}}}}),
                event({{"choices", {{{"index", 0}, {"text", ""}, {"finish_reason", "length"}}}}}),
                kUsage, kDone};
    } else {
      pieces = {kRole};
      if (model == "role-then-gap") pieces.push_back("<gap>");
      pieces.insert(pieces.end(),
                    {chat_chunk({{"content", "Hel"}}), chat_chunk({{"content", "lo"}}),
                     chat_chunk(json::object(), "stop"), kUsage, kDone});
    }
    res.set_chunked_content_provider("text/event-stream",
                                     [pieces](size_t, httplib::DataSink& sink) {
                                       for (const std::string& piece : pieces) {
                                         if (piece == "<drop>") return false;
                                         if (piece == "<gap>") {
                                           std::this_thread::sleep_for(200ms);
                                           continue;
                                         }
                                         if (!sink.write(piece.data(), piece.size())) return false;
                                       }
                                       sink.done();
                                       return true;
                                     });
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::mutex mutex_;
  std::condition_variable arrived_;  // a request arrived (with mutex_)
  std::vector<Arrival> arrivals_;
  int in_flight_ = 0, max_in_flight_ = 0;
  int state_calls_ = 0;
};

WorkloadRequest chat(double t, const std::string& model = "") {
  WorkloadRequest r;
  r.t = t;
  r.model = model;
  r.messages = json::array({{{"role", "user"}, {"content", "hi"}}});
  r.max_tokens = 8;
  return r;
}

ReplayResult replay(const std::string& url, const std::vector<WorkloadRequest>& workload,
                    int concurrency = 8, bool ignore_eos = false) {
  ReplayOptions options;
  options.base_url = url;
  options.concurrency = concurrency;
  options.ignore_eos = ignore_eos;
  return Replayer(options).run(workload);
}

double ms_since(Clock::time_point start, Clock::time_point at) {
  return std::chrono::duration<double, std::milli>(at - start).count();
}

TEST(Replayer, RequestIsNotSentBeforeItsArrivalTime) {
  FakeServer server;
  const ReplayResult result = replay(server.url(), {chat(0), chat(0.3)});
  const auto arrivals = server.arrivals();
  ASSERT_EQ(arrivals.size(), 2u);
  EXPECT_GE(ms_since(result.started, arrivals[1].at), 300);
  EXPECT_GE(result.records[1].sent_ms, 300);
  // The first, due at once, did not wait for the second's time.
  EXPECT_LT(result.records[0].sent_ms, result.records[1].sent_ms);
}

TEST(Replayer, OpenLoopSendsOnScheduleWhileEarlierRequestsRun) {
  FakeServer server;
  // Each request is held until both are in flight: the second, due at 20 ms,
  // must be sent while the first still runs, not after it. Both are held, so
  // the test does not depend on which one reaches the server first (under a
  // sanitizer the first worker can start later than the second is due).
  const ReplayResult result = replay(server.url(), {chat(0, "held"), chat(0.02, "held")}, 2);
  ASSERT_EQ(server.arrivals().size(), 2u);
  EXPECT_EQ(server.max_in_flight(), 2);
  for (const auto& r : result.records) EXPECT_TRUE(r.ok()) << r.error;
}

TEST(Replayer, ConcurrencyBoundsRequestsInFlight) {
  FakeServer server;
  std::vector<WorkloadRequest> workload;
  for (int i = 0; i < 9; ++i) workload.push_back(chat(0, "slow"));
  const ReplayResult result = replay(server.url(), workload, 3);
  EXPECT_EQ(server.max_in_flight(), 3);
  for (const auto& r : result.records) EXPECT_TRUE(r.ok()) << r.error;
}

TEST(Replayer, QueueWaitCountsInLatency) {
  FakeServer server;
  std::vector<WorkloadRequest> workload;
  for (int i = 0; i < 6; ++i) workload.push_back(chat(0, "slow"));
  // Two at a time, 100 ms each: the last pair starts after ~200 ms of waiting.
  const ReplayResult result = replay(server.url(), workload, 2);
  double worst = 0;
  for (const auto& r : result.records) worst = std::max(worst, r.latency_ms);
  EXPECT_GE(worst, 290);
  EXPECT_GE(result.wall_s, 0.29);
}

TEST(Replayer, StreamedAnswerIsRecordedWithUsageAndServedModel) {
  FakeServer server;
  const ReplayResult result = replay(server.url(), {chat(0, "m3")});
  const RequestRecord& r = result.records[0];
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.text, "Hello");
  EXPECT_EQ(r.model, "m3");
  EXPECT_EQ(r.served_model, "served-m3");
  EXPECT_EQ(r.prompt_tokens, 5);
  EXPECT_EQ(r.completion_tokens, 3);
  ASSERT_TRUE(r.ttft_ms.has_value());
  EXPECT_LE(*r.ttft_ms, r.latency_ms);
}

TEST(Replayer, ServedModelFallsBackToTheAnswersModelField) {
  FakeServer server;
  const ReplayResult result = replay(server.url(), {chat(0, "no-header")});
  EXPECT_EQ(result.records[0].served_model, "body-model");
}

TEST(Replayer, TtftCountsTheFirstTextNotTheRoleChunk) {
  FakeServer server;
  const ReplayResult result = replay(server.url(), {chat(0, "role-then-gap")});
  const RequestRecord& r = result.records[0];
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_TRUE(r.ttft_ms.has_value());
  EXPECT_GE(*r.ttft_ms, 200);
}

TEST(Replayer, BodyAsksForGreedyStreamingWithUsage) {
  FakeServer server;
  replay(server.url(), {chat(0)}, 1, /*ignore_eos=*/true);
  const json body = server.arrivals().at(0).body;
  EXPECT_EQ(body["model"], "auto");
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  EXPECT_EQ(body["temperature"], 0);
  EXPECT_EQ(body["ignore_eos"], true);
  EXPECT_EQ(body["max_tokens"], 8);
  EXPECT_EQ(body["messages"][0]["content"], "hi");
}

TEST(Replayer, IgnoreEosIsOnlySentWhenAsked) {
  FakeServer server;
  replay(server.url(), {chat(0)});
  EXPECT_FALSE(server.arrivals().at(0).body.contains("ignore_eos"));
}

TEST(Replayer, PromptRequestsGoToCompletions) {
  FakeServer server;
  WorkloadRequest r;
  r.prompt = "Once upon";
  const ReplayResult result = replay(server.url() + "/v1", {r});
  EXPECT_EQ(server.arrivals().at(0).path, "/v1/completions");
  EXPECT_EQ(server.arrivals().at(0).body["prompt"], "Once upon");
  EXPECT_TRUE(result.records[0].ok()) << result.records[0].error;
  EXPECT_EQ(result.records[0].text, "Once");
}

TEST(Replayer, ErrorStatusIsRecordedWithTheMessage) {
  FakeServer server;
  const ReplayResult result = replay(server.url(), {chat(0, "fail"), chat(0, "m")});
  EXPECT_EQ(result.records[0].status, 503);
  EXPECT_NE(result.records[0].error.find("all slots busy"), std::string::npos)
      << result.records[0].error;
  EXPECT_FALSE(result.records[0].ok());
  EXPECT_TRUE(result.records[1].ok());
}

TEST(Replayer, RefusedConnectionIsRecordedAsStatusZero) {
  // A bound socket that never listens: connecting to it is refused.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  const ReplayResult result = replay(url, {chat(0), chat(0.01)});
  ::close(fd);
  for (const auto& r : result.records) {
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.error.find("connection failed"), std::string::npos) << r.error;
  }
}

TEST(Replayer, BrokenStreamIsRecordedAsStatusZero) {
  FakeServer server;
  const ReplayResult result = replay(server.url(), {chat(0, "broken"), chat(0.05, "m")}, 1);
  EXPECT_EQ(result.records[0].status, 0);
  EXPECT_NE(result.records[0].error.find("stream broke after HTTP 200"), std::string::npos)
      << result.records[0].error;
  // The same worker's connection still serves the next request.
  EXPECT_TRUE(result.records[1].ok()) << result.records[1].error;
}

TEST(Replayer, ErrorEventInA200StreamIsRecordedAsStatusZero) {
  FakeServer server;
  const ReplayResult result = replay(server.url(), {chat(0, "error-event")});
  EXPECT_EQ(result.records[0].status, 0);
  EXPECT_NE(result.records[0].error.find("decode failed"), std::string::npos)
      << result.records[0].error;
}

TEST(Replayer, OnRecordSeesEveryRequestOnce) {
  FakeServer server;
  ReplayOptions options;
  options.base_url = server.url();
  options.concurrency = 3;
  std::vector<size_t> done_counts;
  size_t last_errors = 0;
  options.on_record = [&](const RequestRecord&, size_t done, size_t errors) {
    done_counts.push_back(done);  // calls are serialised: no lock needed
    last_errors = errors;
  };
  Replayer(options).run({chat(0), chat(0, "fail"), chat(0), chat(0.01), chat(0.02, "fail")});
  EXPECT_EQ(done_counts, (std::vector<size_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(last_errors, 2u);
}

TEST(Replayer, CalmStateIsFetchedFromCalm) {
  FakeServer server(/*calm_state=*/true);
  ReplayOptions options;
  options.base_url = server.url();
  const auto state = Replayer(options).fetch_calm_state();
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ((*state)["models"]["state_calls"], 1);
}

TEST(Replayer, CalmStateIsAbsentFromOtherServers) {
  FakeServer server;
  ReplayOptions options;
  options.base_url = server.url();
  EXPECT_FALSE(Replayer(options).fetch_calm_state().has_value());
}

TEST(ReplayerUrl, TrailingV1AndSlashAreDropped) {
  const BaseUrl u = parse_bench_url("http://localhost:8081/proxy/v1/");
  EXPECT_EQ(u.host, "localhost");
  EXPECT_EQ(u.port, 8081);
  EXPECT_EQ(u.prefix, "/proxy");
}

TEST(ReplayerUrl, PortDefaultsTo80) {
  EXPECT_EQ(parse_bench_url("http://example").port, 80);
}

TEST(ReplayerUrl, HttpsIsAcceptedWithPort443) {
  const BaseUrl u = parse_bench_url("https://example/v1");
  EXPECT_TRUE(u.tls);
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(u.prefix, "");
}

TEST(ReplayerUrl, BadUrlsAreRejected) {
  for (const char* url : {"127.0.0.1:8080", "ftp://x:1", "http://:8080", "http://x:99999",
                          "http://x:8o", "http://u@x:1"}) {
    EXPECT_THROW(parse_bench_url(url), std::invalid_argument) << url;
  }
}

TEST(ReplayerUrl, ConcurrencyBelowOneIsRejected) {
  ReplayOptions options;
  options.base_url = "http://127.0.0.1:1";
  options.concurrency = 0;
  EXPECT_THROW(Replayer{options}, std::invalid_argument);
}

}  // namespace
}  // namespace calm
