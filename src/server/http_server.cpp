#include "server/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "server/api_error.h"
#include "server/openai_schema.h"
#include "util/process_memory.h"

namespace calm {
namespace {

using nlohmann::json;

constexpr const char* kJson = "application/json";
constexpr int kListenBacklog = 1024;

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Model text is repaired to valid UTF-8 before it gets here; "replace" is
  // the last line of defence so that dump() can never throw mid-response.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), kJson);
}

void send_error(httplib::Response& res, const ApiError& error) {
  if (error.retry_after_s > 0) res.set_header("Retry-After", std::to_string(error.retry_after_s));
  send_json(res, error.status, error.to_json());
}

std::string random_id(const char* prefix) {
  // A per-process random part and a counter: unique within a run, and
  // unlikely to repeat across restarts.
  static const uint64_t salt =
      (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  static std::atomic<uint64_t> counter{0};
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s-%016llx%06llx", prefix, static_cast<unsigned long long>(salt),
                static_cast<unsigned long long>(counter.fetch_add(1) & 0xffffff));
  return buf;
}

long long unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string sse(const json& data) {
  return "data: " + data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

enum class Endpoint { kChat, kCompletion };

// Writes one generation as server-sent events, pulling from the engine's
// stream. Runs on the HTTP connection's thread; a failed write means the
// client is gone, and the generation is cancelled so its slot frees at once.
class EventStreamWriter {
 public:
  using OnResult = std::function<void(const GenerationResult&)>;

  EventStreamWriter(Endpoint endpoint, ResponseMeta meta, bool include_usage,
                    std::shared_ptr<GenerationStream> stream, OnResult on_result)
      : endpoint_(endpoint),
        meta_(std::move(meta)),
        include_usage_(include_usage),
        stream_(std::move(stream)),
        on_result_(std::move(on_result)) {}

  // httplib's chunked content provider: called until it returns false or
  // calls sink.done().
  bool operator()(size_t /*offset*/, httplib::DataSink& sink) {
    if (!started_) {
      started_ = true;
      if (endpoint_ == Endpoint::kChat &&
          !write(sink, sse(chat_chunk(meta_, {{"role", "assistant"}, {"content", ""}}, "")))) {
        return false;
      }
    }
    const auto event = stream_->next(std::chrono::milliseconds(250));
    if (!event) return sink.is_writable() || (stream_->cancel(), false);
    if (const auto* delta = std::get_if<GenerationStream::Delta>(&*event)) {
      return write(sink, sse(content_chunk(delta->text, "")));
    }
    if (const auto* result = std::get_if<GenerationResult>(&*event)) {
      on_result_(*result);
      std::string tail = sse(content_chunk("", result->finish_reason));
      if (include_usage_) {
        const char* object =
            endpoint_ == Endpoint::kChat ? "chat.completion.chunk" : "text_completion";
        tail += sse(usage_chunk(meta_, object, *result));
      }
      tail += "data: [DONE]\n\n";
      if (!write(sink, tail)) return false;
      sink.done();
      return true;
    }
    // An error after the headers went out: OpenAI's clients raise on an
    // event that carries an `error` object.
    const auto& error = std::get<EngineError>(*event);
    write(sink, sse(ApiError::from_engine(error).to_json()) + "data: [DONE]\n\n");
    sink.done();
    return true;
  }

 private:
  json content_chunk(const std::string& text, const std::string& finish) const {
    if (endpoint_ == Endpoint::kCompletion) return completion_chunk(meta_, text, finish);
    return chat_chunk(meta_, finish.empty() ? json{{"content", text}} : json::object(), finish);
  }

  bool write(httplib::DataSink& sink, const std::string& data) {
    if (sink.write(data.data(), data.size())) return true;
    stream_->cancel();
    return false;
  }

  Endpoint endpoint_;
  ResponseMeta meta_;
  bool include_usage_;
  std::shared_ptr<GenerationStream> stream_;
  OnResult on_result_;
  bool started_ = false;
};

json parse_json_body(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw ApiError::bad_request(std::string("the request body is not valid JSON: ") + e.what());
  }
}

// A routed request needs words to route by.
void require_query_text(const GenerationRequest& request) {
  const std::string text = SemanticRouter::query_text(request);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw ApiError::bad_request(
        "nothing to route by: the last user message (or the prompt) is empty",
        request.is_chat() ? "messages" : "prompt", "empty_query");
  }
}

}  // namespace

