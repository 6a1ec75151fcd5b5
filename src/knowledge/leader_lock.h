// LeaderLock: which one of the calm replicas that share a PostgreSQL
// knowledge database leads placement (the MAPE-K loop's plans of where
// models live on the nodes, and the clean-up of the nodes at start).
//
// The leader is the replica whose own connection holds a PostgreSQL session
// advisory lock. The server frees the lock when that session ends, so when
// the leader dies (killed, or its machine gone, once the server notices the
// dead connection) the next replica to refresh() takes over. Each replica
// refreshes once per MAPE-K period, so a takeover takes one period after
// the server has noticed. The replica that takes the lead writes its name in
// the placement_leader table, so every replica can say who leads.
//
//   follower ──refresh(): lock free──► leader ──connection lost / server gone──► follower
//       ▲                                 │
//       └────────── (never gives it up while its connection lives) ◄┘
//
// Without a shared database there is one replica, and it always leads: the
// caller then makes no LeaderLock at all.
//
// Thread-safe: refresh() and leader() serialise on one mutex; leading() is
// an atomic read.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

namespace calm {

namespace sql {
class Database;
}

class LeaderLock {
 public:
  // Connects lazily (in refresh()); no I/O here. The knowledge store's
  // tables must exist (a KnowledgeStore on the same URL opened first).
  LeaderLock(std::string url, std::string replica);
  ~LeaderLock();  // closes the connection: a leader's lock is freed at once
  LeaderLock(const LeaderLock&) = delete;
  LeaderLock& operator=(const LeaderLock&) = delete;

  // Takes the lead if it is free, or confirms that this replica still holds
  // it. Returns whether it leads. Never throws: a server that cannot be
  // reached means not leading, and the next call connects again.
  bool refresh();
  bool leading() const { return leading_.load(); }
  // The replica that took the lead last (placement_leader), "" when none
  // has or the server cannot be read.
  std::string leader();
  const std::string& replica() const { return replica_; }

 private:
  const std::string url_;
  const std::string replica_;
  std::mutex mutex_;
  std::unique_ptr<sql::Database> db_;  // guarded by mutex_; null until connected
  std::atomic<bool> leading_{false};
};

}  // namespace calm
