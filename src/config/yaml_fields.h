// Fields: one YAML mapping of a calm file (the fleet file, a keys file),
// read field by field with the file, line and field in every error, and
// with unknown fields refused (a typo such as "contxt: 4096" is reported,
// never silently ignored).
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/config_error.h"
#include "config/yaml_error.h"

namespace calm {

// Reads one YAML mapping, remembering which keys were used so that a typo
// ("contxt: 4096") is reported instead of silently ignored.
class Fields {
 public:
  Fields(const YAML::Node& node, std::string source, std::string path)
      : node_(node), source_(std::move(source)), path_(std::move(path)) {
    if (!node_.IsMap()) fail_at(node_, path_, "expected a mapping of fields");
  }

  [[noreturn]] void fail_at(const YAML::Node& node, const std::string& field,
                            const std::string& message) const {
    throw ConfigError(yaml_error_text(source_, node, field, message));
  }
  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    const YAML::Node child = node_[key];
    fail_at(child.IsDefined() ? child : node_, field(key), message);
  }

  std::string field(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }
  bool has(const std::string& key) const { return node_[key].IsDefined(); }
  YAML::Node get(const std::string& key) {
    used_.insert(key);
    return node_[key];
  }

  std::string string(const std::string& key, std::string fallback, bool required = false) {
    const YAML::Node value = get(key);
    if (!value.IsDefined() || value.IsNull()) {
      if (required) fail_at(node_, field(key), "is required");
      return fallback;
    }
    if (!value.IsScalar()) fail(key, "expected a string");
    return value.as<std::string>();
  }

  long long integer(const std::string& key, long long fallback, long long min, long long max) {
    const YAML::Node value = get(key);
    if (!value.IsDefined() || value.IsNull()) return fallback;
    long long parsed = 0;
    if (!value.IsScalar() || !YAML::convert<long long>::decode(value, parsed)) {
      fail(key, "expected an integer, got '" + (value.IsScalar() ? value.Scalar() : "?") + "'");
    }
    if (parsed < min || parsed > max) {
      fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                    ", got " + std::to_string(parsed));
    }
    return parsed;
  }

  double number(const std::string& key, double fallback, double min, double max) {
    const YAML::Node value = get(key);
    if (!value.IsDefined() || value.IsNull()) return fallback;
    double parsed = 0;
    if (!value.IsScalar() || !YAML::convert<double>::decode(value, parsed)) {
      fail(key, "expected a number");
    }
    if (!(parsed >= min && parsed <= max)) {
      fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return parsed;
  }

  // A list of strings (or one string).
  std::vector<std::string> strings(const std::string& key) {
    const YAML::Node value = get(key);
    std::vector<std::string> out;
    if (!value.IsDefined() || value.IsNull()) return out;
    if (value.IsScalar()) return {value.as<std::string>()};
    if (!value.IsSequence()) fail(key, "expected a list of strings");
    for (const auto& item : value) {
      if (!item.IsScalar()) fail(key, "expected a list of strings");
      out.push_back(item.as<std::string>());
    }
    return out;
  }

  // A duration written in seconds (`..._s: 2.5`), from 1 ms to a day.
  std::chrono::milliseconds seconds(const std::string& key, std::chrono::milliseconds fallback) {
    const double value = number(key, fallback.count() / 1000.0, 0.001, 86400);
    return std::chrono::milliseconds(static_cast<long long>(value * 1000));
  }

  bool boolean(const std::string& key, bool fallback) {
    const YAML::Node value = get(key);
    if (!value.IsDefined() || value.IsNull()) return fallback;
    bool parsed = false;
    if (!value.IsScalar() || !YAML::convert<bool>::decode(value, parsed))
      fail(key, "expected true or false");
    return parsed;
  }

  void reject_unknown() const {
    for (const auto& item : node_) {
      const auto key = yaml_key_text(item.first);
      if (!key) fail_at(item.first, path_.empty() ? "(top)" : path_, "a key must be a plain name");
      if (!used_.contains(*key)) fail_at(item.first, field(*key), "unknown field");
    }
  }

 private:
  YAML::Node node_;
  std::string source_;
  std::string path_;
  std::set<std::string> used_;
};

// A name that must be one of `names`, e.g. a policy.
inline std::string one_of(Fields& fields, const std::string& key, const std::string& fallback,
                          const std::vector<std::string>& names) {
  const std::string value = fields.string(key, fallback);
  if (std::find(names.begin(), names.end(), value) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    fields.fail(key, "must be one of " + list + ", got '" + value + "'");
  }
  return value;
}

// A path written in a calm file: "~/" is the home directory, and a relative
// path is relative to the file's own folder (base_dir).
inline std::filesystem::path resolve_path(const std::string& text,
                                          const std::filesystem::path& base_dir) {
  std::filesystem::path path = text;
  if (path.string().rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    path = std::filesystem::path(home ? home : "") / path.string().substr(2);
  }
  if (path.is_relative()) path = base_dir / path;
  return path.lexically_normal();
}

// The whole text of a file, or nullopt when it cannot be opened.
inline std::optional<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Parses the YAML `text` of `source`, which must be a mapping. Throws
// ConfigError "SOURCE:LINE: invalid YAML: ..." or "SOURCE: expected a mapping
// with EXPECTED".
inline YAML::Node parse_yaml_mapping(const std::string& text, const std::string& source,
                                     const std::string& expected) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  if (!root.IsMap()) throw ConfigError(source + ": expected a mapping with " + expected);
  return root;
}

}  // namespace calm
