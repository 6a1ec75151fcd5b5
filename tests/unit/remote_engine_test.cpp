// RemoteEngine against a fake OpenAI-compatible upstream: an httplib::Server
// on 127.0.0.1 (a port the kernel picks) serving canned responses.
#include "engines/remote_engine.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "config/fleet_config.h"
#include "registry/registry.h"

namespace calm {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A server writing to a connection the engine dropped must get EPIPE, not die.
const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

// The requests the fake upstream saw.
struct Seen {
  std::string path;
  json body;
  std::string authorization;
  std::string accept_encoding;
  int remote_port = 0;  // one per connection: requests on a kept-alive one share it
};

class FakeUpstream {
 public:
  FakeUpstream() {
    server_.set_tcp_nodelay(true);
    // One thread per concurrent stream (httplib's default pool is 8), and a
    // listen backlog wider than the 5 Debian's httplib compiles in, so a
    // burst of connects is neither queued behind slow streams nor dropped.
    server_.new_task_queue = [] { return new httplib::ThreadPool(64); };
    server_.set_socket_options([this](int fd) {
      int yes = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
      listen_fd_ = fd;
    });
  }
  ~FakeUpstream() { stop(); }

  httplib::Server& server() { return server_; }

  // Call after adding routes: httplib does not allow adding them while running.
  void start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    ::listen(listen_fd_, 1024);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    const auto deadline = Clock::now() + 2s;
    while (!server_.is_running() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    ASSERT_TRUE(server_.is_running());
  }

  void stop() {
    release();
    if (thread_.joinable()) {
      server_.stop();
      thread_.join();
    }
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  // Records a request; handlers call it first.
  void record(const httplib::Request& request) {
    std::lock_guard lock(mutex_);
    Seen seen;
    seen.path = request.path;
    seen.body = json::parse(request.body, nullptr, false);
    seen.authorization = request.get_header_value("Authorization");
    seen.accept_encoding = request.get_header_value("Accept-Encoding");
    seen.remote_port = request.remote_port;
    seen_.push_back(std::move(seen));
    seen_cv_.notify_all();
  }
  std::vector<Seen> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  // Connections the generation requests came on.
  size_t connections() {
    std::lock_guard lock(mutex_);
    std::set<int> ports;
    for (const Seen& seen : seen_) ports.insert(seen.remote_port);
    return ports.size();
  }
  // Waits until `n` generation requests arrived (or 5 s passed).
  bool wait_for_requests(size_t n) {
    std::unique_lock lock(mutex_);
    return seen_cv_.wait_for(lock, 5000ms, [&] { return seen_.size() >= n; });
  }

  // A handler that must hang calls this: it returns once released (at the
  // latest when the test ends) or after the limit.
  void hang(std::chrono::milliseconds limit = 5000ms) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, limit, [&] { return released_; });
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    cv_.notify_all();
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  int listen_fd_ = -1;  // set by the socket-options callback during bind
  std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable seen_cv_;
  bool released_ = false;
  std::vector<Seen> seen_;
};

// Streams pieces as separate writes (so as separate HTTP chunks), with a gap.
void serve_sse(httplib::Response& response, std::vector<std::string> pieces,
               std::chrono::milliseconds gap = 0ms) {
  response.set_chunked_content_provider(
      "text/event-stream", [pieces = std::move(pieces), gap](size_t, httplib::DataSink& sink) {
        for (const std::string& piece : pieces) {
          if (!sink.write(piece.data(), piece.size())) return false;
          if (gap > 0ms) std::this_thread::sleep_for(gap);
        }
        sink.done();
        return true;
      });
}

std::string event(const json& data) {
  return "data: " + data.dump() + "\n\n";
}

std::string chat_delta(const std::string& content) {
  return event({{"object", "chat.completion.chunk"},
                {"choices", {{{"index", 0}, {"delta", {{"content", content}}}}}}});
}

std::string chat_finish(const std::string& reason) {
  return event(
      {{"choices", {{{"index", 0}, {"delta", json::object()}, {"finish_reason", reason}}}}});
}

std::string usage(int prompt_tokens, int completion_tokens) {
  return event(
      {{"choices", json::array()},
       {"usage", {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens}}}});
}

const std::string kDone = "data: [DONE]\n\n";

