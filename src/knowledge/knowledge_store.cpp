#include "knowledge/knowledge_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <stdexcept>
#include <utility>

#include "knowledge/sqlite.h"

namespace calm {

namespace {

// 1: requests, adaptations, goals. 2: request_texts (migrate() adds it).
constexpr int64_t kSchemaVersion = 2;

constexpr const char* kSchema = R"sql(
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
)sql";

// Version 2. Its own table, not columns of requests: a file kept without text
// has no text columns at all, and the text can be dropped alone.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE IF NOT EXISTS request_texts (
  id INTEGER PRIMARY KEY,
  response_id TEXT UNIQUE,
  ts REAL NOT NULL,
  model TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  prompt TEXT NOT NULL,
  answer TEXT NOT NULL
);
)sql";

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

double now_unix_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

nlohmann::json parse_json(const std::string& text) {
  auto value = nlohmann::json::parse(text, nullptr, false);
  return value.is_discarded() ? nlohmann::json(text) : value;
}

ServedRequest read_request(const sqlite::Statement& row) {
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

}  // namespace

KnowledgeStore::KnowledgeStore(const std::string& path) : KnowledgeStore(path, Options{}) {}

KnowledgeStore::KnowledgeStore(const std::string& path, Options options)
    : path_(path), options_(options) {
  const int busy_ms = static_cast<int>(options_.busy_timeout.count());
  try {
    const auto parent = std::filesystem::path(path_).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    write_db_ = std::make_unique<sqlite::Database>(path_, busy_ms);
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
      sqlite::Statement quick_check(*write_db_, "PRAGMA quick_check(3)");  // the first 3 faults
      while (quick_check.step()) {
        if (!check.empty()) check += "; ";
        check += quick_check.column_text(0);
      }
    }
    if (check != "ok") {
      throw std::runtime_error("knowledge store: '" + path_ + "' is corrupt (" + check + ")");
    }
    create_schema();
    read_db_ = std::make_unique<sqlite::Database>(path_, busy_ms);
  } catch (const sqlite::Error& e) {
    throw std::runtime_error(std::string("knowledge store: ") + e.what());
  } catch (const std::filesystem::filesystem_error& e) {
    throw std::runtime_error("knowledge store '" + path_ + "': " + e.what());
  }
  writer_ = std::thread([this] { writer_loop(); });
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

// Creates what is missing and migrates an older file forward, in one
// transaction: a failed migration leaves the file as it was.
void KnowledgeStore::create_schema() {
  sqlite::Transaction transaction(*write_db_);
  write_db_->exec(kSchema);
  int64_t found = 0;  // 0: a new file
  {
    sqlite::Statement version(*write_db_, "SELECT max(version) FROM schema_version");
    version.step();
    if (!version.is_null(0)) found = version.column_int(0);
  }
  if (found > kSchemaVersion) {
    throw std::runtime_error("knowledge store '" + path_ + "': schema version " +
                             std::to_string(found) + " is newer than this calm's (" +
                             std::to_string(kSchemaVersion) + ")");
  }
  write_db_->exec(kSchemaV2);  // 1 -> 2: a table added, no row touched
  if (found < kSchemaVersion) {
    write_db_->exec("DELETE FROM schema_version");
    sqlite::Statement insert(*write_db_, "INSERT INTO schema_version (version) VALUES (?1)");
    insert.bind(1, kSchemaVersion).step();
    if (found > 0) {
      spdlog::info("knowledge store '{}': schema {} migrated to {}", path_, found, kSchemaVersion);
    }
  }
  transaction.commit();
}

void KnowledgeStore::record_request(const ServedRequest& record) {
  ServedRequest copy = record;
  if (copy.ts <= 0) copy.ts = now_unix_seconds();
  enqueue(std::move(copy));
}

void KnowledgeStore::record_adaptation(const Adaptation& adaptation) {
  Adaptation copy = adaptation;
  if (copy.ts <= 0) copy.ts = now_unix_seconds();
  enqueue(std::move(copy));
}

void KnowledgeStore::record_text(const RequestText& text) {
  if (!options_.keep_text) return;
  RequestText copy = text;
  if (copy.ts <= 0) copy.ts = now_unix_seconds();
  enqueue(std::move(copy));
}