nlohmann::json ranking_json(const Ranking& ranking, double decision_ms) {
  json candidates = json::array();
  for (const auto& c : ranking.candidates) {
    candidates.push_back({{"model", c.id},
                          {"similarity", c.similarity},
                          {"latency", c.terms[Metric::kLatency]},
                          {"energy", c.terms[Metric::kEnergy]},
                          {"memory", c.terms[Metric::kMemory]},
                          {"confidence", c.terms[Metric::kConfidence]},
                          {"observations", c.terms.observations},
                          {"loaded", c.loaded},
                          {"lambda", c.lambda},
                          {"score", c.score}});
  }
  return {
      {"query", ranking.query},
      {"query_known", ranking.query_known},
      {"policy", policy_name(ranking.policy)},
      {"chosen", ranking.candidates.empty() ? json(nullptr) : json(ranking.candidates.front().id)},
      {"decision_ms", decision_ms},
      {"candidates", candidates}};
}

HttpServer::HttpServer(ServerConfig config, Parts parts)
    : config_(std::move(config)),
      registry_(parts.registry),
      router_(parts.router),
      semantic_(std::move(parts.semantic)),
      resident_(parts.resident),
      scheduler_(parts.scheduler),
      loop_(parts.loop),
      energy_(parts.energy),
      metrics_(parts.metrics),
      server_(std::make_unique<httplib::Server>()) {
  const int threads = config_.http_threads;
  server_->new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  server_->set_payload_max_length(config_.max_body_bytes);
  // Send each streamed token at once instead of letting Nagle's algorithm
  // hold it for the client's ACK.
  server_->set_tcp_nodelay(true);
  server_->set_read_timeout(30, 0);
  server_->set_write_timeout(30, 0);
  install_routes();
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::bind() {
  // Debian's cpp-httplib listens with a backlog of 5, compiled in: a burst of
  // clients would see refused connects and 1 s retries. Catch the listening
  // socket as it is made and widen its backlog once bound.
  int listen_fd = -1;
  server_->set_socket_options([&listen_fd](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd = fd;
  });
  int port = config_.port;
  if (port == 0) {
    port = server_->bind_to_any_port(config_.host);
  } else if (!server_->bind_to_port(config_.host, port)) {
    port = -1;
  }
  if (port < 0) {
    throw std::runtime_error("cannot listen on " + config_.host + ":" +
                             std::to_string(config_.port) +
                             " (address in use, or not an address of this machine)");
  }
  if (listen_fd >= 0) ::listen(listen_fd, kListenBacklog);
  return port;
}

void HttpServer::run() {
  server_->listen_after_bind();
}

void HttpServer::stop() {
  if (server_) server_->stop();
}

void HttpServer::install_routes() {
  auto& svr = *server_;

  // Turns every status >= 400 that a handler did not fill (unknown path, body
  // too large, bad HTTP) into OpenAI's error shape.
  svr.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        ApiError error{res.status, "", "invalid_request_error", "", ""};
        switch (res.status) {
          case 404:
            error.message = "no such endpoint: " + req.method + " " + req.path;
            error.code = "not_found";
            break;
          case 413:
            error.message =
                "the request body is larger than this server accepts (server.max_body_bytes)";
            error.code = "request_too_large";
            break;
          default:
            error.message = "HTTP error " + std::to_string(res.status);
        }
        send_error(res, error);
        return httplib::Server::HandlerResponse::Handled;
      }));
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                               std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("unhandled exception: {}", what);
    send_error(res, ApiError{500, "internal error: " + what, "server_error", "", "internal_error"});
  });

  svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    json models = json::object();
    size_t serving = 0;
    const auto entries = registry_.entries();
    for (const auto& entry : entries) {
      const std::string status = model_status(*entry);
      serving += status.rfind("unavailable", 0) == 0 ? 0 : 1;
      models[entry->config.id] = status;
    }
    const bool all = serving == entries.size();
    send_json(
        res, serving == 0 ? 503 : 200,
        {{"status", all ? "ok" : (serving ? "degraded" : "unavailable")}, {"models", models}});
  });

  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    for (const auto& entry : registry_.entries()) {
      const auto& c = entry->config;
      const std::string status = model_status(*entry);
      json info = {{"description", c.description},
                   {"backend", c.is_local() ? "llama.cpp" : "remote"},
                   {"ready", entry->ready()},
                   {"status", status.substr(0, status.find(':'))}};
      if (status.rfind("unavailable", 0) == 0) info["error"] = status.substr(status.find(':') + 2);
      data.push_back({{"id", c.id},
                      {"object", "model"},
                      {"created", 0},
                      {"owned_by", "calm"},
                      {"calm", info}});
    }
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  });

  svr.Get("/v1/calm/state", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, state_json());
  });

  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    if (!metrics_) {
      send_error(res, ApiError{404, "metrics are off", "invalid_request_error", "", "not_found"});
      return;
    }
    res.set_content(metrics_->render(), MetricsRegistry::kContentType);
  });

  svr.Get("/v1/calm/adaptations", [this](const httplib::Request& req, httplib::Response& res) {
    size_t limit = 100;
    if (req.has_param("limit")) {
      try {
        limit = std::stoul(req.get_param_value("limit"));
      } catch (const std::exception&) {
        send_error(res, ApiError::bad_request("limit must be a whole number", "limit"));
        return;
      }
    }
    json list = json::array();
    if (loop_) {
      for (auto& a : loop_->adaptations(limit)) list.push_back(std::move(a));
    }
    send_json(res, 200, {{"object", "list"}, {"data", list}});
  });

  svr.Post("/v1/feedback", [this](const httplib::Request& req, httplib::Response& res) {
    try {
      const json body = parse_json_body(req.body);
      if (!body.is_object() || !body.contains("response_id") || !body["response_id"].is_string() ||
          body["response_id"].get<std::string>().empty()) {
        throw ApiError::bad_request("response_id (the id of an answer) is required as a string",
                                    "response_id");
      }
      if (!body.contains("score") || !body["score"].is_number_integer() ||
          body["score"].get<long long>() < 1 || body["score"].get<long long>() > 5) {
        throw ApiError::bad_request("score must be a whole number from 1 to 5", "score");
      }
      const std::string id = body["response_id"];
      if (!loop_) {
        throw ApiError{404, "feedback needs the MAPE-K loop: add a `loop:` section",
                       "invalid_request_error", "", "loop_not_configured"};
      }
      if (!loop_->on_feedback(id, body["score"].get<int>())) {
        throw ApiError{404, "no answer with the id '" + id + "' is known", "invalid_request_error",
                       "response_id", "response_not_found"};
      }
      send_json(res, 200, {{"response_id", id}, {"recorded", true}});
    } catch (const ApiError& error) {
      send_error(res, error);
    }
  });

  auto generate = [this](Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
    const auto arrival = std::chrono::steady_clock::now();
    try {
      json body = parse_json_body(req.body);
      ApiRequest request =
          endpoint == Endpoint::kChat ? parse_chat_request(body) : parse_completion_request(body);

      const auto semantic = semantic_ ? semantic_->get() : nullptr;
      if (semantic && request.model == semantic->settings().auto_model) {
        require_query_text(request.generation);
      }
      const auto decision = router_.route(request.model, request.generation);
      if (!decision) {
        throw ApiError{
            404, "the model '" + request.model + "' does not exist (GET /v1/models lists them)",
            "invalid_request_error", "model", "model_not_found"};
      }
      Registry::EntryPtr held = decision->entry;  // alive until the answer is sent
      const std::string id = held->config.id;
      // A local model waits its turn in the global queue and for its model to
      // be resident; the ticket holds its slot until the answer ends.
      std::shared_ptr<Scheduler::Ticket> ticket;
      if (resident_.manages(id)) {
        resident_.note_request(id);
        try {
          ticket = scheduler_.enter(id);
        } catch (const SchedulerError& e) {
          throw ApiError::from_scheduler(e);
        } catch (const CacheError& e) {
          throw ApiError{503, e.what(), "server_error", "", "model_unavailable"};
        }
        // The engine the cache loaded is the registry's current one for this
        // id (a reload may have replaced the one routed to).
        if (!held->ready()) {
          if (auto current = registry_.find(id)) held = current;
        }
      } else if (!registry_.ensure_ready(*held)) {
        const std::string why = held->load_error();
        throw ApiError{503,
                       "the model '" + id + "' is unavailable" + (why.empty() ? "" : ": " + why),
                       "server_error", "", "model_unavailable"};
      }
      Registry::Entry& entry = *held;
      if (ticket) {
        res.set_header("x-calm-cache", ticket->cache_hit() ? "hit" : "miss");
        res.set_header("x-calm-queue-ms",
                       std::to_string(static_cast<long long>(ticket->queue_ms())));
      }
      if (entry.config.inject_delay_ms > 0) {
        // Fault injection (models[].inject_delay_ms): a slow model, on purpose.
        std::this_thread::sleep_for(std::chrono::milliseconds(entry.config.inject_delay_ms));
      }
      auto energy = std::make_shared<EnergyShare>(energy_);
      auto stream = entry.engine->submit(std::move(request.generation));
      res.set_header("x-calm-model", entry.config.id);
      res.set_header("x-calm-route", decision->reason);
      ResponseMeta meta{random_id(endpoint == Endpoint::kChat ? "chatcmpl" : "cmpl"),
                        entry.config.id, unix_now()};
      RequestMetrics base;
      base.response_id = meta.id;
      base.model = entry.config.id;
      base.routed_by = decision->reason;
      base.queue_ms = ticket ? ticket->queue_ms() + ticket->load_ms() : 0;
      auto observe = [this, base, arrival, energy](const GenerationResult& r) {
        monitor(base, arrival, *energy, r);
      };
      if (request.stream) {
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            EventStreamWriter(endpoint, meta, request.include_usage, stream, observe),
            [stream, held, ticket, energy](bool /*success*/) {
              stream->cancel();  // no-op once finished
            });
        return;
      }
      const GenerationResult result = stream->wait();
      observe(result);
      send_json(res, 200,
                endpoint == Endpoint::kChat ? chat_response(meta, result)
                                            : completion_response(meta, result));
    } catch (const ApiError& error) {
      if (metrics_) metrics_->record_refusal(error.status, error.code);
      send_error(res, error);
    } catch (const EngineError& error) {
      const ApiError api = ApiError::from_engine(error);
      if (metrics_) metrics_->record_refusal(api.status, api.code);
      send_error(res, api);
    }
  };
  // The ranking the router would make for a chat or completion body, without
  // running inference: every candidate with its similarity, each dynamic
  // term, and the final score.
  svr.Post("/v1/route", [this](const httplib::Request& req, httplib::Response& res) {
    try {
      const auto semantic = semantic_ ? semantic_->get() : nullptr;
      if (!semantic) {
        throw ApiError{404, "routing is not configured: add a `router:` section to the fleet file",
                       "invalid_request_error", "", "routing_not_configured"};
      }
      json body = parse_json_body(req.body);
      if (body.is_object() && !body.contains("model"))
        body["model"] = semantic->settings().auto_model;
      const ApiRequest request =
          body.contains("prompt") ? parse_completion_request(body) : parse_chat_request(body);
      require_query_text(request.generation);
      const auto start = std::chrono::steady_clock::now();
      const Ranking ranking =
          semantic->rank(SemanticRouter::query_text(request.generation),
                         [this](const std::string& id) { return registry_.is_ready(id); });
      const double decision_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      send_json(res, 200, ranking_json(ranking, decision_ms));
    } catch (const ApiError& error) {
      send_error(res, error);
    }
  });

  svr.Post("/v1/calm/reload", [this](const httplib::Request&, httplib::Response& res) {
    if (!reload_) {
      send_error(res, ApiError{404, "reloading is not available", "invalid_request_error", "",
                               "not_found"});
      return;
    }
    try {
      send_json(res, 200, reload_());
    } catch (const ConfigError& e) {
      send_error(
          res, ApiError::bad_request(std::string("the fleet file was not applied: ") + e.what(), "",
                                     "invalid_fleet_file"));
    } catch (const std::exception& e) {
      send_error(
          res, ApiError::bad_request(std::string("the fleet file was not applied: ") + e.what(), "",
                                     "invalid_fleet_file"));
    }
  });

  svr.Post("/v1/chat/completions", [generate](const httplib::Request& req, httplib::Response& res) {
    generate(Endpoint::kChat, req, res);
  });
  svr.Post("/v1/completions", [generate](const httplib::Request& req, httplib::Response& res) {
    generate(Endpoint::kCompletion, req, res);
  });
}

