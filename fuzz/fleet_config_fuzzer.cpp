// Feeds: the text of a fleet file to parse_fleet_config (config/fleet_config.h),
// with relative paths resolved against a scratch folder that holds the files
// a fleet file may name (models/a.gguf, embeddings.bin, goals.yaml,
// keys.yaml, examples.jsonl, ca.pem), so that inputs reach every section.
// Fine: ConfigError (its text names the file, the line and the field). A
// finding: any other exception, a crash, a sanitizer report, a hang.
#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "config/fleet_config.h"
#include "fuzz_support.h"

namespace {

const std::string& base_dir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    using calm::fuzz::write_scratch;
    fs::create_directories(calm::fuzz::scratch_dir() / "models");
    write_scratch("models/a.gguf", "GGUF");
    write_scratch("embeddings.bin", "x");
    write_scratch("goals.yaml", "goals: {latency_p95_ms: 800}\nwindow: 50\n");
    write_scratch("keys.yaml",
                  "keys:\n  - name: bob\n    sha256: "
                  "3ffe4b6db1a10c7bd06abd8c8842bbaf4dd19a31995c62c5348f0e102ee6c0e4\n");
    write_scratch("examples.jsonl", "{\"query\": \"what is 2+2\"}\nplain line\n");
    write_scratch("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    return calm::fuzz::scratch_dir().string();
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = base_dir();
  try {
    const calm::FleetConfig config =
        calm::parse_fleet_config(calm::fuzz::text_of(data, size), "fleet.yaml", dir);
    if (config.models.empty()) __builtin_trap();  // the parser promises at least one
  } catch (const calm::ConfigError&) {
  }
  return 0;
}