// A complete, well-formed chat stream: "Hello world", usage 5 + 3.
std::vector<std::string> hello_stream() {
  return {event({{"choices",
                  {{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", nullptr}}}}}}}),
          chat_delta("Hel"),
          chat_delta("lo"),
          chat_delta(" world"),
          chat_finish("stop"),
          usage(5, 3),
          kDone};
}

struct Drained {
  std::vector<std::string> deltas;
  std::optional<GenerationResult> result;
  std::optional<EngineError> error;

  std::string text() const {
    std::string out;
    for (const auto& delta : deltas) out += delta;
    return out;
  }
};

// Reads a stream to its final event (or gives up after the limit).
Drained drain(GenerationStream& stream, std::chrono::milliseconds limit = 5000ms) {
  Drained out;
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    auto next = stream.next(50ms);
    if (!next) continue;
    if (auto* delta = std::get_if<GenerationStream::Delta>(&*next)) {
      out.deltas.push_back(delta->text);
    } else if (auto* result = std::get_if<GenerationResult>(&*next)) {
      out.result = *result;
      break;
    } else {
      out.error = std::get<EngineError>(*next);
      break;
    }
  }
  return out;
}

RemoteEngine::Options options_for(const std::string& url) {
  RemoteEngine::Options options;
  options.id = "remote-test";
  options.base_url = url;
  // Generous: the health check at load uses the connect timeout, and under
  // ThreadSanitizer beside other tests a fake upstream's first answer took
  // over a second (a load that failed the test on CI's machine kind).
  options.connect_timeout = 5000ms;
  options.read_timeout = 3000ms;
  return options;
}

GenerationRequest chat(const std::string& text) {
  GenerationRequest request;
  request.messages = {{"system", "be brief"}, {"user", text}};
  return request;
}

double elapsed_ms(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Routes /health and a chat endpoint answering with the given handler.
class RemoteEngineTest : public ::testing::Test {
 protected:
  void serve_chat(std::function<void(const httplib::Request&, httplib::Response&)> handler) {
    upstream_.server().Get("/health", [](const httplib::Request&, httplib::Response& response) {
      response.set_content(R"({"status":"ok"})", "application/json");
    });
    upstream_.server().Post("/v1/chat/completions", [this, handler](const httplib::Request& request,
                                                                    httplib::Response& response) {
      upstream_.record(request);
      handler(request, response);
    });
    upstream_.server().Post("/v1/completions", [this, handler](const httplib::Request& request,
                                                               httplib::Response& response) {
      upstream_.record(request);
      handler(request, response);
    });
    upstream_.start();
  }

  // An engine on the fake upstream, loaded.
  std::unique_ptr<RemoteEngine> loaded_engine(RemoteEngine::Options options) {
    auto engine = std::make_unique<RemoteEngine>(std::move(options));
    engine->load();
    return engine;
  }
  std::unique_ptr<RemoteEngine> loaded_engine() {
    return loaded_engine(options_for(upstream_.url()));
  }

  // Serves one canned status + body and returns the failure it becomes.
  EngineError failure_for(int status, const std::string& body) {
    serve_chat([status, body](const httplib::Request&, httplib::Response& response) {
      response.status = status;
      response.set_content(body, "application/json");
    });
    auto engine = loaded_engine();
    Drained out = drain(*engine->submit(chat("hi")));
    EXPECT_TRUE(out.error.has_value());
    return out.error.value_or(EngineError(EngineError::Kind::kInternal, "no error"));
  }

  FakeUpstream upstream_;
};

TEST_F(RemoteEngineTest, StreamsDeltasInOrder) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response, hello_stream(), 5ms);
  });
  auto engine = loaded_engine();
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
  EXPECT_EQ(out.deltas, (std::vector<std::string>{"Hel", "lo", " world"}));
  EXPECT_EQ(out.result->text, "Hello world");
  EXPECT_EQ(out.result->finish_reason, "stop");
  EXPECT_EQ(out.result->prompt_tokens, 5);
  EXPECT_EQ(out.result->completion_tokens, 3);
  EXPECT_GT(out.result->time_to_first_token_ms, 0);
  EXPECT_GE(out.result->total_ms, out.result->time_to_first_token_ms);
  EXPECT_TRUE(out.result->token_logprobs.empty());
}

TEST_F(RemoteEngineTest, SendsAStreamingChatRequest) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response, hello_stream());
  });
  auto engine = loaded_engine();
  drain(*engine->submit(chat("hi")));

  const auto seen = upstream_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/v1/chat/completions");
  const json& body = seen[0].body;
  EXPECT_EQ(body["model"], "remote-test");  // no upstream_model: the id
  EXPECT_EQ(body["messages"], json::parse(R"([{"role":"system","content":"be brief"},
                                              {"role":"user","content":"hi"}])"));
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  // SamplingParams defaults, with floats sent as the decimals they were written as.
  EXPECT_EQ(body["temperature"], 0.8);
  EXPECT_EQ(body["top_p"], 0.95);
  EXPECT_EQ(body["top_k"], 40);
  EXPECT_EQ(body["max_tokens"], 256);
  EXPECT_FALSE(body.contains("seed"));
  EXPECT_FALSE(body.contains("stop"));
  EXPECT_FALSE(body.contains("ignore_eos"));
  EXPECT_FALSE(body.contains("prompt"));
  EXPECT_EQ(seen[0].accept_encoding, "identity");
  EXPECT_EQ(seen[0].authorization, "");
}

