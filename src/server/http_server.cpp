#include "server/http_server.h"

#include <spdlog/spdlog.h>

#include <map>
#include <optional>

#include "pipeline/api_error.h"
#include "server/node_views.h"
#include "server/openai_schema.h"
#include "server/text_keeping_sink.h"
#include "server/tls_context.h"
#include "util/process_memory.h"

namespace calm {
namespace {

using nlohmann::json;

constexpr const char* kJson = "application/json";

HttpResponse json_response(int status, const json& body) {
  return HttpResponse{status, kJson, {}, body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

HttpOutcome now(HttpResponse response) {
  HttpOutcome outcome;
  outcome.now = std::move(response);
  return outcome;
}

ApiError not_found(const HttpRequest& request) {
  return ApiError{404, "no such endpoint: " + request.method + " " + request.path,
                  "invalid_request_error", "", "not_found"};
}

// A model's circuit breaker, for /v1/models and /v1/calm/state.
json breaker_json(const CircuitBreakers::Status& s) {
  return {{"state", CircuitBreakers::state_name(s.state)},
          {"failures_in_a_row", s.failures_in_a_row},
          {"failures", s.failures},
          {"opened", s.opened},
          {"retry_in_ms", s.retry_in.count()},
          {"last_error", s.last_error}};
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
      semantic_(std::move(parts.semantic)),
      resident_(parts.resident),
      scheduler_(parts.scheduler),
      pipeline_(parts.pipeline),
      loop_(parts.loop),
      metrics_(parts.metrics),
      keys_(parts.keys),
      breakers_(parts.breakers),
      text_store_(parts.text_store),
      nodes_(parts.nodes),
      reload_worker_(std::make_unique<DelayQueue>()) {
  HttpTransport::Options options;
  options.host = config_.host;
  options.port = config_.port;
  options.io_threads = config_.http_threads;
  options.max_body_bytes = config_.max_body_bytes;
  options.max_connections = config_.max_connections;
  if (config_.tls) {
    options.tls = HttpTransport::Options::Tls{config_.tls->cert_file, config_.tls->key_file,
                                              config_.tls->handshake_timeout};
  }
  transport_ = std::make_unique<HttpTransport>(
      options, [this](HttpRequest& request) { return handle(request); },
      [](int status, const std::string& message) {
        const std::string code = status == 413   ? "request_too_large"
                                 : status == 431 ? "headers_too_large"
                                 : status == 503 ? "too_many_connections"
                                 : status >= 500 ? "internal_error"
                                                 : "bad_request";
        return error_response(ApiError{
            status, message, status >= 500 ? "server_error" : "invalid_request_error", "", code});
      });
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::bind() {
  try {
    return transport_->bind();
  } catch (const TlsFileError& e) {
    const char* field =
        e.file() == TlsFileError::File::kCert ? "server.tls.cert: " : "server.tls.key: ";
    throw ConfigError(field + std::string(e.what()));
  }
}

void HttpServer::start() {
  transport_->start();
}

void HttpServer::stop() {
  if (transport_) transport_->stop();
  reload_worker_.reset();  // joins a reload in progress
}

// Each endpoint by the name that auth.public and auth.admin use.
std::optional<std::string> HttpServer::endpoint_name(const HttpRequest& request) {
  static const std::map<std::pair<std::string, std::string>, std::string> names{
      {{"GET", "/health"}, "health"},
      {{"GET", "/v1/models"}, "models"},
      {{"GET", "/v1/calm/state"}, "state"},
      {{"GET", "/metrics"}, "metrics"},
      {{"GET", "/v1/calm/adaptations"}, "adaptations"},
      {{"POST", "/v1/feedback"}, "feedback"},
      {{"POST", "/v1/route"}, "route"},
      {{"POST", "/v1/calm/reload"}, "reload"},
      {{"POST", "/v1/chat/completions"}, "chat"},
      {{"POST", "/v1/completions"}, "completions"}};
  const auto it = names.find({request.method, request.path});
  if (it == names.end()) return std::nullopt;
  return it->second;
}

HttpOutcome HttpServer::handle(HttpRequest& request) {
  try {
    const std::optional<std::string> endpoint = endpoint_name(request);
    if (!endpoint) throw not_found(request);
    std::shared_ptr<ApiKeys::Permit> permit;  // the key's in-flight place, if it has a limit
    if (keys_) {
      ApiKeys::Decision decision = keys_->admit(*endpoint, request.header("authorization"));
      if (!decision.allowed()) return now(refusal(decision));
      permit = std::move(decision.permit);
    }
    const std::string& name = *endpoint;
    if (name == "health") return now(health());
    if (name == "models") return now(models());
    if (name == "state") return now(json_response(200, state_json()));
    if (name == "metrics") {
      if (!metrics_) {
        throw ApiError{404, "metrics are off", "invalid_request_error", "", "not_found"};
      }
      return now(HttpResponse{200, MetricsRegistry::kContentType, {}, metrics_->render()});
    }
    if (name == "adaptations") return now(adaptations(request));
    if (name == "feedback") return now(feedback(request));
    if (name == "route") return now(route(request));
    if (name == "reload") return reload(std::move(permit));
    return generate(name == "chat" ? Endpoint::kChat : Endpoint::kCompletion, request,
                    std::move(permit));
  } catch (const ApiError& error) {
    return now(error_response(error));
  }
}

// 401 (with WWW-Authenticate), 403 or 429 (with Retry-After), in OpenAI's
// error shape; counted in /metrics like every refusal.
HttpResponse HttpServer::refusal(const ApiKeys::Decision& decision) const {
  const char* type = decision.status == 401   ? "invalid_request_error"
                     : decision.status == 403 ? "permission_error"
                                              : "rate_limit_error";
  ApiError error{decision.status, decision.message, type, "", decision.code};
  error.retry_after_s = decision.retry_after_s;
  if (metrics_) metrics_->record_refusal(error.status, error.code);
  HttpResponse response = error_response(error);
  if (decision.status == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
  return response;
}

HttpOutcome HttpServer::generate(Endpoint endpoint, const HttpRequest& http,
                                 std::shared_ptr<ApiKeys::Permit> permit) {
  const auto arrival = std::chrono::steady_clock::now();
  ApiRequest request;
  try {
    json body = parse_request_body(http.body);
    request =
        endpoint == Endpoint::kChat ? parse_chat_request(body) : parse_completion_request(body);
  } catch (const ApiError& error) {
    if (metrics_) metrics_->record_refusal(error.status, error.code);
    throw;
  }
  auto pipeline_request = std::make_shared<PipelineRequest>();
  pipeline_request->model = request.model;
  pipeline_request->generation = std::move(request.generation);
  pipeline_request->stream = request.stream;
  pipeline_request->id_prefix = endpoint == Endpoint::kChat ? "chatcmpl" : "cmpl";
  pipeline_request->arrival = arrival;
  // Copied only when it is to be kept (knowledge.keep_text).
  std::string prompt_text =
      text_store_ ? TextKeepingSink::prompt_text(pipeline_request->generation) : "";
  HttpOutcome outcome;
  outcome.later = [this, endpoint, request = pipeline_request,
                   include_usage = request.include_usage, permit = std::move(permit),
                   prompt_text = std::move(prompt_text)](std::shared_ptr<AsyncReply> reply) {
    auto writer = std::make_shared<OpenAiSink>(endpoint, request->stream, include_usage, reply);
    writer->keep_until_end(permit);  // the key's place in flight: until the answer ends
    std::shared_ptr<PipelineSink> sink = writer;
    if (text_store_) {
      sink = std::make_shared<TextKeepingSink>(
          writer, *text_store_, endpoint == Endpoint::kChat ? "chat" : "completions", prompt_text);
    }
    auto call = pipeline_.submit(std::move(*request), std::move(sink));
    reply->on_client_gone([call] { call->cancel(); });
  };
  return outcome;
}

HttpOutcome HttpServer::reload(std::shared_ptr<ApiKeys::Permit> permit) {
  if (!reload_) {
    throw ApiError{404, "reloading is not available", "invalid_request_error", "", "not_found"};
  }
  HttpOutcome outcome;
  outcome.later = [this, permit = std::move(permit)](std::shared_ptr<AsyncReply> reply) {
    // A reload reads files, may build a router and load models: off the I/O threads.
    reload_worker_->after(std::chrono::milliseconds(0), [this, reply, permit] {
      try {
        reply->start(json_response(200, reload_()), false);
      } catch (const std::exception& e) {
        reply->start(error_response(ApiError::bad_request(
                         std::string("the fleet file was not applied: ") + e.what(), "",
                         "invalid_fleet_file")),
                     false);
      }
    });
  };
  return outcome;
}

HttpResponse HttpServer::health() const {
  json models = json::object();
  size_t serving = 0;
  const auto entries = registry_.entries();
  for (const auto& entry : entries) {
    const std::string status = model_status(*entry);
    serving += status.rfind("unavailable", 0) == 0 ? 0 : 1;
    models[entry->config.id] = status;
  }
  json body = {{"models", models}};
  if (nodes_) body["nodes"] = nodes_health_json(*nodes_);
  if (pipeline_.draining()) {
    body["status"] = "stopping";
    return json_response(503, body);
  }
  const bool all = serving == entries.size() && !(nodes_ && some_node_down(*nodes_));
  body["status"] = all ? "ok" : (serving ? "degraded" : "unavailable");
  return json_response(serving == 0 ? 503 : 200, body);
}

HttpResponse HttpServer::models() const {
  json data = json::array();
  for (const auto& entry : registry_.entries()) {
    const auto& c = entry->config;
    const std::string status = model_status(*entry);
    json info = {{"description", c.description},
                 {"backend", c.is_local()                                ? "llama.cpp"
                             : c.backend == ModelConfig::Backend::kNodes ? "nodes"
                                                                         : "remote"},
                 {"ready", entry->ready()},
                 {"status", status.substr(0, status.find(':'))}};
    if (status.rfind("unavailable", 0) == 0) info["error"] = status.substr(status.find(':') + 2);
    if (const auto breaker = breakers_ ? breakers_->status(c.id) : std::nullopt) {
      info["breaker"] = breaker_json(*breaker);
    }
    data.push_back(
        {{"id", c.id}, {"object", "model"}, {"created", 0}, {"owned_by", "calm"}, {"calm", info}});
  }
  return json_response(200, {{"object", "list"}, {"data", data}});
}

HttpResponse HttpServer::adaptations(const HttpRequest& request) const {
  size_t limit = 100;
  if (const auto it = request.query.find("limit"); it != request.query.end()) {
    try {
      size_t used = 0;
      limit = std::stoul(it->second, &used);
      if (used != it->second.size()) throw std::invalid_argument("trailing characters");
    } catch (const std::exception&) {
      throw ApiError::bad_request("limit must be a whole number", "limit");
    }
  }
  json list = json::array();
  if (loop_) {
    for (auto& a : loop_->adaptations(limit)) list.push_back(std::move(a));
  }
  return json_response(200, {{"object", "list"}, {"data", list}});
}

HttpResponse HttpServer::feedback(const HttpRequest& request) const {
  const json body = parse_request_body(request.body);
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
  return json_response(200, {{"response_id", id}, {"recorded", true}});
}

// The ranking the router would make for a chat or completion body, without
// running inference: every candidate with its similarity, each dynamic term,
// and the final score.
HttpResponse HttpServer::route(const HttpRequest& http) const {
  const auto semantic = semantic_ ? semantic_->get() : nullptr;
  if (!semantic) {
    throw ApiError{404, "routing is not configured: add a `router:` section to the fleet file",
                   "invalid_request_error", "", "routing_not_configured"};
  }
  json body = parse_request_body(http.body);
  if (body.is_object() && !body.contains("model")) body["model"] = semantic->settings().auto_model;
  const ApiRequest request =
      body.contains("prompt") ? parse_completion_request(body) : parse_chat_request(body);
  require_query_text(request.generation);
  const std::string query = SemanticRouter::query_text(request.generation);
  const auto start = std::chrono::steady_clock::now();
  const Ranking ranking =
      semantic->rank(query, [this](const std::string& id) { return registry_.is_ready(id); });
  const double decision_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return json_response(200, ranking_json(ranking, decision_ms));
}

std::string HttpServer::model_status(const Registry::Entry& entry) const {
  const std::string& id = entry.config.id;
  if (const auto breaker = breakers_ ? breakers_->status(id) : std::nullopt) {
    if (breaker->state == CircuitBreakers::State::kOpen) {
      return "unavailable: circuit open after " + std::to_string(breaker->failures_in_a_row) +
             " failures in a row (health-checked again in " +
             std::to_string((breaker->retry_in.count() + 999) / 1000) +
             " s); the last: " + breaker->last_error;
    }
  }
  if (entry.ready()) return "ready";
  if (resident_.manages(id)) {
    if (const auto why = resident_.cache().never_fits(id)) return "unavailable: " + *why;
    const std::string error = resident_.load_error(id);
    return error.empty() ? "unloaded" : "unavailable: " + error;
  }
  return "unavailable: " + entry.load_error();
}

nlohmann::json HttpServer::state_json() const {
  json models = json::object();
  const Registry::SnapshotPtr fleet = registry_.snapshot();
  for (const auto& entry : fleet->entries) {
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

  json breakers = json::object();
  if (breakers_) {
    for (const auto& [id, status] : breakers_->all()) breakers[id] = breaker_json(status);
  }

  const Scheduler::Stats sched = scheduler_.stats();
  json queues = json::object();
  for (const auto& m : sched.models) {
    queues[m.id] = {{"slots", m.slots},
                    {"running", m.running},
                    {"queued", m.queued},
                    {"expected_service_ms", m.expected_service_ms}};
  }
  return {{"fleet_version", fleet->version},
          {"models", models},
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
            {"cancelled", sched.cancelled},
            {"longest_queue_ms", sched.longest_queue_ms},
            {"longest_service_ms", sched.longest_service_ms},
            {"models", queues}}},
          {"pipeline", {{"in_flight", pipeline_.in_flight()}, {"draining", pipeline_.draining()}}},
          {"breakers", breakers},
          {"process",
           {{"rss_bytes", process_rss_bytes()},
            {"peak_rss_bytes", process_peak_rss_bytes()},
            {"backend_overhead_bytes", resident_.backend_overhead_bytes()}}},
          {"loop", loop_ ? loop_->state() : json(nullptr)},
          {"placement", nodes_ ? placement_state_json(*nodes_) : json(nullptr)}};
}

}  // namespace calm
