// What a node answers (nodes/router_node.h), untrusted input from another
// machine: a router-mode llama-server's GET /models (parse_router_models) and
// one sample of a /metrics page (prometheus_sample). The real answers are the
// fuzz seeds in fuzz/corpus/node_answers/, captured from the pinned llama-server.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include "nodes/openai_node.h"
#include "nodes/router_node.h"

namespace calm {
namespace {

constexpr const char* kLlamaServer =
    "# HELP llamacpp:requests_processing Number of requests processing.\n"
    "# TYPE llamacpp:requests_processing gauge\n"
    "llamacpp:requests_processing 2\n"
    "llamacpp:requests_processing_total 40\n"
    "llamacpp:requests_deferred 1.5e0\n";

TEST(PrometheusSample, ReadsTheSampleWithExactlyThatName) {
  EXPECT_EQ(prometheus_sample(kLlamaServer, "llamacpp:requests_processing"), 2.0);
  EXPECT_EQ(prometheus_sample(kLlamaServer, "llamacpp:requests_deferred"), 1.5);
  EXPECT_EQ(prometheus_sample(kLlamaServer, "llamacpp:requests_processing_total"), 40.0);
}

TEST(PrometheusSample, ANameThatIsOnlyAPrefixOfAnotherIsAbsent) {
  EXPECT_FALSE(
      prometheus_sample("llamacpp:requests_processing_total 4\n", "llamacpp:requests_processing"));
  EXPECT_FALSE(prometheus_sample(kLlamaServer, "llamacpp:requests"));
}

TEST(PrometheusSample, LabelsAreSkippedEvenWithABraceInsideAQuotedValue) {
  EXPECT_EQ(prometheus_sample("vllm:num_requests_waiting{model_name=\"a}b\\\"c\"} 7 1700000000\n",
                              "vllm:num_requests_waiting"),
            7.0);
}

TEST(PrometheusSample, ACommentOrHelpLineIsNeverASample) {
  EXPECT_FALSE(prometheus_sample("# TYPE x gauge\n# x 3\n", "x"));
}

TEST(PrometheusSample, AValueThatIsNotAFiniteNumberIsAbsentNotZero) {
  for (const char* text : {"x NaN\n", "x +Inf\n", "x 12abc\n", "x \n", "x{a=\"1\" 3\n", "x"}) {
    EXPECT_FALSE(prometheus_sample(text, "x")) << text;
  }
}

TEST(PrometheusSample, WindowsLineEndsAndTabsAreAccepted) {
  EXPECT_EQ(prometheus_sample("x\t5\r\n", "x"), 5.0);
}

std::string seed(const std::string& name) {
  std::ifstream in(std::string(CALM_SOURCE_DIR) + "/fuzz/corpus/node_answers/" + name);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(ParseRouterModels, ReadsStateSizeAndFailureFromARealLlamaServerAnswer) {
  const auto models = parse_router_models(seed("models-loaded-and-failed.json"));
  ASSERT_EQ(models.size(), 3u);
  for (const auto& model : models) {
    if (model.id == "tiny-chatml") {
      EXPECT_TRUE(model.loaded());
      EXPECT_GT(model.size_bytes, 0u);
    } else if (model.id == "broken") {
      EXPECT_EQ(model.state, "unloaded");
      EXPECT_TRUE(model.failed);
      EXPECT_EQ(model.exit_code, 1);
    } else {
      EXPECT_EQ(model.id, "tiny-plain");
      EXPECT_FALSE(model.loaded());
      EXPECT_EQ(model.size_bytes, 0u) << "no size before a load";
    }
  }
}

TEST(ParseRouterModels, AFieldOfAnotherTypeIsLeftOutNotAnException) {
  const auto models = parse_router_models(
      R"({"data":[{"id":"m","status":{"value":7,"failed":"yes","exit_code":"1"},"meta":{"size":-4}}]})");
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].state, "");
  EXPECT_FALSE(models[0].failed);
  EXPECT_EQ(models[0].exit_code, 0);
  EXPECT_EQ(models[0].size_bytes, 0u);
}

TEST(ParseRouterModels, ABodyThatIsNoModelListIsAnInvalidArgument) {
  for (const char* body :
       {"", "[]", "{\"data\":{}}", "{\"data\":[{\"name\":\"m\"}]}", "{\"data\":[3]}", "not json"}) {
    EXPECT_THROW(parse_router_models(body), std::invalid_argument) << body;
  }
}

TEST(PrometheusSample, ReadsARealLlamaServerPage) {
  const std::string page = seed("metrics-llama-server.txt");
  EXPECT_EQ(prometheus_sample(page, "llamacpp:requests_processing"), 0.0);
  EXPECT_EQ(prometheus_sample(page, "llamacpp:requests_deferred"), 0.0);
}

TEST(ParseOpenAiModelIds, ReadsTheIdsOfAModelList) {
  EXPECT_EQ(parse_openai_model_ids(
                R"({"object":"list","data":[{"id":"tiny-chatml","object":"model"},{"id":"b"}]})"),
            (std::vector<std::string>{"tiny-chatml", "b"}));
  EXPECT_TRUE(parse_openai_model_ids(R"({"data":[]})").empty());
}

TEST(ParseOpenAiModelIds, ABodyThatIsNoModelListIsAnInvalidArgument) {
  for (const char* body :
       {"", "[]", R"({"data":{}})", R"({"data":[{"id":7}]})", R"({"data":[1]})", "\xff\xfe"}) {
    EXPECT_THROW(parse_openai_model_ids(body), std::invalid_argument) << body;
  }
}

TEST(CalmNodeQueue, SumsRunningAndQueuedOfTheModelsAskedOnly) {
  const std::string metrics =
      "# TYPE calm_queue_depth gauge\n"
      "calm_queue_depth{model=\"a\"} 3\n"
      "calm_queue_depth{model=\"ab\"} 100\n"
      "calm_queue_depth{model=\"b\"} 1\n"
      "calm_requests_running{model=\"a\"} 2\n"
      "calm_requests_running{model=\"b\"} 1\n"
      "calm_requests_running{model=\"q\\\"x\"} 5\n";
  const Node::Queue ab = calm_node_queue(metrics, {"a", "b"});
  EXPECT_EQ(ab.processing, 3);
  EXPECT_EQ(ab.deferred, 4) << "not ab's 100";
  EXPECT_EQ(calm_node_queue(metrics, {"q\"x"}).processing, 5) << "an escaped label";
  EXPECT_EQ(calm_node_queue(metrics, {"gone"}).processing, 0);
}

TEST(OpenAiNodeQueue, ReadsVllmOrLlamaServerAndNothingElse) {
  const auto vllm = openai_node_queue(
      "vllm:num_requests_running{model_name=\"m\"} 3.0\n"
      "vllm:num_requests_waiting{model_name=\"m\"} 2.0\n");
  ASSERT_TRUE(vllm);
  EXPECT_EQ(vllm->processing, 3);
  EXPECT_EQ(vllm->deferred, 2);
  const auto llama =
      openai_node_queue("llamacpp:requests_processing 1\nllamacpp:requests_deferred 4\n");
  ASSERT_TRUE(llama);
  EXPECT_EQ(llama->processing, 1);
  EXPECT_EQ(llama->deferred, 4);
  EXPECT_FALSE(openai_node_queue("vllm:num_requests_running 3\n")) << "half a pair is none";
  EXPECT_FALSE(openai_node_queue("# nothing here\n"));
}

}  // namespace
}  // namespace calm
