// The one shape of every YAML error calm reports, for the fleet file, the
// goals file and `calm bench suite`'s suite file alike:
//   FILE:LINE: FIELD: PROBLEM        (":LINE" left out when the node has no position)
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>

namespace calm {

// The text of a mapping's key; nullopt for a key that is itself a mapping or
// a list ("{[a]: 1}"), which no calm file has and yaml-cpp cannot turn into
// a string.
inline std::optional<std::string> yaml_key_text(const YAML::Node& key) {
  if (key.IsMap() || key.IsSequence()) return std::nullopt;
  return key.as<std::string>();
}

inline std::string yaml_error_text(const std::string& source, const YAML::Node& node,
                                   const std::string& field, const std::string& problem) {
  std::string out = source;
  if (node.Mark().line >= 0) out += ":" + std::to_string(node.Mark().line + 1);
  return out + ": " + field + ": " + problem;
}

}  // namespace calm
