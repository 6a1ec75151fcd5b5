// The listener's TLS context: a certificate chain and its private key, read
// from PEM files once, before calm serves anything.
//
// TLS 1.2 and 1.3 only; no renegotiation (a client cannot make the server
// redo a handshake mid-connection), so a connection's reads and writes never
// need each other and a reply can stream while the connection watches for
// the client leaving (server/http_transport.cpp).
//
// Thread-safe once made: asio's ssl::context is shared by every connection.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <stdexcept>
#include <string>

namespace calm {

// A certificate or key file that cannot be used; file() says which.
class TlsFileError : public std::runtime_error {
 public:
  enum class File { kCert, kKey };
  TlsFileError(File file, const std::string& message) : std::runtime_error(message), file_(file) {}
  File file() const { return file_; }

 private:
  File file_;
};

// Throws TlsFileError: a file that is missing, not PEM, an encrypted key, or
// a key that is not the certificate's.
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(const std::string& cert_file,
                                                                   const std::string& key_file);

}  // namespace calm
