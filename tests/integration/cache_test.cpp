// The model cache and the global queue, seen from outside: the real `calm
// serve` with a memory budget, spoken to over HTTP, watched through
// GET /v1/calm/state.
//
// Budgets are derived from what the server charges a loaded model: what
// llama.cpp allocates for it (LlamaEngine::memory()), worked out here by
// loading the same file with the same settings in the test process. That
// figure is the same on every machine and every load (no RSS, no allocator
// state), and the server's estimate before a first load matches it
// (gguf_info_test.cpp), so each budget below holds exactly the models it says.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <latch>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engines/llama_engine.h"
#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::CalmServer;
using Clock = std::chrono::steady_clock;

const std::string kTinyPlain = testing::test_model("tiny-plain.gguf");
const std::string kCacheA = testing::test_model("cache-a.gguf");
const std::string kCacheB = testing::test_model("cache-b.gguf");
const std::string kCacheC = testing::test_model("cache-c.gguf");

// Hangs become failures: nothing waits in the queue longer than this.
const std::string kScheduler = "scheduler:\n  queue_timeout_s: 30\n";

std::string model_yaml(const std::string& id, const std::string& gguf, int context,
                       const std::string& extra = "") {
  return "  - id: " + id + "\n    gguf: " + gguf + "\n    context: " + std::to_string(context) +
         "\n    threads: 1\n" + extra;
}

std::string budget_yaml(uint64_t bytes, const std::string& extra = "") {
  return "cache:\n  budget: " + std::to_string(bytes) + "\n" + extra;
}

// What the server charges the model once loaded (model_yaml's settings: one
// slot, one thread): llama.cpp's own figure.
uint64_t charge(const std::string& gguf, int context) {
  LlamaEngine engine({.id = "probe",
                      .gguf_path = gguf,
                      .context = context,
                      .parallel = 1,
                      .threads = 1,
                      .gpu_layers = 0});
  engine.load();
  return engine.memory()->total();
}

json state(const CalmServer& server) {
  const auto res = server.client().Get("/v1/calm/state");
  if (!res || res->status != 200) throw std::runtime_error("GET /v1/calm/state failed");
  return json::parse(res->body);
}

json cache_model(const json& s, const std::string& id) {
  return s["cache"]["models"][id];
}

struct Polled {
  bool ok = false;
  json state;  // the last one seen
};

// Polls /v1/calm/state until `holds` says yes or the timeout passes.
Polled wait_for(const CalmServer& server, const std::function<bool(const json&)>& holds,
                std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  Polled p;
  while (true) {
    p.state = state(server);
    p.ok = holds(p.state);
    if (p.ok || Clock::now() >= deadline) return p;
    std::this_thread::sleep_for(10ms);
  }
}

httplib::Result complete(const CalmServer& server, const std::string& model, int max_tokens) {
  const json body = {
      {"model", model}, {"prompt", "go"}, {"max_tokens", max_tokens}, {"ignore_eos", true}};
  return server.client().Post("/v1/completions", body.dump(), "application/json");
}

void expect_api_error(const httplib::Result& res, int status, const std::string& code) {
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, status) << res->body;
  const json body = json::parse(res->body);
  ASSERT_TRUE(body.contains("error")) << res->body;
  EXPECT_EQ(body["error"]["code"], code) << res->body;
  EXPECT_TRUE(body["error"]["message"].is_string()) << res->body;
  EXPECT_TRUE(body["error"]["type"].is_string()) << res->body;
}

// A streamed completion that stays in flight until release(): the client
// reads tokens until told to hang up, which cancels the generation and frees
// the slot (or until the model's context is full: seconds with a 4096 context).
class HeldRequest {
 public:
  HeldRequest(const CalmServer& server, const std::string& model) {
    const int port = server.port();
    thread_ = std::thread([this, port, model] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(120, 0);
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.body = json{
          {"model", model},
          {"prompt", "go"},
          {"max_tokens", 4096},  // the held models' context: their max_tokens_cap
          {"ignore_eos", true},
          {"stream",
           true}}.dump();
      req.set_header("Content-Type", "application/json");
      req.content_receiver = [this](const char*, size_t, uint64_t, uint64_t) {
        return !released_.load();
      };
      httplib::Response res;
      httplib::Error error = httplib::Error::Success;
      client.send(req, res, error);
    });
  }
  ~HeldRequest() { release(); }
  HeldRequest(const HeldRequest&) = delete;
  HeldRequest& operator=(const HeldRequest&) = delete;

  void release() {
    released_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> released_{false};
  std::thread thread_;
};

