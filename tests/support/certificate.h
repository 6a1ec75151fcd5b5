// A self-signed certificate (its own CA) and its key, made by the `openssl`
// command (Debian's openssl package, beside ca-certificates) into a folder
// the test owns, for the TLS tests of the listener.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace calm::testing {

struct Certificate {
  std::string cert;  // PEM certificate
  std::string key;   // PEM private key, unencrypted
};

// For subjectAltName `alt_names`, e.g. "IP:127.0.0.1"; nullopt if openssl failed.
inline std::optional<Certificate> make_self_signed_certificate(
    const std::string& dir, const std::string& name,
    const std::string& alt_names = "IP:127.0.0.1") {
  Certificate out{dir + "/" + name + ".pem", dir + "/" + name + "-key.pem"};
  const std::string command =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
      " -subj /CN=calm-test -addext subjectAltName=" +
      alt_names + " -keyout '" + out.key + "' -out '" + out.cert + "' >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0) return std::nullopt;
  return out;
}

}  // namespace calm::testing
