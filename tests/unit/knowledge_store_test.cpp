// KnowledgeStore on scratch SQLite files: what survives a restart, retention,
// feedback, that recording never blocks, and that a killed writer never
// corrupts the file.
#include "knowledge/knowledge_store.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/helpers.h"

namespace calm {
namespace {

using namespace std::chrono_literals;

// "prefix" + n, spelled so that GCC 12 at -O3 sees no overlapping copy (-Wrestrict).
std::string numbered(const char* prefix, int n) {
  std::string out = prefix;
  out += std::to_string(n);
  return out;
}

ServedRequest make_record(int n, const std::string& model = "m") {
  ServedRequest r;
  r.response_id = numbered("chatcmpl-", n);
  r.ts = 1700000000.0 + n;
  r.model = model;
  r.routed_by = "semantic";
  r.queue_ms = n * 0.5;
  r.ttft_ms = n * 2.0;
  r.latency_ms = n * 10.0;
  r.tokens_in = n;
  r.tokens_out = 2 * n;
  r.decode_tps = 40.0;
  r.energy_j = n % 2 ? std::optional<double>(n * 0.25) : std::nullopt;
  r.energy_source = r.energy_j ? "rapl" : "";
  r.memory_bytes = 1000 + n;
  r.confidence = 0.75;
  return r;
}

// The first column of the first row, on a connection of the test's own.
std::string query_text(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  } else {
    out = std::string("error: ") + sqlite3_errmsg(db);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

TEST(KnowledgeStore, SurvivesARestart) {
  testing::TempDir dir("calm-knowledge");
  const std::string path = dir.file("sub/knowledge.db");  // the folder is made too
  {
    KnowledgeStore store(path);
    for (int n = 1; n <= 5; ++n) store.record_request(make_record(n, "a"));
    for (int n = 6; n <= 8; ++n) store.record_request(make_record(n, "b"));
  }  // the destructor writes what is queued
  KnowledgeStore store(path);
  EXPECT_EQ(store.request_count(), 8u);
  EXPECT_EQ(store.models(), (std::vector<std::string>{"a", "b"}));
  const auto a = store.recent_requests("a", 3);
  ASSERT_EQ(a.size(), 3u);
  for (size_t i = 0; i < a.size(); ++i) {
    const ServedRequest want = make_record(5 - static_cast<int>(i), "a");
    EXPECT_EQ(a[i].response_id, want.response_id);
    EXPECT_EQ(a[i].ts, want.ts);
    EXPECT_EQ(a[i].routed_by, want.routed_by);
    EXPECT_EQ(a[i].queue_ms, want.queue_ms);
    EXPECT_EQ(a[i].ttft_ms, want.ttft_ms);
    EXPECT_EQ(a[i].latency_ms, want.latency_ms);
    EXPECT_EQ(a[i].tokens_in, want.tokens_in);
    EXPECT_EQ(a[i].tokens_out, want.tokens_out);
    EXPECT_EQ(a[i].decode_tps, want.decode_tps);
    EXPECT_EQ(a[i].energy_j, want.energy_j);
    EXPECT_EQ(a[i].energy_source, want.energy_source);
    EXPECT_EQ(a[i].memory_bytes, want.memory_bytes);
    EXPECT_EQ(a[i].confidence, want.confidence);
    EXPECT_FALSE(a[i].feedback);
  }
  const auto all = store.recent_requests("", 100);
  ASSERT_EQ(all.size(), 8u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].tokens_in, 8 - static_cast<int64_t>(i));  // newest first
  }
}

TEST(KnowledgeStore, KeepsOnlyTheNewestRecordsBeyondRetention) {
  testing::TempDir dir("calm-knowledge");
  KnowledgeStore::Options options;
  options.max_requests = 10;
  options.max_adaptations = 3;
  KnowledgeStore store(dir.file("k.db"), options);
  for (int n = 1; n <= 25; ++n) {
    store.record_request(make_record(n));
    if (n % 7 == 0) store.flush();  // several batches
  }
  for (int n = 1; n <= 7; ++n) store.record_adaptation({0, 0, numbered("k", n), "", {}, {}, {}});
  store.flush();
  EXPECT_EQ(store.request_count(), 10u);
  const auto kept = store.recent_requests("m", 100);
  ASSERT_EQ(kept.size(), 10u);
  EXPECT_EQ(kept.front().tokens_in, 25);
  EXPECT_EQ(kept.back().tokens_in, 16);
  const auto adaptations = store.adaptations(100);
  ASSERT_EQ(adaptations.size(), 3u);
  EXPECT_EQ(adaptations.front().kind, "k7");
  EXPECT_EQ(adaptations.back().kind, "k5");
}

TEST(KnowledgeStore, FeedbackUpdatesTheRecordOfThatResponse) {
  testing::TempDir dir("calm-knowledge");
  KnowledgeStore::Options options;
  options.batch_interval = 10s;  // only the flush in record_feedback writes them
  KnowledgeStore store(dir.file("k.db"), options);
  store.record_request(make_record(1));
  store.record_request(make_record(2));
  EXPECT_TRUE(store.record_feedback("chatcmpl-2", 4.0));
  EXPECT_FALSE(store.record_feedback("chatcmpl-unknown", 1.0));
  EXPECT_FALSE(store.record_feedback("", 1.0));
  const auto rows = store.recent_requests("m", 10);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].response_id, "chatcmpl-2");
  ASSERT_TRUE(rows[0].feedback);
  EXPECT_EQ(*rows[0].feedback, 4.0);
  EXPECT_FALSE(rows[1].feedback);
}