void KnowledgeStore::note_lost(uint64_t records, const std::string& why) {
  dropped_ += records;
  if (loss_logged_.exchange(true)) return;
  spdlog::error(
      "knowledge store '{}': lost {} records ({}); serving goes on, and further losses are "
      "counted in calm_knowledge_writes_lost_total without another message until a write "
      "succeeds",
      path_, records, why);
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
    sqlite::Transaction transaction(*write_db_);
    bool any_request = false, any_adaptation = false, any_text = false;
    {
      sqlite::Statement insert_request(
          *write_db_,
          "INSERT OR IGNORE INTO requests (response_id, ts, model, routed_by, queue_ms, ttft_ms, "
          "latency_ms, tokens_in, tokens_out, decode_tps, energy_j, energy_source, memory_bytes, "
          "confidence, feedback) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
          "?14, ?15)");
      sqlite::Statement insert_adaptation(
          *write_db_,
          "INSERT INTO adaptations (ts, kind, reason, figures, \"before\", \"after\") "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
      sqlite::Statement insert_text(
          *write_db_,
          "INSERT OR IGNORE INTO request_texts (response_id, ts, model, endpoint, prompt, answer) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
      for (const Item& item : batch) {
        if (const auto* r = std::get_if<ServedRequest>(&item)) {
          any_request = true;
          // A missing response id is NULL: UNIQUE lets any number of those in.
          if (r->response_id.empty()) {
            insert_request.bind_null(1);
          } else {
            insert_request.bind(1, r->response_id);
          }
          insert_request.bind(2, r->ts)
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
              .step();
          insert_request.reset();
        } else if (const auto* t = std::get_if<RequestText>(&item)) {
          any_text = true;
          if (t->response_id.empty()) {
            insert_text.bind_null(1);
          } else {
            insert_text.bind(1, t->response_id);
          }
          insert_text.bind(2, t->ts)
              .bind(3, t->model)
              .bind(4, t->endpoint)
              .bind(5, t->prompt)
              .bind(6, t->answer)
              .step();
          insert_text.reset();
        } else {
          const auto& a = std::get<Adaptation>(item);
          any_adaptation = true;
          insert_adaptation.bind(1, a.ts)
              .bind(2, a.kind)
              .bind(3, a.reason)
              .bind(4, a.figures.dump())
              .bind(5, a.before.dump())
              .bind(6, a.after.dump())
              .step();
          insert_adaptation.reset();
        }
      }
    }
    if (any_request && options_.max_requests > 0) {
      sqlite::Statement trim(*write_db_, kTrimRequests);
      trim.bind(1, static_cast<int64_t>(options_.max_requests)).step();
    }
    if (any_adaptation && options_.max_adaptations > 0) {
      sqlite::Statement trim(*write_db_, kTrimAdaptations);
      trim.bind(1, static_cast<int64_t>(options_.max_adaptations)).step();
    }
    if (any_text && options_.max_requests > 0) {
      sqlite::Statement trim(*write_db_, kTrimTexts);
      trim.bind(1, static_cast<int64_t>(options_.max_requests)).step();
    }
    transaction.commit();
  } catch (const std::exception& e) {
    note_lost(batch.size(), e.what());
    return;
  }
  if (loss_logged_.exchange(false)) {
    spdlog::info("knowledge store '{}': writing again ({} records lost in all)", path_,
                 dropped_.load());
  }
}

bool KnowledgeStore::record_feedback(const std::string& response_id, double score) {
  if (response_id.empty()) return false;
  flush();
  std::lock_guard lock(write_mutex_);
  sqlite::Statement update(*write_db_, "UPDATE requests SET feedback = ?1 WHERE response_id = ?2");
  update.bind(1, score).bind(2, response_id).step();
  return write_db_->changes() > 0;
}

void KnowledgeStore::set_goals(const nlohmann::json& goals) {
  if (!goals.is_object()) throw std::invalid_argument("goals must be an object of name -> spec");
  const double ts = now_unix_seconds();
  std::lock_guard lock(write_mutex_);
  sqlite::Transaction transaction(*write_db_);
  write_db_->exec("DELETE FROM goals");
  {
    sqlite::Statement insert(*write_db_, "INSERT INTO goals (name, spec, ts) VALUES (?1, ?2, ?3)");
    for (const auto& [name, spec] : goals.items()) {
      insert.bind(1, name).bind(2, spec.dump()).bind(3, ts).step();
      insert.reset();
    }
  }
  transaction.commit();
}

std::optional<nlohmann::json> KnowledgeStore::goals() const {
  std::lock_guard lock(read_mutex_);
  sqlite::Statement select(*read_db_, "SELECT name, spec FROM goals ORDER BY name");
  nlohmann::json out = nlohmann::json::object();
  while (select.step()) out[select.column_text(0)] = parse_json(select.column_text(1));
  if (out.empty()) return std::nullopt;
  return out;
}

std::vector<Adaptation> KnowledgeStore::adaptations(size_t limit) const {
  std::lock_guard lock(read_mutex_);
  sqlite::Statement select(*read_db_,
                           "SELECT id, ts, kind, reason, figures, \"before\", \"after\" "
                           "FROM adaptations ORDER BY id DESC LIMIT ?1");
  select.bind(1, static_cast<int64_t>(limit));
  std::vector<Adaptation> out;
  while (select.step()) {
    Adaptation a;
    a.id = select.column_int(0);
    a.ts = select.column_double(1);
    a.kind = select.column_text(2);
    a.reason = select.column_text(3);
    a.figures = parse_json(select.column_text(4));
    a.before = parse_json(select.column_text(5));
    a.after = parse_json(select.column_text(6));
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<ServedRequest> KnowledgeStore::recent_requests(const std::string& model,
                                                           size_t k) const {
  const std::string sql = std::string("SELECT ") + kRequestColumns + " FROM requests " +
                          (model.empty() ? "" : "WHERE model = ?2 ") + "ORDER BY id DESC LIMIT ?1";
  std::lock_guard lock(read_mutex_);
  sqlite::Statement select(*read_db_, sql.c_str());
  select.bind(1, static_cast<int64_t>(k));
  if (!model.empty()) select.bind(2, model);
  std::vector<ServedRequest> out;
  while (select.step()) out.push_back(read_request(select));
  return out;
}

std::optional<RequestText> KnowledgeStore::text(const std::string& response_id) const {
  std::lock_guard lock(read_mutex_);
  sqlite::Statement select(*read_db_,
                           "SELECT response_id, ts, model, endpoint, prompt, answer "
                           "FROM request_texts WHERE response_id = ?1");
  select.bind(1, response_id);
  if (!select.step()) return std::nullopt;
  RequestText t;
  t.response_id = select.column_text(0);
  t.ts = select.column_double(1);
  t.model = select.column_text(2);
  t.endpoint = select.column_text(3);
  t.prompt = select.column_text(4);
  t.answer = select.column_text(5);
  return t;
}

std::vector<std::string> KnowledgeStore::models() const {
  std::lock_guard lock(read_mutex_);
  sqlite::Statement select(*read_db_, "SELECT DISTINCT model FROM requests ORDER BY model");
  std::vector<std::string> out;
  while (select.step()) out.push_back(select.column_text(0));
  return out;
}

uint64_t KnowledgeStore::request_count() const {
  std::lock_guard lock(read_mutex_);
  sqlite::Statement select(*read_db_, "SELECT count(*) FROM requests");
  select.step();
  return static_cast<uint64_t>(select.column_int(0));
}

std::vector<ServedRequest> KnowledgeStore::read_requests(const std::string& path) {
  try {
    sqlite::Database db(path, 5000, /*read_only=*/true);
    const std::string sql =
        std::string("SELECT ") + kRequestColumns + " FROM requests ORDER BY id ASC";
    sqlite::Statement select(db, sql.c_str());
    std::vector<ServedRequest> out;
    while (select.step()) out.push_back(read_request(select));
    return out;
  } catch (const sqlite::Error& e) {
    throw std::runtime_error(std::string("knowledge store: ") + e.what());
  }
}

}  // namespace calm