TEST_F(RemoteEngineTest, OptionalSamplingFieldsAreSentOnlyWhenSet) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response, hello_stream());
  });
  RemoteEngine::Options options = options_for(upstream_.url());
  options.upstream_model = "qwen2.5-7b";
  auto engine = loaded_engine(options);
  GenerationRequest request = chat("hi");
  request.sampling.temperature = 0;
  request.sampling.top_k = 0;
  request.sampling.seed = 7;
  request.sampling.max_tokens = 12;
  request.sampling.stop = {"\n", "END"};
  request.sampling.ignore_eos = true;
  drain(*engine->submit(request));

  const auto seen = upstream_.seen();
  ASSERT_EQ(seen.size(), 1u);
  const json& body = seen[0].body;
  EXPECT_EQ(body["model"], "qwen2.5-7b");
  EXPECT_EQ(body["temperature"], 0.0);
  EXPECT_FALSE(body.contains("top_k"));
  EXPECT_EQ(body["seed"], 7);
  EXPECT_EQ(body["max_tokens"], 12);
  EXPECT_EQ(body["stop"], json::parse(R"(["\n","END"])"));
  EXPECT_EQ(body["ignore_eos"], true);
}

TEST_F(RemoteEngineTest, PromptRequestUsesCompletionsEndpointAndText) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response,
              {event({{"choices", {{{"index", 0}, {"text", "Once"}, {"finish_reason", nullptr}}}}}),
               event({{"choices", {{{"index", 0}, {"text", " upon"}, {"finish_reason", "length"}}}},
                      {"usage", {{"prompt_tokens", 2}, {"completion_tokens", 2}}}}),
               kDone});
  });
  auto engine = loaded_engine();
  GenerationRequest request;
  request.prompt = "Tell me";
  Drained out = drain(*engine->submit(request));
  ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
  EXPECT_EQ(out.deltas, (std::vector<std::string>{"Once", " upon"}));
  EXPECT_EQ(out.result->finish_reason, "length");
  EXPECT_EQ(out.result->prompt_tokens, 2);

  const auto seen = upstream_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/v1/completions");
  EXPECT_EQ(seen[0].body["prompt"], "Tell me");
  EXPECT_FALSE(seen[0].body.contains("messages"));
}

TEST_F(RemoteEngineTest, EventsSplitAcrossChunksAreReassembled) {
  std::string whole;
  for (const std::string& piece : hello_stream()) whole += piece;
  std::vector<std::string> pieces;  // 3 bytes per write, 1 ms apart
  for (size_t pos = 0; pos < whole.size(); pos += 3) pieces.push_back(whole.substr(pos, 3));
  serve_chat([pieces](const httplib::Request&, httplib::Response& response) {
    serve_sse(response, pieces, 1ms);
  });
  auto engine = loaded_engine();
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
  EXPECT_EQ(out.text(), "Hello world");
  EXPECT_EQ(out.result->text, "Hello world");
  EXPECT_EQ(out.result->completion_tokens, 3);
}

TEST_F(RemoteEngineTest, InvalidUtf8BecomesReplacementCharacter) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    // Raw bytes in the JSON string: a lone 0xFF and a truncated 3-byte lead.
    serve_sse(response, {"data: {\"choices\":[{\"delta\":{\"content\":\"a\xFF"
                         "b\"}}]}\n\n",
                         "data: {\"choices\":[{\"delta\":{\"content\":\"\xE2\x82\"}}]}\n\n",
                         chat_delta("caf\xC3\xA9"), chat_finish("stop"), kDone});
  });
  auto engine = loaded_engine();
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
  EXPECT_EQ(out.deltas, (std::vector<std::string>{"a\xEF\xBF\xBD"
                                                  "b",
                                                  "\xEF\xBF\xBD", "caf\xC3\xA9"}));
  EXPECT_EQ(out.result->text, out.text());
}

TEST_F(RemoteEngineTest, MissingUsageCountsContentChunks) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response,
              {chat_delta("a"), chat_delta("b"), chat_delta("c"), chat_finish("stop"), kDone});
  });
  auto engine = loaded_engine();
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
  EXPECT_EQ(out.result->prompt_tokens, 0);
  EXPECT_EQ(out.result->completion_tokens, 3);
}

TEST_F(RemoteEngineTest, UpstreamErrorBecomesUpstreamKind) {
  const EngineError error = failure_for(
      500, R"({"error":{"code":500,"message":"model exploded","type":"server_error"}})");
  EXPECT_EQ(error.kind(), EngineError::Kind::kUpstream);
  EXPECT_NE(std::string(error.what()).find("500"), std::string::npos) << error.what();
  EXPECT_NE(std::string(error.what()).find("model exploded"), std::string::npos) << error.what();
  EXPECT_NE(std::string(error.what()).find("remote-test"), std::string::npos) << error.what();
}

TEST_F(RemoteEngineTest, OllamaStyleErrorMessageIsKept) {
  const EngineError error = failure_for(404, R"({"error":"model 'x' not found"})");
  EXPECT_EQ(error.kind(), EngineError::Kind::kUpstream);
  EXPECT_NE(std::string(error.what()).find("model 'x' not found"), std::string::npos);
}

TEST_F(RemoteEngineTest, ContextOverflowBecomesContextOverflowKind) {
  const EngineError error = failure_for(
      400,
      R"({"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}})");
  EXPECT_EQ(error.kind(), EngineError::Kind::kContextOverflow);
  EXPECT_NE(std::string(error.what()).find("exceeds the available context size"),
            std::string::npos);
}

