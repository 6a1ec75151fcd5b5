#include "knowledge/postgres.h"

#include <libpq-fe.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <regex>

namespace calm::postgres {

namespace {

// libpq's message ends with a newline; a message reads better without it.
std::string trimmed(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// "?N" -> "$N" outside quoted text: the shared SQL's placeholders in
// PostgreSQL's spelling. Returns the highest N seen.
int rewrite_placeholders(const char* sql, std::string& out) {
  int highest = 0;
  char quote = 0;
  for (const char* p = sql; *p; ++p) {
    if (quote) {
      if (*p == quote) quote = 0;
      out += *p;
    } else if (*p == '\'' || *p == '"') {
      quote = *p;
      out += *p;
    } else if (*p == '?' && std::isdigit(static_cast<unsigned char>(p[1]))) {
      int n = 0;
      out += '$';
      while (std::isdigit(static_cast<unsigned char>(p[1]))) {
        n = n * 10 + (p[1] - '0');
        out += *++p;
      }
      highest = std::max(highest, n);
    } else {
      out += *p;
    }
  }
  return highest;
}

}  // namespace

std::string redact(const std::string& url) {
  // scheme://user:password@host...  and  ...?password=...
  static const std::regex in_authority(R"(^([a-z]+://[^:/@?#]*):[^@/?#]*@)");
  static const std::regex in_query(R"(([?&]password=)[^&]*)");
  std::string out = std::regex_replace(url, in_authority, "$1:***@");
  return std::regex_replace(out, in_query, "$1***");
}

Database::Database(const std::string& url, int connect_timeout_ms, bool read_only)
    : name_(redact(url)) {
  const std::string timeout = std::to_string(std::max(1, (connect_timeout_ms + 999) / 1000));
  const char* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
  const char* values[] = {url.c_str(), timeout.c_str(), "calm", nullptr};
  conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    const std::string why = conn_ ? trimmed(PQerrorMessage(conn_)) : "out of memory";
    PQfinish(conn_);
    conn_ = nullptr;
    throw sql::Error("PostgreSQL '" + name_ + "': cannot connect: " + why);
  }
  // Notices (such as "relation already exists, skipping") are not errors.
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
  if (read_only) exec("SET default_transaction_read_only = on");
}

Database::~Database() {
  PQfinish(conn_);
}

pg_conn* Database::connection() {
  if (PQstatus(conn_) != CONNECTION_OK) {
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) {
      throw sql::Error("PostgreSQL '" + name_ +
                       "': connection lost: " + trimmed(PQerrorMessage(conn_)));
    }
  }
  return conn_;
}

pg_result* Database::checked(pg_result* result, const std::string& what) {
  const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    const std::string why = trimmed(result ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
    PQclear(result);
    throw sql::Error("PostgreSQL '" + name_ + "': " + what + ": " + why);
  }
  const char* tuples = PQcmdTuples(result);
  changes_ = (tuples && *tuples) ? std::strtoll(tuples, nullptr, 10) : 0;
  return result;
}

void Database::exec(const char* sql) {
  PQclear(checked(PQexec(connection(), sql), std::string("run ") + sql));
}

std::unique_ptr<sql::Statement> Database::prepare(const char* sql) {
  return std::make_unique<Statement>(*this, sql);
}

Statement::Statement(Database& db, const char* sql) : db_(db) {
  params_.resize(static_cast<size_t>(rewrite_placeholders(sql, sql_)));
}

Statement::~Statement() {
  clear_result();
}

void Statement::clear_result() {
  PQclear(result_);
  result_ = nullptr;
  row_ = -1;
  rows_ = 0;
}

Statement& Statement::set(int index, std::optional<std::string> value) {
  if (index < 1 || static_cast<size_t>(index) > params_.size()) {
    throw sql::Error("PostgreSQL '" + db_.name() + "': no parameter ?" + std::to_string(index) +
                     " in " + sql_);
  }
  params_[static_cast<size_t>(index) - 1] = std::move(value);
  return *this;
}

Statement& Statement::bind(int index, double value) {
  if (std::isnan(value)) return set(index, "NaN");
  if (std::isinf(value)) return set(index, value > 0 ? "Infinity" : "-Infinity");
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return set(index, std::string(text));
}

Statement& Statement::bind(int index, int64_t value) {
  return set(index, std::to_string(value));
}

Statement& Statement::bind(int index, const std::string& value) {
  return set(index, value);
}

Statement& Statement::bind_null(int index) {
  return set(index, std::nullopt);
}

bool Statement::step() {
  if (!result_) {
    std::vector<const char*> values;
    values.reserve(params_.size());
    for (const auto& p : params_) values.push_back(p ? p->c_str() : nullptr);
    result_ =
        db_.checked(PQexecParams(db_.connection(), sql_.c_str(), static_cast<int>(values.size()),
                                 nullptr, values.data(), nullptr, nullptr, /*text results*/ 0),
                    "run " + sql_);
    rows_ = PQntuples(result_);
    row_ = -1;
  }
  if (row_ + 1 >= rows_) {
    row_ = rows_;
    return false;
  }
  ++row_;
  return true;
}

void Statement::reset() {
  clear_result();
}

bool Statement::is_null(int column) const {
  return !result_ || row_ < 0 || row_ >= rows_ || PQgetisnull(result_, row_, column);
}

double Statement::column_double(int column) const {
  return is_null(column) ? 0.0 : std::strtod(PQgetvalue(result_, row_, column), nullptr);
}

int64_t Statement::column_int(int column) const {
  return is_null(column) ? 0 : std::strtoll(PQgetvalue(result_, row_, column), nullptr, 10);
}

std::string Statement::column_text(int column) const {
  if (is_null(column)) return {};
  return std::string(PQgetvalue(result_, row_, column),
                     static_cast<size_t>(PQgetlength(result_, row_, column)));
}

}  // namespace calm::postgres
