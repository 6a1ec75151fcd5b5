#include "router/semantic_router.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <map>
#include <sstream>

#include "config/fleet_config.h"
#include "registry/registry.h"

namespace calm {
namespace {

// Test double: one dimension per known word, a bag-of-words unit vector.
class BagOfWordsEmbedder : public Embedder {
 public:
  explicit BagOfWordsEmbedder(std::vector<std::string> vocabulary) {
    for (size_t i = 0; i < vocabulary.size(); ++i) index_[vocabulary[i]] = i;
  }
  std::string name() const override { return "bag-of-words"; }
  size_t dimension() const override { return index_.size(); }
  std::vector<float> embed(std::string_view text) override {
    std::vector<float> v(index_.size(), 0.0f);
    std::string word;
    std::istringstream in{std::string(text)};
    while (in >> word) {
      for (auto& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (auto it = index_.find(word); it != index_.end()) v[it->second] += 1.0f;
    }
    float norm = 0;
    for (float x : v) norm += x * x;
    if (norm > 0) {
      for (auto& x : v) x /= std::sqrt(norm);
    }
    return v;
  }

 private:
  std::map<std::string, size_t> index_;
};

std::shared_ptr<Embedder> embedder() {
  return std::make_shared<BagOfWordsEmbedder>(std::vector<std::string>{
      "math", "algebra", "equation", "code", "python", "function", "doctor", "patient", "dose"});
}

SemanticRouterSettings settings(SimilarityMode mode = SimilarityMode::kCombined) {
  SemanticRouterSettings s;
  s.similarity = mode;
  s.policy = {RoutingPolicy::kProConfidence, 0.0};  // similarity alone
  return s;
}

TEST(SemanticRouter, RoutesToTheModelWhoseDescriptionMatches) {
  SemanticRouter router(
      {{"maths", "math algebra equation", {}, {}}, {"coder", "code python function", {}, {}}},
      embedder(), settings(SimilarityMode::kDescription));
  EXPECT_EQ(router.rank("solve this equation", nullptr).candidates.front().id, "maths");
  EXPECT_EQ(router.rank("write a python function", nullptr).candidates.front().id, "coder");
}

TEST(SemanticRouter, ExamplesRescueAVagueDescription) {
  const std::vector<RouteProfileSpec> fleet = {
      {"general", "math code", {}, {}},
      {"medic", "a helpful model", {"patient dose", "doctor"}, {}}};
  SemanticRouter by_description(fleet, embedder(), settings(SimilarityMode::kDescription));
  SemanticRouter by_examples(fleet, embedder(), settings(SimilarityMode::kCombined));
  const std::string query = "the patient needs a dose";
  EXPECT_EQ(by_description.rank(query, nullptr).candidates.front().similarity, 0.0);
  EXPECT_EQ(by_examples.rank(query, nullptr).candidates.front().id, "medic");
}

TEST(SemanticRouter, CentroidAndClassifierUseTheExamples) {
  const std::vector<RouteProfileSpec> fleet = {{"maths", "x", {"algebra equation", "math"}, {}},
                                               {"medic", "y", {"patient dose", "doctor"}, {}}};
  for (auto mode : {SimilarityMode::kCentroid, SimilarityMode::kClassifier}) {
    SemanticRouter router(fleet, embedder(), settings(mode));
    EXPECT_EQ(router.rank("the doctor and the patient", nullptr).candidates.front().id, "medic")
        << similarity_mode_name(mode);
    EXPECT_EQ(router.rank("an equation", nullptr).candidates.front().id, "maths")
        << similarity_mode_name(mode);
  }
}

TEST(SemanticRouter, QueryWithNoKnownWordFallsBackToTheFirstModel) {
  SemanticRouter router({{"first", "math", {}, {}}, {"second", "code", {}, {}}}, embedder(),
                        settings());
  const Ranking r = router.rank("zzz qqq", nullptr);
  EXPECT_FALSE(r.query_known);
  EXPECT_EQ(r.candidates.front().id, "first");
  EXPECT_EQ(r.candidates.front().similarity, 0.0);
  EXPECT_FALSE(router.rank("", nullptr).query_known);
}

TEST(SemanticRouter, ProLatencyMovesTrafficOffASlowModelOfEqualMeaning) {
  SemanticRouterSettings s = settings();
  s.policy = {RoutingPolicy::kProLatency, 0.5};
  SemanticRouter router({{"a", "math", {}, {}}, {"b", "math", {}, {}}}, embedder(), s);
  EXPECT_EQ(router.rank("math", nullptr).candidates.front().id, "a");  // tie: first listed
  Observation slow, fast;
  slow.latency_ms = 2000;
  fast.latency_ms = 200;
  router.windows().record("a", slow);
  router.windows().record("b", fast);
  EXPECT_EQ(router.rank("math", nullptr).candidates.front().id, "b");
}

TEST(SemanticRouter, ProCacheFollowsTheLoadedCallback) {
  SemanticRouterSettings s = settings();
  s.policy = {RoutingPolicy::kProCache, 0.5, 0.2};
  SemanticRouter router({{"a", "math", {}, {}}, {"b", "math", {}, {}}}, embedder(), s);
  EXPECT_EQ(
      router.rank("math", [](const std::string& id) { return id == "b"; }).candidates.front().id,
      "b");
}

TEST(SemanticRouter, PolicyCanChangeWhileServing) {
  SemanticRouter router({{"a", "math", {}, {}}}, embedder(), settings());
  router.set_policy({RoutingPolicy::kProEnergy, 0.3});
  EXPECT_EQ(router.policy().policy, RoutingPolicy::kProEnergy);
  EXPECT_EQ(router.rank("math", nullptr).policy, RoutingPolicy::kProEnergy);
}

TEST(SemanticRouter, QueryTextIsTheLastUserMessageOrThePrompt) {
  GenerationRequest chat;
  chat.messages = {
      {"system", "be brief"}, {"user", "first"}, {"assistant", "ok"}, {"user", "second"}};
  EXPECT_EQ(SemanticRouter::query_text(chat), "second");
  GenerationRequest completion;
  completion.prompt = "once upon";
  EXPECT_EQ(SemanticRouter::query_text(completion), "once upon");
}

// A registry of three remote models (nothing is contacted: no load_all()),
// the last listing its own fallbacks.
Registry three_model_registry() {
  return Registry(parse_fleet_config(
      "models:\n"
      "  - {id: maths, description: math algebra equation, url: 'http://127.0.0.1:1'}\n"
      "  - {id: coder, description: code python function, url: 'http://127.0.0.1:1'}\n"
      "  - {id: medic, description: doctor patient dose, url: 'http://127.0.0.1:1',"
      " fallbacks: [maths]}\n",
      "fleet.yaml", "/tmp"));
}

GenerationRequest ask(const std::string& text) {
  GenerationRequest request;
  request.messages = {{"user", text}};
  return request;
}

std::vector<std::string> ids(const std::vector<Registry::EntryPtr>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e->config.id);
  return out;
}

TEST(AutoRouter, ARoutedRequestFallsBackToTheRouterNextCandidatesInRankOrder) {
  Registry registry = three_model_registry();
  auto slot = std::make_shared<SemanticRouterSlot>(std::make_shared<SemanticRouter>(
      std::vector<RouteProfileSpec>{{"maths", "math algebra equation", {}, {}},
                                    {"coder", "code python function", {}, {}},
                                    {"medic", "doctor patient dose", {}, {}}},
      embedder(), settings(SimilarityMode::kDescription)));
  AutoRouter router(registry, slot);
  const auto decision = router.route("auto", ask("python code for an algebra equation"));
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->entry->config.id, "maths");
  EXPECT_EQ(ids(decision->fallbacks), (std::vector<std::string>{"coder", "medic"}));
}

TEST(AutoRouter, AModelThatListsFallbacksUsesThemInsteadOfTheRanking) {
  Registry registry = three_model_registry();
  auto slot = std::make_shared<SemanticRouterSlot>(std::make_shared<SemanticRouter>(
      std::vector<RouteProfileSpec>{{"maths", "math algebra equation", {}, {}},
                                    {"coder", "code python function", {}, {}},
                                    {"medic", "doctor patient dose", {}, {}}},
      embedder(), settings(SimilarityMode::kDescription)));
  AutoRouter router(registry, slot);
  const auto routed = router.route("auto", ask("the patient dose"));
  ASSERT_TRUE(routed);
  EXPECT_EQ(routed->entry->config.id, "medic");
  EXPECT_EQ(ids(routed->fallbacks), std::vector<std::string>{"maths"});
  const auto named = router.route("medic", ask("anything"));
  ASSERT_TRUE(named);
  EXPECT_EQ(ids(named->fallbacks), std::vector<std::string>{"maths"});
}

TEST(ModelNameRouter, ANamedModelWithoutFallbacksHasNone) {
  Registry registry = three_model_registry();
  ModelNameRouter router(registry);
  const auto decision = router.route("coder", ask("x"));
  ASSERT_TRUE(decision);
  EXPECT_TRUE(decision->fallbacks.empty());
  EXPECT_EQ(ids(router.route("medic", ask("x"))->fallbacks), std::vector<std::string>{"maths"});
}

TEST(SimilarityMode, NamesRoundTrip) {
  for (auto m :
       {SimilarityMode::kDescription, SimilarityMode::kExamples, SimilarityMode::kCombined}) {
    EXPECT_EQ(parse_similarity_mode(similarity_mode_name(m)), m);
  }
  EXPECT_FALSE(parse_similarity_mode("vibes").has_value());
}

}  // namespace
}  // namespace calm
