// What the harnesses share: a scratch folder for parsers that read files,
// and the rule for errors.
//
// The rule: each harness calls a real calm parser and catches only the
// error type that parser documents for bad input (ConfigError, ApiError,
// ...). Anything else escapes LLVMFuzzerTestOneInput: an exception of
// another type reaches std::terminate, which aborts, and libFuzzer reports
// it like a crash, as it does a signal, an ASan or UBSan report, a timeout
// (-timeout) or running out of memory (-rss_limit_mb).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace calm::fuzz {

// The input as text (parsers take std::string).
inline std::string text_of(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// A folder of this process, in memory (/dev/shm) where there is one: one
// harness writes a file per input. Removed at exit.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path root =
        fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = root / ("calm-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(scratch_dir(), ignored);
    });
    return d;
  }();
  return dir;
}

// Writes bytes to a file under scratch_dir() and returns its path.
inline std::string write_scratch(const std::string& name, std::string_view bytes) {
  const std::filesystem::path path = scratch_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path.string();
}

}  // namespace calm::fuzz
