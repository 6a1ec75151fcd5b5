// Settings laid over a fleet file, so that the systems of a suite can share
// one fleet file and differ only where they say (`set:` in the suite file):
//
//   - name: full-without-goals
//     config: ../../demo/fleet.yaml
//     set: {loop: {enabled: false}}
//
// Mappings merge key by key, recursively; any other value (a scalar, a
// list) replaces the one below it; a null removes the key. So
// `cache: null` gives the fleet file's behaviour with no `cache:` section.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

namespace calm {

// `base` with `overlay` laid over it, as above. Neither input is modified.
YAML::Node merge_yaml(const YAML::Node& base, const YAML::Node& overlay);

// A fleet file with overrides, written next to the original so that the
// paths in it (relative to the file) still resolve, and removed again when
// this object goes. Not copyable; one per running system.
class OverriddenFleet {
 public:
  // Throws std::runtime_error naming the file it cannot read or write, and
  // YAML::Exception for a fleet file that is not YAML.
  OverriddenFleet(const std::string& fleet_path, const YAML::Node& overrides,
                  const std::string& system_name);
  ~OverriddenFleet();
  OverriddenFleet(const OverriddenFleet&) = delete;
  OverriddenFleet& operator=(const OverriddenFleet&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace calm
