// The HTTPS listener (server.tls) of the real `calm serve`, with a
// self-signed certificate the test makes: clients that verify it are served
// (/health, a chat, a streamed chat); a plain-HTTP client and a client that
// never handshakes get nothing and hold no one else up; past
// max_connections a TLS client gets the 503 over TLS.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "support/certificate.h"
#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;
using testing::Certificate;

// A client whose connection the server closes (refused, or plain HTTP to a
// TLS port) gets an error return, not a kill.
const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

// A TCP connection that sends nothing: no ClientHello, no request.
class SilentConnection {
 public:
  explicit SilentConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~SilentConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  SilentConnection(const SilentConnection&) = delete;
  SilentConnection& operator=(const SilentConnection&) = delete;
  bool connected() const { return connected_; }
  // Waits (bounded) for the server to close the connection: true when it did.
  bool closed_by_server(std::chrono::seconds bound) {
    timeval tv{static_cast<time_t>(bound.count()), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char byte = 0;
    return ::recv(fd_, &byte, 1, 0) == 0;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class TlsListener : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::temp_path("tls");
    std::filesystem::create_directories(dir_);
    auto made = testing::make_self_signed_certificate(dir_, "calm");
    ASSERT_TRUE(made) << "openssl could not make a certificate";
    certificate_ = *made;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(dir_).parent_path(), ec);
  }

  // One tiny model behind a TLS listener; `tls` is added inside server.tls's
  // flow mapping, `server` (whole lines) to server.
  std::string fleet(const std::string& tls = "", const std::string& server = "") const {
    return "server:\n  tls: {cert: " + certificate_.cert + ", key: " + certificate_.key + tls +
           "}\n" + server +
           "models:\n  - id: tiny\n    gguf: " + testing::test_model("tiny-chatml.gguf") +
           "\n    context: 256\n    threads: 1\n";
  }
  // A client that trusts the test's certificate (and checks the host).
  std::unique_ptr<httplib::SSLClient> client(const CalmServer& server) const {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", server.port());
    c->set_ca_cert_path(certificate_.cert.c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(10, 0);
    c->set_read_timeout(60, 0);
    return c;
  }

  std::string dir_;
  Certificate certificate_;
};

const std::string kChat = json{
    {"model", "tiny"},
    {"messages", {{{"role", "user"}, {"content", "hi"}}}},
    {"max_tokens", 3}}.dump();

TEST_F(TlsListener, AVerifyingClientGetsHealthAChatAndAStreamedChatOverHttps) {
  CalmServer server(fleet());
  EXPECT_TRUE(server.tls());
  EXPECT_NE(server.log().find("listening on https://127.0.0.1:"), std::string::npos);
  auto c = client(server);
  auto health = c->Get("/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200) << health->body;

  auto chat = c->Post("/v1/chat/completions", kChat, "application/json");
  ASSERT_TRUE(chat) << httplib::to_string(chat.error());
  ASSERT_EQ(chat->status, 200) << chat->body;
  EXPECT_EQ(json::parse(chat->body)["object"], "chat.completion");

  json streamed = json::parse(kChat);
  streamed["stream"] = true;
  auto stream = c->Post("/v1/chat/completions", streamed.dump(), "application/json");
  ASSERT_TRUE(stream) << httplib::to_string(stream.error());
  ASSERT_EQ(stream->status, 200) << stream->body;
  EXPECT_NE(stream->body.find("data: [DONE]"), std::string::npos) << stream->body;
}

TEST_F(TlsListener, APlainHttpClientGetsNoAnswerAndTheServerGoesOn) {
  CalmServer server(fleet());
  httplib::Client plain("127.0.0.1", server.port());
  plain.set_read_timeout(10, 0);
  auto refused = plain.Get("/health");
  EXPECT_FALSE(refused && refused->status == 200);
  auto health = client(server)->Get("/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
}

TEST_F(TlsListener, AClientThatNeverHandshakesBlocksNoOneAndIsDroppedAfterTheHandshakeTimeout) {
  CalmServer server(fleet(", handshake_timeout_s: 1"));
  std::vector<std::unique_ptr<SilentConnection>> silent;
  for (int i = 0; i < 8; ++i) {
    silent.push_back(std::make_unique<SilentConnection>(server.port()));
    ASSERT_TRUE(silent.back()->connected());
  }
  auto health = client(server)->Get("/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  // A bound far past the one-second handshake timeout.
  EXPECT_TRUE(silent.front()->closed_by_server(std::chrono::seconds(30)));
}

TEST_F(TlsListener, PastMaxConnectionsATlsClientGets503OverTls) {
  CalmServer server(fleet("", "  max_connections: 2\n"));
  SilentConnection first(server.port()), second(server.port());
  ASSERT_TRUE(first.connected() && second.connected());
  auto c = client(server);
  // Bounded: until the server has counted both silent connections.
  httplib::Result refused = c->Get("/health");
  for (int i = 0; i < 200 && !(refused && refused->status == 503); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    refused = c->Get("/health");
  }
  ASSERT_TRUE(refused) << httplib::to_string(refused.error());
  EXPECT_EQ(refused->status, 503) << refused->body;
  EXPECT_EQ(refused->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(refused->body)["error"]["code"], "too_many_connections");
}

TEST_F(TlsListener, AKeyThatIsNotTheCertificatesStopsServeNamingTheFieldAndTheFile) {
  auto other = testing::make_self_signed_certificate(dir_, "other");
  ASSERT_TRUE(other);
  const std::string path = dir_ + "/fleet.yaml";
  std::ofstream(path) << "server:\n  tls: {cert: " << certificate_.cert << ", key: " << other->key
                      << "}\nmodels:\n  - id: tiny\n    gguf: "
                      << testing::test_model("tiny-chatml.gguf") << "\n";
  const testing::CliRun r = testing::run_calm({"serve", "--config", path, "--port", "0"});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(path + ": server.tls.key: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(other->key), std::string::npos) << r.output;
}

}  // namespace
}  // namespace calm
