// parse_url: the one parser of base URLs (util/url.h).
#include "util/url.h"

#include <gtest/gtest.h>

#include <string>

namespace calm {
namespace {

std::string error_of(const std::string& url) {
  try {
    parse_url(url);
  } catch (const UrlError& e) {
    return e.what();
  }
  return "";
}

TEST(Url, HttpUrlIsSplitIntoHostPortAndPath) {
  const Url url = parse_url("http://127.0.0.1:8080/proxy/v1/");
  EXPECT_EQ(url.scheme, "http");
  EXPECT_EQ(url.host, "127.0.0.1");
  EXPECT_EQ(url.port, 8080);
  EXPECT_EQ(url.path, "/proxy/v1/");
  EXPECT_FALSE(url.tls());
}

TEST(Url, PortDefaultsBySchemeAndSchemeIgnoresCase) {
  EXPECT_EQ(parse_url("http://example.org").port, 80);
  const Url url = parse_url("HTTPS://example.org");
  EXPECT_EQ(url.scheme, "https");
  EXPECT_EQ(url.port, 443);
  EXPECT_TRUE(url.tls());
  EXPECT_EQ(url.path, "");
}

TEST(Url, Ipv6LiteralKeepsItsColonsOutOfThePort) {
  const Url url = parse_url("http://[::1]:8081/x");
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 8081);
  EXPECT_EQ(url.path, "/x");
  EXPECT_EQ(url.authority(), "[::1]:8081");
  EXPECT_EQ(parse_url("https://[fe80::1]").port, 443);
  EXPECT_EQ(parse_url("http://example.org:81").origin(), "http://example.org:81");
}

TEST(Url, BadSchemeIsNamed) {
  EXPECT_NE(error_of("ftp://host").find("unsupported scheme 'ftp://'"), std::string::npos);
  EXPECT_NE(error_of("127.0.0.1:8080").find("has no scheme"), std::string::npos);
}

TEST(Url, MissingHostIsRefused) {
  for (const char* url : {"http://", "http://:8080", "https:///v1", "http://[]:1"}) {
    EXPECT_FALSE(error_of(url).empty()) << url;
  }
  EXPECT_NE(error_of("http://:8080").find("has no host"), std::string::npos);
}

TEST(Url, BadPortIsRefusedWithTheRange) {
  for (const char* url : {"http://host:0", "http://host:65536", "http://host:80x",
                          "http://host:", "http://host:-1", "http://[::1]:x"}) {
    EXPECT_NE(error_of(url).find("bad port"), std::string::npos) << url << ": " << error_of(url);
  }
  EXPECT_EQ(parse_url("http://host:65535").port, 65535);
}

TEST(Url, MalformedIpv6IsRefused) {
  EXPECT_NE(error_of("http://[::1").find("unclosed '['"), std::string::npos);
  EXPECT_NE(error_of("http://[zz::1]:80").find("not an IPv6 address"), std::string::npos);
  EXPECT_NE(error_of("http://[::1]x").find("after the IPv6 address"), std::string::npos);
  EXPECT_NE(error_of("http://::1:8080").find("goes in brackets"), std::string::npos);
}

TEST(Url, CredentialsQueryFragmentAndSpacesAreRefused) {
  EXPECT_NE(error_of("http://u:p@host").find("api_key"), std::string::npos);
  EXPECT_NE(error_of("http://host/?q=1").find("query or fragment"), std::string::npos);
  EXPECT_NE(error_of("http://host/#top").find("query or fragment"), std::string::npos);
  EXPECT_NE(error_of("http://ho st").find("space"), std::string::npos);
  EXPECT_NE(error_of("http://host/\n").find("control character"), std::string::npos);
  EXPECT_NE(error_of("http://ho%st").find("bad character '%'"), std::string::npos);
}

TEST(Url, ErrorNamesTheUrl) {
  EXPECT_EQ(error_of("http://host:0").rfind("URL 'http://host:0': ", 0), 0u) << error_of("x");
}

TEST(Url, OpenAiBasePathDropsTrailingSlashAndV1) {
  EXPECT_EQ(openai_base_path(""), "");
  EXPECT_EQ(openai_base_path("/"), "");
  EXPECT_EQ(openai_base_path("/v1"), "");
  EXPECT_EQ(openai_base_path("/v1/"), "");
  EXPECT_EQ(openai_base_path("/proxy/v1/"), "/proxy");
  EXPECT_EQ(openai_base_path("/proxy//"), "/proxy");
  EXPECT_EQ(openai_base_path("/api/v10"), "/api/v10");
}

}  // namespace
}  // namespace calm
