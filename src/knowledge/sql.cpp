#include "knowledge/sql.h"

#include "knowledge/postgres.h"
#include "knowledge/sqlite.h"
#include "util/url.h"

namespace calm::sql {

std::unique_ptr<Database> open(const std::string& target, int busy_timeout_ms, bool read_only) {
  if (is_postgres_url(target)) {
    return std::make_unique<postgres::Database>(target, busy_timeout_ms, read_only);
  }
  return std::make_unique<sqlite::Database>(target, busy_timeout_ms, read_only);
}

}  // namespace calm::sql
