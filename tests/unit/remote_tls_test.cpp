// https:// upstreams: RemoteEngine and the bench Replayer against an
// httplib::SSLServer on 127.0.0.1 whose self-signed certificate the test
// makes itself (the `openssl` command, which ships with Debian's
// ca-certificates), in a fresh temporary folder.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "bench/replayer.h"
#include "engines/remote_engine.h"
#include "support/certificate.h"

namespace calm {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

using testing::Certificate;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "calm-tls-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data()) ? pattern : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const std::string kStream =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" tls\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n"
    "data: [DONE]\n\n";

// An OpenAI-shaped https server that notes the connection of every POST.
class TlsUpstream {
 public:
  explicit TlsUpstream(const Certificate& certificate)
      : server_(certificate.cert.c_str(), certificate.key.c_str()) {
    server_.set_keep_alive_max_count(100);
    server_.Get("/health", [](const httplib::Request&, httplib::Response& response) {
      response.set_content(R"({"status":"ok"})", "application/json");
    });
    server_.Post("/v1/chat/completions",
                 [this](const httplib::Request& request, httplib::Response& response) {
                   {
                     std::lock_guard lock(mutex_);
                     ports_.insert(request.remote_port);
                     ++requests_;
                   }
                   response.set_content(kStream, "text/event-stream");
                 });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    const auto deadline = Clock::now() + 2s;
    while (!server_.is_running() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  }
  ~TlsUpstream() {
    server_.stop();
    thread_.join();
  }

  bool valid() { return server_.is_valid() && server_.is_running() && port_ > 0; }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  size_t connections() {
    std::lock_guard lock(mutex_);
    return ports_.size();
  }
  int requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  httplib::SSLServer server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::set<int> ports_;  // guarded by mutex_
  int requests_ = 0;     // guarded by mutex_
};

RemoteEngine::Options options_for(const std::string& url) {
  RemoteEngine::Options options;
  options.id = "tls-test";
  options.base_url = url;
  options.connect_timeout = 2000ms;
  options.read_timeout = 5000ms;
  return options;
}

GenerationRequest chat() {
  GenerationRequest request;
  request.messages = {{"user", "hi"}};
  return request;
}

class RemoteTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    auto good = testing::make_self_signed_certificate(dir_.path(), "good", "IP:127.0.0.1,DNS:localhost");
    if (!good) GTEST_SKIP() << "the openssl command is not installed";
    good_ = *good;
    auto other = testing::make_self_signed_certificate(dir_.path(), "other", "DNS:other.example");
    ASSERT_TRUE(other);
    other_ = *other;
  }

  TempDir dir_;
  Certificate good_;
  Certificate other_;
};

TEST_F(RemoteTlsTest, HttpsUpstreamTrustedThroughCaFileStreamsOnOneConnection) {
  TlsUpstream upstream(good_);
  ASSERT_TRUE(upstream.valid());
  RemoteEngine::Options options = options_for(upstream.url());
  options.ca_file = good_.cert;
  RemoteEngine engine(options);
  engine.load();
  for (int i = 0; i < 3; ++i) {
    const GenerationResult result = engine.submit(chat())->wait();
    EXPECT_EQ(result.text, "Hello tls");
    EXPECT_EQ(result.completion_tokens, 2);
  }
  EXPECT_EQ(upstream.requests(), 3);
  EXPECT_EQ(upstream.connections(), 1u);  // kept alive across TLS requests
}

TEST_F(RemoteTlsTest, SelfSignedCertificateIsRefusedByDefault) {
  TlsUpstream upstream(good_);
  ASSERT_TRUE(upstream.valid());
  RemoteEngine engine(options_for(upstream.url()));  // the system's CAs only
  try {
    engine.load();
    FAIL() << "load() did not throw";
  } catch (const EngineError& error) {
    EXPECT_EQ(error.kind(), EngineError::Kind::kUnavailable);
    EXPECT_NE(std::string(error.what()).find("certificate failed verification"), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("ca_file"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(engine.loaded());
}

TEST_F(RemoteTlsTest, CertificateForAnotherHostIsRefusedEvenWithItsCa) {
  TlsUpstream upstream(other_);
  ASSERT_TRUE(upstream.valid());
  RemoteEngine::Options options = options_for(upstream.url());
  options.ca_file = other_.cert;
  RemoteEngine engine(options);
  EXPECT_FALSE(engine.health().ok);
  EXPECT_THROW(engine.load(), EngineError);
}

TEST_F(RemoteTlsTest, TlsVerifyFalseAcceptsASelfSignedServer) {
  TlsUpstream upstream(other_);
  ASSERT_TRUE(upstream.valid());
  RemoteEngine::Options options = options_for(upstream.url());
  options.tls_verify = false;
  RemoteEngine engine(options);
  engine.load();
  EXPECT_EQ(engine.submit(chat())->wait().text, "Hello tls");
}

TEST_F(RemoteTlsTest, MissingCaFileIsAClearError) {
  TlsUpstream upstream(good_);
  ASSERT_TRUE(upstream.valid());
  RemoteEngine::Options options = options_for(upstream.url());
  options.ca_file = dir_.path() + "/no-such-ca.pem";
  RemoteEngine engine(options);
  const EngineHealth health = engine.health();
  EXPECT_FALSE(health.ok);
  EXPECT_NE(health.detail.find("CA certificates"), std::string::npos) << health.detail;
}

TEST_F(RemoteTlsTest, ReplayerStreamsFromAnHttpsServer) {
  TlsUpstream upstream(good_);
  ASSERT_TRUE(upstream.valid());
  ReplayOptions options;
  options.base_url = upstream.url() + "/v1";
  options.ca_file = good_.cert;
  options.concurrency = 1;
  WorkloadRequest request;
  request.messages = nlohmann::json::array({{{"role", "user"}, {"content", "hi"}}});
  request.max_tokens = 4;
  const ReplayResult result = Replayer(options).run({request, request});
  ASSERT_EQ(result.records.size(), 2u);
  for (const RequestRecord& record : result.records) {
    EXPECT_TRUE(record.ok()) << record.error;
    EXPECT_EQ(record.text, "Hello tls");
  }
  EXPECT_EQ(upstream.connections(), 1u);
}

}  // namespace
}  // namespace calm
