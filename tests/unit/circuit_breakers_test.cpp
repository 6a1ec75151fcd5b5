#include "failover/circuit_breakers.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace calm {
namespace {

using namespace std::chrono_literals;
using State = CircuitBreakers::State;

// The changes a breaker told, and a bounded wait for the next one.
class Changes {
 public:
  CircuitBreakers::Listener listener() {
    return [this](const CircuitBreakers::Change& change) {
      std::lock_guard lock(mutex_);
      changes_.push_back(change);
      cv_.notify_all();
    };
  }
  // Waits (at most 10 s, a bound, never a timing assumption) for `count` changes.
  bool wait_for(size_t count) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 10s, [&] { return changes_.size() >= count; });
  }
  std::vector<CircuitBreakers::Change> all() {
    std::lock_guard lock(mutex_);
    return changes_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<CircuitBreakers::Change> changes_;
};

bool healthy(const std::string&, std::string&) {
  return true;
}

TEST(CircuitBreakers, OpensOnlyAfterTheConfiguredFailuresInARow) {
  Changes changes;
  CircuitBreakers breakers({.failures = 3, .cooldown = 60s}, healthy, changes.listener());
  EXPECT_TRUE(breakers.allow("m"));
  breakers.record_failure("m", "refused");
  breakers.record_failure("m", "refused");
  EXPECT_TRUE(breakers.allow("m"));
  EXPECT_TRUE(changes.all().empty());
  breakers.record_failure("m", "refused again");
  EXPECT_FALSE(breakers.allow("m"));
  EXPECT_TRUE(breakers.allow("other"));
  ASSERT_EQ(changes.all().size(), 1u);
  const auto change = changes.all()[0];
  EXPECT_EQ(change.model, "m");
  EXPECT_EQ(change.from, State::kClosed);
  EXPECT_EQ(change.to, State::kOpen);
  EXPECT_NE(change.reason.find("3 failures in a row"), std::string::npos) << change.reason;
  EXPECT_NE(change.reason.find("refused again"), std::string::npos) << change.reason;
}

TEST(CircuitBreakers, ASuccessResetsTheFailuresInARow) {
  CircuitBreakers breakers({.failures = 3, .cooldown = 60s}, healthy);
  breakers.record_failure("m", "x");
  breakers.record_failure("m", "x");
  breakers.record_success("m");
  breakers.record_failure("m", "x");
  breakers.record_failure("m", "x");
  EXPECT_TRUE(breakers.allow("m"));
  const auto status = breakers.status("m");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->failures_in_a_row, 2);
  EXPECT_EQ(status->failures, 4u);
}

TEST(CircuitBreakers, AnOpenBreakerTellsWhatIsLeftOfItsCooldown) {
  CircuitBreakers breakers({.failures = 1, .cooldown = 60s}, healthy);
  EXPECT_FALSE(breakers.status("m"));  // never failed
  breakers.record_failure("m", "down");
  const auto status = breakers.status("m");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->state, State::kOpen);
  EXPECT_GT(status->retry_in.count(), 0);
  EXPECT_LE(status->retry_in.count(), 60000);
  EXPECT_EQ(status->last_error, "down");
  EXPECT_EQ(status->opened, 1u);
  EXPECT_EQ(breakers.all().size(), 1u);
}

TEST(CircuitBreakers, AHealthyCheckAfterTheCooldownLetsATrialThroughAndItsSuccessCloses) {
  Changes changes;
  CircuitBreakers breakers({.failures = 1, .cooldown = 10ms}, healthy, changes.listener());
  breakers.record_failure("m", "down");
  ASSERT_TRUE(changes.wait_for(2));  // open, then half_open after the check
  EXPECT_EQ(changes.all()[1].to, State::kHalfOpen);
  EXPECT_TRUE(breakers.allow("m"));
  breakers.record_success("m");
  ASSERT_TRUE(changes.wait_for(3));
  EXPECT_EQ(changes.all()[2].from, State::kHalfOpen);
  EXPECT_EQ(changes.all()[2].to, State::kClosed);
  EXPECT_EQ(breakers.status("m")->state, State::kClosed);
}

TEST(CircuitBreakers, AFailedTrialOpensAgainAtOnce) {
  Changes changes;
  CircuitBreakers breakers({.failures = 5, .cooldown = 10ms}, healthy, changes.listener());
  for (int i = 0; i < 5; ++i) breakers.record_failure("m", "down");
  ASSERT_TRUE(changes.wait_for(2));            // open, half_open
  breakers.record_failure("m", "still down");  // one failure suffices now
  ASSERT_TRUE(changes.wait_for(3));
  EXPECT_EQ(changes.all()[2].to, State::kOpen);
  EXPECT_NE(changes.all()[2].reason.find("trial"), std::string::npos);
  EXPECT_EQ(breakers.status("m")->opened, 2u);
}

TEST(CircuitBreakers, AFailedHealthCheckKeepsItOpenAndChecksAgain) {
  std::mutex mutex;
  std::condition_variable cv;
  int checks = 0;
  CircuitBreakers breakers({.failures = 1, .cooldown = 5ms},
                           [&](const std::string&, std::string& detail) {
                             std::lock_guard lock(mutex);
                             detail = "connection refused";
                             ++checks;
                             cv.notify_all();
                             return false;
                           });
  breakers.record_failure("m", "down");
  std::unique_lock lock(mutex);
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return checks >= 3; }));
  lock.unlock();
  EXPECT_FALSE(breakers.allow("m"));
  EXPECT_EQ(breakers.status("m")->last_error, "connection refused");
  EXPECT_EQ(breakers.status("m")->opened, 1u);  // one opening, checked again and again
}

TEST(CircuitBreakers, DestroyingWhileAHealthCheckIsDueRunsNoCheck) {
  std::atomic<int> checks{0};
  {
    CircuitBreakers breakers({.failures = 1, .cooldown = 60s},
                             [&](const std::string&, std::string&) {
                               ++checks;
                               return true;
                             });
    breakers.record_failure("m", "down");
  }
  EXPECT_EQ(checks.load(), 0);
}

}  // namespace
}  // namespace calm