void HttpServer::monitor(RequestMetrics m, std::chrono::steady_clock::time_point arrival,
                         EnergyShare& energy, const GenerationResult& r) {
  m.latency_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - arrival).count();
  m.ttft_ms = r.time_to_first_token_ms;
  m.tokens_in = r.prompt_tokens;
  m.tokens_out = r.completion_tokens;
  const double decode_ms = r.total_ms - r.time_to_first_token_ms;
  m.decode_tps = decode_ms > 0 ? 1000.0 * std::max(0, r.completion_tokens - 1) / decode_ms : 0;
  m.energy_j = energy.end();
  m.energy_source = energy.source();
  m.memory_bytes = static_cast<double>(resident_.cache().charged_bytes(m.model).value_or(0));
  m.confidence = confidence_from_logprobs(r.token_logprobs);
  m.cancelled = r.finish_reason == "cancelled";
  if (loop_) {
    loop_->on_request(m);
  } else {
    router_.observe(m.model, r);
  }
  if (metrics_) metrics_->record(m);
}

std::string HttpServer::model_status(const Registry::Entry& entry) const {
  if (entry.ready()) return "ready";
  const std::string& id = entry.config.id;
  if (resident_.manages(id)) {
    if (auto why = resident_.cache().never_fits(id)) return "unavailable: " + *why;
    const std::string error = resident_.load_error(id);
    return error.empty() ? "unloaded" : "unavailable: " + error;
  }
  return "unavailable: " + entry.load_error();
}