TEST_F(RemoteEngineTest, VllmContextOverflowBecomesContextOverflowKind) {
  const EngineError error = failure_for(
      400,
      R"({"object":"error","message":"This model's maximum context length is 2048 tokens. However, you requested 4000 tokens.","type":"BadRequestError","code":400})");
  EXPECT_EQ(error.kind(), EngineError::Kind::kContextOverflow);
}

TEST_F(RemoteEngineTest, Upstream503BecomesUnavailableKind) {
  const EngineError error = failure_for(503, R"({"error":{"message":"Loading model"}})");
  EXPECT_EQ(error.kind(), EngineError::Kind::kUnavailable);
  EXPECT_NE(std::string(error.what()).find("Loading model"), std::string::npos);
}

TEST_F(RemoteEngineTest, NonJsonErrorBodyIsQuoted) {
  const EngineError error = failure_for(502, "<html>Bad Gateway</html>");
  EXPECT_EQ(error.kind(), EngineError::Kind::kUpstream);
  EXPECT_NE(std::string(error.what()).find("Bad Gateway"), std::string::npos);
}

TEST_F(RemoteEngineTest, MalformedEventBecomesUpstreamKind) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response,
              {chat_delta("ok"), "data: {\"choices\": [oops\n\n", chat_delta("late"), kDone});
  });
  auto engine = loaded_engine();
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->kind(), EngineError::Kind::kUpstream);
  EXPECT_NE(std::string(out.error->what()).find("malformed"), std::string::npos);
  EXPECT_EQ(out.deltas, std::vector<std::string>{"ok"});
}

TEST_F(RemoteEngineTest, MidStreamErrorEventBecomesUpstreamKind) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    // llama-server's bare "error:" line.
    serve_sse(response,
              {chat_delta("ok"), "error: {\"code\":500,\"message\":\"slot died\"}\n\n", kDone});
  });
  auto engine = loaded_engine();
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->kind(), EngineError::Kind::kUpstream);
  EXPECT_NE(std::string(out.error->what()).find("slot died"), std::string::npos);
}

TEST_F(RemoteEngineTest, ErrorObjectInDataBecomesUpstreamKind) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    // What llama-server sent (no [DONE] after it) when its chat output parser
    // failed on a random model's tokens; vLLM reports failures the same way.
    serve_sse(response,
              {chat_delta("ok"), event({{"error",
                                         {{"code", 500},
                                          {"message",
                                           "The model produced output that does not match "
                                           "the expected peg-native format"},
                                          {"type", "server_error"}}}})});
  });
  auto engine = loaded_engine();
  Drained out = drain(*engine->submit(chat("hi")));
  EXPECT_EQ(out.deltas, std::vector<std::string>{"ok"});
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->kind(), EngineError::Kind::kUpstream);
  EXPECT_NE(std::string(out.error->what()).find("peg-native format"), std::string::npos);
  EXPECT_NE(std::string(out.error->what()).find("mid-stream (code 500)"), std::string::npos)
      << out.error->what();
}

TEST_F(RemoteEngineTest, StreamEndingBeforeFinishIsUpstreamError) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response, {chat_delta("half")});
  });
  auto engine = loaded_engine();
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->kind(), EngineError::Kind::kUpstream);
}

TEST_F(RemoteEngineTest, GarbageAnswerBecomesUpstreamKind) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    response.set_content(std::string("\x00\xFF\x10garbage\xC3", 11), "text/plain");
  });
  auto engine = loaded_engine();
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->kind(), EngineError::Kind::kUpstream);
}

TEST_F(RemoteEngineTest, NonStreamedJsonAnswerIsAccepted) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"({"choices":[{"index":0,"message":{"role":"assistant","content":"whole"},
                             "finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":1}})",
                         "application/json");
  });
  auto engine = loaded_engine();
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
  EXPECT_EQ(out.deltas, std::vector<std::string>{"whole"});
  EXPECT_EQ(out.result->finish_reason, "length");
  EXPECT_EQ(out.result->completion_tokens, 1);
}

TEST_F(RemoteEngineTest, ReadTimeoutBecomesTimeoutKind) {
  serve_chat([this](const httplib::Request&, httplib::Response& response) {
    upstream_.hang();
    response.set_content("{}", "application/json");
  });
  RemoteEngine::Options options = options_for(upstream_.url());
  options.read_timeout = 300ms;
  auto engine = loaded_engine(options);
  const auto start = Clock::now();
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->kind(), EngineError::Kind::kTimeout);
  EXPECT_TRUE(out.error->backend_failure());
  EXPECT_NE(std::string(out.error->what()).find(upstream_.url()), std::string::npos);
  EXPECT_NE(std::string(out.error->what()).find("Read"), std::string::npos) << out.error->what();
  EXPECT_LT(elapsed_ms(start), 4000);  // the 300 ms timeout, not a hang (drain gives up at 5 s)
}

