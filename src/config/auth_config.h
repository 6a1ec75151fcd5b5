// The fleet file's `auth:` section: who may call calm, and how much.
//
//   auth:
//     keys:                         # or keys_file: keys.yaml (a file with `keys:` alone)
//       - name: alice               # shown in logs and metrics; never the key itself
//         sha256: 9f86d0...         # the key's SHA-256 in hex (`calm hash-key` prints it)
//         scope: inference          # inference | admin (admin may call everything)
//         requests_per_minute: 60   # more get 429 with Retry-After; 0 = no limit
//         max_in_flight: 4          # requests at once, until each answer ends; 0 = no limit
//     public: [health]              # endpoints that need no key
//     admin: [reload, state, adaptations, metrics]   # endpoints that need an admin key
//
// Keys are kept as SHA-256 digests only: the fleet file never holds a key.
// Clients send `Authorization: Bearer KEY`. Without keys, every endpoint is
// open, and calm refuses to listen on an address other than loopback unless
// told `--insecure` (or `server.insecure: true`).
#pragma once

#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace calm {

enum class KeyScope { kInference, kAdmin };

struct ApiKeyConfig {
  std::string name;
  std::string sha256;  // 64 lower-case hex digits
  KeyScope scope = KeyScope::kInference;
  int requests_per_minute = 0;  // 0: no limit
  int max_in_flight = 0;        // 0: no limit
};

// The endpoints by name, as `public:` and `admin:` list them.
const std::vector<std::string>& endpoint_names();

struct AuthConfig {
  std::vector<ApiKeyConfig> keys;  // `keys:`, then those of `keys_file:`
  std::vector<std::string> public_endpoints{"health"};
  std::vector<std::string> admin_endpoints{"reload", "state", "adaptations", "metrics"};

  bool enabled() const { return !keys.empty(); }
};

// Reads the `auth:` node of the fleet file `source` (absent: no keys);
// keys_file is relative to base_dir. Throws ConfigError naming the file
// (the fleet file or the keys file), the line and the field.
AuthConfig parse_auth_config(const YAML::Node& node, const std::string& source,
                             const std::string& base_dir);

}  // namespace calm
