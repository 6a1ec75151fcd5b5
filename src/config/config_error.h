// The error of a calm file that cannot be used: its text names the file,
// the line and the field (config/yaml_error.h).
#pragma once

#include <stdexcept>

namespace calm {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace calm
