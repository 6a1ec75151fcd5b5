// The one shape of every YAML error calm reports, for the fleet file, the
// goals file and `calm bench suite`'s suite file alike:
//   FILE:LINE: FIELD: PROBLEM        (":LINE" left out when the node has no position)
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

namespace calm {

inline std::string yaml_error_text(const std::string& source, const YAML::Node& node,
                                   const std::string& field, const std::string& problem) {
  std::string out = source;
  if (node.Mark().line >= 0) out += ":" + std::to_string(node.Mark().line + 1);
  return out + ": " + field + ": " + problem;
}

}  // namespace calm
