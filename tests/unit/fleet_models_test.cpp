// The evaluation fleet (fleet/models, made by fleet/train.sh) is what the
// README's results rest on, so its claims are checked here on the committed
// files: the GGUFs hold exactly what PyTorch trained (llama.cpp gives the same
// log-likelihoods), and fleet.json documents a fair comparison (a generalist
// 4 to 8 times the largest specialist, trained with the same compute as the
// five specialists together).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/reference_scorer.h"

namespace calm {
namespace {

const std::string kFleet = std::string(CALM_SOURCE_DIR) + "/fleet/models";

nlohmann::json read_fleet_json() {
  std::ifstream in(kFleet + "/fleet.json");
  EXPECT_TRUE(in) << "missing " << kFleet << "/fleet.json";
  return nlohmann::json::parse(in);
}

TEST(FleetModels, LlamaCppScoresMatchWhatTheTrainerComputed) {
  std::ifstream in(kFleet + "/checks.jsonl");
  ASSERT_TRUE(in) << "missing " << kFleet << "/checks.jsonl";
  std::map<std::string, std::unique_ptr<ReferenceScorer>> scorers;
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    const auto check = nlohmann::json::parse(line);
    const std::string model = check["model"];
    auto& scorer = scorers[model];
    if (!scorer) {
      scorer = std::make_unique<ReferenceScorer>(
          ReferenceScorer::Options{kFleet + "/" + model + ".gguf", 1024, 2});
    }
    std::vector<ChatMessage> messages;
    for (const auto& m : check["messages"]) messages.push_back({m["role"], m["content"]});
    const auto score = scorer->score(messages, check["reference"]);
    EXPECT_EQ(score.tokens, check["tokens"].get<int>()) << model << " " << check["domain"];
    // f16 weights in both; llama.cpp's kernels sum in a different order.
    EXPECT_NEAR(score.mean_logprob, check["mean_logprob"].get<double>(), 0.01)
        << model << " on a held-out " << check["domain"] << " answer";
    ++checked;
  }
  EXPECT_GE(checked, 6 * 5) << "two checks per domain for each of the six models";
}

TEST(FleetModels, GeneralistHasFourToEightTimesTheParametersOfTheLargestSpecialist) {
  const auto fleet = read_fleet_json();
  int64_t largest = 0;
  for (const auto& [name, m] : fleet["models"].items()) {
    if (m["kind"] == "specialist") largest = std::max(largest, m["params"].get<int64_t>());
  }
  ASSERT_GT(largest, 0);
  const double ratio =
      static_cast<double>(fleet["models"]["generalist"]["params"].get<int64_t>()) / largest;
  EXPECT_GE(ratio, 4.0);
  EXPECT_LE(ratio, 8.0);
}

TEST(FleetModels, GeneralistTrainedWithTheSpecialistsTotalCompute) {
  const auto fleet = read_fleet_json();
  double specialists = 0;
  int count = 0;
  for (const auto& [name, m] : fleet["models"].items()) {
    if (m["kind"] != "specialist") continue;
    specialists += m["train_flops"].get<double>();
    ++count;
  }
  EXPECT_EQ(count, 5);
  const double generalist = fleet["models"]["generalist"]["train_flops"].get<double>();
  // Whole batches: the token counts round down to a step, within 2%.
  EXPECT_NEAR(generalist / specialists, 1.0, 0.02);
}

TEST(FleetModels, EveryModelDocumentsItsHeldOutPerplexityOnEveryDomain) {
  const auto fleet = read_fleet_json();
  ASSERT_EQ(fleet["models"].size(), 6u);
  for (const auto& [name, m] : fleet["models"].items()) {
    EXPECT_TRUE(std::filesystem::exists(kFleet + "/" + name + ".gguf")) << name;
    EXPECT_GT(m["train_tokens"].get<int64_t>(), 0) << name;
    for (const char* domain : {"maths", "code", "medical", "legal", "finance"}) {
      ASSERT_TRUE(m["heldout_perplexity"].contains(domain)) << name << " " << domain;
      const double ppl = m["heldout_perplexity"][domain];
      EXPECT_TRUE(std::isfinite(ppl) && ppl >= 1.0) << name << " " << domain << ": " << ppl;
    }
  }
}

}  // namespace
}  // namespace calm
