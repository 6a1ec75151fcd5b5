// Workload files (parse errors name file, line and field; load sorts by t;
// save/load round-trips) and the workload generator (deterministic per
// seed; locality, popularity mix and burstiness have the statistics asked).
#include "bench/workload.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "support/helpers.h"

namespace calm {
namespace {

// --- parsing ---------------------------------------------------------------

struct BadLine {
  std::string name;
  std::string line;
  std::string field;     // the field the error must name ("" = the line as a whole)
  std::string fragment;  // a piece of the message
};

class WorkloadBadLine : public ::testing::TestWithParam<BadLine> {};

TEST_P(WorkloadBadLine, ErrorNamesFileLineAndField) {
  const BadLine& bad = GetParam();
  try {
    parse_workload_line(bad.line, "w.jsonl", 7);
    FAIL() << "accepted: " << bad.line;
  } catch (const WorkloadError& e) {
    EXPECT_EQ(e.file(), "w.jsonl");
    EXPECT_EQ(e.line(), 7);
    EXPECT_EQ(e.field(), bad.field) << e.what();
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("w.jsonl:7: ", 0), 0u) << what;
    if (!bad.field.empty()) {
      EXPECT_NE(what.find("field '" + bad.field + "'"), std::string::npos);
    }
    EXPECT_NE(what.find(bad.fragment), std::string::npos) << what;
  }
}

const std::string kMsgs = R"("messages": [{"role": "user", "content": "hi"}])";

INSTANTIATE_TEST_SUITE_P(
    Workload, WorkloadBadLine,
    ::testing::Values(
        BadLine{"NotJson", R"({"t": 0,)", "", "not valid JSON"},
        BadLine{"NotAnObject", R"([1, 2])", "", "must be a JSON object"},
        BadLine{"MissingT", "{" + kMsgs + "}", "t", "missing"},
        BadLine{"TNotANumber", R"({"t": "0.5", )" + kMsgs + "}", "t", "must be a number"},
        BadLine{"NegativeT", R"({"t": -0.5, )" + kMsgs + "}", "t", "must be >= 0"},
        BadLine{"MissingMessagesAndPrompt", R"({"t": 0})", "messages", "give messages or prompt"},
        BadLine{"BothMessagesAndPrompt", R"({"t": 0, "prompt": "x", )" + kMsgs + "}", "prompt",
                "not both"},
        BadLine{"MessagesNotAnArray", R"({"t": 0, "messages": "hi"})", "messages",
                "must be an array"},
        BadLine{"MessagesEmpty", R"({"t": 0, "messages": []})", "messages", "must not be empty"},
        BadLine{"MessageNotAnObject", R"({"t": 0, "messages": ["hi"]})", "messages[0]",
                "must be an object"},
        BadLine{"MessageWithoutRole", R"({"t": 0, "messages": [{"content": "hi"}]})",
                "messages[0].role", "must be a string"},
        BadLine{"MessageContentNumber", R"({"t": 0, "messages": [{"role": "user", "content": 3}]})",
                "messages[0].content", "must be a string or an array"},
        BadLine{"PromptNotAString", R"({"t": 0, "prompt": 42})", "prompt", "must be a string"},
        BadLine{"MaxTokensZero", R"({"t": 0, "max_tokens": 0, )" + kMsgs + "}", "max_tokens",
                "must be > 0"},
        BadLine{"MaxTokensNegative", R"({"t": 0, "max_tokens": -3, )" + kMsgs + "}", "max_tokens",
                "must be > 0"},
        BadLine{"MaxTokensFraction", R"({"t": 0, "max_tokens": 1.5, )" + kMsgs + "}", "max_tokens",
                "must be an integer"},
        BadLine{"MaxTokensString", R"({"t": 0, "max_tokens": "32", )" + kMsgs + "}", "max_tokens",
                "must be an integer"},
        BadLine{"ModelNotAString", R"({"t": 0, "model": 3, )" + kMsgs + "}", "model",
                "must be a string"},
        BadLine{"DomainNotAString", R"({"t": 0, "domain": ["maths"], )" + kMsgs + "}", "domain",
                "must be a string"},
        BadLine{"ReferenceNotAString", R"({"t": 0, "reference": null, )" + kMsgs + "}", "reference",
                "must be a string"}),
    [](const ::testing::TestParamInfo<BadLine>& info) { return info.param.name; });

TEST(Workload, MinimalChatLineGetsTheDefaults) {
  const WorkloadRequest r = parse_workload_line(R"({"t": 0.25, )" + kMsgs + "}", "w", 1);
  EXPECT_DOUBLE_EQ(r.t, 0.25);
  EXPECT_TRUE(r.is_chat());
  EXPECT_EQ(r.model, "");  // the replayer's --model
  EXPECT_EQ(r.max_tokens, 32);
  EXPECT_EQ(r.messages[0]["content"], "hi");
}

TEST(Workload, PromptLineIsACompletionRequest) {
  const WorkloadRequest r =
      parse_workload_line(R"({"t": 1, "prompt": "Once", "model": "m3", "max_tokens": 8})", "w", 1);
  EXPECT_FALSE(r.is_chat());
  EXPECT_EQ(*r.prompt, "Once");
  EXPECT_EQ(r.model, "m3");
  EXPECT_EQ(r.max_tokens, 8);
}

TEST(Workload, LoadSortsByArrivalKeepingFileOrderForTies) {
  testing::TempDir dir;
  const std::string path = dir.file("w.jsonl");
  testing::write_bytes(path, R"({"t": 2, "prompt": "c"})"
                             "\n"
                             R"({"t": 1, "prompt": "a"})"
                             "\n\n"
                             R"({"t": 1, "prompt": "b"})"
                             "\n");
  const auto w = load_workload(path);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(*w[0].prompt, "a");
  EXPECT_EQ(*w[1].prompt, "b");
  EXPECT_EQ(*w[2].prompt, "c");
}

TEST(Workload, LoadErrorCountsBlankLines) {
  testing::TempDir dir;
  const std::string path = dir.file("w.jsonl");
  testing::write_bytes(path, R"({"t": 0, "prompt": "a"})"
                             "\n\n"
                             R"({"t": 0, "prompt": "b", "max_tokens": 0})"
                             "\n");
  try {
    load_workload(path);
    FAIL();
  } catch (const WorkloadError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.field(), "max_tokens");
  }
}