TEST(KnowledgeStore, RecordingNeverBlocksWhenTheQueueIsFull) {
  testing::TempDir dir("calm-knowledge");
  const std::string path = dir.file("k.db");
  KnowledgeStore::Options options;
  options.max_queue = 8;
  options.batch_records = 4;
  options.batch_interval = 5ms;
  options.busy_timeout = 10s;
  KnowledgeStore store(path, options);

  // Another connection holds the write lock: the writer is stuck on disk.
  sqlite3* blocker = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &blocker), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(blocker, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);

  constexpr int kRecords = 1000;
  const auto start = std::chrono::steady_clock::now();
  for (int n = 1; n <= kRecords; ++n) store.record_request(make_record(n));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // Blocking on the writer would take the whole 10 s busy timeout: half of
  // it tells the two apart on any machine.
  EXPECT_LT(elapsed, 5s);
  // At most one batch in the writer's hands and a full queue were accepted.
  EXPECT_GE(store.dropped(), uint64_t{kRecords - 2 * 8});

  ASSERT_EQ(sqlite3_exec(blocker, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(blocker);
  store.flush();
  EXPECT_GT(store.request_count(), 0u);
  EXPECT_EQ(store.request_count() + store.dropped(), uint64_t{kRecords});
}

// A child process writes as fast as it can and is killed with SIGKILL in the
// middle; the file must still be a sound database holding at least what the
// child had seen flushed, as a prefix of what it wrote.
TEST(KnowledgeStore, CrashMidWriteLosesAtMostTheLastRecordAndNeverCorrupts) {
  testing::TempDir dir("calm-knowledge");
  const std::string path = dir.file("k.db");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Only this thread exists here; the store starts its own writer.
    close(fds[0]);
    try {
      KnowledgeStore::Options options;
      options.batch_interval = 2ms;
      KnowledgeStore store(path, options);
      for (int n = 1;; ++n) {
        store.record_request(make_record(n));
        if (n % 64 == 0) {
          store.flush();
          const uint64_t flushed = static_cast<uint64_t>(n) - store.dropped();
          if (write(fds[1], &flushed, sizeof flushed) != sizeof flushed) _exit(3);
        }
      }
    } catch (...) {
      _exit(2);
    }
  }
  close(fds[1]);
  // Wait for the child's first flush, let it run on, then kill it mid-write.
  pollfd ready{fds[0], POLLIN, 0};
  ASSERT_EQ(poll(&ready, 1, 30000), 1) << "the child never flushed";
  std::this_thread::sleep_for(300ms);
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited by itself: " << status;
  uint64_t last_flushed = 0, value = 0;
  while (read(fds[0], &value, sizeof value) == sizeof value) last_flushed = value;
  close(fds[0]);
  ASSERT_GT(last_flushed, 0u);

  EXPECT_EQ(query_text(path, "PRAGMA integrity_check"), "ok");
  KnowledgeStore store(path);
  const uint64_t count = store.request_count();
  EXPECT_GE(count, last_flushed);
  // What survived is a prefix of what was written: the newest is number `count`.
  const auto newest = store.recent_requests("m", 1);
  ASSERT_EQ(newest.size(), 1u);
  EXPECT_EQ(static_cast<uint64_t>(newest[0].tokens_in), count);
}

