// server.tls: the fields (config/tls_config.h) and the TLS context made from
// them (server/tls_context.h), with certificates the test makes.
#include <gtest/gtest.h>

#include <fstream>

#include "config/fleet_config.h"
#include "server/tls_context.h"
#include "support/certificate.h"
#include "support/helpers.h"

namespace calm {
namespace {

using testing::TempDir;

class TlsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.file("a.gguf")) << "x";
    std::ofstream(dir_.file("cert.pem")) << "c";
    std::ofstream(dir_.file("key.pem")) << "k";
  }
  FleetConfig parse(const std::string& tls) {
    return parse_fleet_config("server:\n  tls: " + tls + "\nmodels:\n  - id: m\n    gguf: a.gguf\n",
                              "fleet.yaml", dir_.file(""));
  }
  std::string error_of(const std::string& tls) {
    try {
      parse(tls);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }
  TempDir dir_{"calm-tls-config"};
};

TEST_F(TlsConfigTest, NoTlsSectionMeansPlainHttp) {
  const FleetConfig c =
      parse_fleet_config("models:\n  - id: m\n    gguf: a.gguf\n", "fleet.yaml", dir_.file(""));
  EXPECT_FALSE(c.server.tls.has_value());
}

TEST_F(TlsConfigTest, CertAndKeyResolveAgainstTheFleetFileWithATenSecondHandshake) {
  const FleetConfig c = parse("{cert: cert.pem, key: key.pem}");
  ASSERT_TRUE(c.server.tls);
  EXPECT_EQ(c.server.tls->cert_file, dir_.file("cert.pem"));
  EXPECT_EQ(c.server.tls->key_file, dir_.file("key.pem"));
  EXPECT_EQ(c.server.tls->handshake_timeout, std::chrono::seconds(10));
}

TEST_F(TlsConfigTest, AMissingKeyFieldIsAnErrorNamingTheField) {
  const std::string e = error_of("{cert: cert.pem}");
  EXPECT_NE(e.find("fleet.yaml:2: server.tls.key: is required"), std::string::npos) << e;
}

TEST_F(TlsConfigTest, ACertFileThatDoesNotExistIsAnErrorNamingTheFileAndField) {
  const std::string e = error_of("{cert: missing.pem, key: key.pem}");
  EXPECT_NE(e.find("server.tls.cert: file not found: " + dir_.file("missing.pem")),
            std::string::npos)
      << e;
}

TEST_F(TlsConfigTest, AKeyThatIsAFolderIsAnError) {
  std::filesystem::create_directories(dir_.file("folder"));
  const std::string e = error_of("{cert: cert.pem, key: folder}");
  EXPECT_NE(e.find("server.tls.key: file not found"), std::string::npos) << e;
}

TEST_F(TlsConfigTest, AnUnknownFieldIsAnError) {
  const std::string e = error_of("{cert: cert.pem, key: key.pem, ca: x.pem}");
  EXPECT_NE(e.find("server.tls.ca: unknown field"), std::string::npos) << e;
}

TEST_F(TlsConfigTest, AHandshakeTimeoutOfZeroIsAnError) {
  const std::string e = error_of("{cert: cert.pem, key: key.pem, handshake_timeout_s: 0}");
  EXPECT_NE(e.find("server.tls.handshake_timeout_s: must be between"), std::string::npos) << e;
}

TEST_F(TlsConfigTest, TlsThatIsNotAMappingIsAnError) {
  const std::string e = error_of("cert.pem");
  EXPECT_NE(e.find("server.tls: expected a mapping"), std::string::npos) << e;
}

class TlsContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = testing::make_self_signed_certificate(dir_.file(""), "a");
    auto b = testing::make_self_signed_certificate(dir_.file(""), "b");
    ASSERT_TRUE(a && b) << "openssl could not make certificates";
    a_ = *a;
    b_ = *b;
  }
  TempDir dir_{"calm-tls-context"};
  testing::Certificate a_, b_;
};

TEST_F(TlsContextTest, ACertificateAndItsOwnKeyMakeAContext) {
  EXPECT_NE(make_server_tls_context(a_.cert, a_.key), nullptr);
}

TEST_F(TlsContextTest, TheKeyOfAnotherCertificateIsRefusedNamingTheKeyFile) {
  try {
    make_server_tls_context(a_.cert, b_.key);
    FAIL() << "a key that is not the certificate's was accepted";
  } catch (const TlsFileError& e) {
    EXPECT_EQ(e.file(), TlsFileError::File::kKey);
    EXPECT_NE(std::string(e.what()).find(b_.key), std::string::npos) << e.what();
  }
}

TEST_F(TlsContextTest, ACertificateFileThatIsNotPemIsRefusedNamingTheCertFile) {
  std::ofstream(dir_.file("garbage.pem")) << "not a certificate\n";
  try {
    make_server_tls_context(dir_.file("garbage.pem"), a_.key);
    FAIL() << "a file that is not PEM was accepted as a certificate";
  } catch (const TlsFileError& e) {
    EXPECT_EQ(e.file(), TlsFileError::File::kCert);
    EXPECT_NE(std::string(e.what()).find(dir_.file("garbage.pem")), std::string::npos) << e.what();
  }
}

TEST_F(TlsContextTest, ACertificateGivenAsTheKeyIsRefusedNamingTheKeyFile) {
  try {
    make_server_tls_context(a_.cert, a_.cert);
    FAIL() << "a certificate was accepted as a private key";
  } catch (const TlsFileError& e) {
    EXPECT_EQ(e.file(), TlsFileError::File::kKey);
  }
}

}  // namespace
}  // namespace calm
