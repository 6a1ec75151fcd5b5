// stream-bench: time to first token and decode speed of OpenAI-compatible
// servers, measured the same way for each, interleaved so that machine noise
// hits all of them alike.
//
//   stream-bench --target calm=http://127.0.0.1:8080/tiny
//                --target llama-server=http://127.0.0.1:8081/tiny --requests 20
//
// Each request is a streamed /v1/completions call (no chat template, no role
// chunk: the first event of either server carries the first token) with
// greedy sampling, a fixed seed and ignore_eos, so every run generates
// exactly --max-tokens tokens. Each request's prompt starts with its own
// number, so no server can answer it from a cached prompt prefix; pass
// --same-prompt to measure with prefix caching instead.
//   TTFT   = first streamed event - request sent
//   decode = (completion tokens - 1) / (last event - first event)
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Target {
  std::string name, host, model;
  int port = 0;
  std::vector<double> ttft_ms, decode_tps;
};

Target parse_target(const std::string& spec) {
  // name=http://host:port/model
  Target t;
  const auto eq = spec.find('=');
  const auto scheme = spec.find("://");
  if (eq == std::string::npos || scheme == std::string::npos) {
    throw std::runtime_error("--target wants name=http://host:port/model, got " + spec);
  }
  t.name = spec.substr(0, eq);
  const std::string rest = spec.substr(scheme + 3);
  const auto colon = rest.find(':');
  const auto slash = rest.find('/');
  if (colon == std::string::npos || slash == std::string::npos) {
    throw std::runtime_error("--target wants name=http://host:port/model, got " + spec);
  }
  t.host = rest.substr(0, colon);
  t.port = std::stoi(rest.substr(colon + 1, slash - colon - 1));
  t.model = rest.substr(slash + 1);
  return t;
}

bool run_once(Target& t, const std::string& prompt, int max_tokens) {
  httplib::Client client(t.host, t.port);
  client.set_read_timeout(300, 0);
  const json body = {{"model", t.model},
                     {"prompt", prompt},
                     {"max_tokens", max_tokens},
                     {"temperature", 0},
                     {"seed", 1},
                     {"ignore_eos", true},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  Clock::time_point first{}, last{};
  int events = 0;
  std::string buffer;
  int completion_tokens = 0;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
      const json e = json::parse(event.substr(6), nullptr, false);
      if (e.is_discarded()) continue;
      if (e.contains("usage") && e["usage"].is_object()) {
        completion_tokens = e["usage"].value("completion_tokens", 0);
      }
      if (!e.contains("choices") || e["choices"].empty()) continue;
      const auto now = Clock::now();
      if (events++ == 0) first = now;
      last = now;
    }
    return true;
  };
  const auto sent = Clock::now();
  const auto res = client.send(req);
  if (!res || res->status != 200 || events == 0) {
    std::cerr << t.name << ": request failed ("
              << (res ? std::to_string(res->status) : "no response") << ")\n";
    return false;
  }
  if (completion_tokens == 0) completion_tokens = max_tokens;
  t.ttft_ms.push_back(std::chrono::duration<double, std::milli>(first - sent).count());
  const double decode_s = std::chrono::duration<double>(last - first).count();
  if (decode_s > 0) t.decode_tps.push_back((completion_tokens - 1) / decode_s);
  return true;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"stream-bench: TTFT and decode tokens/s of OpenAI-compatible servers"};
  std::vector<std::string> specs;
  int requests = 20, max_tokens = 128, warmup = 2;
  bool same_prompt = false;
  std::string prompt =
      "The quick brown fox jumps over the lazy dog. Once upon a time, in a land far away,";
  app.add_option("--target", specs, "name=http://host:port/model (repeat)")->required();
  app.add_option("--requests", requests, "Measured requests per target");
  app.add_option("--warmup", warmup, "Unmeasured requests per target first");
  app.add_option("--max-tokens", max_tokens, "Tokens generated per request");
  app.add_option("--prompt", prompt, "Prompt text");
  app.add_flag("--same-prompt", same_prompt, "Send the identical prompt every time");
  CLI11_PARSE(app, argc, argv);

  std::vector<Target> targets;
  try {
    for (const auto& s : specs) targets.push_back(parse_target(s));
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  auto prompt_for = [&](int i) {
    return same_prompt ? prompt : "Request " + std::to_string(i) + ". " + prompt;
  };
  for (auto& t : targets) {
    for (int i = 0; i < warmup; ++i) {
      if (!run_once(t, prompt_for(-1 - i), max_tokens)) return 1;
    }
    t.ttft_ms.clear();
    t.decode_tps.clear();
  }
  for (int i = 0; i < requests; ++i) {
    for (auto& t : targets) {
      if (!run_once(t, prompt_for(i), max_tokens)) return 1;
    }
  }
  std::printf(
      "| system | requests | TTFT p50 (ms) | decode p50 (tokens/s) | TTFT vs first | decode vs "
      "first |\n");
  std::printf("|---|---|---|---|---|---|\n");
  const double base_ttft = median(targets[0].ttft_ms), base_tps = median(targets[0].decode_tps);
  for (const auto& t : targets) {
    const double ttft = median(t.ttft_ms), tps = median(t.decode_tps);
    std::printf("| %s | %zu | %.2f | %.1f | %.3f | %.3f |\n", t.name.c_str(), t.ttft_ms.size(),
                ttft, tps, ttft / base_ttft, tps / base_tps);
  }
  return 0;
}