TEST(KnowledgeStore, RejectsAFileThatIsNotADatabase) {
  testing::TempDir dir("calm-knowledge");
  const std::string path = dir.file("notes.txt");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "this is not a database, just some notes\n";
  testing::write_bytes(path, text);
  try {
    KnowledgeStore store(path);
    FAIL() << "opened a text file";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("not a SQLite database"), std::string::npos) << message;
  }
  EXPECT_EQ(testing::read_bytes(path), text);  // left as it was
}

TEST(KnowledgeStore, RejectsACorruptDatabase) {
  testing::TempDir dir("calm-knowledge");
  const std::string path = dir.file("k.db");
  {
    KnowledgeStore store(path);
    for (int n = 1; n <= 500; ++n) store.record_request(make_record(n));
  }  // the last connection to close folds the log into the file
  std::string bytes = testing::read_bytes(path);
  const size_t page = 4096;  // SQLite's default page size
  ASSERT_GE(bytes.size(), 4 * page);
  for (size_t i = page; i < bytes.size() - page; ++i) bytes[i] = '\xab';  // all but the ends
  testing::write_bytes(path, bytes);
  try {
    KnowledgeStore store(path);
    FAIL() << "opened a corrupt file";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("corrupt"), std::string::npos) << message;
  }
}

TEST(KnowledgeStore, AdaptationsComeBackNewestFirst) {
  testing::TempDir dir("calm-knowledge");
  KnowledgeStore store(dir.file("k.db"));
  for (int n = 1; n <= 3; ++n) {
    Adaptation a;
    a.kind = numbered("kind-", n);
    a.reason = numbered("reason ", n);
    a.figures = {{"p95_ms", 100 * n}};
    a.before = {{"alpha", n}};
    a.after = {{"alpha", n + 1}, {"note", "x"}};
    store.record_adaptation(a);
  }
  store.flush();
  const auto all = store.adaptations(10);
  ASSERT_EQ(all.size(), 3u);
  for (size_t i = 0; i < all.size(); ++i) {
    const int n = 3 - static_cast<int>(i);
    EXPECT_EQ(all[i].kind, numbered("kind-", n));
    EXPECT_EQ(all[i].reason, numbered("reason ", n));
    EXPECT_EQ(all[i].figures, (nlohmann::json{{"p95_ms", 100 * n}}));
    EXPECT_EQ(all[i].before, (nlohmann::json{{"alpha", n}}));
    EXPECT_EQ(all[i].after, (nlohmann::json{{"alpha", n + 1}, {"note", "x"}}));
    EXPECT_GT(all[i].ts, 0);  // stamped when recorded
  }
  const auto two = store.adaptations(2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].kind, "kind-3");
  EXPECT_EQ(two[1].kind, "kind-2");
}

TEST(KnowledgeStore, GoalsAreTheLastSetAndSurviveARestart) {
  testing::TempDir dir("calm-knowledge");
  const std::string path = dir.file("k.db");
  {
    KnowledgeStore store(path);
    EXPECT_FALSE(store.goals());
    store.set_goals({{"latency", {{"p95_ms", 500}}}, {"energy", {{"max_j", 2}}}});
    store.set_goals({{"latency", {{"p95_ms", 300}}}});
    EXPECT_THROW(store.set_goals(nlohmann::json::array()), std::invalid_argument);
  }
  KnowledgeStore store(path);
  const auto goals = store.goals();
  ASSERT_TRUE(goals);
  EXPECT_EQ(*goals, (nlohmann::json{{"latency", {{"p95_ms", 300}}}}));
}

// Runs `sql` on a connection of the test's own; false (with the message in
// the test's output) if it fails.
bool exec_sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const bool ok = sqlite3_exec(db, sql, nullptr, nullptr, &error) == SQLITE_OK;
  if (!ok) ADD_FAILURE() << error;
  sqlite3_free(error);
  sqlite3_close(db);
  return ok;
}

TEST(KnowledgeStore, WithoutKeepTextNoTextIsWrittenWhateverIsAsked) {
  testing::TempDir dir("calm-knowledge");
  const std::string path = dir.file("k.db");
  {
    KnowledgeStore store(path);
    EXPECT_FALSE(store.keeps_text());
    store.record_request(make_record(1));
    store.record_text({"chatcmpl-1", 0, "m", "chat", "the prompt", "the answer"});
  }
  EXPECT_EQ(query_text(path, "SELECT count(*) FROM request_texts"), "0");
  EXPECT_EQ(query_text(path, "SELECT count(*) FROM requests"), "1");
  EXPECT_EQ(testing::read_bytes(path).find("the prompt"), std::string::npos);
}

