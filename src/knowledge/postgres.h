// postgres::Database and postgres::Statement: the sql:: interface (sql.h)
// over libpq, for knowledge that several calm replicas share on one
// PostgreSQL server.
//
// A statement runs with PQexecParams when step() first runs it: the "?N"
// placeholders of the shared SQL become "$N", every parameter goes as text
// (doubles with 17 significant digits, so they come back bit for bit) and
// the server infers its type from the statement. The whole result is held
// and step() walks its rows.
//
// A connection that broke (the server restarted, the network blipped) is
// reset before the next statement, so a replica's knowledge writes resume by
// themselves once the server is back; what failed meanwhile is the caller's
// to count.
//
// Not thread-safe (see sql.h): one thread at a time per connection.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "knowledge/sql.h"

struct pg_conn;
struct pg_result;

namespace calm::postgres {

// The URL with any password replaced by "***", for messages and logs.
std::string redact(const std::string& url);

class Database : public sql::Database {
 public:
  // Connects (waiting at most connect_timeout_ms); read_only: every
  // transaction of this session is read-only. Throws sql::Error.
  Database(const std::string& url, int connect_timeout_ms, bool read_only = false);
  ~Database() override;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sql::Dialect dialect() const override { return sql::Dialect::kPostgres; }
  void exec(const char* sql) override;
  std::unique_ptr<sql::Statement> prepare(const char* sql) override;
  int64_t changes() const override { return changes_; }
  void begin() override { exec("BEGIN"); }
  const std::string& name() const override { return name_; }

  // Resets a broken connection; throws sql::Error when that fails too.
  pg_conn* connection();
  // Takes ownership of a result: checks it, records changes(), and throws
  // sql::Error naming `what` when it failed.
  pg_result* checked(pg_result* result, const std::string& what);

 private:
  std::string name_;
  pg_conn* conn_ = nullptr;
  int64_t changes_ = 0;
};

class Statement : public sql::Statement {
 public:
  Statement(Database& db, const char* sql);
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
  Statement& set(int index, std::optional<std::string> value);
  void clear_result();

  Database& db_;
  std::string sql_;                                 // with $N placeholders
  std::vector<std::optional<std::string>> params_;  // index 0 is $1; nullopt: NULL
  pg_result* result_ = nullptr;                     // after the first step()
  int row_ = -1;
  int rows_ = 0;
};

}  // namespace calm::postgres
