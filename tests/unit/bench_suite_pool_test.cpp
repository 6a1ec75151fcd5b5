// Request pools for `calm bench workload --pool`: bad pool lines name
// file:line:field; generated requests carry the item's domain, prompt,
// reference and max_tokens, leave the model to the replayer, are
// deterministic per seed, and follow the domain mix.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "bench/workload.h"
#include "support/helpers.h"

namespace calm {
namespace {

struct BadPoolLine {
  std::string name;
  std::string line;
  std::string field;
  std::string fragment;
};

class PoolBadLine : public ::testing::TestWithParam<BadPoolLine> {};

TEST_P(PoolBadLine, ErrorNamesFileLineAndField) {
  const BadPoolLine& bad = GetParam();
  try {
    parse_pool_line(bad.line, "pool.jsonl", 3);
    FAIL() << "accepted: " << bad.line;
  } catch (const WorkloadError& e) {
    EXPECT_EQ(e.file(), "pool.jsonl");
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.field(), bad.field) << e.what();
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("pool.jsonl:3: ", 0), 0u) << what;
    EXPECT_NE(what.find(bad.fragment), std::string::npos) << what;
  }
}

const std::string kMsgs = R"("messages": [{"role": "user", "content": "hi"}])";

INSTANTIATE_TEST_SUITE_P(
    Pool, PoolBadLine,
    ::testing::Values(
        BadPoolLine{"NotJson", "{", "", "not valid JSON"},
        BadPoolLine{"MissingDomain", "{" + kMsgs + "}", "domain", "missing"},
        BadPoolLine{"EmptyDomain", R"({"domain": "", )" + kMsgs + "}", "domain", "not be empty"},
        BadPoolLine{"DomainNotAString", R"({"domain": 3, )" + kMsgs + "}", "domain",
                    "must be a string"},
        BadPoolLine{"NoMessagesOrPrompt", R"({"domain": "d"})", "messages",
                    "give messages or prompt"},
        BadPoolLine{"BadMessage", R"({"domain": "d", "messages": [{"role": "user"}]})",
                    "messages[0].content", "must be a string"},
        BadPoolLine{"ReferenceNotAString", R"({"domain": "d", "reference": 4, )" + kMsgs + "}",
                    "reference", "must be a string"},
        BadPoolLine{"ZeroMaxTokens", R"({"domain": "d", "max_tokens": 0, )" + kMsgs + "}",
                    "max_tokens", "must be > 0"}),
    [](const ::testing::TestParamInfo<BadPoolLine>& info) { return info.param.name; });

TEST(Pool, LoadReportsTheLineOfTheBadItemCountingBlankLines) {
  testing::TempDir dir("calm-pool");
  const std::string path = dir.file("pool.jsonl");
  std::ofstream(path) << R"({"domain": "a", "prompt": "x"})"
                      << "\n\n"
                      << R"({"domain": "a"})"
                      << "\n";
  try {
    load_pool(path);
    FAIL() << "accepted a bad pool";
  } catch (const WorkloadError& e) {
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(std::string(e.what()).rfind(path + ":3: ", 0), 0u) << e.what();
  }
  std::ofstream(path, std::ios::trunc) << "\n";
  EXPECT_THROW(load_pool(path), WorkloadError);  // no item
}

std::vector<PoolItem> pool() {
  std::vector<PoolItem> out;
  for (int i = 0; i < 3; ++i) {
    out.push_back(parse_pool_line(
        R"({"domain": "maths", "messages": [{"role": "user", "content": "m)" + std::to_string(i) +
            R"("}], "reference": "r)" + std::to_string(i) + "\"}",
        "p", 1));
  }
  // One item in code: drawn as often as the three maths items together.
  out.push_back(parse_pool_line(
      R"({"domain": "code", "prompt": "def f():", "reference": " pass", "max_tokens": 5})", "p",
      4));
  return out;
}

