// sql::Database and sql::Statement: the one interface the knowledge store
// writes its SQL against, with two implementations:
//   sqlite.h    the embedded default: one file, one calm process;
//   postgres.h  a PostgreSQL server that several calm replicas share.
// The store's SQL is written once, in what both accept: "?N" placeholders
// (the PostgreSQL side rewrites them to "$N"), INSERT ... ON CONFLICT DO
// NOTHING, standard types in queries. Only the schema's column types differ
// (knowledge_store.cpp keeps one schema per dialect).
//
// Every failure is an Error whose message names the database (a SQLite path,
// or a PostgreSQL URL without its password).
//
// Not thread-safe: a Database and its Statements are used by one thread at a
// time (the owner serialises them).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace calm::sql {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Dialect { kSqlite, kPostgres };

// One prepared statement. Bind indexes start at 1, column indexes at 0.
// step() runs it (the first call after construction or reset()) and then
// advances through its rows: true when a row is ready, false when done.
class Statement {
 public:
  virtual ~Statement() = default;

  virtual Statement& bind(int index, double value) = 0;
  virtual Statement& bind(int index, int64_t value) = 0;
  virtual Statement& bind(int index, const std::string& value) = 0;
  virtual Statement& bind_null(int index) = 0;
  Statement& bind(int index, const std::optional<double>& value) {
    return value ? bind(index, *value) : bind_null(index);
  }
  virtual bool step() = 0;  // throws Error
  // Ready to run again (bindings are kept until rebound).
  virtual void reset() = 0;

  virtual bool is_null(int column) const = 0;
  virtual double column_double(int column) const = 0;
  virtual int64_t column_int(int column) const = 0;
  virtual std::string column_text(int column) const = 0;
  std::optional<double> column_optional_double(int column) const {
    if (is_null(column)) return std::nullopt;
    return column_double(column);
  }
};

class Database {
 public:
  virtual ~Database() = default;

  virtual Dialect dialect() const = 0;
  // Runs one or more statements that return no rows we need. Throws Error.
  virtual void exec(const char* sql) = 0;
  virtual std::unique_ptr<Statement> prepare(const char* sql) = 0;  // throws Error
  // Rows changed by the last INSERT, UPDATE or DELETE.
  virtual int64_t changes() const = 0;
  // Starts a transaction that takes the write lock up front (SQLite: BEGIN
  // IMMEDIATE, waiting up to the busy timeout). Throws Error.
  virtual void begin() = 0;
  // The path or the URL (never with a password), for messages.
  virtual const std::string& name() const = 0;

  // The first column of the first row of a query, as text ("" for none).
  std::string query_text(const char* sql) {
    auto statement = prepare(sql);
    return statement->step() ? statement->column_text(0) : std::string();
  }
};

// begin() on construction; ROLLBACK on destruction unless commit() ran.
class Transaction {
 public:
  explicit Transaction(Database& db) : db_(db) { db_.begin(); }
  ~Transaction() {
    if (done_) return;
    try {
      db_.exec("ROLLBACK");
    } catch (const Error&) {
      // The connection is gone; so is the transaction.
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    db_.exec("COMMIT");
    done_ = true;
  }

 private:
  Database& db_;
  bool done_ = false;
};

// Opens `target`: a PostgreSQL URL (util/url.h is_postgres_url; postgres.h)
// or a SQLite file, created if
// missing unless read_only. busy_timeout_ms bounds a wait for another
// writer's lock (SQLite) or for the server to answer the connection
// (PostgreSQL). Throws Error.
std::unique_ptr<Database> open(const std::string& target, int busy_timeout_ms,
                               bool read_only = false);

}  // namespace calm::sql
