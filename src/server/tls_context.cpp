#include "server/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace calm {
namespace {

namespace ssl = boost::asio::ssl;

// OpenSSL's own reason for the last failure ("no start line", "key values
// mismatch"), which says more than asio's error_code for PEM problems.
std::string openssl_reason(const boost::system::error_code& ec) {
  std::string reason;
  while (const unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    if (!reason.empty()) reason += "; ";
    reason += text;
  }
  return reason.empty() ? ec.message() : reason;
}

}  // namespace

std::shared_ptr<ssl::context> make_server_tls_context(const std::string& cert_file,
                                                      const std::string& key_file) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  // An encrypted key would make OpenSSL ask for a pass phrase on the
  // terminal; calm has none to give, so such a key fails to load instead.
  SSL_CTX_set_default_passwd_cb(native, [](char*, int, int, void*) { return 0; });

  ERR_clear_error();
  boost::system::error_code ec;
  context->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    throw TlsFileError(
        TlsFileError::File::kCert,
        "cannot use " + cert_file + " as a PEM certificate chain: " + openssl_reason(ec));
  }
  context->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) {
    throw TlsFileError(TlsFileError::File::kKey,
                       "cannot use " + key_file +
                           " as the PEM private key of the certificate (an unencrypted key that "
                           "belongs to it is needed): " +
                           openssl_reason(ec));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    throw TlsFileError(TlsFileError::File::kKey, key_file + " is not the private key of " +
                                                     cert_file + ": " + openssl_reason(ec));
  }
  return context;
}

}  // namespace calm
