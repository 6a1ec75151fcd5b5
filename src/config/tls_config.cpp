#include "config/tls_config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "config/yaml_fields.h"

namespace calm {
namespace {

// A path field that must name a file calm can open for reading now: a typo or
// a permission problem is reported at start, not at the first handshake.
std::string readable_file(Fields& fields, const std::string& key,
                          const std::filesystem::path& base_dir) {
  const std::string path =
      resolve_path(fields.string(key, "", /*required=*/true), base_dir).string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fields.fail(key, "file not found: " + path);
  std::ifstream in(path);
  if (!in) fields.fail(key, "cannot read " + path + ": " + std::strerror(errno));
  return path;
}

}  // namespace

std::optional<TlsConfig> parse_tls_config(const YAML::Node& node, const std::string& source,
                                          const std::string& base_dir) {
  if (!node.IsDefined() || node.IsNull()) return std::nullopt;
  Fields fields(node, source, "server.tls");
  TlsConfig tls;
  tls.cert_file = readable_file(fields, "cert", base_dir);
  tls.key_file = readable_file(fields, "key", base_dir);
  const double seconds =
      fields.number("handshake_timeout_s", tls.handshake_timeout.count() / 1000.0, 0.001, 3600);
  tls.handshake_timeout = std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
  fields.reject_unknown();
  return tls;
}

}  // namespace calm
