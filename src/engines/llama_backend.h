// Process-wide llama.cpp set-up: backend initialisation and logging.
//
// llama.cpp logs through one global callback. calm routes it to spdlog
// (debug level, so a served request prints nothing by default) and keeps the
// last error lines of the calling thread, so that a failed load can say why
// ("tensor 'blk.0.attn_q.weight' data is not within the file bounds") instead
// of only "failed".
#pragma once

#include <string>

namespace calm {

// Idempotent and thread-safe.
void ensure_llama_backend();

// The error lines llama.cpp logged on this thread since the last call.
std::string take_llama_errors();

}  // namespace calm
