// The fleet file's `server.tls:` section: the listener speaks HTTPS.
//
//   server:
//     tls:
//       cert: certs/calm.pem        # PEM certificate chain (the server's first); relative to the file
//       key: certs/calm-key.pem     # PEM private key of that certificate, unencrypted
//       handshake_timeout_s: 10     # a client that connects and does not finish its TLS
//                                   # handshake within this is dropped
//
// Config checks that both files can be read; whether they are PEM and belong
// together is checked when the listener builds its TLS context
// (server/tls_context.h), before calm serves anything.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace YAML {
class Node;
}

namespace calm {

struct TlsConfig {
  std::string cert_file;  // absolute
  std::string key_file;   // absolute
  std::chrono::milliseconds handshake_timeout{10000};
};

// Reads `server.tls` of the fleet file `source` (absent or null: no TLS);
// paths resolve against base_dir. Throws ConfigError naming the file, the
// line and the field.
std::optional<TlsConfig> parse_tls_config(const YAML::Node& node, const std::string& source,
                                          const std::string& base_dir);

}  // namespace calm
