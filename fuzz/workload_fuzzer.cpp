// Feeds: the bytes of a workload file (`calm bench run --workload`) or a
// request pool (`calm bench workload --pool`): each line goes to
// parse_workload_line and parse_pool_line (bench/workload.h), blank lines
// skipped as load_workload and load_pool skip them; every request read is
// written back with workload_line and read again.
// Fine: WorkloadError (file, line and field). A finding: any other
// exception, a crash, a sanitizer report, a hang, or a request that
// workload_line writes and parse_workload_line then refuses or reads
// differently.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>

#include "bench/workload.h"
#include "fuzz_support.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(calm::fuzz::text_of(data, size));
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::optional<calm::WorkloadRequest> r;
    try {
      r = calm::parse_workload_line(text, "w.jsonl", line);
    } catch (const calm::WorkloadError&) {
    }
    if (r) {  // outside the try: a refusal of what workload_line wrote is a finding
      const calm::WorkloadRequest back =
          calm::parse_workload_line(calm::workload_line(*r), "again.jsonl", 1);
      check(back.t == r->t && back.model == r->model && back.domain == r->domain &&
            back.messages == r->messages && back.prompt == r->prompt &&
            back.max_tokens == r->max_tokens && back.reference == r->reference);
    }
    try {
      calm::parse_pool_line(text, "pool.jsonl", line);
    } catch (const calm::WorkloadError&) {
    }
  }
  return 0;
}
