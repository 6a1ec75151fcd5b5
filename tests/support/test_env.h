// Paths the test binaries get from ctest (see tests/CMakeLists.txt).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace calm::testing {

// The environment variable, else the path the build compiled in.
inline std::string env(const char* name) {
  if (const char* value = std::getenv(name)) return value;
  const std::string n = name;
  if (n == "CALM_BIN") return CALM_BIN;
  if (n == "CALM_TEST_MODELS") return CALM_TEST_MODELS;
  if (n == "CALM_SHARED_MODEL") return CALM_SHARED_MODEL;
  if (n == "CALM_LLAMA_SERVER") return CALM_LLAMA_SERVER;
  return "";
}

// A tiny model made by tools/make_tiny_gguf.cpp during the build.
inline std::string test_model(const std::string& file) {
  return env("CALM_TEST_MODELS") + "/" + file;
}

// ../shared/models/llama-2-tiny-random.gguf: a third-party GGUF with a real
// Llama-2 tokenizer. Empty when ../shared is absent (CI always has it).
inline std::string shared_model() {
  const std::string path = env("CALM_SHARED_MODEL");
  return std::filesystem::exists(path) ? path : "";
}

}  // namespace calm::testing
