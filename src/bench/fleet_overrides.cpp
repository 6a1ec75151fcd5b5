#include "bench/fleet_overrides.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace calm {

YAML::Node merge_yaml(const YAML::Node& base, const YAML::Node& overlay) {
  if (!overlay.IsMap() || !base.IsMap()) return YAML::Clone(overlay);
  YAML::Node merged = YAML::Clone(base);
  for (const auto& entry : overlay) {
    const std::string key = entry.first.as<std::string>();
    if (entry.second.IsNull()) {
      merged.remove(key);
    } else if (merged[key].IsDefined() && !merged[key].IsNull()) {
      merged[key] = merge_yaml(merged[key], entry.second);
    } else {
      merged[key] = YAML::Clone(entry.second);
    }
  }
  return merged;
}

OverriddenFleet::OverriddenFleet(const std::string& fleet_path, const YAML::Node& overrides,
                                 const std::string& system_name) {
  const YAML::Node base = YAML::LoadFile(fleet_path);
  const std::filesystem::path dir = std::filesystem::path(fleet_path).parent_path();
  // Hidden and unique per process: two suites may run side by side.
  path_ =
      (dir / (".calm-suite-" + system_name + "-" + std::to_string(::getpid()) + ".yaml")).string();
  std::ofstream out(path_);
  out << "# " << fleet_path << " with the suite's `set:` for " << system_name
      << " (removed after the run)\n"
      << YAML::Dump(merge_yaml(base, overrides)) << "\n";
  if (!out.flush()) throw std::runtime_error("cannot write " + path_);
}

OverriddenFleet::~OverriddenFleet() {
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

}  // namespace calm
