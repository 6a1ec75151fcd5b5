#include "engines/llama_backend.h"

#include <llama.h>
#include <spdlog/spdlog.h>

#include <mutex>

namespace calm {
namespace {

thread_local std::string t_errors;

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
    llama_log_set(on_llama_log, nullptr);
    llama_backend_init();
  });
}

std::string take_llama_errors() {
  std::string out;
  out.swap(t_errors);
  return out;
}

}  // namespace calm
