// KnowledgeStore::read_requests, how `calm bench suite` reads what a stopped
// server recorded: every request comes back oldest first with its energy and
// confidence, the read creates and changes nothing, and a missing or foreign
// file is an error naming it.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "knowledge/knowledge_store.h"
#include "support/helpers.h"

namespace calm {
namespace {

ServedRequest served(int i) {
  ServedRequest r;
  r.response_id = "chatcmpl-" + std::to_string(i);
  // Copied from strings: assigning a literal here makes GCC 12 warn (-Wrestrict, a false
  // positive).
  static const std::string kModels[] = {"b", "a"};
  r.model = kModels[i % 2];
  static const std::string kRoutedBy = "semantic", kSource = "cpu-time-estimate";
  r.routed_by = kRoutedBy;
  r.latency_ms = 10.0 * i;
  r.tokens_out = i;
  r.energy_j = 0.5 * i;
  r.energy_source = kSource;
  if (i != 3) r.confidence = 0.1 * i;
  return r;
}

TEST(KnowledgeRead, EveryRequestComesBackOldestFirst) {
  testing::TempDir dir("calm-knowledge-read");
  const std::string path = dir.file("k.db");
  {
    KnowledgeStore store(path);
    for (int i = 1; i <= 5; ++i) store.record_request(served(i));
  }  // closed: everything written
  const auto records = KnowledgeStore::read_requests(path);
  ASSERT_EQ(records.size(), 5u);
  for (int i = 1; i <= 5; ++i) {
    const ServedRequest& r = records[static_cast<size_t>(i - 1)];
    EXPECT_EQ(r.response_id, served(i).response_id);
    EXPECT_EQ(r.model, served(i).model);
    ASSERT_TRUE(r.energy_j.has_value());
    EXPECT_DOUBLE_EQ(*r.energy_j, 0.5 * i);
    EXPECT_EQ(r.energy_source, "cpu-time-estimate");
    EXPECT_EQ(r.confidence.has_value(), i != 3);
  }
}

TEST(KnowledgeRead, SeesWhatARunningStoreHasFlushed) {
  testing::TempDir dir("calm-knowledge-read");
  const std::string path = dir.file("k.db");
  KnowledgeStore store(path);
  store.record_request(served(1));
  store.flush();
  EXPECT_EQ(KnowledgeStore::read_requests(path).size(), 1u);
}

TEST(KnowledgeRead, AMissingFileIsAnErrorAndIsNotCreated) {
  testing::TempDir dir("calm-knowledge-read");
  const std::string path = dir.file("missing.db");
  try {
    KnowledgeStore::read_requests(path);
    FAIL() << "read a missing file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(KnowledgeRead, AFileThatIsNotAStoreIsAnError) {
  testing::TempDir dir("calm-knowledge-read");
  const std::string path = dir.file("junk.db");
  testing::write_bytes(path, std::string(4096, 'x'));
  EXPECT_THROW(KnowledgeStore::read_requests(path), std::runtime_error);
  EXPECT_EQ(testing::read_bytes(path), std::string(4096, 'x'));  // untouched
}

}  // namespace
}  // namespace calm
