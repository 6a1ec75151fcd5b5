// What the knowledge file keeps of a request (by default what it cost, never
// what it said; the text only with `knowledge: {keep_text: true}`), and what
// becomes of serving when the file cannot be written: against a real
// `calm serve` with a real SQLite file.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "knowledge/knowledge_store.h"
#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using json = nlohmann::json;
using testing::CalmServer;
using testing::FleetFile;
using testing::LogTo;

constexpr const char* kMarker = "the-secret-plum-4711";

FleetFile fleet_file(bool keep_text) {
  const std::string path = testing::temp_path("fleet.yaml");
  std::ofstream(path) << "models:\n  - id: tiny\n    gguf: "
                      << testing::test_model("tiny-plain.gguf")
                      << "\n    context: 256\n    threads: 1\n"
                      << (keep_text ? "knowledge:\n  keep_text: true\n" : "");
  return FleetFile{path};
}

// The answer to a chat request that carries the marker: {id, content}.
std::pair<std::string, std::string> chat(const CalmServer& server) {
  const json body = {
      {"model", "tiny"},
      {"messages", {{{"role", "user"}, {"content", std::string("remember ") + kMarker}}}},
      {"max_tokens", 8}};
  const auto res = server.client().Post("/v1/chat/completions", body.dump(), "application/json");
  if (!res || res->status != 200) return {};
  const json answer = json::parse(res->body);
  return {answer["id"], answer["choices"][0]["message"]["content"]};
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

double lost_writes(const CalmServer& server) {
  const auto res = server.client().Get("/metrics");
  if (!res || res->status != 200) return -1;
  std::smatch m;
  static const std::regex line("\ncalm_knowledge_writes_lost_total ([0-9.e+]+)");
  return std::regex_search(res->body, m, line) ? std::stod(m[1]) : -1;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(KnowledgePrivacy, ByDefaultTheKnowledgeFileKeepsWhatARequestCostButNotItsText) {
  const std::string knowledge = testing::temp_path("knowledge.db");
  std::string id;
  {
    CalmServer server(fleet_file(false), {"--knowledge", knowledge});
    id = chat(server).first;
    ASSERT_FALSE(id.empty()) << server.log();
    ASSERT_EQ(server.terminate(std::chrono::seconds(30)), 0) << server.log();
  }
  // Every byte calm wrote: the database, and its write-ahead log if left.
  const std::string bytes = file_bytes(knowledge) + file_bytes(knowledge + "-wal");
  EXPECT_EQ(bytes.find(kMarker), std::string::npos);
  const auto requests = KnowledgeStore::read_requests(knowledge);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].response_id, id);  // the cost was kept
  KnowledgeStore store(knowledge);
  EXPECT_FALSE(store.text(id).has_value());
}

TEST(KnowledgePrivacy, WithKeepTextEachAnsweredRequestsPromptAndAnswerAreKept) {
  const std::string knowledge = testing::temp_path("knowledge.db");
  std::string chat_id, chat_answer, completion_id, completion_answer;
  {
    CalmServer server(fleet_file(true), {"--knowledge", knowledge});
    std::tie(chat_id, chat_answer) = chat(server);
    ASSERT_FALSE(chat_id.empty()) << server.log();
    const json body = {{"model", "tiny"}, {"prompt", kMarker}, {"max_tokens", 4}};
    const auto res = server.client().Post("/v1/completions", body.dump(), "application/json");
    ASSERT_TRUE(res && res->status == 200) << server.log();
    const json answer = json::parse(res->body);
    completion_id = answer["id"];
    completion_answer = answer["choices"][0]["text"];
    ASSERT_EQ(server.terminate(std::chrono::seconds(30)), 0) << server.log();
  }
  KnowledgeStore::Options options;
  options.keep_text = true;
  KnowledgeStore store(knowledge, options);
  const auto kept_chat = store.text(chat_id);
  ASSERT_TRUE(kept_chat.has_value());
  EXPECT_EQ(kept_chat->endpoint, "chat");
  EXPECT_EQ(kept_chat->model, "tiny");
  EXPECT_NE(kept_chat->prompt.find(kMarker), std::string::npos) << kept_chat->prompt;
  EXPECT_EQ(kept_chat->answer, chat_answer);
  const auto kept_completion = store.text(completion_id);
  ASSERT_TRUE(kept_completion.has_value());
  EXPECT_EQ(kept_completion->endpoint, "completions");
  EXPECT_EQ(kept_completion->prompt, kMarker);
  EXPECT_EQ(kept_completion->answer, completion_answer);
}

TEST(KnowledgePrivacy, KeepTextWithoutAKnowledgeFileStopsCalmServeNamingTheField) {
  try {
    CalmServer server(fleet_file(true));
    FAIL() << "started with keep_text and nowhere to keep it";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("knowledge.keep_text: needs a knowledge file"),
              std::string::npos)
        << e.what();
  }
}

// A full disk, made by the kernel: with RLIMIT_FSIZE at 0 every write of a
// regular file fails (EFBIG; calm ignores SIGXFSZ). calm's log goes through a
// pipe, which the limit does not touch.
TEST(KnowledgePrivacy,
     AKnowledgeFileThatCannotBeWrittenLosesRecordsCountedAndLoggedOnceAndServingGoesOn) {
  const std::string knowledge = testing::temp_path("knowledge.db");
  CalmServer server(fleet_file(false), {"--knowledge", knowledge}, std::chrono::seconds(60),
                    LogTo::kPipe);
  ASSERT_FALSE(chat(server).first.empty()) << server.log();
  // Committed before the disk fills (the writer batches: bounded, 30 s).
  for (int i = 0; i < 600 && KnowledgeStore::read_requests(knowledge).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(KnowledgeStore::read_requests(knowledge).size(), 1u);
  const rlimit full{0, RLIM_INFINITY};
  ASSERT_EQ(::prlimit(server.pid(), RLIMIT_FSIZE, &full, nullptr), 0);

  for (int i = 0; i < 4; ++i) EXPECT_FALSE(chat(server).first.empty()) << server.log();
  double lost = 0;
  for (int i = 0; i < 600 && lost < 4; ++i) {  // the writer's batch: bounded, 30 s
    lost = lost_writes(server);
    if (lost < 4) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(lost, 4) << server.log();  // each request's record, and nothing else
  const auto health = server.client().Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(count(server.log(), "serving goes on"), 1u) << server.log();  // logged once

  // Room again: the next batch is written, and that is said once too.
  const rlimit room{RLIM_INFINITY, RLIM_INFINITY};
  ASSERT_EQ(::prlimit(server.pid(), RLIMIT_FSIZE, &room, nullptr), 0);
  EXPECT_FALSE(chat(server).first.empty());
  bool writing = false;
  for (int i = 0; i < 600 && !writing; ++i) {
    writing = server.log().find("writing again") != std::string::npos;
    if (!writing) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(writing) << server.log();
  EXPECT_EQ(count(server.log(), "serving goes on"), 1u);
  ASSERT_EQ(server.terminate(std::chrono::seconds(30)), 0) << server.log();
  // What was committed before and after the full disk is all there.
  EXPECT_EQ(KnowledgeStore::read_requests(knowledge).size(), 2u) << server.log();
}

}  // namespace
}  // namespace calm
