// The built-in demo fleet (demo/fleet.yaml, what the README's first command
// serves): the five trained specialists behind one endpoint. Each question
// below is new to the router (not one of its examples) and plainly of one
// domain; `model: auto` must reach that domain's specialist, which answers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using nlohmann::json;

TEST(DemoFleet, AutoRoutesEachDomainsQuestionToItsSpecialistWhichAnswers) {
  testing::CalmServer server(testing::FleetFile{std::string(CALM_SOURCE_DIR) + "/demo/fleet.yaml"},
                             {"--knowledge", testing::temp_path("knowledge.db")});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Tom has 3 boxes with 12 apples each. He gives away 10 apples. How many apples are left?",
       "maths-expert"},
      {"Write a python function to return the largest element of a list.", "code-expert"},
      {"A 54-year-old woman comes to the physician because of fatigue and joint pain. "
       "Which of the following is the most likely diagnosis?",
       "medical-expert"},
      {"A tenant leased an apartment from a landlord under a written lease. The landlord sued "
       "the tenant for breach of contract. Will the landlord prevail?",
       "legal-expert"},
      {"If the central bank raises interest rates, what happens to inflation and aggregate "
       "demand in the economy?",
       "finance-expert"}};
  for (const auto& [question, expected] : cases) {
    const json body = {{"model", "auto"},
                       {"messages", {{{"role", "user"}, {"content", question}}}},
                       {"max_tokens", 24}};
    const auto res = server.client().Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("x-calm-model"), expected) << question;
    const json answer = json::parse(res->body);
    EXPECT_GT(answer["usage"]["completion_tokens"].get<int>(), 0) << question;
  }
}

}  // namespace
}  // namespace calm
