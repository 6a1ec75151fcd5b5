// Feeds: the bytes of a goals file (the MAPE-K loop's `loop.goals_file`),
// written to a scratch file and read by load_goals_file
// (config/fleet_config.h).
// Fine: ConfigError (file, line and field). A finding: any other exception,
// a crash, a sanitizer report, a hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/fleet_config.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = calm::fuzz::write_scratch(
      "goals.yaml", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    calm::load_goals_file(path);
  } catch (const calm::ConfigError&) {
  }
  return 0;
}