TEST(Cache, BusyModelIsNeverEvicted) {
  // a and b have the same shape, so the same charge C. A budget of 1.5 C
  // holds either alone, never both.
  const uint64_t budget = charge(kCacheA, 512) * 3 / 2;
  CalmServer server(budget_yaml(budget) + kScheduler + "models:\n" + model_yaml("a", kCacheA, 512) +
                    model_yaml("b", kCacheB, 512));
  using Timed = std::pair<httplib::Result, Clock::time_point>;
  auto answer_a = std::async(std::launch::async, [&] {
    auto res = complete(server, "a", 480);  // about 2 s
    return Timed{std::move(res), Clock::now()};
  });
  // a is loaded and generating.
  const auto a_busy = wait_for(server, [](const json& s) {
    const json& a = s["cache"]["models"]["a"];
    return a["in_flight"] == 1 && a["state"] == "resident";
  });
  ASSERT_TRUE(a_busy.ok) << a_busy.state.dump();

  auto answer_b = std::async(std::launch::async, [&] {
    auto res = complete(server, "b", 4);
    return Timed{std::move(res), Clock::now()};
  });
  // b cannot start while a is busy: it waits in the queue.
  const auto b_queued =
      wait_for(server, [](const json& s) { return s["scheduler"]["models"]["b"]["queued"] == 1; });
  ASSERT_TRUE(b_queued.ok) << b_queued.state.dump();
  // Every look at the cache while a is busy finds a resident and not evicted.
  int looks = 0;
  while (answer_a.wait_for(0ms) != std::future_status::ready) {
    const json s = state(server);
    const json a = cache_model(s, "a");
    if (a["in_flight"] == 0) break;
    EXPECT_EQ(a["state"], "resident") << s.dump();
    EXPECT_EQ(a["evictions"], 0) << s.dump();
    EXPECT_EQ(cache_model(s, "b")["loads"], 0) << s.dump();
    ++looks;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GT(looks, 0) << "a's answer ended before it could be watched";

  const auto [res_a, end_a] = answer_a.get();
  const auto [res_b, end_b] = answer_b.get();
  ASSERT_TRUE(res_a);
  ASSERT_TRUE(res_b);
  EXPECT_EQ(res_a->status, 200) << res_a->body;
  EXPECT_EQ(res_b->status, 200) << res_b->body;
  EXPECT_EQ(json::parse(res_a->body)["usage"]["completion_tokens"], 480);
  EXPECT_LE(end_a, end_b) << "b was answered before a's answer ended";
  const json s = state(server);
  EXPECT_EQ(cache_model(s, "a")["evictions"], 1) << s.dump();  // once idle, for b
  EXPECT_EQ(cache_model(s, "b")["loads"], 1) << s.dump();
}

TEST(Cache, ConcurrentRequestsForAColdModelShareOneLoad) {
  CalmServer server(kScheduler + "models:\n" +
                    model_yaml("cold", kCacheA, 256, "    parallel: 4\n    preload: false\n"));
  ASSERT_EQ(cache_model(state(server), "cold")["state"], "unloaded");
  constexpr int kRequests = 8;
  std::latch go(kRequests);
  std::vector<std::future<int>> answers;
  for (int i = 0; i < kRequests; ++i) {
    answers.push_back(std::async(std::launch::async, [&] {
      go.arrive_and_wait();
      const auto res = complete(server, "cold", 4);
      return res ? res->status : -1;
    }));
  }
  for (auto& answer : answers) EXPECT_EQ(answer.get(), 200);
  const json cold = cache_model(state(server), "cold");
  EXPECT_EQ(cold["loads"], 1) << cold.dump();
  EXPECT_EQ(cold["load_failures"], 0) << cold.dump();
  EXPECT_EQ(cold["hits"].get<int>() + cold["misses"].get<int>(), kRequests) << cold.dump();
  EXPECT_EQ(cold["state"], "resident") << cold.dump();
}

TEST(Cache, PeakChargedBytesStayWithinTheBudgetUnderAReplay) {
  // Three models of the same charge C; the budget is 2.5 C: two fit, three
  // never, so the replay below must keep swapping.
  const uint64_t budget = charge(kCacheA, 256) * 5 / 2;
  CalmServer server(budget_yaml(budget) + kScheduler + "models:\n" + model_yaml("a", kCacheA, 256) +
                    model_yaml("b", kCacheB, 256) + model_yaml("c", kCacheC, 256));
  const json before = state(server);
  for (const char* id : {"a", "b", "c"}) ASSERT_EQ(cache_model(before, id)["state"], "unloaded");

  constexpr int kClients = 4, kRequests = 30;
  const std::vector<std::string> ids = {"a", "b", "c"};
  std::mutex mutex;
  int ok = 0;
  std::string failures;  // the bodies of answers other than 200
  std::vector<std::thread> clients;
  for (int k = 0; k < kClients; ++k) {
    clients.emplace_back([&, k] {
      for (int i = k; i < kRequests; i += kClients) {
        const auto res = complete(server, ids[i % 3], 8);
        std::lock_guard lock(mutex);
        if (res && res->status == 200) {
          ++ok;
        } else {
          failures += (res ? std::to_string(res->status) + " " + res->body : "no answer") + "\n";
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok, kRequests) << failures << "server log:\n" << server.log();

  const json s = state(server);
  const json& cache = s["cache"];
  EXPECT_EQ(cache["budget_bytes"], budget);
  EXPECT_LE(cache["peak_used_bytes"].get<uint64_t>(), budget) << s.dump();
  int loads = 0;
  for (const auto& id : ids) {
    const json m = cache_model(s, id);
    loads += m["loads"].get<int>();
    // Charged llama.cpp's figure; the RSS growth is only shown beside it.
    EXPECT_EQ(m["bytes"], charge(kCacheA, 256)) << s.dump();
    EXPECT_TRUE(m["rss_delta_bytes"].is_number_unsigned()) << s.dump();
  }
  EXPECT_GT(loads, 3) << "no model was ever swapped back in: " << s.dump();
  EXPECT_TRUE(s["process"]["backend_overhead_bytes"].is_number_unsigned()) << s.dump();
}

TEST(Cache, FullQueueAnswers503WithRetryAfter) {
  CalmServer server("scheduler:\n  max_queue: 1\n  queue_timeout_s: 30\nmodels:\n" +
                    model_yaml("a", kTinyPlain, 4096));
  HeldRequest running(server, "a");
  ASSERT_TRUE(wait_for(server, [](const json& s) {
                return s["scheduler"]["models"]["a"]["running"] == 1;
              }).ok);
  auto queued = std::async(std::launch::async, [&] { return complete(server, "a", 4); });
  const auto one_queued =
      wait_for(server, [](const json& s) { return s["scheduler"]["queued"] == 1; });
  ASSERT_TRUE(one_queued.ok) << one_queued.state.dump();

  const auto res = complete(server, "a", 4);
  expect_api_error(res, 503, "server_busy");
  ASSERT_TRUE(res->has_header("Retry-After"));
  EXPECT_GE(std::stoi(res->get_header_value("Retry-After")), 1);
  EXPECT_EQ(state(server)["scheduler"]["rejected_queue_full"], 1);

  running.release();
  const auto served = queued.get();
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200) << served->body;
}

TEST(Cache, ModelPastItsInFlightLimitAnswers429) {
  CalmServer server(kScheduler + "models:\n" +
                    model_yaml("a", kTinyPlain, 4096, "    max_in_flight: 1\n") +
                    model_yaml("b", kTinyPlain, 256));
  HeldRequest running(server, "a");
  ASSERT_TRUE(wait_for(server, [](const json& s) {
                return s["scheduler"]["models"]["a"]["running"] == 1;
              }).ok);

  expect_api_error(complete(server, "a", 4), 429, "model_busy");
  EXPECT_EQ(state(server)["scheduler"]["rejected_model_busy"], 1);
  const auto other = complete(server, "b", 4);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200) << other->body;
}

TEST(Cache, FailedLoadErrorsEveryWaiterAndTheCacheStillServes) {
  const std::string corrupt = testing::temp_path("garbage.gguf");
  {
    std::string garbage(64 * 1024, '\0');
    uint32_t x = 12345;
    for (char& c : garbage) c = static_cast<char>((x = x * 1103515245u + 12345u) >> 24);
    std::ofstream(corrupt, std::ios::binary) << garbage;
  }
  CalmServer server(kScheduler + "models:\n" + model_yaml("good", kTinyPlain, 256) +
                    model_yaml("broken", corrupt, 256, "    parallel: 4\n    preload: false\n"));
  constexpr int kRequests = 4;
  std::latch go(kRequests);
  std::vector<std::future<httplib::Result>> answers;
  for (int i = 0; i < kRequests; ++i) {
    answers.push_back(std::async(std::launch::async, [&] {
      go.arrive_and_wait();
      return complete(server, "broken", 4);
    }));
  }
  for (auto& answer : answers) {
    const auto res = answer.get();
    expect_api_error(res, 503, "model_unavailable");
    if (!res) continue;
    const std::string message = json::parse(res->body)["error"]["message"];
    EXPECT_NE(message.find("cannot load GGUF file " + corrupt), std::string::npos) << message;
    // llama.cpp's own reason follows: the bytes are not a GGUF at all.
    EXPECT_NE(message.find("invalid magic"), std::string::npos) << message;
  }

  const auto good = complete(server, "good", 4);
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 200) << good->body;
  const json broken = cache_model(state(server), "broken");
  EXPECT_GE(broken["load_failures"].get<int>(), 1) << broken.dump();
  EXPECT_EQ(broken["loads"], 0) << broken.dump();
  EXPECT_EQ(broken["state"], "unloaded") << broken.dump();
  const auto health = server.client().Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(json::parse(health->body)["status"], "degraded") << health->body;
}

TEST(Cache, ModelLargerThanTheBudgetStopsTheServerNamingTheField) {
  try {
    CalmServer server("cache:\n  budget: 1KiB\nmodels:\n" + model_yaml("a", kTinyPlain, 256));
    FAIL() << "calm serve started with a model larger than its budget";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("exited with 2"), std::string::npos) << what;
    EXPECT_NE(what.find("cache.budget"), std::string::npos) << what;
  }
}

TEST(Cache, StateEndpointReportsHitsMissesLoadsAndEvictions) {
  // One of a, b fits, never both (see BusyModelIsNeverEvicted).
  const uint64_t budget = charge(kCacheA, 256) * 3 / 2;
  CalmServer server(budget_yaml(budget) + kScheduler + "models:\n" + model_yaml("a", kCacheA, 256) +
                    model_yaml("b", kCacheB, 256));
  std::vector<std::string> served_from;
  for (const char* id : {"a", "a", "b"}) {
    const auto res = complete(server, id, 2);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    served_from.push_back(res->get_header_value("x-calm-cache"));
  }
  EXPECT_EQ(served_from, (std::vector<std::string>{"miss", "hit", "miss"}));
  const json s = state(server);
  const json a = cache_model(s, "a");
  const json b = cache_model(s, "b");
  EXPECT_EQ(a["misses"], 1) << s.dump();
  EXPECT_EQ(a["hits"], 1) << s.dump();
  EXPECT_EQ(a["loads"], 1) << s.dump();
  EXPECT_EQ(a["evictions"], 1) << s.dump();
  EXPECT_EQ(a["state"], "unloaded") << s.dump();
  EXPECT_EQ(b["misses"], 1) << s.dump();
  EXPECT_EQ(b["hits"], 0) << s.dump();
  EXPECT_EQ(b["loads"], 1) << s.dump();
  EXPECT_EQ(b["evictions"], 0) << s.dump();
  EXPECT_EQ(b["state"], "resident") << s.dump();
  EXPECT_EQ(s["scheduler"]["admitted"], 3) << s.dump();
}

TEST(Cache, PinnedModelIsNeverEvicted) {
  // The pinned model is tiny (charge P, llama.cpp's one-time set-up not in
  // it, though it loads first); b and c are charged C each. A budget of
  // P + 1.5 C holds the pinned model beside either of b and c, but not
  // beside both, so every switch between b and c must evict something.
  const uint64_t budget = charge(kTinyPlain, 256) + charge(kCacheB, 256) * 3 / 2;
  CalmServer server(budget_yaml(budget) + kScheduler + "models:\n" +
                    model_yaml("pinned", kTinyPlain, 256, "    pinned: true\n    preload: true\n") +
                    model_yaml("b", kCacheB, 256) + model_yaml("c", kCacheC, 256));
  ASSERT_EQ(cache_model(state(server), "pinned")["state"], "resident");
  for (const char* id : {"b", "c", "b", "c"}) {
    const auto res = complete(server, id, 2);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json pinned = cache_model(state(server), "pinned");
    EXPECT_EQ(pinned["state"], "resident") << pinned.dump();
    EXPECT_EQ(pinned["evictions"], 0) << pinned.dump();
  }
  const json s = state(server);
  EXPECT_EQ(cache_model(s, "b")["evictions"], 2) << s.dump();
  EXPECT_EQ(cache_model(s, "c")["evictions"], 1) << s.dump();
  EXPECT_EQ(cache_model(s, "pinned")["loads"], 1) << s.dump();
  const auto res = complete(server, "pinned", 2);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("x-calm-cache"), "hit");
}