TEST_F(RemoteEngineTest, SilenceMidStreamBecomesUnavailableKind) {
  serve_chat([this](const httplib::Request&, httplib::Response& response) {
    response.set_chunked_content_provider("text/event-stream",
                                          [this](size_t, httplib::DataSink& sink) {
                                            const std::string first = chat_delta("first");
                                            sink.write(first.data(), first.size());
                                            upstream_.hang();
                                            return false;
                                          });
  });
  RemoteEngine::Options options = options_for(upstream_.url());
  options.read_timeout = 300ms;
  auto engine = loaded_engine(options);
  Drained out = drain(*engine->submit(chat("hi")));
  EXPECT_EQ(out.deltas, std::vector<std::string>{"first"});
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->kind(), EngineError::Kind::kUnavailable);
}

TEST_F(RemoteEngineTest, CancelStopsUpstreamRequest) {
  std::atomic<bool> upstream_saw_disconnect{false};
  serve_chat([&](const httplib::Request&, httplib::Response& response) {
    response.set_chunked_content_provider(
        "text/event-stream", [&](size_t, httplib::DataSink& sink) {
          const std::string piece = chat_delta("tok");
          const auto deadline = Clock::now() + 5s;
          while (Clock::now() < deadline) {  // an endless generation
            if (!sink.write(piece.data(), piece.size())) {
              upstream_saw_disconnect = true;
              return false;
            }
            std::this_thread::sleep_for(10ms);
          }
          return false;
        });
  });
  auto engine = loaded_engine();
  auto stream = engine->submit(chat("hi"));
  auto first = stream->next(2000ms);
  ASSERT_TRUE(first && std::holds_alternative<GenerationStream::Delta>(*first));

  const auto start = Clock::now();
  stream->cancel();
  Drained out = drain(*stream, 4000ms);
  ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
  EXPECT_EQ(out.result->finish_reason, "cancelled");
  EXPECT_EQ(out.result->text.substr(0, 3), "tok");
  EXPECT_LT(elapsed_ms(start), 2500);  // not the 5 s the upstream would stream for
  EXPECT_EQ(out.result->completion_tokens, static_cast<int>(out.result->text.size() / 3));

  const auto deadline = Clock::now() + 2s;
  while (!upstream_saw_disconnect && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(upstream_saw_disconnect);
}

TEST_F(RemoteEngineTest, CancelWhileUpstreamIsSilentFinishesPromptly) {
  serve_chat([this](const httplib::Request&, httplib::Response& response) {
    upstream_.hang();  // e.g. still reading a long prompt
    serve_sse(response, hello_stream());
  });
  RemoteEngine::Options options = options_for(upstream_.url());
  options.read_timeout = 10000ms;
  auto engine = loaded_engine(options);
  auto stream = engine->submit(chat("hi"));
  std::this_thread::sleep_for(100ms);

  const auto start = Clock::now();
  stream->cancel();
  Drained out = drain(*stream, 8000ms);
  ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
  EXPECT_EQ(out.result->finish_reason, "cancelled");
  EXPECT_EQ(out.result->text, "");
  EXPECT_LT(elapsed_ms(start), 5000);  // not the 10 s read timeout
}

TEST_F(RemoteEngineTest, DestructorAbortsInFlightRequests) {
  serve_chat([this](const httplib::Request&, httplib::Response& response) {
    upstream_.hang();
    serve_sse(response, hello_stream());
  });
  RemoteEngine::Options options = options_for(upstream_.url());
  options.read_timeout = 10000ms;
  auto engine = loaded_engine(options);
  auto stream = engine->submit(chat("hi"));
  std::this_thread::sleep_for(100ms);

  const auto start = Clock::now();
  engine.reset();
  EXPECT_LT(elapsed_ms(start), 5000);  // not the 10 s read timeout
  ASSERT_TRUE(stream->closed());
  Drained out = drain(*stream, 100ms);
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->kind(), EngineError::Kind::kUnavailable);
  EXPECT_NE(std::string(out.error->what()).find("stopping"), std::string::npos);
}

TEST_F(RemoteEngineTest, ConcurrentRequestsAllFinish) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response, hello_stream(), 2ms);
  });
  auto engine = loaded_engine();
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (int i = 0; i < 16; ++i) streams.push_back(engine->submit(chat("hi")));
  for (auto& stream : streams) {
    Drained out = drain(*stream);
    ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
    EXPECT_EQ(out.result->text, "Hello world");
  }
}

TEST_F(RemoteEngineTest, StatsCountCallsInFlightAndEnded) {
  serve_chat([this](const httplib::Request& request, httplib::Response& response) {
    if (request.body.find("hang") != std::string::npos) upstream_.hang();
    serve_sse(response, hello_stream());
  });
  auto engine = loaded_engine();
  drain(*engine->submit(chat("hi")));
  auto hanging = engine->submit(chat("hang"));
  std::this_thread::sleep_for(50ms);
  EngineStats stats = engine->stats();
  EXPECT_EQ(stats.slots_busy, 1);
  EXPECT_EQ(stats.completed, 1u);

  hanging->cancel();
  drain(*hanging);
  const auto deadline = Clock::now() + 2s;
  while (engine->stats().completed < 2 && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  stats = engine->stats();
  EXPECT_EQ(stats.completed, 2u);
  EXPECT_EQ(stats.cancelled, 1u);
  EXPECT_EQ(stats.slots_busy, 0);
}

TEST_F(RemoteEngineTest, BearerTokenIsSent) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response, hello_stream());
  });
  RemoteEngine::Options options = options_for(upstream_.url());
  options.api_key = "sk-test";
  auto engine = loaded_engine(options);
  drain(*engine->submit(chat("hi")));
  const auto seen = upstream_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].authorization, "Bearer sk-test");
}