TEST(PoolGenerator, RequestsCarryTheItemAndLeaveTheModelEmpty) {
  GeneratorOptions o;
  o.pool = pool();
  o.requests = 200;
  o.max_tokens = 17;
  for (const WorkloadRequest& r : generate_workload(o)) {
    EXPECT_TRUE(r.model.empty());
    if (r.domain == "code") {
      ASSERT_TRUE(r.prompt.has_value());
      EXPECT_EQ(*r.prompt, "def f():");
      EXPECT_EQ(r.reference, " pass");
      EXPECT_EQ(r.max_tokens, 5);  // the item's
    } else {
      ASSERT_EQ(r.domain, "maths");
      ASSERT_TRUE(r.is_chat());
      const std::string content = r.messages[0]["content"];
      EXPECT_EQ(r.reference, "r" + content.substr(1));  // the item's own reference
      EXPECT_EQ(r.max_tokens, 17);                      // the generator's
    }
  }
}

TEST(PoolGenerator, SameSeedGivesTheSameRequests) {
  GeneratorOptions o;
  o.pool = pool();
  o.requests = 50;
  const auto a = generate_workload(o), b = generate_workload(o);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(workload_line(a[i]), workload_line(b[i]));
  o.seed = 2;
  const auto c = generate_workload(o);
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += workload_line(a[i]) != workload_line(c[i]);
  EXPECT_GT(differ, 0u);
}

TEST(PoolGenerator, DomainsAreUniformThenItemsWithinADomain) {
  GeneratorOptions o;
  o.pool = pool();
  o.requests = 4000;
  std::map<std::string, int> domains, items;
  for (const auto& r : generate_workload(o)) {
    ++domains[r.domain];
    ++items[r.reference];
  }
  EXPECT_NEAR(domains["code"], 2000, 150);
  EXPECT_NEAR(domains["maths"], 2000, 150);
  for (const char* ref : {"r0", "r1", "r2"}) EXPECT_NEAR(items[ref], 667, 100) << ref;
}

TEST(PoolGenerator, DomainMixSetsDomainPopularity) {
  GeneratorOptions o;
  o.pool = pool();
  o.requests = 4000;
  o.domain_mix = {{"maths", 3}, {"code", 1}};
  std::map<std::string, int> domains;
  for (const auto& r : generate_workload(o)) ++domains[r.domain];
  EXPECT_NEAR(domains["maths"], 3000, 150);
  o.domain_mix = {{"maths", 1}};  // code left out: weight 0
  for (const auto& r : generate_workload(o)) EXPECT_EQ(r.domain, "maths");
}

TEST(PoolGenerator, BadDomainMixIsRejected) {
  GeneratorOptions o;
  o.pool = pool();
  o.domain_mix = {{"law", 1}};
  EXPECT_THROW(generate_workload(o), std::invalid_argument);
  o.domain_mix = {{"maths", 0}};
  EXPECT_THROW(generate_workload(o), std::invalid_argument);
  o.domain_mix = {{"maths", -1}, {"code", 2}};
  EXPECT_THROW(generate_workload(o), std::invalid_argument);
  o.pool.clear();
  o.domain_mix = {{"maths", 1}};
  EXPECT_THROW(generate_workload(o), std::invalid_argument);  // a mix needs a pool
}

TEST(PoolGenerator, GeneratedLinesLoadBackAsAWorkload) {
  testing::TempDir dir("calm-pool");
  GeneratorOptions o;
  o.pool = pool();
  o.requests = 20;
  const auto generated = generate_workload(o);
  save_workload(dir.file("w.jsonl"), generated);
  const auto loaded = load_workload(dir.file("w.jsonl"));
  ASSERT_EQ(loaded.size(), generated.size());
  for (size_t i = 0; i < loaded.size(); ++i) {
    EXPECT_EQ(workload_line(loaded[i]), workload_line(generated[i]));
  }
}

}  // namespace
}  // namespace calm
