#include "knowledge/leader_lock.h"

#include <spdlog/spdlog.h>

#include "knowledge/sql.h"
#include "util/unix_time.h"

namespace calm {

namespace {

constexpr int64_t kLeaderLock = 0x63616c6d0003;  // calm's own advisory lock key
constexpr int kConnectTimeoutMs = 5000;

// SELECT fn(kLeaderLock): whether the lock function returned true.
bool lock_call(sql::Database& db, const char* sql) {
  auto statement = db.prepare(sql);
  statement->bind(1, kLeaderLock).step();
  return statement->column_text(0) == "t";
}

}  // namespace

LeaderLock::LeaderLock(std::string url, std::string replica)
    : url_(std::move(url)), replica_(std::move(replica)) {}

LeaderLock::~LeaderLock() = default;

bool LeaderLock::refresh() {
  std::lock_guard lock(mutex_);
  const bool was = leading_.load();
  try {
    if (!db_) db_ = sql::open(url_, kConnectTimeoutMs);
    // A session lock is re-entrant: while this session holds it, this
    // succeeds (and one unlock keeps the count at one). After a reconnect
    // (postgres::Database resets a broken connection) it is a new session,
    // and only succeeds if no other replica took the lead meanwhile.
    const bool holds = lock_call(*db_, "SELECT pg_try_advisory_lock(?1)");
    if (holds && was) lock_call(*db_, "SELECT pg_advisory_unlock(?1)");
    if (holds && !was) {
      auto note = db_->prepare(
          "INSERT INTO placement_leader (id, replica, since) VALUES (1, ?1, ?2) "
          "ON CONFLICT (id) DO UPDATE SET replica = excluded.replica, since = excluded.since");
      note->bind(1, replica_).bind(2, unix_seconds()).step();
    }
    leading_ = holds;
  } catch (const sql::Error& e) {
    if (was) spdlog::warn("placement lead lost: {}", e.what());
    leading_ = false;
    db_.reset();  // a new session next time
  }
  return leading_.load();
}

std::string LeaderLock::leader() {
  std::lock_guard lock(mutex_);
  try {
    if (!db_) db_ = sql::open(url_, kConnectTimeoutMs);
    return db_->query_text("SELECT replica FROM placement_leader WHERE id = 1");
  } catch (const sql::Error&) {
    return "";
  }
}

}  // namespace calm
