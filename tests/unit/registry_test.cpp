// The registry's fleet snapshot: staged off to the side, published in one
// step, and never changing under an admission that holds it.
#include "registry/registry.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "config/fleet_config.h"

namespace calm {
namespace {

FleetConfig fleet(const std::string& models) {
  return parse_fleet_config("models:\n" + models, "fleet.yaml", "/tmp");
}

std::string remote(const std::string& id, int port, const std::string& description = "a model") {
  return "  - id: " + id + "\n    description: " + description +
         "\n    url: http://127.0.0.1:" + std::to_string(port) +
         "\n    connect_timeout_s: 1\n    read_timeout_s: 30\n";
}

TEST(Registry, StagingChangesNothingUntilPublished) {
  Registry registry(fleet(remote("a", 1) + remote("b", 1)));
  ASSERT_EQ(registry.snapshot()->version, 1u);
  const Registry::Staged staged = registry.stage(fleet(remote("a", 1) + remote("c", 1)));
  EXPECT_EQ(staged.next->version, 2u);
  EXPECT_EQ(staged.report.added, std::vector<std::string>{"c"});
  EXPECT_EQ(staged.report.removed, std::vector<std::string>{"b"});
  // Still the old fleet.
  EXPECT_EQ(registry.snapshot()->version, 1u);
  EXPECT_NE(registry.find("b"), nullptr);
  EXPECT_EQ(registry.find("c"), nullptr);

  EXPECT_EQ(registry.publish(staged), 2u);
  EXPECT_EQ(registry.find("b"), nullptr);
  EXPECT_NE(registry.find("c"), nullptr);
}

TEST(Registry, PublishRunsItsStepAfterTheSwapAndBeforeAdmissionsResume) {
  Registry registry(fleet(remote("a", 1)));
  const Registry::Staged staged = registry.stage(fleet(remote("a", 1) + remote("b", 1)));
  uint64_t seen_in_step = 0;
  registry.publish(staged, [&] { seen_in_step = registry.snapshot()->version; });
  EXPECT_EQ(seen_in_step, 2u);
}

TEST(Registry, AnAdmissionHoldingTheFleetSeesOneVersionThroughout) {
  Registry registry(fleet(remote("a", 1)));
  const Registry::Staged staged = registry.stage(fleet(remote("b", 1)));
  std::atomic<bool> published{false};
  std::thread reload;
  {
    const auto hold = registry.hold_fleet();
    reload = std::thread([&] {
      registry.publish(staged);
      published = true;
    });
    // However far the reload has got, it cannot land while this is held.
    for (int i = 0; i < 1000; ++i) {
      ASSERT_EQ(registry.snapshot()->version, 1u);
      ASSERT_NE(registry.find("a"), nullptr);
      std::this_thread::yield();
    }
    EXPECT_FALSE(published.load());
  }
  reload.join();
  EXPECT_EQ(registry.snapshot()->version, 2u);
  EXPECT_EQ(registry.find("a"), nullptr);
}

TEST(Registry, AnEntryKeptByARequestOutlivesItsRemovalWithItsEngine) {
  Registry registry(fleet(remote("a", 1)));
  const Registry::EntryPtr held = registry.find("a");
  registry.apply(fleet(remote("b", 1)));
  EXPECT_EQ(registry.find("a"), nullptr);
  ASSERT_NE(held->engine, nullptr);
  EXPECT_EQ(held->config.id, "a");
}

TEST(Registry, DescriptionOnlyChangeKeepsTheEngine) {
  Registry registry(fleet(remote("a", 1, "first words")));
  const auto before = registry.find("a");
  const auto report = registry.apply(fleet(remote("a", 1, "other words")));
  EXPECT_EQ(report.updated, std::vector<std::string>{"a"});
  EXPECT_EQ(registry.find("a")->engine, before->engine);
  EXPECT_EQ(registry.find("a")->config.description, "other words");
}

// A backend that takes the connection and never answers: the kernel
// completes the handshake for a listening socket nobody accepts on.
class SilentBackend {
 public:
  SilentBackend() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentBackend() { close(); }
  void close() {  // pending connections are reset: a waiting read fails at once
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(Registry, EnsureReadyNeverWaitsForADownBackend) {
  SilentBackend backend;
  Registry registry(fleet(remote("far", backend.port())));
  const auto entry = registry.find("far");
  // The backend would hold a check for its 30 s read timeout; the caller
  // (a transport's thread) is answered now, and the check runs elsewhere.
  EXPECT_FALSE(registry.ensure_ready(entry));
  EXPECT_FALSE(registry.ensure_ready(entry));  // one check at a time
  EXPECT_EQ(entry->load_error(), "");          // still being asked
  backend.close();
}

}  // namespace
}  // namespace calm