// OpenAI quotes a wrong key back ("Incorrect API key provided: sk-...");
// what calm says reaches clients, its log and /v1/calm/state.
TEST_F(RemoteEngineTest, AnUpstreamThatQuotesTheApiKeyNeverGetsItPassedOn) {
  const std::string key = "sk-secret-upstream-key-42";
  const std::string quoted =
      R"({"error":{"message":"Incorrect API key provided: )" + key +
      R"(. You can find your API key at ...","type":"invalid_request_error"}})";
  // The handlers own copies of what they send: ThreadSanitizer cannot see
  // that the reply over the socket orders their reads before this test's
  // strings are freed, so references to the test's locals read as a race.
  auto ready = std::make_shared<std::atomic<bool>>(false);
  upstream_.server().Get("/health",
                         [ready, quoted](const httplib::Request&, httplib::Response& response) {
                           if (!*ready) response.status = 503;
                           response.set_content(*ready ? "{}" : quoted, "application/json");
                         });
  upstream_.server().Post("/v1/chat/completions",
                          [quoted](const httplib::Request&, httplib::Response& response) {
                            response.status = 401;
                            response.set_content(quoted, "application/json");
                          });
  upstream_.start();
  RemoteEngine::Options options = options_for(upstream_.url());
  options.api_key = key;
  RemoteEngine engine(options);
  const EngineHealth health = engine.health();
  EXPECT_FALSE(health.ok);
  EXPECT_EQ(health.detail.find(key), std::string::npos) << health.detail;
  EXPECT_NE(health.detail.find("Incorrect API key provided: [api_key]"), std::string::npos)
      << health.detail;

  *ready = true;
  engine.load();
  Drained out = drain(*engine.submit(chat("hi")));
  ASSERT_TRUE(out.error.has_value());
  const std::string what = out.error->what();
  EXPECT_EQ(what.find(key), std::string::npos) << what;
  EXPECT_NE(what.find("[api_key]"), std::string::npos) << what;
}

TEST_F(RemoteEngineTest, PathPrefixIsKeptAndTrailingV1Dropped) {
  upstream_.server().Get("/prefix/health", [](const httplib::Request&, httplib::Response& r) {
    r.set_content("{}", "application/json");
  });
  upstream_.server().Post("/prefix/v1/chat/completions",
                          [this](const httplib::Request& request, httplib::Response& response) {
                            upstream_.record(request);
                            serve_sse(response, hello_stream());
                          });
  upstream_.start();
  auto engine = loaded_engine(options_for(upstream_.url() + "/prefix/v1/"));
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
  EXPECT_EQ(out.result->text, "Hello world");
}

TEST_F(RemoteEngineTest, HealthUsesHealthEndpoint) {
  serve_chat([](const httplib::Request&, httplib::Response&) {});
  RemoteEngine engine(options_for(upstream_.url()));
  const EngineHealth health = engine.health();
  EXPECT_TRUE(health.ok) << health.detail;
  EXPECT_NE(health.detail.find("/health"), std::string::npos);
}

TEST_F(RemoteEngineTest, HealthFallsBackToModelsList) {
  // Ollama: no /health, but /v1/models.
  upstream_.server().Get("/v1/models", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"({"object":"list","data":[{"id":"llama3:latest"},{"id":"qwen2"}]})",
                         "application/json");
  });
  upstream_.start();
  RemoteEngine engine(options_for(upstream_.url()));
  const EngineHealth health = engine.health();
  EXPECT_TRUE(health.ok) << health.detail;
  EXPECT_NE(health.detail.find("llama3:latest"), std::string::npos) << health.detail;
  EXPECT_NO_THROW(engine.load());
  EXPECT_TRUE(engine.loaded());
}

TEST_F(RemoteEngineTest, HealthWhileUpstreamLoadsIsNotOk) {
  upstream_.server().Get("/health", [](const httplib::Request&, httplib::Response& response) {
    response.status = 503;
    response.set_content(R"({"error":{"code":503,"message":"Loading model"}})", "application/json");
  });
  upstream_.start();
  RemoteEngine engine(options_for(upstream_.url()));
  const EngineHealth health = engine.health();
  EXPECT_FALSE(health.ok);
  EXPECT_NE(health.detail.find("Loading model"), std::string::npos) << health.detail;
  EXPECT_THROW(engine.load(), EngineError);
  EXPECT_FALSE(engine.loaded());
}

