// Process-wide llama.cpp set-up: backend initialisation and logging.
//
// llama.cpp logs through one global callback. calm routes it to spdlog
// (debug level, so a served request prints nothing by default) and keeps the
// last error lines of the calling thread, so that a failed load can say why
// ("tensor 'blk.0.attn_q.weight' data is not within the file bounds") instead
// of only "failed".
//
// One-time costs: llama_backend_init, and what the first model load sets up
// for good (the CPU backend's registry and thread pool, OpenMP threads, their
// arenas), belong to the process, not to any model. They are measured once
// (RSS growth across the init; the first load's RSS growth beyond what
// llama.cpp allocated for that model), reported, and charged to no model.
#pragma once

#include <cstdint>
#include <string>

namespace calm {

// Idempotent and thread-safe. The first call measures the init's RSS growth.
void ensure_llama_backend();

struct LlamaBackendOverhead {
  uint64_t init_bytes = 0;        // RSS growth across llama_backend_init
  uint64_t first_load_bytes = 0;  // the first load's RSS growth beyond its model's charge
  uint64_t total() const { return init_bytes + first_load_bytes; }
};
// Thread-safe.
LlamaBackendOverhead llama_backend_overhead();
// Tells the backend what a successful model load grew the RSS by and what
// llama.cpp allocated for the model; only the process's first load counts.
// Thread-safe.
void note_llama_model_load(uint64_t rss_delta_bytes, uint64_t charged_bytes);

// The error lines llama.cpp logged on this thread since the last call.
std::string take_llama_errors();

}  // namespace calm
