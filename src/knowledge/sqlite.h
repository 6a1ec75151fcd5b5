// sqlite::Database and sqlite::Statement: the sql:: interface (sql.h) over
// the SQLite C API, the knowledge store's embedded default. A file that is
// not a SQLite database, or is corrupt, says so plainly in the message.
//
// Not thread-safe (see sql.h); connections are opened SQLITE_OPEN_NOMUTEX,
// so SQLite adds no locking of its own.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "knowledge/sql.h"

struct sqlite3;
struct sqlite3_stmt;

namespace calm::sqlite {

using Error = sql::Error;

class Database : public sql::Database {
 public:
  // Opens the file, creating it if missing; read_only: opens an existing
  // file for reading only (creates nothing, every write fails). Throws Error.
  Database(std::string path, int busy_timeout_ms, bool read_only = false);
  ~Database() override;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sql::Dialect dialect() const override { return sql::Dialect::kSqlite; }
  void exec(const char* sql) override;
  std::unique_ptr<sql::Statement> prepare(const char* sql) override;
  int64_t changes() const override;
  void begin() override { exec("BEGIN IMMEDIATE"); }
  const std::string& name() const override { return path_; }
  sqlite3* handle() const { return db_; }
  // Throws Error for the connection's last failure: `what` failed.
  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

class Statement : public sql::Statement {
 public:
  Statement(Database& db, const char* sql);  // throws Error
  ~Statement() override;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  using sql::Statement::bind;
  Statement& bind(int index, double value) override;
  Statement& bind(int index, int64_t value) override;
  Statement& bind(int index, const std::string& value) override;
  Statement& bind_null(int index) override;
  bool step() override;
  void reset() override;

  bool is_null(int column) const override;
  double column_double(int column) const override;
  int64_t column_int(int column) const override;
  std::string column_text(int column) const override;

 private:
  Database& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace calm::sqlite
