// Feeds: the bytes of a `calm bench suite` suite file, written to a scratch
// file beside a fleet file it may name (fleet.yaml) and read by
// load_suite_config (bench/suite_config.h).
// Fine: SuiteConfigError (file, line and field). A finding: any other
// exception, a crash, a sanitizer report, a hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bench/suite_config.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool fleet_written = [] {
    calm::fuzz::write_scratch("fleet.yaml", "models: [{id: a, url: http://127.0.0.1:1}]\n");
    return true;
  }();
  (void)fleet_written;
  const std::string path = calm::fuzz::write_scratch(
      "suite.yaml", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const calm::SuiteConfig config = calm::load_suite_config(path);
    if (config.systems.empty()) __builtin_trap();  // the parser promises at least one
  } catch (const calm::SuiteConfigError&) {
  }
  return 0;
}