TEST(KnowledgeStore, WithKeepTextEachRequestsTextIsKeptAndRetainedLikeItsRecord) {
  testing::TempDir dir("calm-knowledge");
  const std::string path = dir.file("k.db");
  KnowledgeStore::Options options;
  options.keep_text = true;
  options.max_requests = 2;
  KnowledgeStore store(path, options);
  for (int n = 1; n <= 3; ++n) {
    store.record_request(make_record(n));
    store.record_text(
        {numbered("chatcmpl-", n), 0, "m", "chat", numbered("prompt ", n), numbered("answer ", n)});
  }
  store.flush();
  EXPECT_FALSE(store.text("chatcmpl-1").has_value());  // past retention, like its record
  const auto kept = store.text("chatcmpl-3");
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->prompt, "prompt 3");
  EXPECT_EQ(kept->answer, "answer 3");
  EXPECT_EQ(kept->endpoint, "chat");
  EXPECT_GT(kept->ts, 0);
}

// A file written by the calm before request_texts existed (schema 1) is
// migrated in place: what it held stays, and text can be kept in it.
TEST(KnowledgeStore, AVersionOneFileIsMigratedKeepingItsRecords) {
  testing::TempDir dir("calm-knowledge");
  const std::string path = dir.file("k.db");
  ASSERT_TRUE(exec_sql(path, R"sql(
    CREATE TABLE schema_version (version INTEGER NOT NULL);
    INSERT INTO schema_version VALUES (1);
    CREATE TABLE requests (id INTEGER PRIMARY KEY, response_id TEXT UNIQUE, ts REAL NOT NULL,
      model TEXT NOT NULL, routed_by TEXT NOT NULL, queue_ms REAL, ttft_ms REAL,
      latency_ms REAL, tokens_in INTEGER, tokens_out INTEGER, decode_tps REAL, energy_j REAL,
      energy_source TEXT, memory_bytes INTEGER, confidence REAL, feedback REAL);
    CREATE TABLE adaptations (id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL,
      reason TEXT NOT NULL, figures TEXT NOT NULL, "before" TEXT NOT NULL,
      "after" TEXT NOT NULL);
    CREATE TABLE goals (name TEXT PRIMARY KEY, spec TEXT NOT NULL, ts REAL NOT NULL);
    INSERT INTO requests (response_id, ts, model, routed_by, latency_ms, feedback)
      VALUES ('chatcmpl-old', 1700000000, 'old-model', 'semantic', 12.5, 1.0);
  )sql"));
  KnowledgeStore::Options options;
  options.keep_text = true;
  {
    KnowledgeStore store(path, options);
    const auto old = store.recent_requests("old-model", 10);
    ASSERT_EQ(old.size(), 1u);
    EXPECT_EQ(old[0].response_id, "chatcmpl-old");
    EXPECT_DOUBLE_EQ(old[0].latency_ms, 12.5);
    store.record_request(make_record(1));
    store.record_text({"chatcmpl-1", 0, "m", "completions", "p", "a"});
  }
  EXPECT_EQ(query_text(path, "SELECT max(version) FROM schema_version"),
            std::to_string(KnowledgeStore::schema_version()));
  KnowledgeStore again(path, options);
  EXPECT_EQ(again.request_count(), 2u);
  ASSERT_TRUE(again.text("chatcmpl-1").has_value());
  EXPECT_EQ(again.text("chatcmpl-1")->answer, "a");
}

TEST(KnowledgeStore, AFileFromANewerCalmIsRefusedNamingBothVersions) {
  testing::TempDir dir("calm-knowledge");
  const std::string path = dir.file("k.db");
  { KnowledgeStore store(path); }
  ASSERT_TRUE(exec_sql(path, "UPDATE schema_version SET version = 99"));
  try {
    KnowledgeStore store(path);
    FAIL() << "opened a file from a newer calm";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("schema version 99 is newer than this calm's (" +
                           std::to_string(KnowledgeStore::schema_version()) + ")"),
              std::string::npos)
        << message;
  }
  EXPECT_EQ(query_text(path, "SELECT max(version) FROM schema_version"), "99");  // untouched
}

}  // namespace
}  // namespace calm