TEST(Workload, EmptyFileIsAnError) {
  testing::TempDir dir;
  const std::string path = dir.file("w.jsonl");
  testing::write_bytes(path, "\n  \n");
  EXPECT_THROW(load_workload(path), WorkloadError);
}

TEST(Workload, MissingFileIsAnErrorNamingIt) {
  try {
    load_workload("/nonexistent/w.jsonl");
    FAIL();
  } catch (const WorkloadError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/w.jsonl: cannot open"), std::string::npos);
  }
}

TEST(Workload, SaveThenLoadRoundTrips) {
  testing::TempDir dir;
  const std::string path = dir.file("w.jsonl");
  GeneratorOptions o;
  o.requests = 50;
  o.models = {"a", "b"};
  std::vector<WorkloadRequest> original = generate_workload(o);
  original[3].domain = "maths";
  original[3].reference = "4";
  original[4].prompt = "raw prompt";
  original[4].messages = nullptr;
  save_workload(path, original);
  const auto loaded = load_workload(path);
  ASSERT_EQ(loaded.size(), original.size());
  for (size_t i = 0; i < loaded.size(); ++i) {
    EXPECT_EQ(workload_line(loaded[i]), workload_line(original[i])) << i;
  }
  EXPECT_EQ(loaded[3].domain, "maths");
  EXPECT_EQ(*loaded[4].prompt, "raw prompt");
}

// --- generator ---------------------------------------------------------------

std::vector<std::string> lines(const std::vector<WorkloadRequest>& w) {
  std::vector<std::string> out;
  for (const auto& r : w) out.push_back(workload_line(r));
  return out;
}

TEST(WorkloadGenerator, SameSeedGivesTheSameWorkload) {
  GeneratorOptions o;
  o.arrival = "bursty";
  o.models = {"a", "b", "c"};
  o.locality = 0.3;
  EXPECT_EQ(lines(generate_workload(o)), lines(generate_workload(o)));
}

TEST(WorkloadGenerator, DifferentSeedGivesADifferentWorkload) {
  GeneratorOptions o;
  o.models = {"a", "b", "c"};
  GeneratorOptions other = o;
  other.seed = 2;
  EXPECT_NE(lines(generate_workload(o)), lines(generate_workload(other)));
}

TEST(WorkloadGenerator, ArrivalsArePositiveAndNonDecreasing) {
  GeneratorOptions o;
  o.arrival = "bursty";
  const auto w = generate_workload(o);
  ASSERT_EQ(w.size(), 500u);
  EXPECT_GT(w[0].t, 0);
  for (size_t i = 1; i < w.size(); ++i) EXPECT_GE(w[i].t, w[i - 1].t);
}

TEST(WorkloadGenerator, PoissonArrivalsHaveTheAskedRate) {
  GeneratorOptions o;
  o.requests = 20000;
  o.rate = 4;
  const auto w = generate_workload(o);
  const double rate = static_cast<double>(w.size()) / w.back().t;
  EXPECT_NEAR(rate, 4.0, 0.12);  // 20000 gaps: sd of the mean ~0.7%
}

// Same model as the previous request: locality + (1 - locality) * P(redraw
// picks the same) = L + (1 - L) / K for a uniform mix over K models.
double same_as_previous(const std::vector<WorkloadRequest>& w) {
  int same = 0;
  for (size_t i = 1; i < w.size(); ++i) same += w[i].model == w[i - 1].model ? 1 : 0;
  return static_cast<double>(same) / static_cast<double>(w.size() - 1);
}

