// The knowledge store on a real PostgreSQL server (a throwaway cluster made
// by the test, tests/support/postgres_server.h), as replicas share it: what
// one replica records, the others read; a feedback reaches every replica;
// replicas that start at once all open; one replica leads placement at a
// time, and another takes over when the leader goes.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "knowledge/knowledge_store.h"
#include "knowledge/leader_lock.h"
#include "knowledge/sql.h"
#include "support/postgres_server.h"

namespace calm {
namespace {

// One server for the suite (initdb takes seconds); a new database per test.
class KnowledgePostgres : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::PostgresServer::unavailable()) return;
    server_ = new testing::PostgresServer();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (auto why = testing::PostgresServer::unavailable()) GTEST_SKIP() << *why;
    static int databases = 0;
    const std::string name = "t" + std::to_string(++databases);
    sql::open(server_->url(), 5000)->exec(("CREATE DATABASE " + name).c_str());
    url_ = server_->url();
    url_.replace(url_.rfind('/') + 1, std::string::npos, name);
  }
  KnowledgeStore::Options as_replica(const std::string& name) {
    KnowledgeStore::Options options;
    options.replica = name;
    return options;
  }

  static testing::PostgresServer* server_;
  std::string url_;
};
testing::PostgresServer* KnowledgePostgres::server_ = nullptr;

ServedRequest make_record(int n, const std::string& model = "m") {
  ServedRequest r;
  r.response_id = "chatcmpl-" + std::to_string(n);
  r.ts = 1700000000.125 + n;
  r.model = model;
  r.routed_by = "semantic";
  r.queue_ms = n * 0.5;
  r.ttft_ms = n % 2 ? std::optional<double>(n * 2.0) : std::nullopt;
  r.latency_ms = 0.1 + n * 10.0;
  r.tokens_in = n;
  r.tokens_out = 2 * n;
  r.decode_tps = 40.0;
  r.energy_j = n % 2 ? std::optional<double>(n * 0.25) : std::nullopt;
  r.memory_bytes = (uint64_t{1} << 40) + static_cast<uint64_t>(n);  // past 32 bits
  r.confidence = 1.0 / 3.0;
  return r;
}

TEST_F(KnowledgePostgres, WhatOneStoreWroteComesBackWholeThroughAnother) {
  {
    KnowledgeStore store(url_, as_replica("a"));
    for (int n = 1; n <= 3; ++n) store.record_request(make_record(n));
    store.record_adaptation({0, 0, "routing", "why", {{"p95", 1.5}}, {{"lambda", 0.1}}, {}});
    store.set_goals({{"latency_p95_ms", {{"max", 500}}}});
    store.flush();
  }
  KnowledgeStore again(url_, as_replica("b"));
  const auto requests = again.recent_requests("m", 10);
  ASSERT_EQ(requests.size(), 3u);
  const ServedRequest want = make_record(3);
  const ServedRequest& got = requests.front();  // newest first
  EXPECT_EQ(got.response_id, want.response_id);
  EXPECT_EQ(got.ts, want.ts);  // bit for bit
  EXPECT_EQ(got.latency_ms, want.latency_ms);
  EXPECT_EQ(got.ttft_ms, want.ttft_ms);
  EXPECT_EQ(got.energy_j, want.energy_j);
  EXPECT_EQ(got.memory_bytes, want.memory_bytes);
  EXPECT_EQ(got.confidence, want.confidence);
  EXPECT_FALSE(requests[1].ttft_ms.has_value());  // NULL stays NULL
  EXPECT_EQ(again.models(), std::vector<std::string>{"m"});
  const auto adaptations = again.adaptations(5);
  ASSERT_EQ(adaptations.size(), 1u);
  EXPECT_EQ(adaptations[0].figures["p95"], 1.5);
  ASSERT_TRUE(again.goals().has_value());
  EXPECT_EQ((*again.goals())["latency_p95_ms"]["max"], 500);
  EXPECT_TRUE(again.shared());
}

