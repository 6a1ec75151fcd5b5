#include "bench/suite_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "config/yaml_error.h"

namespace calm {
namespace {

namespace fs = std::filesystem;

// One YAML mapping whose keys are checked against a known set, so that a
// typo ("rout: auto") is an error instead of a silent default.
class Mapping {
 public:
  Mapping(const YAML::Node& node, const std::string& source, std::string path,
          std::set<std::string> known)
      : node_(node), source_(source), path_(std::move(path)) {
    if (!node_.IsMap()) fail_at(node_, path_.empty() ? "(top)" : path_, "expected a mapping");
    for (const auto& entry : node_) {
      const auto key = yaml_key_text(entry.first);
      if (!key) fail_at(entry.first, path_.empty() ? "(top)" : path_, "a key must be a plain name");
      if (!known.count(*key)) fail_at(entry.first, field(*key), "unknown field");
    }
  }

  [[noreturn]] void fail_at(const YAML::Node& node, const std::string& field,
                            const std::string& message) const {
    throw SuiteConfigError(yaml_error_text(source_, node, field, message));
  }
  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    const YAML::Node child = node_[key];
    fail_at(child.IsDefined() ? child : node_, field(key), message);
  }

  std::string field(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }
  YAML::Node get(const std::string& key) const { return node_[key]; }

  std::string string(const std::string& key, bool required) const {
    const YAML::Node value = node_[key];
    if (!value.IsDefined() || value.IsNull()) {
      if (required) fail_at(node_, field(key), "is required");
      return "";
    }
    if (!value.IsScalar()) fail(key, "expected a string");
    return value.as<std::string>();
  }

 private:
  const YAML::Node node_;
  const std::string& source_;
  const std::string path_;
};

bool valid_name(const std::string& name) {
  if (name.empty() || name.front() == '.') return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string absolute_from(const fs::path& base, const std::string& path) {
  return fs::absolute(base / path).lexically_normal().string();
}

}  // namespace

std::string SuiteRoute::text() const {
  switch (kind) {
    case Kind::kAuto:
      return "auto";
    case Kind::kOracle:
      return "oracle";
    case Kind::kRandom:
      return "random";
    case Kind::kModel:
      return "model:" + model;
  }
  return "";
}

SuiteRoute parse_suite_route(const std::string& text) {
  SuiteRoute route;
  if (text == "auto") return route;
  if (text == "oracle") {
    route.kind = SuiteRoute::Kind::kOracle;
    return route;
  }
  if (text == "random") {
    route.kind = SuiteRoute::Kind::kRandom;
    return route;
  }
  if (text.rfind("model:", 0) == 0 && text.size() > 6) {
    route.kind = SuiteRoute::Kind::kModel;
    route.model = text.substr(6);
    return route;
  }
  throw std::invalid_argument("unknown route '" + text + "' (auto, oracle, random or model:<id>)");
}

SuiteConfig load_suite_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw SuiteConfigError(path + ": cannot open the suite file");
  std::stringstream text;
  text << in.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(text.str());
  } catch (const YAML::Exception& e) {
    throw SuiteConfigError(path + ":" + std::to_string(e.mark.line + 1) +
                           ": invalid YAML: " + e.msg);
  }
  if (!root.IsMap()) throw SuiteConfigError(path + ": expected a mapping with 'systems'");

  SuiteConfig config;
  config.source = path;
  const fs::path base = fs::absolute(path).parent_path();
  const Mapping top(root, path, "", {"workload", "concurrency", "domains", "systems"});

  const std::string workload = top.string("workload", false);
  if (!workload.empty()) config.workload = absolute_from(base, workload);

  if (const YAML::Node c = top.get("concurrency"); c.IsDefined() && !c.IsNull()) {
    long long value = 0;
    if (!c.IsScalar() || !YAML::convert<long long>::decode(c, value)) {
      top.fail("concurrency", "expected an integer");
    }
    if (value < 1 || value > 4096) top.fail("concurrency", "must be between 1 and 4096");
    config.concurrency = static_cast<int>(value);
  }

  if (const YAML::Node domains = top.get("domains"); domains.IsDefined() && !domains.IsNull()) {
    if (!domains.IsMap()) top.fail("domains", "expected a mapping of domain: model id");
    for (const auto& entry : domains) {
      const auto key = yaml_key_text(entry.first);
      if (!key) top.fail_at(entry.first, "domains", "a domain must be a plain name");
      const std::string domain = *key;
      if (!entry.second.IsScalar() || entry.second.Scalar().empty()) {
        top.fail_at(entry.second.IsDefined() ? entry.second : entry.first, "domains." + domain,
                    "expected a model id");
      }
      config.domains[domain] = entry.second.Scalar();
    }
  }

  const YAML::Node systems = top.get("systems");
  if (!systems.IsDefined() || systems.IsNull()) top.fail("systems", "is required");
  if (!systems.IsSequence() || systems.size() == 0) {
    top.fail("systems", "expected a list of at least one system");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < systems.size(); ++i) {
    const std::string at = "systems[" + std::to_string(i) + "]";
    const Mapping m(systems[i], path, at,
                    {"name", "description", "config", "route", "group", "set"});
    SuiteSystem system;
    system.name = m.string("name", true);
    if (!valid_name(system.name)) {
      m.fail("name", "'" + system.name + "' must be letters, digits, '.', '_' or '-'");
    }
    if (!names.insert(system.name).second) m.fail("name", "duplicate name '" + system.name + "'");
    system.description = m.string("description", false);
    system.group = m.string("group", false);
    system.config = m.string("config", true);
    system.config_path = absolute_from(base, system.config);
    std::error_code ec;
    if (!fs::is_regular_file(system.config_path, ec)) {
      m.fail("config", "fleet file not found: " + system.config_path);
    }
    try {
      const std::string route = m.string("route", false);
      system.route = parse_suite_route(route.empty() ? "auto" : route);
    } catch (const std::invalid_argument& e) {
      m.fail("route", e.what());
    }
    if (const YAML::Node set = m.get("set"); set.IsDefined() && !set.IsNull()) {
      if (!set.IsMap()) m.fail("set", "expected a mapping of fleet-file settings");
      system.overrides = set;
    }
    const auto kind = system.route.kind;
    if ((kind == SuiteRoute::Kind::kOracle || kind == SuiteRoute::Kind::kRandom) &&
        config.domains.empty()) {
      m.fail("route", "'" + system.route.text() + "' needs a `domains:` mapping in the suite");
    }
    config.systems.push_back(std::move(system));
  }
  return config;
}

}  // namespace calm
