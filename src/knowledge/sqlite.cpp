#include "knowledge/sqlite.h"

#include <sqlite3.h>

#include <utility>

namespace calm::sqlite {

namespace {

std::string describe(sqlite3* db, const std::string& path, const std::string& what) {
  const int code = db ? (sqlite3_errcode(db) & 0xff) : SQLITE_CANTOPEN;
  const std::string detail = db ? sqlite3_errmsg(db) : "out of memory";
  if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) {
    return "'" + path + "' is not a SQLite database or is corrupt (" + detail + ")";
  }
  return "SQLite database '" + path + "': " + what + ": " + detail;
}

}  // namespace

Database::Database(std::string path, int busy_timeout_ms, bool read_only) : path_(std::move(path)) {
  const int flags =
      (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
      SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string message = describe(db_, path_, "open");
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(message);
  }
  sqlite3_extended_result_codes(db_, 0);
  sqlite3_busy_timeout(db_, busy_timeout_ms);
}

Database::~Database() {
  sqlite3_close(db_);
}

void Database::exec(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(sql);
}

std::unique_ptr<sql::Statement> Database::prepare(const char* sql) {
  return std::make_unique<Statement>(*this, sql);
}

int64_t Database::changes() const {
  return sqlite3_changes64(db_);
}

void Database::fail(const std::string& what) const {
  throw Error(describe(db_, path_, what));
}

Statement::Statement(Database& db, const char* sql) : db_(db) {
  if (sqlite3_prepare_v2(db_.handle(), sql, -1, &stmt_, nullptr) != SQLITE_OK) {
    db_.fail(std::string("prepare ") + sql);
  }
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

Statement& Statement::bind(int index, double value) {
  if (sqlite3_bind_double(stmt_, index, value) != SQLITE_OK) db_.fail("bind");
  return *this;
}

Statement& Statement::bind(int index, int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) db_.fail("bind");
  return *this;
}

Statement& Statement::bind(int index, const std::string& value) {
  if (sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                        SQLITE_TRANSIENT) != SQLITE_OK) {
    db_.fail("bind");
  }
  return *this;
}

Statement& Statement::bind_null(int index) {
  if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) db_.fail("bind");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // The step's error is on the statement; reset copies it to the connection.
  sqlite3_reset(stmt_);
  db_.fail(std::string("run ") + sqlite3_sql(stmt_));
}

void Statement::reset() {
  sqlite3_reset(stmt_);
}

bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

double Statement::column_double(int column) const {
  return sqlite3_column_double(stmt_, column);
}

int64_t Statement::column_int(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::string Statement::column_text(int column) const {
  const auto* text = sqlite3_column_text(stmt_, column);
  if (!text) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

}  // namespace calm::sqlite