TEST_F(RemoteEngineTest, HealthWithoutHealthOrModelsIsNotOk) {
  upstream_.start();  // answers 404 to everything
  RemoteEngine engine(options_for(upstream_.url()));
  const EngineHealth health = engine.health();
  EXPECT_FALSE(health.ok);
  EXPECT_NE(health.detail.find("404"), std::string::npos) << health.detail;
}

TEST_F(RemoteEngineTest, UnreachableRemoteFailsLoadWithIdAndUrl) {
  upstream_.start();
  const std::string url = upstream_.url();
  upstream_.stop();  // the port is closed now: connections are refused

  RemoteEngine engine(options_for(url));
  EXPECT_FALSE(engine.health().ok);
  try {
    engine.load();
    FAIL() << "load() did not throw";
  } catch (const EngineError& error) {
    EXPECT_EQ(error.kind(), EngineError::Kind::kUnavailable);
    EXPECT_NE(std::string(error.what()).find("remote-test"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find(url), std::string::npos) << error.what();
  }
  EXPECT_FALSE(engine.loaded());
}

TEST_F(RemoteEngineTest, ConnectionFailureFailsStreamAsUnavailable) {
  serve_chat([](const httplib::Request&, httplib::Response&) {});
  auto engine = loaded_engine();
  upstream_.stop();
  Drained out = drain(*engine->submit(chat("hi")));
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->kind(), EngineError::Kind::kUnavailable);
  EXPECT_NE(std::string(out.error->what()).find(upstream_.url()), std::string::npos);
  EXPECT_NE(std::string(out.error->what()).find("Connection"), std::string::npos)
      << out.error->what();
}

TEST_F(RemoteEngineTest, HttpsToAPlainHttpServerFailsWithATlsError) {
  serve_chat([](const httplib::Request&, httplib::Response&) {});
  RemoteEngine engine(options_for("https://127.0.0.1:" + std::to_string(upstream_.port())));
  try {
    engine.load();
    FAIL() << "load() did not throw";
  } catch (const EngineError& error) {
    EXPECT_EQ(error.kind(), EngineError::Kind::kUnavailable);
    EXPECT_NE(std::string(error.what()).find("TLS"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(engine.loaded());
}

TEST_F(RemoteEngineTest, MalformedBaseUrlsAreRejected) {
  for (const char* url :
       {"127.0.0.1:8080", "ftp://host", "http://", "http://host:0", "http://host:99999",
        "http://host:80x", "http://u:p@host", "http://host/?q=1", "http://[::1", "https://"}) {
    RemoteEngine engine(options_for(url));
    EXPECT_THROW(engine.load(), EngineError) << url;
    EXPECT_FALSE(engine.health().ok) << url;
  }
}

TEST_F(RemoteEngineTest, SubmitRequiresLoad) {
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response, hello_stream());
  });
  RemoteEngine engine(options_for(upstream_.url()));
  EXPECT_FALSE(engine.loaded());
  EXPECT_THROW(engine.submit(chat("hi")), EngineError);
  engine.load();
  EXPECT_TRUE(engine.loaded());
  EXPECT_TRUE(drain(*engine.submit(chat("hi"))).result);
  engine.unload();
  EXPECT_FALSE(engine.loaded());
  EXPECT_THROW(engine.submit(chat("hi")), EngineError);
}

// --- workers, kept-alive connections, cancellation --------------------------

TEST_F(RemoteEngineTest, SequentialRequestsReuseOneKeptAliveConnection) {
  upstream_.server().set_keep_alive_max_count(100);
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response, hello_stream());
  });
  auto engine = loaded_engine();
  for (int i = 0; i < 6; ++i) {
    Drained out = drain(*engine->submit(chat("hi")));
    ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
    EXPECT_EQ(out.result->text, "Hello world");
  }
  EXPECT_EQ(upstream_.seen().size(), 6u);
  EXPECT_EQ(upstream_.connections(), 1u);
}

TEST_F(RemoteEngineTest, RequestAfterTheUpstreamClosedAnIdleConnectionSucceeds) {
  // The upstream drops a kept-alive connection as soon as it is idle, as
  // servers do after their keep-alive timeout.
  upstream_.server().set_keep_alive_timeout(0);
  serve_chat([](const httplib::Request&, httplib::Response& response) {
    serve_sse(response, hello_stream());
  });
  auto engine = loaded_engine();
  for (int i = 0; i < 3; ++i) {
    Drained out = drain(*engine->submit(chat("hi")));
    ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
    EXPECT_EQ(out.result->text, "Hello world");
  }
}

TEST_F(RemoteEngineTest, NoMoreExchangesThanWorkersAreInFlight) {
  serve_chat([this](const httplib::Request&, httplib::Response& response) {
    upstream_.hang();
    serve_sse(response, hello_stream());
  });
  RemoteEngine::Options options = options_for(upstream_.url());
  options.workers = 2;
  options.read_timeout = 10000ms;
  auto engine = loaded_engine(options);
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (int i = 0; i < 5; ++i) streams.push_back(engine->submit(chat("hi")));
  ASSERT_TRUE(upstream_.wait_for_requests(2));
  const EngineStats stats = engine->stats();
  EXPECT_EQ(stats.slots_total, 2);
  EXPECT_EQ(stats.slots_busy, 2);
  EXPECT_EQ(stats.queued, 3);
  EXPECT_EQ(upstream_.seen().size(), 2u);

  upstream_.release();
  for (auto& stream : streams) {
    Drained out = drain(*stream);
    ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
    EXPECT_EQ(out.result->text, "Hello world");
  }
  EXPECT_EQ(upstream_.seen().size(), 5u);
  EXPECT_LE(upstream_.connections(), 2u);
}

