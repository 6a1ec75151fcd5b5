#include "engines/llama_backend.h"

#include <llama.h>
#include <spdlog/spdlog.h>

#include <mutex>

#include "util/process_memory.h"

namespace calm {
namespace {

thread_local std::string t_errors;

std::mutex g_overhead_mutex;
LlamaBackendOverhead g_overhead;  // guarded by g_overhead_mutex
bool g_first_load_seen = false;   // guarded by g_overhead_mutex

void on_llama_log(ggml_log_level level, const char* text, void* /*user*/) {
  std::string line(text ? text : "");
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (line.empty()) return;
  if (level == GGML_LOG_LEVEL_ERROR) {
    if (t_errors.size() < 4096) t_errors += (t_errors.empty() ? "" : "; ") + line;
    spdlog::debug("llama.cpp: {}", line);
  } else {
    spdlog::trace("llama.cpp: {}", line);
  }
}

}  // namespace

void ensure_llama_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    const uint64_t before = process_rss_bytes();
    llama_log_set(on_llama_log, nullptr);
    llama_backend_init();
    const uint64_t after = process_rss_bytes();
    std::lock_guard lock(g_overhead_mutex);
    g_overhead.init_bytes = after > before ? after - before : 0;
  });
}

LlamaBackendOverhead llama_backend_overhead() {
  std::lock_guard lock(g_overhead_mutex);
  return g_overhead;
}

void note_llama_model_load(uint64_t rss_delta_bytes, uint64_t charged_bytes) {
  std::lock_guard lock(g_overhead_mutex);
  if (g_first_load_seen) return;
  g_first_load_seen = true;
  g_overhead.first_load_bytes =
      rss_delta_bytes > charged_bytes ? rss_delta_bytes - charged_bytes : 0;
}

std::string take_llama_errors() {
  std::string out;
  out.swap(t_errors);
  return out;
}

}  // namespace calm