TEST(Cache, IdleModelIsUnloadedAfterIdleUnloadSeconds) {
  CalmServer server(budget_yaml(64ull << 20, "  idle_unload_s: 1\n") + kScheduler + "models:\n" +
                    model_yaml("a", kTinyPlain, 256));
  const auto res = complete(server, "a", 2);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const auto unloaded = wait_for(
      server, [](const json& s) { return s["cache"]["models"]["a"]["state"] == "unloaded"; }, 5s);
  ASSERT_TRUE(unloaded.ok) << unloaded.state.dump();
  const json a = cache_model(unloaded.state, "a");
  EXPECT_EQ(a["idle_unloads"], 1) << a.dump();
  EXPECT_EQ(a["evictions"], 0) << a.dump();  // counted apart
  EXPECT_EQ(a["loads"], 1) << a.dump();
}

TEST(Cache, WithoutACacheSectionEveryModelFits) {
  // No budget means no limit: however large, every model is preloaded and
  // stays, and none can ever be refused for its size.
  CalmServer server(kScheduler + "models:\n" + model_yaml("a", kCacheA, 1024) +
                    model_yaml("b", kCacheB, 1024) + model_yaml("c", kCacheC, 1024));
  const json s = state(server);
  EXPECT_EQ(s["cache"]["budget_bytes"], 0) << s.dump();
  for (const char* id : {"a", "b", "c"}) {
    EXPECT_EQ(cache_model(s, id)["state"], "resident") << s.dump();
    EXPECT_FALSE(cache_model(s, id).contains("never_fits")) << s.dump();
    const auto res = complete(server, id, 2);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("x-calm-cache"), "hit");
  }
}

