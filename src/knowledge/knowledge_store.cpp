#include "knowledge/knowledge_store.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <stdexcept>
#include <utility>

#include "knowledge/sql.h"
#include "util/unix_time.h"
#include "util/url.h"

namespace calm {

namespace {

// 1: requests, adaptations, goals. 2: request_texts. 3: requests.replica and
// feedback_events, what replicas sharing one PostgreSQL database read of each
// other (and there placement_leader, LeaderLock's record of who leads).
// create_schema() migrates an older file forward.
constexpr int64_t kSchemaVersion = 3;

// The tables of version 1 and 2, once per dialect: only the types differ
// (SQLite's INTEGER PRIMARY KEY is its row id; PostgreSQL's REAL and INTEGER
// are 4 bytes, so it gets DOUBLE PRECISION and BIGINT).
constexpr const char* kSqliteSchema = R"sql(
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
  id INTEGER PRIMARY KEY,
  response_id TEXT UNIQUE,
  ts REAL NOT NULL,
  model TEXT NOT NULL,
  routed_by TEXT NOT NULL,
  queue_ms REAL,
  ttft_ms REAL,
  latency_ms REAL,
  tokens_in INTEGER,
  tokens_out INTEGER,
  decode_tps REAL,
  energy_j REAL,
  energy_source TEXT,
  memory_bytes INTEGER,
  confidence REAL,
  feedback REAL
);
CREATE INDEX IF NOT EXISTS requests_by_model ON requests (model, id);
CREATE TABLE IF NOT EXISTS adaptations (
  id INTEGER PRIMARY KEY,
  ts REAL NOT NULL,
  kind TEXT NOT NULL,
  reason TEXT NOT NULL,
  figures TEXT NOT NULL,
  "before" TEXT NOT NULL,
  "after" TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS goals (
  name TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS request_texts (
  id INTEGER PRIMARY KEY,
  response_id TEXT UNIQUE,
  ts REAL NOT NULL,
  model TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  prompt TEXT NOT NULL,
  answer TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback_events (
  id INTEGER PRIMARY KEY,
  ts REAL NOT NULL,
  response_id TEXT NOT NULL,
  model TEXT NOT NULL,
  feedback REAL NOT NULL,
  replica TEXT NOT NULL
);
)sql";

constexpr const char* kPostgresSchema = R"sql(
CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
  id BIGSERIAL PRIMARY KEY,
  response_id TEXT UNIQUE,
  ts DOUBLE PRECISION NOT NULL,
  model TEXT NOT NULL,
  routed_by TEXT NOT NULL,
  queue_ms DOUBLE PRECISION,
  ttft_ms DOUBLE PRECISION,
  latency_ms DOUBLE PRECISION,
  tokens_in BIGINT,
  tokens_out BIGINT,
  decode_tps DOUBLE PRECISION,
  energy_j DOUBLE PRECISION,
  energy_source TEXT,
  memory_bytes BIGINT,
  confidence DOUBLE PRECISION,
  feedback DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS requests_by_model ON requests (model, id);
CREATE TABLE IF NOT EXISTS adaptations (
  id BIGSERIAL PRIMARY KEY,
  ts DOUBLE PRECISION NOT NULL,
  kind TEXT NOT NULL,
  reason TEXT NOT NULL,
  figures TEXT NOT NULL,
  "before" TEXT NOT NULL,
  "after" TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS goals (
  name TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  ts DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS request_texts (
  id BIGSERIAL PRIMARY KEY,
  response_id TEXT UNIQUE,
  ts DOUBLE PRECISION NOT NULL,
  model TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  prompt TEXT NOT NULL,
  answer TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback_events (
  id BIGSERIAL PRIMARY KEY,
  ts DOUBLE PRECISION NOT NULL,
  response_id TEXT NOT NULL,
  model TEXT NOT NULL,
  feedback DOUBLE PRECISION NOT NULL,
  replica TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS placement_leader (
  id BIGINT PRIMARY KEY CHECK (id = 1),
  replica TEXT NOT NULL,
  since DOUBLE PRECISION NOT NULL
);
)sql";

// PostgreSQL advisory lock keys (any two fixed numbers of calm's own).
// kSchemaLock: replicas that start at once create the tables one at a time
// (concurrent CREATE TABLE IF NOT EXISTS can fail on the catalog).
// kNewsLock: every transaction that adds requests or feedback events holds
// it, so ids become visible in id order and a replica that reads "id > the
// last one I saw" misses none (see news_since).
constexpr int64_t kSchemaLock = 0x63616c6d0001;
constexpr int64_t kNewsLock = 0x63616c6d0002;

constexpr const char* kRequestColumns =
    "id, response_id, ts, model, routed_by, queue_ms, ttft_ms, latency_ms, tokens_in, tokens_out, "
    "decode_tps, energy_j, energy_source, memory_bytes, confidence, feedback";

// Retention: ids are assigned as max(id) + 1 and rows are only ever deleted
// from the oldest end, so the newest N rows are those with id > max(id) - N.
// (With gaps this keeps fewer, never more.) No scan of the table.
constexpr const char* kTrimRequests =
    "DELETE FROM requests WHERE id <= (SELECT max(id) FROM requests) - ?1";
constexpr const char* kTrimAdaptations =
    "DELETE FROM adaptations WHERE id <= (SELECT max(id) FROM adaptations) - ?1";
constexpr const char* kTrimTexts =
    "DELETE FROM request_texts WHERE id <= (SELECT max(id) FROM request_texts) - ?1";

// Feedback events are kept as long as the requests they rate.
constexpr const char* kTrimFeedback =
    "DELETE FROM feedback_events WHERE id <= (SELECT max(id) FROM feedback_events) - ?1";

nlohmann::json parse_json(const std::string& text) {
  auto value = nlohmann::json::parse(text, nullptr, false);
  return value.is_discarded() ? nlohmann::json(text) : value;
}

ServedRequest read_request(const sql::Statement& row) {
  ServedRequest r;
  r.id = row.column_int(0);
  r.response_id = row.column_text(1);
  r.ts = row.column_double(2);
  r.model = row.column_text(3);
  r.routed_by = row.column_text(4);
  r.queue_ms = row.column_double(5);
  r.ttft_ms = row.column_optional_double(6);
  r.latency_ms = row.column_double(7);
  r.tokens_in = row.column_int(8);
  r.tokens_out = row.column_int(9);
  r.decode_tps = row.column_optional_double(10);
  r.energy_j = row.column_optional_double(11);
  r.energy_source = row.column_text(12);
  r.memory_bytes = static_cast<uint64_t>(row.column_int(13));
  r.confidence = row.column_optional_double(14);
  r.feedback = row.column_optional_double(15);
  return r;
}

// Under PostgreSQL, waits for the advisory lock `key` until the transaction
// ends; under SQLite (one writer at a time already) does nothing.
void lock_for_transaction(sql::Database& db, int64_t key) {
  if (db.dialect() != sql::Dialect::kPostgres) return;
  auto lock = db.prepare("SELECT pg_advisory_xact_lock(?1)");
  lock->bind(1, key).step();
}

std::string default_replica_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host[0] ? host : "calm") + "-" + std::to_string(getpid());
}

}  // namespace

KnowledgeStore::KnowledgeStore(const std::string& path) : KnowledgeStore(path, Options{}) {}

KnowledgeStore::KnowledgeStore(const std::string& path, Options options)
    : path_(path),
      options_(options),
      replica_(options.replica.empty() ? default_replica_name() : options.replica) {
  const int busy_ms = static_cast<int>(options_.busy_timeout.count());
  try {
    if (is_postgres_url(path_)) {
      shared_ = true;
      write_db_ = sql::open(path_, busy_ms);
    } else {
      open_sqlite_file(busy_ms);
    }
    create_schema();
    read_db_ = sql::open(path_, busy_ms);
  } catch (const sql::Error& e) {
    throw std::runtime_error(std::string("knowledge store: ") + e.what());
  } catch (const std::filesystem::filesystem_error& e) {
    throw std::runtime_error("knowledge store '" + path_ + "': " + e.what());
  }
  writer_ = std::thread([this] { writer_loop(); });
}

void KnowledgeStore::open_sqlite_file(int busy_ms) {
  const auto parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  write_db_ = sql::open(path_, busy_ms);
  // The first statement reads the file: this is where a file that is not a
  // database fails.
  const std::string mode = write_db_->query_text("PRAGMA journal_mode=WAL");
  if (mode != "wal") {
    throw std::runtime_error("knowledge store '" + path_ + "': cannot use WAL (journal mode '" +
                             mode + "')");
  }
  write_db_->exec("PRAGMA synchronous=NORMAL");
  // Once per start: finds a damaged page before the writer trips on it.
  // Linear in the file (tens of milliseconds at the default retention).
  std::string check;
  {
    auto quick_check = write_db_->prepare("PRAGMA quick_check(3)");  // the first 3 faults
    while (quick_check->step()) {
      if (!check.empty()) check += "; ";
      check += quick_check->column_text(0);
    }
  }
  if (check != "ok") {
    throw std::runtime_error("knowledge store: '" + path_ + "' is corrupt (" + check + ")");
  }
}

KnowledgeStore::~KnowledgeStore() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  wake_writer_.notify_one();
  writer_.join();
}

int64_t KnowledgeStore::schema_version() {
  return kSchemaVersion;
}

const std::string& KnowledgeStore::name() const {
  return write_db_->name();
}

// Creates what is missing and migrates an older file forward, in one
// transaction: a failed migration leaves the file as it was.
void KnowledgeStore::create_schema() {
  sql::Transaction transaction(*write_db_);
  lock_for_transaction(*write_db_, kSchemaLock);
  write_db_->exec(shared_ ? kPostgresSchema : kSqliteSchema);
  int64_t found = 0;  // 0: a new database
  {
    auto version = write_db_->prepare("SELECT max(version) FROM schema_version");
    version->step();
    if (!version->is_null(0)) found = version->column_int(0);
  }
  if (found > kSchemaVersion) {
    throw std::runtime_error("knowledge store '" + name() + "': schema version " +
                             std::to_string(found) + " is newer than this calm's (" +
                             std::to_string(kSchemaVersion) + ")");
  }
  // 1 -> 2 added a table (the schema above creates it). 2 -> 3 adds a
  // column, which a new database's requests table lacks too.
  if (found < 3) write_db_->exec("ALTER TABLE requests ADD COLUMN replica TEXT");
  if (found < kSchemaVersion) {
    write_db_->exec("DELETE FROM schema_version");
    auto insert = write_db_->prepare("INSERT INTO schema_version (version) VALUES (?1)");
    insert->bind(1, kSchemaVersion).step();
    if (found > 0) {
      spdlog::info("knowledge store '{}': schema {} migrated to {}", name(), found, kSchemaVersion);
    }
  }
  transaction.commit();
}

void KnowledgeStore::record_request(const ServedRequest& record) {
  ServedRequest copy = record;
  if (copy.ts <= 0) copy.ts = unix_seconds();
  enqueue(std::move(copy));
}

void KnowledgeStore::record_adaptation(const Adaptation& adaptation) {
  Adaptation copy = adaptation;
  if (copy.ts <= 0) copy.ts = unix_seconds();
  enqueue(std::move(copy));
}

void KnowledgeStore::record_text(const RequestText& text) {
  if (!options_.keep_text) return;
  RequestText copy = text;
  if (copy.ts <= 0) copy.ts = unix_seconds();
  enqueue(std::move(copy));
}

void KnowledgeStore::note_lost(uint64_t records, const std::string& why) {
  dropped_ += records;
  if (loss_logged_.exchange(true)) return;
  spdlog::error(
      "knowledge store '{}': lost {} records ({}); serving goes on, and further losses are "
      "counted in calm_knowledge_writes_lost_total without another message until a write "
      "succeeds",
      name(), records, why);
}

void KnowledgeStore::enqueue(Item item) {
  bool accepted = false;
  bool wake = false;
  {
    std::lock_guard lock(queue_mutex_);
    if (queue_.size() < options_.max_queue) {
      queue_.push_back(std::move(item));
      ++enqueued_;
      accepted = true;
      // The first record starts the batch's interval; a full batch is due now.
      wake = queue_.size() == 1 || queue_.size() == options_.batch_records;
    }
  }
  if (!accepted) {
    note_lost(1, "the write queue is full: the disk is slower than the requests");
  } else if (wake) {
    wake_writer_.notify_one();
  }
}

void KnowledgeStore::flush() {
  std::unique_lock lock(queue_mutex_);
  const uint64_t target = enqueued_;
  if (done_ >= target) return;
  flush_target_ = std::max(flush_target_, target);
  wake_writer_.notify_one();
  written_.wait(lock, [&] { return done_ >= target; });
}

void KnowledgeStore::writer_loop() {
  std::unique_lock lock(queue_mutex_);
  while (true) {
    // Idle until something is queued.
    wake_writer_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to write
    // Then until a batch is due: the interval since the first record has
    // passed, a full batch is queued, someone waits in flush(), or stopping.
    wake_writer_.wait_for(lock, options_.batch_interval, [&] {
      return stopping_ || queue_.size() >= options_.batch_records || flush_target_ > done_;
    });
    std::vector<Item> batch(std::make_move_iterator(queue_.begin()),
                            std::make_move_iterator(queue_.end()));
    queue_.clear();
    lock.unlock();
    write_batch(batch);
    lock.lock();
    done_ += batch.size();
    written_.notify_all();
  }
}

void KnowledgeStore::write_batch(std::vector<Item>& batch) {
  std::lock_guard lock(write_mutex_);
  try {
    sql::Transaction transaction(*write_db_);
    lock_for_transaction(*write_db_, kNewsLock);
    bool any_request = false, any_adaptation = false, any_text = false;
    {
      auto insert_request = write_db_->prepare(
          "INSERT INTO requests (response_id, ts, model, routed_by, queue_ms, ttft_ms, "
          "latency_ms, tokens_in, tokens_out, decode_tps, energy_j, energy_source, memory_bytes, "
          "confidence, feedback, replica) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
          "?12, ?13, ?14, ?15, ?16) ON CONFLICT DO NOTHING");
      auto insert_adaptation = write_db_->prepare(
          "INSERT INTO adaptations (ts, kind, reason, figures, \"before\", \"after\") "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
      auto insert_text = write_db_->prepare(
          "INSERT INTO request_texts (response_id, ts, model, endpoint, prompt, answer) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING");
      for (const Item& item : batch) {
        if (const auto* r = std::get_if<ServedRequest>(&item)) {
          any_request = true;
          // A missing response id is NULL: UNIQUE lets any number of those in.
          if (r->response_id.empty()) {
            insert_request->bind_null(1);
          } else {
            insert_request->bind(1, r->response_id);
          }
          insert_request->bind(2, r->ts)
              .bind(3, r->model)
              .bind(4, r->routed_by)
              .bind(5, r->queue_ms)
              .bind(6, r->ttft_ms)
              .bind(7, r->latency_ms)
              .bind(8, r->tokens_in)
              .bind(9, r->tokens_out)
              .bind(10, r->decode_tps)
              .bind(11, r->energy_j)
              .bind(12, r->energy_source)
              .bind(13, static_cast<int64_t>(r->memory_bytes))
              .bind(14, r->confidence)
              .bind(15, r->feedback)
              .bind(16, replica_)
              .step();
          insert_request->reset();
        } else if (const auto* t = std::get_if<RequestText>(&item)) {
          any_text = true;
          if (t->response_id.empty()) {
            insert_text->bind_null(1);
          } else {
            insert_text->bind(1, t->response_id);
          }
          insert_text->bind(2, t->ts)
              .bind(3, t->model)
              .bind(4, t->endpoint)
              .bind(5, t->prompt)
              .bind(6, t->answer)
              .step();
          insert_text->reset();
        } else {
          const auto& a = std::get<Adaptation>(item);
          any_adaptation = true;
          insert_adaptation->bind(1, a.ts)
              .bind(2, a.kind)
              .bind(3, a.reason)
              .bind(4, a.figures.dump())
              .bind(5, a.before.dump())
              .bind(6, a.after.dump())
              .step();
          insert_adaptation->reset();
        }
      }
    }
    if (any_request && options_.max_requests > 0) {
      trim(kTrimRequests, options_.max_requests);
      trim(kTrimFeedback, options_.max_requests);
    }
    if (any_adaptation && options_.max_adaptations > 0) {
      trim(kTrimAdaptations, options_.max_adaptations);
    }
    if (any_text && options_.max_requests > 0) trim(kTrimTexts, options_.max_requests);
    transaction.commit();
  } catch (const std::exception& e) {
    note_lost(batch.size(), e.what());
    return;
  }
  if (loss_logged_.exchange(false)) {
    spdlog::info("knowledge store '{}': writing again ({} records lost in all)", name(),
                 dropped_.load());
  }
}

void KnowledgeStore::trim(const char* sql, size_t keep) {
  auto statement = write_db_->prepare(sql);
  statement->bind(1, static_cast<int64_t>(keep)).step();
}

bool KnowledgeStore::record_feedback(const std::string& response_id, double score) {
  if (response_id.empty()) return false;
  flush();
  std::lock_guard lock(write_mutex_);
  try {
    sql::Transaction transaction(*write_db_);
    lock_for_transaction(*write_db_, kNewsLock);
    auto update = write_db_->prepare("UPDATE requests SET feedback = ?1 WHERE response_id = ?2");
    update->bind(1, score).bind(2, response_id).step();
    if (write_db_->changes() == 0) return false;
    // The event other replicas read (news_since) to move their windows.
    auto event = write_db_->prepare(
        "INSERT INTO feedback_events (ts, response_id, model, feedback, replica) "
        "SELECT ?1, response_id, model, feedback, ?2 FROM requests WHERE response_id = ?3");
    event->bind(1, unix_seconds()).bind(2, replica_).bind(3, response_id).step();
    transaction.commit();
    return true;
  } catch (const sql::Error& e) {
    throw std::runtime_error(std::string("knowledge store: ") + e.what());
  }
}

void KnowledgeStore::set_goals(const nlohmann::json& goals) {
  if (!goals.is_object()) throw std::invalid_argument("goals must be an object of name -> spec");
  const double ts = unix_seconds();
  std::lock_guard lock(write_mutex_);
  sql::Transaction transaction(*write_db_);
  write_db_->exec("DELETE FROM goals");
  {
    auto insert = write_db_->prepare("INSERT INTO goals (name, spec, ts) VALUES (?1, ?2, ?3)");
    for (const auto& [name, spec] : goals.items()) {
      insert->bind(1, name).bind(2, spec.dump()).bind(3, ts).step();
      insert->reset();
    }
  }
  transaction.commit();
}

std::optional<nlohmann::json> KnowledgeStore::goals() const {
  std::lock_guard lock(read_mutex_);
  auto select = read_db_->prepare("SELECT name, spec FROM goals ORDER BY name");
  nlohmann::json out = nlohmann::json::object();
  while (select->step()) out[select->column_text(0)] = parse_json(select->column_text(1));
  if (out.empty()) return std::nullopt;
  return out;
}

std::vector<Adaptation> KnowledgeStore::adaptations(size_t limit) const {
  std::lock_guard lock(read_mutex_);
  auto select = read_db_->prepare(
      "SELECT id, ts, kind, reason, figures, \"before\", \"after\" "
      "FROM adaptations ORDER BY id DESC LIMIT ?1");
  select->bind(1, static_cast<int64_t>(limit));
  std::vector<Adaptation> out;
  while (select->step()) {
    Adaptation a;
    a.id = select->column_int(0);
    a.ts = select->column_double(1);
    a.kind = select->column_text(2);
    a.reason = select->column_text(3);
    a.figures = parse_json(select->column_text(4));
    a.before = parse_json(select->column_text(5));
    a.after = parse_json(select->column_text(6));
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<ServedRequest> KnowledgeStore::recent_requests(const std::string& model,
                                                           size_t k) const {
  const std::string sql = std::string("SELECT ") + kRequestColumns + " FROM requests " +
                          (model.empty() ? "" : "WHERE model = ?2 ") + "ORDER BY id DESC LIMIT ?1";
  std::lock_guard lock(read_mutex_);
  auto select = read_db_->prepare(sql.c_str());
  select->bind(1, static_cast<int64_t>(k));
  if (!model.empty()) select->bind(2, model);
  std::vector<ServedRequest> out;
  while (select->step()) out.push_back(read_request(*select));
  return out;
}

KnowledgeStore::NewsCursor KnowledgeStore::news_cursor() const {
  std::lock_guard lock(read_mutex_);
  NewsCursor cursor;
  auto requests = read_db_->prepare("SELECT max(id) FROM requests");
  if (requests->step()) cursor.request_id = requests->column_int(0);
  auto feedback = read_db_->prepare("SELECT max(id) FROM feedback_events");
  if (feedback->step()) cursor.feedback_id = feedback->column_int(0);
  return cursor;
}

KnowledgeStore::News KnowledgeStore::news_since(NewsCursor& cursor, size_t limit) const {
  News news;
  const std::string sql = std::string("SELECT ") + kRequestColumns +
                          " , replica FROM requests WHERE id > ?1 ORDER BY id ASC LIMIT ?2";
  std::lock_guard lock(read_mutex_);
  auto requests = read_db_->prepare(sql.c_str());
  requests->bind(1, cursor.request_id).bind(2, static_cast<int64_t>(limit));
  while (requests->step()) {
    ServedRequest r = read_request(*requests);
    cursor.request_id = r.id;
    if (requests->column_text(16) != replica_) news.requests.push_back(std::move(r));
  }
  auto feedback = read_db_->prepare(
      "SELECT id, response_id, model, feedback, replica FROM feedback_events WHERE id > ?1 "
      "ORDER BY id ASC LIMIT ?2");
  feedback->bind(1, cursor.feedback_id).bind(2, static_cast<int64_t>(limit));
  while (feedback->step()) {
    FeedbackEvent f;
    f.id = feedback->column_int(0);
    f.response_id = feedback->column_text(1);
    f.model = feedback->column_text(2);
    f.feedback = feedback->column_double(3);
    f.replica = feedback->column_text(4);
    cursor.feedback_id = f.id;
    news.feedback.push_back(std::move(f));
  }
  return news;
}

std::optional<RequestText> KnowledgeStore::text(const std::string& response_id) const {
  std::lock_guard lock(read_mutex_);
  auto select = read_db_->prepare(
      "SELECT response_id, ts, model, endpoint, prompt, answer "
      "FROM request_texts WHERE response_id = ?1");
  select->bind(1, response_id);
  if (!select->step()) return std::nullopt;
  RequestText t;
  t.response_id = select->column_text(0);
  t.ts = select->column_double(1);
  t.model = select->column_text(2);
  t.endpoint = select->column_text(3);
  t.prompt = select->column_text(4);
  t.answer = select->column_text(5);
  return t;
}

std::vector<std::string> KnowledgeStore::models() const {
  std::lock_guard lock(read_mutex_);
  auto select = read_db_->prepare("SELECT DISTINCT model FROM requests ORDER BY model");
  std::vector<std::string> out;
  while (select->step()) out.push_back(select->column_text(0));
  return out;
}

uint64_t KnowledgeStore::request_count() const {
  std::lock_guard lock(read_mutex_);
  auto select = read_db_->prepare("SELECT count(*) FROM requests");
  select->step();
  return static_cast<uint64_t>(select->column_int(0));
}

std::vector<ServedRequest> KnowledgeStore::read_requests(const std::string& path) {
  try {
    auto db = sql::open(path, 5000, /*read_only=*/true);
    const std::string sql =
        std::string("SELECT ") + kRequestColumns + " FROM requests ORDER BY id ASC";
    auto select = db->prepare(sql.c_str());
    std::vector<ServedRequest> out;
    while (select->step()) out.push_back(read_request(*select));
    return out;
  } catch (const sql::Error& e) {
    throw std::runtime_error(std::string("knowledge store: ") + e.what());
  }
}

}  // namespace calm
