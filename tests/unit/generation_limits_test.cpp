// A model's per-request limits: models[].max_prompt_tokens and
// models[].max_tokens_cap in the fleet file, the checks engines make with
// them (engines/generation_limits.h), and the OpenAI error they become.
#include "engines/generation_limits.h"

#include <gtest/gtest.h>

#include <fstream>

#include "config/fleet_config.h"
#include "engines/remote_engine.h"
#include "pipeline/api_error.h"
#include "server/openai_schema.h"
#include "support/helpers.h"

namespace calm {
namespace {

using testing::TempDir;

class LimitsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { std::ofstream(dir_.file("a.gguf")) << "x"; }
  ModelConfig model(const std::string& fields) {
    return parse_fleet_config("models:\n  - id: m\n" + fields, "fleet.yaml", dir_.file(""))
        .models[0];
  }
  std::string error_of(const std::string& fields) {
    try {
      model(fields);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }
  TempDir dir_{"calm-limits"};
};

TEST_F(LimitsConfigTest, ALocalModelDefaultsToItsContextForBothLimits) {
  const ModelConfig m = model("    gguf: a.gguf\n    context: 512\n");
  EXPECT_EQ(m.max_prompt_tokens, 511);
  EXPECT_EQ(m.max_tokens_cap, 512);
}

TEST_F(LimitsConfigTest, ARemoteModelHasNoCapUnlessGivenOne) {
  EXPECT_EQ(model("    url: http://127.0.0.1:9\n").max_tokens_cap, 0);
  EXPECT_EQ(model("    url: http://127.0.0.1:9\n    max_tokens_cap: 64\n").max_tokens_cap, 64);
}

TEST_F(LimitsConfigTest, GivenLimitsAreRead) {
  const ModelConfig m = model(
      "    gguf: a.gguf\n    context: 512\n    max_prompt_tokens: 100\n    max_tokens_cap: 32\n");
  EXPECT_EQ(m.max_prompt_tokens, 100);
  EXPECT_EQ(m.max_tokens_cap, 32);
}

TEST_F(LimitsConfigTest, MaxPromptTokensOnARemoteModelIsAnError) {
  const std::string e = error_of("    url: http://127.0.0.1:9\n    max_prompt_tokens: 10\n");
  EXPECT_NE(e.find("models[0].max_prompt_tokens: applies only to a local (gguf) model"),
            std::string::npos)
      << e;
}

TEST_F(LimitsConfigTest, MaxPromptTokensThatLeavesNoRoomForAnAnswerIsAnError) {
  const std::string e = error_of("    gguf: a.gguf\n    context: 64\n    max_prompt_tokens: 64\n");
  EXPECT_NE(e.find("models[0].max_prompt_tokens: must be between 1 and 63, got 64"),
            std::string::npos)
      << e;
}

TEST_F(LimitsConfigTest, AMaxTokensCapOfZeroIsAnError) {
  const std::string e = error_of("    gguf: a.gguf\n    max_tokens_cap: 0\n");
  EXPECT_NE(e.find("models[0].max_tokens_cap: must be between 1"), std::string::npos) << e;
}

SamplingParams asked(int max_tokens, const std::string& field) {
  SamplingParams s;
  s.max_tokens = max_tokens;
  s.max_tokens_field = field;
  return s;
}

TEST(MaxTokensCap, AnAskedForValueOverTheCapIsRefusedNamingTheFieldTheValueAndTheCap) {
  SamplingParams s = asked(100, "max_completion_tokens");
  try {
    apply_max_tokens_cap("m", 64, s);
    FAIL() << "not refused";
  } catch (const EngineError& e) {
    const ApiError api = ApiError::from_engine(e);
    EXPECT_EQ(api.status, 400);
    EXPECT_EQ(api.type, "invalid_request_error");
    EXPECT_EQ(api.param, "max_completion_tokens");
    EXPECT_EQ(api.code, "max_tokens_exceeded");
    EXPECT_NE(api.message.find("is 100"), std::string::npos) << api.message;
    EXPECT_NE(api.message.find("at most 64"), std::string::npos) << api.message;
  }
}

TEST(MaxTokensCap, AValueAtTheCapIsLeftAsItIs) {
  SamplingParams s = asked(64, "max_tokens");
  apply_max_tokens_cap("m", 64, s);
  EXPECT_EQ(s.max_tokens, 64);
}

TEST(MaxTokensCap, TheApisDefaultIsLoweredToTheCap) {
  SamplingParams s = asked(512, "");
  apply_max_tokens_cap("m", 16, s);
  EXPECT_EQ(s.max_tokens, 16);
}

TEST(MaxTokensCap, ZeroMeansNoCap) {
  SamplingParams s = asked(1 << 20, "max_tokens");
  apply_max_tokens_cap("m", 0, s);
  EXPECT_EQ(s.max_tokens, 1 << 20);
}

TEST(MaxTokensCap, TheParserSaysWhichFieldSetMaxTokens) {
  auto parsed = [](const nlohmann::json& extra) {
    nlohmann::json body = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
    if (extra.is_object()) body.update(extra);
    return parse_chat_request(body).generation.sampling.max_tokens_field;
  };
  EXPECT_EQ(parsed(nlohmann::json::object()), "");
  EXPECT_EQ(parsed({{"max_tokens", 5}}), "max_tokens");
  EXPECT_EQ(parsed({{"max_completion_tokens", 5}}), "max_completion_tokens");
  EXPECT_EQ(parsed({{"max_tokens", nullptr}}), "");
}

TEST(MaxTokensCap, ARemoteEngineRefusesOverTheCapBeforeAnythingGoesUpstream) {
  RemoteEngine::Options options;
  options.id = "far";
  options.base_url = "http://127.0.0.1:9";  // never reached: nothing listens, nothing is sent
  options.max_tokens_cap = 8;
  RemoteEngine engine(options);
  GenerationRequest request;
  request.prompt = "hi";
  request.sampling = asked(9, "max_tokens");
  try {
    engine.submit(request);
    FAIL() << "not refused";
  } catch (const EngineError& e) {
    EXPECT_EQ(e.kind(), EngineError::Kind::kBadRequest);
    EXPECT_EQ(e.param(), "max_tokens");
  }
}

TEST(PromptTokens, APromptOverTheLimitIsContextLengthExceededNamingBothCounts) {
  try {
    check_prompt_tokens("m", 12, 10, "models[].max_prompt_tokens", /*chat=*/false);
    FAIL() << "not refused";
  } catch (const EngineError& e) {
    const ApiError api = ApiError::from_engine(e);
    EXPECT_EQ(api.status, 400);
    EXPECT_EQ(api.code, "context_length_exceeded");
    EXPECT_EQ(api.param, "prompt");
    EXPECT_NE(api.message.find("12 tokens"), std::string::npos) << api.message;
    EXPECT_NE(api.message.find("at most 10 prompt tokens (models[].max_prompt_tokens)"),
              std::string::npos)
        << api.message;
  }
}

TEST(PromptTokens, APromptAtTheLimitPasses) {
  EXPECT_NO_THROW(check_prompt_tokens("m", 10, 10, "x", true));
}

}  // namespace
}  // namespace calm
