// Feeds: the bytes of the MAPE-K loop's knowledge file (`loop.knowledge`, a
// SQLite database), written as the database file: KnowledgeStore::
// read_requests reads it read-only (as `calm bench suite` does); then a
// KnowledgeStore opens it, reads every table, writes a request, an
// adaptation, feedback and goals, and reads them back
// (knowledge/knowledge_store.h).
// Fine: std::runtime_error, which the store documents for a file that is not
// a database, is corrupt, or cannot be read or written. A finding: any other
// exception, a crash, a sanitizer report, a hang.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string_view>

#include "fuzz_support.h"
#include "knowledge/knowledge_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);  // a failed batch is logged; it is expected here
    return true;
  }();
  (void)quiet;
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    std::error_code ec;
    std::filesystem::remove(calm::fuzz::scratch_dir() / (std::string("k.db") + suffix), ec);
  }
  const std::string path = calm::fuzz::write_scratch(
      "k.db", std::string_view(reinterpret_cast<const char*>(data), size));

  try {
    calm::KnowledgeStore::read_requests(path);
  } catch (const std::runtime_error&) {
  }

  calm::KnowledgeStore::Options options;
  options.batch_interval = std::chrono::milliseconds(1);
  options.busy_timeout = std::chrono::milliseconds(100);
  options.max_requests = 4;
  options.max_adaptations = 4;
  try {
    calm::KnowledgeStore store(path, options);
    store.recent_requests("", 8);
    store.recent_requests("m", 8);
    store.adaptations(8);
    store.goals();
    store.models();
    store.request_count();

    calm::ServedRequest request;
    request.response_id = "chatcmpl-fuzz";
    request.model = "m";
    request.routed_by = "name";
    request.ttft_ms = 1.5;
    store.record_request(request);
    calm::Adaptation adaptation;
    adaptation.kind = "lambda";
    adaptation.reason = "fuzz";
    adaptation.figures = {{"p95", 1}};
    store.record_adaptation(adaptation);
    store.flush();
    store.record_feedback("chatcmpl-fuzz", 0.75);
    store.set_goals({{"latency_p95_ms", {{"max", 800}}}});
    store.goals();
    store.recent_requests("m", 8);
    store.adaptations(8);
  } catch (const std::runtime_error&) {
  }
  return 0;
}