// An endless generation, stopped only by the engine dropping the connection.
void serve_endless(httplib::Response& response) {
  response.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
    const std::string piece = chat_delta("tok");
    const auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      if (!sink.write(piece.data(), piece.size())) return false;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  });
}

TEST_F(RemoteEngineTest, CancelFreesTheWorkerForTheNextGeneration) {
  serve_chat([](const httplib::Request& request, httplib::Response& response) {
    if (request.body.find("endless") != std::string::npos) return serve_endless(response);
    serve_sse(response, hello_stream());
  });
  RemoteEngine::Options options = options_for(upstream_.url());
  options.workers = 1;
  auto engine = loaded_engine(options);
  auto endless = engine->submit(chat("endless"));
  auto next = engine->submit(chat("hi"));  // queued behind it: one worker
  auto first = endless->next(2000ms);
  ASSERT_TRUE(first && std::holds_alternative<GenerationStream::Delta>(*first));
  EXPECT_EQ(engine->stats().queued, 1);

  endless->cancel();
  Drained cancelled = drain(*endless);
  ASSERT_TRUE(cancelled.result);
  EXPECT_EQ(cancelled.result->finish_reason, "cancelled");
  Drained out = drain(*next);
  ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
  EXPECT_EQ(out.result->text, "Hello world");
}

TEST_F(RemoteEngineTest, CancelWhileQueuedFinishesWithoutReachingTheUpstream) {
  serve_chat([this](const httplib::Request&, httplib::Response& response) {
    upstream_.hang();
    serve_sse(response, hello_stream());
  });
  RemoteEngine::Options options = options_for(upstream_.url());
  options.workers = 1;
  options.read_timeout = 10000ms;
  auto engine = loaded_engine(options);
  auto busy = engine->submit(chat("busy"));
  ASSERT_TRUE(upstream_.wait_for_requests(1));
  auto queued = engine->submit(chat("queued"));
  queued->cancel();
  Drained out = drain(*queued, 3000ms);
  ASSERT_TRUE(out.result) << (out.error ? out.error->what() : "timed out");
  EXPECT_EQ(out.result->finish_reason, "cancelled");
  EXPECT_EQ(out.result->text, "");
  EXPECT_TRUE(busy->closed() == false);  // the worker is still on the first one

  upstream_.release();
  EXPECT_TRUE(drain(*busy).result);
  EXPECT_EQ(upstream_.seen().size(), 1u);
}

TEST_F(RemoteEngineTest, UnloadFailsQueuedAndRunningGenerationsAndJoins) {
  serve_chat([this](const httplib::Request&, httplib::Response& response) {
    upstream_.hang();
    serve_sse(response, hello_stream());
  });
  RemoteEngine::Options options = options_for(upstream_.url());
  options.workers = 1;
  options.read_timeout = 10000ms;
  auto engine = loaded_engine(options);
  auto running = engine->submit(chat("running"));
  ASSERT_TRUE(upstream_.wait_for_requests(1));
  auto queued = engine->submit(chat("queued"));

  engine->unload();  // returns once the worker and the watcher are joined
  EXPECT_FALSE(engine->loaded());
  EXPECT_EQ(engine->stats().slots_total, 0);
  for (auto* stream : {running.get(), queued.get()}) {
    ASSERT_TRUE(stream->closed());
    Drained out = drain(*stream, 100ms);
    ASSERT_TRUE(out.error);
    EXPECT_EQ(out.error->kind(), EngineError::Kind::kUnavailable);
    EXPECT_NE(std::string(out.error->what()).find("stopping"), std::string::npos);
  }
  EXPECT_THROW(engine->submit(chat("hi")), EngineError);

  upstream_.release();
  engine->load();  // a reloaded engine serves again
  EXPECT_TRUE(drain(*engine->submit(chat("hi"))).result);
}

TEST(RemoteEngineOptions, FleetModelSizesWorkersFromParallel) {
  ModelConfig model;
  model.id = "m";
  model.backend = ModelConfig::Backend::kRemote;
  model.base_url = "https://example.org/v1";
  model.ca_file = "/etc/ca.pem";
  model.tls_verify = true;
  model.parallel = 1;
  EXPECT_EQ(remote_engine_options(model).workers, 1);  // the scheduler's slots: one at a time
  model.parallel = 3;
  const RemoteEngine::Options options = remote_engine_options(model);
  EXPECT_EQ(options.workers, 3);
  EXPECT_EQ(options.base_url, "https://example.org/v1");
  EXPECT_EQ(options.ca_file, "/etc/ca.pem");
  EXPECT_TRUE(options.tls_verify);
}

}  // namespace
}  // namespace calm
