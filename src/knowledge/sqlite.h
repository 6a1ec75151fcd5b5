// sqlite::Database, Statement, Transaction: a thin RAII layer over the SQLite
// C API for the knowledge store, so that its code reads as SQL and every
// failure is a C++ exception naming the file. A file that is not a SQLite
// database, or is corrupt, says so plainly in the message.
//
// Not thread-safe: a Database and its Statements are used by one thread at a
// time (the owner serialises them); connections are opened
// SQLITE_OPEN_NOMUTEX, so SQLite adds no locking of its own.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace calm::sqlite {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Database {
 public:
  // Opens the file, creating it if missing; read_only: opens an existing
  // file for reading only (creates nothing, every write fails). Throws Error.
  Database(std::string path, int busy_timeout_ms, bool read_only = false);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements that return no rows we need. Throws Error.
  void exec(const char* sql);
  // The first column of the first row of a query, as text ("" for none).
  std::string query_text(const char* sql);
  // Rows changed by the last INSERT, UPDATE or DELETE.
  int64_t changes() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }
  // Throws Error for the connection's last failure: `what` failed.
  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

// One prepared statement. Bind indexes start at 1, column indexes at 0.
class Statement {
 public:
  Statement(Database& db, const char* sql);  // throws Error
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, double value);
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, const std::string& value);
  Statement& bind(int index, const std::optional<double>& value);  // NULL when empty
  Statement& bind_null(int index);
  // Advances: true when a row is ready, false when done. Throws Error.
  bool step();
  // Ready to run again (bindings are kept until rebound).
  void reset();

  bool is_null(int column) const;
  double column_double(int column) const;
  int64_t column_int(int column) const;
  std::string column_text(int column) const;
  std::optional<double> column_optional_double(int column) const;

 private:
  Database& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE on construction (takes the write lock up front, waiting up
// to the busy timeout); rolls back on destruction unless commit() ran.
class Transaction {
 public:
  explicit Transaction(Database& db);  // throws Error
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();  // throws Error

 private:
  Database& db_;
  bool done_ = false;
};

}  // namespace calm::sqlite
