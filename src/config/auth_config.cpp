#include "config/auth_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "config/yaml_fields.h"

namespace calm {
namespace {

bool is_sha256_hex(const std::string& text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(),
                                          [](unsigned char c) { return std::isxdigit(c) != 0; });
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

ApiKeyConfig parse_key(const YAML::Node& node, const std::string& source, const std::string& path) {
  Fields fields(node, source, path);
  if (fields.has("key")) {
    fields.fail("key",
                "keys are kept hashed: give sha256 (the key's SHA-256, which `calm hash-key` "
                "prints), never the key itself");
  }
  ApiKeyConfig key;
  key.name = fields.string("name", "", true);
  if (key.name.empty()) fields.fail("name", "must not be empty");
  key.sha256 = lower(fields.string("sha256", "", true));
  if (!is_sha256_hex(key.sha256)) {
    fields.fail("sha256", "expected 64 hexadecimal digits (`calm hash-key` prints them)");
  }
  key.scope = one_of(fields, "scope", "inference", {"inference", "admin"}) == "admin"
                  ? KeyScope::kAdmin
                  : KeyScope::kInference;
  key.requests_per_minute =
      static_cast<int>(fields.integer("requests_per_minute", 0, 0, 1'000'000));
  key.max_in_flight = static_cast<int>(fields.integer("max_in_flight", 0, 0, 1'000'000));
  fields.reject_unknown();
  return key;
}

// Appends the keys of a `keys:` list; names and digests must stay unique
// across the fleet file and the keys file.
void parse_keys(Fields& fields, const std::string& source, std::vector<ApiKeyConfig>& out,
                std::set<std::string>& names, std::set<std::string>& digests) {
  const YAML::Node list = fields.get("keys");
  if (!list.IsDefined() || list.IsNull()) return;
  if (!list.IsSequence()) fields.fail("keys", "expected a list of keys");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string path = fields.field("keys") + "[" + std::to_string(i) + "]";
    ApiKeyConfig key = parse_key(list[i], source, path);
    if (!names.insert(key.name).second) {
      Fields(list[i], source, path).fail("name", "duplicate key name '" + key.name + "'");
    }
    if (!digests.insert(key.sha256).second) {
      Fields(list[i], source, path).fail("sha256", "the same key is listed twice");
    }
    out.push_back(std::move(key));
  }
}

std::vector<std::string> endpoint_list(Fields& fields, const std::string& key,
                                       std::vector<std::string> fallback) {
  if (!fields.has(key)) return fallback;
  std::vector<std::string> list = fields.strings(key);
  for (const auto& name : list) {
    const auto& known = endpoint_names();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string names;
      for (const auto& n : known) names += (names.empty() ? "" : ", ") + n;
      fields.fail(key, "unknown endpoint '" + name + "' (one of " + names + ")");
    }
  }
  return list;
}

}  // namespace

const std::vector<std::string>& endpoint_names() {
  static const std::vector<std::string> names{"health",      "models",   "chat",   "completions",
                                              "route",       "feedback", "reload", "state",
                                              "adaptations", "metrics"};
  return names;
}

AuthConfig parse_auth_config(const YAML::Node& node, const std::string& source,
                             const std::string& base_dir) {
  AuthConfig auth;
  if (!node.IsDefined() || node.IsNull()) return auth;
  Fields fields(node, source, "auth");
  std::set<std::string> names, digests;
  parse_keys(fields, source, auth.keys, names, digests);
  if (fields.has("keys_file")) {
    const std::string path = resolve_path(fields.string("keys_file", ""), base_dir).string();
    const std::optional<std::string> text = read_text_file(path);
    if (!text) fields.fail("keys_file", "cannot open " + path);
    Fields file(parse_yaml_mapping(*text, path, "'keys'"), path, "");
    parse_keys(file, path, auth.keys, names, digests);
    file.reject_unknown();
  }
  auth.public_endpoints = endpoint_list(fields, "public", auth.public_endpoints);
  auth.admin_endpoints = endpoint_list(fields, "admin", auth.admin_endpoints);
  for (const auto& name : auth.admin_endpoints) {
    if (std::find(auth.public_endpoints.begin(), auth.public_endpoints.end(), name) !=
        auth.public_endpoints.end()) {
      fields.fail("admin", "'" + name + "' cannot be both public and admin");
    }
  }
  fields.reject_unknown();
  return auth;
}

}  // namespace calm