TEST(Cache, ModelThatCanNeverFitIsRefusedAtOnceNamingTheBudget) {
  // big alone fits the budget (so the server starts), but never beside the
  // pinned model, which never leaves: no wait can make room for it.
  const uint64_t pinned = charge(kTinyPlain, 256);
  const uint64_t big = charge(kCacheA, 256);
  const uint64_t budget = big + pinned / 2;
  // A queue timeout far beyond the test's: a request that waited would fail
  // the test by its message, not by a clock.
  CalmServer server(budget_yaml(budget) + "scheduler:\n  queue_timeout_s: 600\nmodels:\n" +
                    model_yaml("pinned", kTinyPlain, 256, "    pinned: true\n    preload: true\n") +
                    model_yaml("big", kCacheA, 256));
  ASSERT_EQ(cache_model(state(server), "pinned")["state"], "resident");

  const auto res = complete(server, "big", 2);
  expect_api_error(res, 503, "model_unavailable");
  const std::string message = json::parse(res->body)["error"]["message"];
  EXPECT_NE(message.find("model 'big'"), std::string::npos) << message;
  EXPECT_NE(message.find("cache.budget"), std::string::npos) << message;
  EXPECT_NE(message.find("(" + std::to_string(budget) + " bytes)"), std::string::npos) << message;
  EXPECT_NE(message.find("(" + std::to_string(big) + " bytes)"), std::string::npos) << message;

  const json s = state(server);
  EXPECT_EQ(cache_model(s, "big")["loads"], 0) << s.dump();
  EXPECT_EQ(cache_model(s, "big")["state"], "unloaded") << s.dump();
  EXPECT_EQ(cache_model(s, "big")["never_fits"], message) << s.dump();
  EXPECT_EQ(s["scheduler"]["queued"], 0) << s.dump();

  const auto health = server.client().Get("/health");
  ASSERT_TRUE(health);
  const json h = json::parse(health->body);
  EXPECT_EQ(h["status"], "degraded") << health->body;
  EXPECT_EQ(h["models"]["big"], "unavailable: " + message) << health->body;
  EXPECT_EQ(h["models"]["pinned"], "ready") << health->body;
  const auto served = complete(server, "pinned", 2);
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200) << served->body;
}

}  // namespace
}  // namespace calm
