// Feeds: the bytes of a GGUF file, written to a scratch file (the API takes
// a path): read_gguf_info and estimate_memory, as `calm model-info` and the
// model cache's first estimate use them (engines/gguf_info.h); then, for a
// file whose header reads and whose estimate is small, LlamaEngine::load,
// the loader `calm serve` runs for a `gguf:` model (engines/llama_engine.h),
// with one 16-token slot.
// Fine: std::runtime_error from read_gguf_info (not a GGUF, truncated) and
// EngineError from the loader (a model that fails to load is answered 503
// while the rest of the fleet serves). A finding: any other exception, a
// crash or abort (in calm or in llama.cpp, which runs in calm's process), a
// sanitizer report in calm's code, a hang, running out of memory.
// llama.cpp is the cached, uninstrumented build: libFuzzer sees coverage of
// calm's code only, and ASan checks only calm's own memory accesses.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "engines/gguf_info.h"
#include "engines/llama_engine.h"
#include "fuzz_support.h"

namespace {

// The loader runs only for models the estimate puts below this: a hostile
// header may ask for any amount of memory, which a cache budget refuses
// before any load (cache.budget), and this harness's budget is small.
constexpr uint64_t kLoadBudget = 64ull << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);  // every load logs; failed ones are expected here
    return true;
  }();
  (void)quiet;
  const std::string path = calm::fuzz::write_scratch(
      "m.gguf", std::string_view(reinterpret_cast<const char*>(data), size));
  calm::GgufInfo info;
  try {
    info = calm::read_gguf_info(path);
  } catch (const std::runtime_error&) {
    return 0;
  }
  const calm::MemoryEstimate estimate = calm::estimate_memory(info, 16, 1);
  if (estimate.total() > kLoadBudget || info.n_tensors == 0) return 0;

  calm::LlamaEngine::Options options;
  options.id = "fuzz";
  options.gguf_path = path;
  options.context = 16;
  options.parallel = 1;
  options.threads = 1;
  options.batch = 16;
  calm::LlamaEngine engine(options);
  try {
    engine.load();
  } catch (const calm::EngineError&) {
  }
  return 0;
}