TEST(WorkloadGenerator, LocalityRepeatsThePreviousModel) {
  GeneratorOptions o;
  o.requests = 20000;
  o.models = {"a", "b", "c", "d"};
  o.locality = 0.6;
  EXPECT_NEAR(same_as_previous(generate_workload(o)), 0.6 + 0.4 / 4, 0.015);
}

TEST(WorkloadGenerator, ZeroLocalityUniformMixIsSwapHeavy) {
  GeneratorOptions o;
  o.requests = 20000;
  o.models = {"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"};
  o.locality = 0;
  EXPECT_NEAR(same_as_previous(generate_workload(o)), 1.0 / 8, 0.015);
}

std::map<std::string, double> shares(const std::vector<WorkloadRequest>& w) {
  std::map<std::string, double> out;
  for (const auto& r : w) out[r.model] += 1.0 / static_cast<double>(w.size());
  return out;
}

TEST(WorkloadGenerator, MixSetsModelPopularity) {
  GeneratorOptions o;
  o.requests = 20000;
  o.models = {"a", "b", "c"};
  o.mix = {5, 3, 2};  // normalised
  const auto s = shares(generate_workload(o));
  EXPECT_NEAR(s.at("a"), 0.5, 0.015);
  EXPECT_NEAR(s.at("b"), 0.3, 0.015);
  EXPECT_NEAR(s.at("c"), 0.2, 0.015);
}

TEST(WorkloadGenerator, LocalityKeepsTheMixAsLongRunPopularity) {
  GeneratorOptions o;
  o.requests = 40000;
  o.models = {"a", "b"};
  o.mix = {0.8, 0.2};
  o.locality = 0.7;
  const auto s = shares(generate_workload(o));
  EXPECT_NEAR(s.at("a"), 0.8, 0.03);
}

// Variance / mean of the arrivals per one-second window: 1 for a Poisson
// process, well above 1 for a Markov-modulated one.
double dispersion(const std::vector<WorkloadRequest>& w) {
  std::vector<double> counts(static_cast<size_t>(w.back().t) + 1, 0);
  for (const auto& r : w) counts[static_cast<size_t>(r.t)] += 1;
  counts.pop_back();  // the last window is partial
  double mean = 0, var = 0;
  for (double c : counts) mean += c / static_cast<double>(counts.size());
  for (double c : counts) var += (c - mean) * (c - mean) / static_cast<double>(counts.size() - 1);
  return var / mean;
}

TEST(WorkloadGenerator, PoissonCountsPerWindowAreNotOverdispersed) {
  GeneratorOptions o;
  o.requests = 20000;
  EXPECT_NEAR(dispersion(generate_workload(o)), 1.0, 0.15);
}

TEST(WorkloadGenerator, BurstyCountsPerWindowVaryMoreThanPoisson) {
  GeneratorOptions o;
  o.requests = 20000;
  o.arrival = "bursty";
  o.rate = 4;
  o.burst_factor = 5;
  EXPECT_GT(dispersion(generate_workload(o)), 3.0);
}

TEST(WorkloadGenerator, BurstyRateLiesBetweenCalmAndBurstRates) {
  GeneratorOptions o;
  o.requests = 20000;
  o.arrival = "bursty";
  o.rate = 4;
  o.burst_factor = 5;
  o.calm_mean_s = 20;
  o.burst_mean_s = 5;
  const auto w = generate_workload(o);
  // Time-average rate: (4 * 20 + 20 * 5) / 25 = 7.2 requests per second.
  EXPECT_NEAR(static_cast<double>(w.size()) / w.back().t, 7.2, 1.0);
}

TEST(WorkloadGenerator, SyntheticPromptsNameTheRequestAndModel) {
  GeneratorOptions o;
  o.requests = 3;
  o.models = {"m3"};
  const auto w = generate_workload(o);
  EXPECT_EQ(w[2].messages[0]["content"], "request 2 for model m3: tell me something");
  EXPECT_EQ(w[2].messages[0]["role"], "user");
  EXPECT_EQ(w[2].max_tokens, 32);
}

TEST(WorkloadGenerator, PromptsComeFromTheGivenTexts) {
  GeneratorOptions o;
  o.requests = 200;
  o.prompts = {"alpha", "beta"};
  std::map<std::string, int> seen;
  for (const auto& r : generate_workload(o)) seen[r.messages[0]["content"]]++;
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen["alpha"], 50);
  EXPECT_GT(seen["beta"], 50);
}

bool rejects(const std::function<void(GeneratorOptions&)>& change) {
  GeneratorOptions o;
  o.models = {"a", "b"};
  change(o);
  try {
    generate_workload(o);
  } catch (const std::invalid_argument&) {
    return true;
  }
  return false;
}

TEST(WorkloadGenerator, BadOptionsAreRejected) {
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.arrival = "uniform"; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.rate = 0; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.requests = 0; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.locality = 1.5; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.mix = {1}; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.mix = {0, 0}; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.mix = {1, -1}; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.models = {}; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.burst_factor = 0.5; }));
  EXPECT_FALSE(rejects([](GeneratorOptions&) {}));
}

}  // namespace
}  // namespace calm
