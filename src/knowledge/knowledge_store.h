// KnowledgeStore: the K of MAPE-K. What calm has served and what it changed,
// kept so that it outlives a restart: in one SQLite file (the embedded
// default), or in a PostgreSQL database that several calm replicas share
// (the target is then a postgresql:// URL; see "Replicas" below).
//
// Tables (schema_version 3):
//   requests     one row per finished request: what it cost (queue, time to
//                first token, latency, tokens, decode rate, energy, memory),
//                the confidence, and the user's feedback once given. The
//                per-model QoS windows come back from it after a restart
//                (recent_requests).
//   adaptations  one row per change the MAPE-K loop made: its kind, why, the
//                figures it decided on, and the settings before and after
//                (JSON). Plans are folded in here: a plan is recorded when it
//                is executed, as the adaptation it made; a plan that is never
//                executed leaves no row.
//   goals        the current goals as last set, one row per goal (JSON spec).
//   request_texts  (since version 2) each request's prompt and answer text,
//                by response id; written only with Options::keep_text
//                (`knowledge: {keep_text: true}`). By default the store keeps
//                what requests cost, never what they said. A version 1 file
//                is migrated on open: the table is added, nothing else moves.
//   feedback_events  (since version 3) one row per feedback given, with the
//                rated response, its model and the replica that took it; and
//                requests.replica, the replica that served each request.
//                What replicas read of each other (news_since).
//
// Writes never block the caller on disk: record_request and
// record_adaptation push onto a bounded in-memory queue that one writer
// thread drains in batches, one transaction per batch, every batch_interval
// or as soon as batch_records are queued. When the queue is full the record
// is dropped and counted (dropped()), never waited for. After each batch the
// writer deletes the oldest rows beyond max_requests (requests and
// request_texts alike) and max_adaptations.
//
// A write that fails (a read-only file, a full disk, a file size limit) fails
// no request: its batch is counted in dropped() and the writer goes on with
// the next one. The first loss is logged once; the next success says so and
// re-arms that one message, so an outage is one line, not one per batch.
//
// Crash safety: the file is in WAL mode with synchronous=NORMAL. A commit is
// an append to the write-ahead log that becomes valid only with its final
// commit frame; on the next open SQLite replays the log up to the last
// complete commit and ignores the rest. So a process killed mid-write
// (SIGKILL, a crash) loses at most the transaction in progress and never
// corrupts the file: what it wrote before is in the OS's page cache and
// survives the process, and synchronous=NORMAL only skips the fsync at each
// commit. A power loss or OS crash may lose the last transactions (the log is
// fsynced at checkpoints, not at every commit) but still leaves a consistent
// file. In exchange a commit costs no fsync.
//
// Replicas (PostgreSQL): every replica writes its requests, feedback,
// adaptations and goals into the same tables, tagged with its name
// (Options::replica). news_since() gives a replica what the others recorded
// since its cursor: their requests (which its MAPE-K loop adds to its QoS
// windows) and every feedback event (which moves the rated answer's
// confidence in each replica's window). Ids are assigned by the server; so
// that "id > the last seen" misses no row, every transaction that adds
// requests or feedback holds one advisory lock (ids then become visible in
// order). Replicas that start at once create the tables one at a time.
// What a replica has committed is on the server: killing it loses at most
// its queued, unwritten batch (as with SQLite).
//
// Connections: the writer thread, record_feedback and set_goals share one
// write connection (under write_mutex_); reads use a second connection (under
// read_mutex_). In WAL mode a reader sees the last commit without waiting for
// a transaction being written, so a read (a dashboard, a restart rebuilding
// its windows) never waits behind a batch, and the writer never waits for a
// read.
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace calm {

namespace sql {
class Database;
}

// One finished request. Empty optionals are stored as NULL. (Not
// "RequestRecord": that is what bench/replayer.h calls a replayed request.)
struct ServedRequest {
  int64_t id = 0;           // assigned by the store; ignored by record_request
  std::string response_id;  // the OpenAI response id ("chatcmpl-..."), unique; "" for none
  double ts = 0;            // unix seconds; 0: the time record_request was called
  std::string model;
  std::string routed_by;  // "name", "semantic", ...
  double queue_ms = 0;
  std::optional<double> ttft_ms;  // unknown for a request that failed before its first token
  double latency_ms = 0;
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  std::optional<double> decode_tps;
  std::optional<double> energy_j;  // unknown without an energy meter
  std::string energy_source;       // which meter measured energy_j
  uint64_t memory_bytes = 0;
  std::optional<double> confidence;  // [0, 1]; unknown without log-probabilities
  std::optional<double> feedback;    // the user's score, as the caller mapped it
};

// What one request said: kept only with Options::keep_text.
struct RequestText {
  std::string response_id;  // the request's, as in ServedRequest
  double ts = 0;            // unix seconds; 0: the time record_text was called
  std::string model;
  std::string endpoint;  // "chat" or "completions"
  // Chat: the messages as JSON ([{"role", "content"}]); completions: the prompt.
  std::string prompt;
  std::string answer;  // the whole answer, as the client got it
};

// One change the MAPE-K loop made (an executed plan).
struct Adaptation {
  int64_t id = 0;  // assigned by the store; ignored by record_adaptation
  double ts = 0;   // unix seconds; 0: the time record_adaptation was called
  std::string kind;
  std::string reason;
  nlohmann::json figures;  // what the decision was based on
  nlohmann::json before;   // the settings it changed, before and after
  nlohmann::json after;
};

class KnowledgeStore {
 public:
  struct Options {
    size_t max_requests = 100000;    // retention: the newest rows kept (0: all)
    size_t max_adaptations = 10000;  // likewise
    size_t max_queue = 4096;         // records waiting for the writer; beyond it they are dropped
    size_t batch_records = 256;
    std::chrono::milliseconds batch_interval{50};
    std::chrono::milliseconds busy_timeout{5000};  // waiting for another process's lock
    // Keep each request's prompt and answer text (record_text); off: none
    // is ever written, whatever is asked.
    bool keep_text = false;
    // This process's name among replicas sharing a PostgreSQL database (the
    // requests and feedback it writes carry it); empty: host name and pid.
    std::string replica;
  };

  // A position in what the replicas wrote: the newest ids seen.
  struct NewsCursor {
    int64_t request_id = 0;
    int64_t feedback_id = 0;
  };
  struct FeedbackEvent {
    int64_t id = 0;
    std::string response_id;
    std::string model;
    double feedback = 0;  // as record_feedback stored it
    std::string replica;  // which replica took it
  };
  struct News {
    std::vector<ServedRequest> requests;  // other replicas' requests, oldest first
    std::vector<FeedbackEvent> feedback;  // every replica's, this one's included
  };

  // Opens the file, or connects to the PostgreSQL URL, creating the tables
  // if missing, and checks it. Throws std::runtime_error naming the path (or
  // the URL without its password) if it is not a SQLite database, is
  // corrupt, cannot be reached, or was written by a newer calm.
  explicit KnowledgeStore(const std::string& path);
  KnowledgeStore(const std::string& path, Options options);
  // Writes everything still queued, then closes the file.
  ~KnowledgeStore();
  KnowledgeStore(const KnowledgeStore&) = delete;
  KnowledgeStore& operator=(const KnowledgeStore&) = delete;

  // Queues the record for the writer; never blocks on disk (see the top).
  // Thread-safe.
  void record_request(const ServedRequest& record);
  // Queues the adaptation like record_request. Thread-safe.
  void record_adaptation(const Adaptation& adaptation);
  // Queues the text like record_request, with Options::keep_text; without
  // it, does nothing. Thread-safe.
  void record_text(const RequestText& text);
  bool keeps_text() const { return options_.keep_text; }
  // Sets the feedback of the request with that response id, after writing
  // what is queued (so a response that has just finished can be rated).
  // False when no stored request has that id. Blocks on disk; throws
  // std::runtime_error if the write fails. Thread-safe.
  bool record_feedback(const std::string& response_id, double score);
  // Replaces the stored goals with `goals`, an object of name -> spec.
  // Throws std::invalid_argument if it is not an object, std::runtime_error
  // if the write fails. Blocks on disk. Thread-safe.
  void set_goals(const nlohmann::json& goals);
  // The goals as last set (an object of name -> spec); nullopt when none is
  // stored (never set, or set to {}). Thread-safe.
  std::optional<nlohmann::json> goals() const;

  // Blocks until everything queued before the call is written (or has failed
  // to be, see dropped()). Thread-safe.
  void flush();

  // Reads see what is written, not what is still queued: flush() first to
  // include it. They throw std::runtime_error if the file cannot be read.
  // All thread-safe.
  // The newest `limit` adaptations, newest first.
  std::vector<Adaptation> adaptations(size_t limit) const;
  // The newest k requests of the model ("" for every model), newest first.
  std::vector<ServedRequest> recent_requests(const std::string& model, size_t k) const;
  // The stored text of the request with that response id; nullopt when none.
  std::optional<RequestText> text(const std::string& response_id) const;
  // Every model with a stored request, sorted.
  std::vector<std::string> models() const;
  // The requests stored.
  uint64_t request_count() const;

  // Replicas. The cursor at the newest rows now (a replica starts reading
  // news from here).
  NewsCursor news_cursor() const;
  // What was written after `cursor` (at most `limit` rows of each kind),
  // and moves the cursor past it. Cheap when nothing is new (two indexed
  // range reads). Meaningful with PostgreSQL; with SQLite there is only one
  // replica, so only its own feedback comes back.
  News news_since(NewsCursor& cursor, size_t limit = 1000) const;
  // Whether replicas share this store (a PostgreSQL URL).
  bool shared() const { return shared_; }
  const std::string& replica() const { return replica_; }

  // Every request stored in the file (or PostgreSQL URL) at `path`, oldest
  // first, read through a read-only connection: nothing is created or written and no writer thread
  // starts. For tools that read what a (stopped or running) calm recorded,
  // such as `calm bench suite`. Throws std::runtime_error naming the path if
  // the file is missing, is not a knowledge store, or cannot be read.
  static std::vector<ServedRequest> read_requests(const std::string& path);

  // Records lost: dropped because the queue was full, or in a batch that
  // failed to be written. Thread-safe.
  uint64_t dropped() const { return dropped_.load(); }
  // The schema version this calm writes.
  static int64_t schema_version();
  const std::string& path() const { return path_; }
  // The path, or the URL without its password: for messages.
  const std::string& name() const;

 private:
  using Item = std::variant<ServedRequest, Adaptation, RequestText>;

  void enqueue(Item item);
  void writer_loop();
  void write_batch(std::vector<Item>& batch);
  void open_sqlite_file(int busy_ms);
  void create_schema();
  // Deletes the oldest rows past `keep` (kTrim* statements).
  void trim(const char* sql, size_t keep);
  // Counts `records` lost and logs the first loss since the last success.
  void note_lost(uint64_t records, const std::string& why);

  const std::string path_;
  const Options options_;
  const std::string replica_;
  bool shared_ = false;  // PostgreSQL; set in the constructor

  // The three mutexes are never held together.
  mutable std::mutex write_mutex_;
  std::unique_ptr<sql::Database> write_db_;  // guarded by write_mutex_
  mutable std::mutex read_mutex_;
  std::unique_ptr<sql::Database> read_db_;  // guarded by read_mutex_

  std::mutex queue_mutex_;
  std::condition_variable wake_writer_;
  std::condition_variable written_;
  std::deque<Item> queue_;     // guarded by queue_mutex_
  uint64_t enqueued_ = 0;      // guarded by queue_mutex_: items ever accepted
  uint64_t done_ = 0;          // guarded by queue_mutex_: items written (or failed)
  uint64_t flush_target_ = 0;  // guarded by queue_mutex_: write at once up to here
  bool stopping_ = false;      // guarded by queue_mutex_
  std::atomic<uint64_t> dropped_{0};
  // A loss has been logged and no write has succeeded since: the next loss
  // is counted, not logged again.
  std::atomic<bool> loss_logged_{false};
  std::thread writer_;
};

}  // namespace calm