TEST_F(KnowledgePostgres, AReplicaReadsTheOthersRequestsAndNotItsOwn) {
  KnowledgeStore a(url_, as_replica("a"));
  KnowledgeStore b(url_, as_replica("b"));
  auto a_cursor = a.news_cursor();
  auto b_cursor = b.news_cursor();
  for (int n = 1; n <= 4; ++n) a.record_request(make_record(n));
  a.flush();
  const auto b_news = b.news_since(b_cursor);
  ASSERT_EQ(b_news.requests.size(), 4u);
  EXPECT_EQ(b_news.requests.front().response_id, "chatcmpl-1");  // oldest first
  EXPECT_TRUE(b.news_since(b_cursor).requests.empty());          // the cursor moved past them
  EXPECT_TRUE(a.news_since(a_cursor).requests.empty());          // its own
}

TEST_F(KnowledgePostgres, AFeedbackGivenToOneReplicaReachesTheOther) {
  KnowledgeStore a(url_, as_replica("a"));
  KnowledgeStore b(url_, as_replica("b"));
  auto a_cursor = a.news_cursor();
  a.record_request(make_record(7, "tiny"));
  a.flush();
  EXPECT_TRUE(b.record_feedback("chatcmpl-7", 0.25));  // served by a, rated through b
  EXPECT_FALSE(b.record_feedback("chatcmpl-unknown", 1));
  const auto news = a.news_since(a_cursor);
  ASSERT_EQ(news.feedback.size(), 1u);
  EXPECT_EQ(news.feedback[0].response_id, "chatcmpl-7");
  EXPECT_EQ(news.feedback[0].model, "tiny");
  EXPECT_EQ(news.feedback[0].feedback, 0.25);
  EXPECT_EQ(news.feedback[0].replica, "b");
  EXPECT_EQ(a.recent_requests("tiny", 1).at(0).feedback, 0.25);
}

TEST_F(KnowledgePostgres, ReplicasThatStartAtOnceAllOpenTheNewDatabase) {
  std::vector<std::thread> threads;
  std::atomic<int> opened{0};
  std::vector<std::string> errors(6);
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      try {
        KnowledgeStore store(url_, as_replica("r" + std::to_string(i)));
        store.record_request(make_record(100 + i));
        store.flush();
        ++opened;
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(i)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  EXPECT_EQ(opened.load(), 6);
  EXPECT_EQ(KnowledgeStore(url_).request_count(), 6u);
}

TEST_F(KnowledgePostgres, AnUnreachableServerIsAClearErrorThatHidesThePassword) {
  const std::string url =
      "postgresql://calm:s3cret@127.0.0.1:" + std::to_string(testing::free_port()) + "/x";
  try {
    KnowledgeStore store(url);
    FAIL() << "opened a store on a closed port";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("cannot connect"), std::string::npos) << message;
    EXPECT_NE(message.find("calm:***@127.0.0.1"), std::string::npos) << message;
    EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
  }
}

TEST_F(KnowledgePostgres, OneReplicaLeadsAtATimeAndAnotherTakesOverWhenItGoes) {
  KnowledgeStore store(url_);  // the tables
  auto first = std::make_unique<LeaderLock>(url_, "first");
  LeaderLock second(url_, "second");
  EXPECT_TRUE(first->refresh());
  EXPECT_FALSE(second.refresh());
  EXPECT_TRUE(first->refresh());  // it keeps the lead while its session lives
  EXPECT_FALSE(second.refresh());
  EXPECT_EQ(second.leader(), "first");
  first.reset();  // the leader's session ends
  EXPECT_TRUE(second.refresh());
  EXPECT_EQ(second.leader(), "second");
  LeaderLock third(url_, "third");
  EXPECT_FALSE(third.refresh());
}

TEST_F(KnowledgePostgres, ALeaderWhoseServerIsUnreachableDoesNotLead) {
  LeaderLock lock("postgresql://calm@127.0.0.1:" + std::to_string(testing::free_port()) + "/x",
                  "alone");
  EXPECT_FALSE(lock.refresh());
  EXPECT_FALSE(lock.leading());
  EXPECT_EQ(lock.leader(), "");
}

}  // namespace
}  // namespace calm