nlohmann::json HttpServer::state_json() const {
  json models = json::object();
  for (const auto& entry : registry_.entries()) {
    const EngineStats s = entry->engine->stats();
    models[entry->config.id] = {{"ready", entry->ready()},    {"slots_total", s.slots_total},
                                {"slots_busy", s.slots_busy}, {"queued", s.queued},
                                {"completed", s.completed},   {"cancelled", s.cancelled}};
  }

  const ModelCache::Stats cache = resident_.cache().stats();
  json cached = json::object();
  for (const auto& m : cache.models) {
    cached[m.id] = {{"state", m.state},
                    {"bytes", m.bytes},
                    {"estimated_bytes", m.estimated_bytes},
                    {"in_flight", m.in_flight},
                    {"pinned", m.pinned},
                    {"hits", m.hits},
                    {"misses", m.misses},
                    {"loads", m.loads},
                    {"evictions", m.evictions},
                    {"load_failures", m.load_failures},
                    {"prefetches", m.prefetches},
                    {"idle_unloads", m.idle_unloads},
                    {"last_load_ms", m.last_load_ms},
                    {"total_load_ms", m.total_load_ms},
                    {"rss_delta_bytes", m.rss_delta_bytes}};
    if (!m.last_error.empty()) cached[m.id]["last_error"] = m.last_error;
    if (!m.never_fits.empty()) cached[m.id]["never_fits"] = m.never_fits;
  }

  const Scheduler::Stats sched = scheduler_.stats();
  json queues = json::object();
  for (const auto& m : sched.models) {
    queues[m.id] = {{"slots", m.slots},
                    {"running", m.running},
                    {"queued", m.queued},
                    {"expected_service_ms", m.expected_service_ms}};
  }
  return {{"models", models},
          {"cache",
           {{"budget_bytes", cache.budget_bytes},
            {"used_bytes", cache.used_bytes},
            {"peak_used_bytes", cache.peak_used_bytes},
            {"eviction", cache.eviction},
            {"max_resident", cache.max_resident},
            {"models", cached}}},
          {"scheduler",
           {{"policy", sched.policy},
            {"max_wait_ms", sched.max_wait_ms},
            {"max_queue", sched.max_queue},
            {"queued", sched.queued},
            {"admitted", sched.admitted},
            {"rejected_queue_full", sched.rejected_queue_full},
            {"rejected_model_busy", sched.rejected_model_busy},
            {"timed_out", sched.timed_out},
            {"longest_queue_ms", sched.longest_queue_ms},
            {"longest_service_ms", sched.longest_service_ms},
            {"models", queues}}},
          {"process",
           {{"rss_bytes", process_rss_bytes()},
            {"peak_rss_bytes", process_peak_rss_bytes()},
            {"backend_overhead_bytes", resident_.backend_overhead_bytes()}}},
          {"loop", loop_ ? loop_->state() : json(nullptr)}};
}

}  // namespace calm
