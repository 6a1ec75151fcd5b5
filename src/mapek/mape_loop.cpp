#include "mapek/mape_loop.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "util/unix_time.h"

namespace calm {
namespace {

constexpr size_t kRecentAdaptations = 1000;
constexpr size_t kRememberedResponses = 10000;
constexpr size_t kKeptAfterShift = 4;

Observation observation_of(const RequestMetrics& m) {
  Observation o;
  o.latency_ms = m.latency_ms;
  o.energy_j = m.energy_j;
  o.memory_bytes = m.memory_bytes;
  o.confidence = m.confidence;
  o.response_id = m.response_id;
  return o;
}

// A recorded request as its model's window keeps it: the user's feedback, if
// given, is its confidence.
Observation observation_of(const ServedRequest& r) {
  Observation o;
  o.latency_ms = r.latency_ms;
  o.energy_j = r.energy_j.value_or(0);
  o.memory_bytes = static_cast<double>(r.memory_bytes);
  o.confidence = r.feedback.value_or(r.confidence.value_or(1));
  o.response_id = r.response_id;
  return o;
}

}  // namespace

nlohmann::json policy_json(const PolicySettings& p) {
  return {{"policy", policy_name(p.policy)},
          {"lambda", p.lambda},
          {"lambda_cache", p.lambda_cache},
          {"correlation_aware", p.correlation_aware}};
}

MapeLoop::MapeLoop(LoopConfig config, std::shared_ptr<SemanticRouterSlot> router,
                   std::shared_ptr<KnowledgeStore> knowledge, Scheduler* scheduler,
                   ResidentSet* resident)
    : config_(std::move(config)),
      router_(std::move(router)),
      knowledge_(std::move(knowledge)),
      scheduler_(scheduler),
      configured_max_wait_(scheduler ? scheduler->max_wait() : std::chrono::milliseconds(0)),
      resident_(resident),
      configured_prefetch_(resident ? resident->prefetch() : false),
      analyzer_(config_.goals) {
  // The planner's base is the configured routing (any, without a router: its
  // other levers do not read it).
  planner_ = std::make_unique<Planner>(router_ ? router_->get()->policy() : PolicySettings{},
                                       config_.goals);
  // The cursor before the windows are refilled: a request recorded between
  // the two is counted twice rather than missed.
  if (knowledge_ && knowledge_->shared()) news_cursor_ = knowledge_->news_cursor();
  restore_windows();
  if (knowledge_) {
    nlohmann::json goals = nlohmann::json::object();
    const Goals& g = config_.goals;
    if (g.latency_p95_ms) goals["latency_p95_ms"] = {{"max", *g.latency_p95_ms}};
    if (g.energy_per_request_j) goals["energy_per_request_j"] = {{"max", *g.energy_per_request_j}};
    if (g.confidence_min) goals["confidence_min"] = {{"min", *g.confidence_min}};
    try {
      knowledge_->set_goals(goals);
    } catch (const std::exception& e) {
      spdlog::error("knowledge: goals not stored: {}", e.what());
    }
  }
}

MapeLoop::~MapeLoop() {
  stop();
}

void MapeLoop::restore_windows() {
  if (!knowledge_ || !router_) return;
  const auto semantic = router_->get();
  size_t restored = 0;
  for (const auto& model : knowledge_->models()) {
    auto records = knowledge_->recent_requests(model, semantic->windows().window());
    // Oldest first, as they happened.
    for (auto it = records.rbegin(); it != records.rend(); ++it) {
      semantic->windows().record(model, observation_of(*it));
      ++restored;
    }
  }
  if (restored > 0)
    spdlog::info("knowledge: {} observations restored into the QoS windows", restored);
}

void MapeLoop::take_news() {
  const KnowledgeStore::News news = knowledge_->news_since(news_cursor_);
  const auto semantic = router_ ? router_->get() : nullptr;
  for (const ServedRequest& r : news.requests) {
    if (semantic) semantic->windows().record(r.model, observation_of(r));
    remember_responder(r.response_id, r.model);  // a feedback given here finds its model
  }
  if (semantic) {
    for (const auto& f : news.feedback) {
      semantic->windows().record_feedback(f.model, f.response_id, f.feedback);
    }
  }
}

void MapeLoop::remember_responder(const std::string& response_id, const std::string& model) {
  if (response_id.empty()) return;
  std::lock_guard lock(mutex_);
  if (!responders_.emplace(response_id, model).second) return;
  responder_order_.push_back(response_id);
  if (responder_order_.size() > kRememberedResponses) {
    responders_.erase(responder_order_.front());
    responder_order_.pop_front();
  }
}

bool MapeLoop::refresh_lead() {
  if (!leader_) return true;  // one replica: it leads
  const bool leads = leader_->refresh();
  if (leads != led_) {
    const std::string who = leads ? leader_->replica() : leader_->leader();
    log_adaptation("leader",
                   leads ? "replica '" + who + "' leads placement now"
                         : "replica '" + leader_->replica() + "' no longer leads placement" +
                               (who.empty() ? std::string() : " ('" + who + "' does)"),
                   {{"replica", leader_->replica()}}, {{"leads", led_}}, {{"leads", leads}});
    led_ = leads;
  }
  return leads;
}

void MapeLoop::start() {
  if (!config_.enabled || thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void MapeLoop::stop() {
  {
    std::lock_guard lock(thread_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MapeLoop::run() {
  std::unique_lock lock(thread_mutex_);
  while (!wake_.wait_for(lock, config_.period, [&] { return stopping_; })) {
    lock.unlock();
    try {
      tick();
    } catch (const std::exception& e) {
      spdlog::error("MAPE-K loop: {}", e.what());
    }
    lock.lock();
  }
}

void MapeLoop::on_request(const RequestMetrics& m) {
  if (!m.cancelled && router_) router_->get()->windows().record(m.model, observation_of(m));
  analyzer_.add(m);
  remember_responder(m.response_id, m.model);
  if (knowledge_) {
    ServedRequest r;
    r.response_id = m.response_id;
    r.ts = unix_seconds();
    r.model = m.model;
    r.routed_by = m.routed_by;
    r.queue_ms = m.queue_ms;
    r.ttft_ms = m.ttft_ms;
    r.latency_ms = m.latency_ms;
    r.tokens_in = m.tokens_in;
    r.tokens_out = m.tokens_out;
    r.decode_tps = m.decode_tps;
    r.energy_j = m.energy_j;
    r.energy_source = m.energy_source;
    r.memory_bytes = static_cast<uint64_t>(m.memory_bytes);
    r.confidence = m.confidence;
    knowledge_->record_request(r);
  }
}

bool MapeLoop::on_feedback(const std::string& response_id, int score) {
  const double confidence = (score - 1) / 4.0;
  std::string model;
  {
    std::lock_guard lock(mutex_);
    const auto it = responders_.find(response_id);
    if (it != responders_.end()) model = it->second;
  }
  bool known = !model.empty();
  if (knowledge_) {
    try {
      known = knowledge_->record_feedback(response_id, confidence) || known;
    } catch (const std::exception& e) {
      spdlog::error("knowledge: feedback not stored: {}", e.what());
    }
  }
  if (!known) return false;
  if (!model.empty() && router_) {
    router_->get()->windows().record_feedback(model, response_id, confidence);
  }
  return true;
}

void MapeLoop::log_adaptation(const std::string& kind, const std::string& reason,
                              const nlohmann::json& figures, const nlohmann::json& before,
                              const nlohmann::json& after) {
  nlohmann::json a = {{"ts", unix_seconds()}, {"kind", kind},     {"reason", reason},
                      {"figures", figures},   {"before", before}, {"after", after}};
  spdlog::info("adaptation ({}): {}", kind, reason);
  if (knowledge_) {
    Adaptation record;
    record.kind = kind;
    record.reason = reason;
    record.figures = figures;
    record.before = before;
    record.after = after;
    knowledge_->record_adaptation(record);
  }
  adaptation_count_++;
  std::lock_guard lock(mutex_);
  recent_.push_front(std::move(a));
  if (recent_.size() > kRecentAdaptations) recent_.pop_back();
}

std::vector<nlohmann::json> MapeLoop::tick() {
  std::vector<nlohmann::json> made;
  if (knowledge_ && knowledge_->shared()) {
    try {
      take_news();
    } catch (const std::exception& e) {
      spdlog::warn("knowledge: the other replicas' news not read: {}", e.what());
    }
  }
  const bool leads = refresh_lead();
  const Analysis analysis = analyzer_.analyze();
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& g : analysis.goals) {
    checks.push_back({{"goal", g.goal}, {"target", g.target}, {"value", g.value}, {"met", g.met}});
  }
  {
    std::lock_guard lock(mutex_);
    last_checks_ = checks;
  }
  const auto semantic = router_ ? router_->get() : nullptr;

  // A model whose latency shifted: its window keeps only the newest
  // observations (those the detector fired on), so routing sees the new
  // regime at once instead of after `window` requests.
  for (const auto& shift : analysis.shifts) {
    if (semantic) semantic->windows().keep_newest(shift.model, kKeptAfterShift);
    const std::string reason =
        "latency of '" + shift.model + "' shifted " + (shift.up ? "up" : "down") +
        " from a mean of " + std::to_string(static_cast<long long>(shift.mean_before_ms)) +
        " ms (Page-Hinkley): its QoS window keeps only its newest observations";
    log_adaptation("latency-shift", reason,
                   {{"model", shift.model}, {"mean_before_ms", shift.mean_before_ms}}, nullptr,
                   nullptr);
    std::lock_guard lock(mutex_);
    made.push_back(recent_.front());
  }

  // The scheduler's lever: only swap-aware reads max_wait.
  if (scheduler_ && scheduler_->stats().policy == "swap-aware" && config_.enabled) {
    const auto current = scheduler_->max_wait();
    if (const auto next = planner_->plan_max_wait(analysis, current, configured_max_wait_)) {
      scheduler_->set_max_wait(*next);
      const bool tighter = *next < current;
      log_adaptation("scheduler-max-wait",
                     std::string(tighter ? "latency goal missed" : "every goal met with margin") +
                         ": swap-aware max_wait " + std::to_string(current.count()) + " -> " +
                         std::to_string(next->count()) + " ms",
                     {{"p95_ms", analysis.overall.latency_p95_ms}},
                     {{"max_wait_ms", current.count()}}, {{"max_wait_ms", next->count()}});
      std::lock_guard lock(mutex_);
      made.push_back(recent_.front());
    }
  }

  // The cache's lever: prefetch, judged by the share of requests since the
  // last tick that waited for a load.
  if (resident_ && config_.enabled) {
    uint64_t hits = 0, misses = 0;
    for (const auto& m : resident_->cache().stats().models) {
      hits += m.hits;
      misses += m.misses;
    }
    const uint64_t new_hits = hits - std::min(hits, seen_hits_);
    const uint64_t new_misses = misses - std::min(misses, seen_misses_);
    seen_hits_ = hits;
    seen_misses_ = misses;
    const double miss_rate =
        new_hits + new_misses > 0 ? static_cast<double>(new_misses) / (new_hits + new_misses) : 0;
    const bool current = resident_->prefetch();
    if (const auto next =
            planner_->plan_prefetch(analysis, current, configured_prefetch_, miss_rate)) {
      resident_->set_prefetch(*next);
      log_adaptation("cache-prefetch",
                     std::string("prefetch ") + (*next ? "on" : "off") + " (miss rate " +
                         std::to_string(static_cast<int>(100 * miss_rate)) + "%)",
                     {{"miss_rate", miss_rate}, {"p95_ms", analysis.overall.latency_p95_ms}},
                     {{"prefetch", current}}, {{"prefetch", *next}});
      std::lock_guard lock(mutex_);
      made.push_back(recent_.front());
    }
  }

  if (placement_ && config_.enabled && leads) plan_replicas(analysis, made);

  if (semantic) {
    const PolicySettings current = semantic->policy();
    if (const auto plan = planner_->plan(analysis, current)) {
      semantic->set_policy(plan->next);  // atomic: the next request routes by it
      analyzer_.restart_overall();       // judge the new weights on fresh requests
      log_adaptation("routing-weights", plan->reason, plan->figures, policy_json(current),
                     policy_json(plan->next));
      std::lock_guard lock(mutex_);
      made.push_back(recent_.front());
    }
  }
  return made;
}

void MapeLoop::plan_replicas(const Analysis& analysis, std::vector<nlohmann::json>& made) {
  std::map<std::string, size_t> demand;
  if (scheduler_) {
    for (const auto& m : scheduler_->stats().models) demand[m.id] = m.running + m.queued;
  }
  std::vector<ReplicaView> views;
  for (const Placement::Spread& s : placement_->spread()) {
    views.push_back({s.model, s.replicas, s.held, s.nodes, demand[s.model]});
  }
  for (const ReplicaPlan& plan : planner_->plan_replicas(analysis, views)) {
    const uint32_t before = placement_->replicas(plan.model);
    placement_->set_replicas(plan.model, plan.replicas);
    std::string reason = plan.reason;
    nlohmann::json figures = {{"model", plan.model}, {"demand", demand[plan.model]}};
    if (plan.replicas < before) {
      const auto node = placement_->shed_replica(plan.model);  // blocks on the node's unload
      reason += node ? " (unloaded from node '" + *node + "')" : " (no node could give it up yet)";
      figures["shed_from"] = node ? nlohmann::json(*node) : nlohmann::json(nullptr);
    }
    log_adaptation("replicas", reason, figures, {{"replicas", before}},
                   {{"replicas", plan.replicas}});
    std::lock_guard lock(mutex_);
    made.push_back(recent_.front());
  }
}

std::vector<nlohmann::json> MapeLoop::adaptations(size_t limit) const {
  std::lock_guard lock(mutex_);
  std::vector<nlohmann::json> out;
  for (const auto& a : recent_) {
    if (out.size() >= limit) break;
    out.push_back(a);
  }
  return out;
}

std::optional<PolicySettings> MapeLoop::routing() const {
  if (!router_) return std::nullopt;
  return router_->get()->policy();
}

nlohmann::json MapeLoop::state() const {
  nlohmann::json s = {
      {"enabled", config_.enabled},
      {"scheduler_max_wait_ms",
       scheduler_ ? nlohmann::json(scheduler_->max_wait().count()) : nullptr},
      {"cache_prefetch", resident_ ? nlohmann::json(resident_->prefetch()) : nullptr},
      {"period_ms", config_.period.count()},
      {"adaptations", adaptation_count_.load()}};
  if (router_) {
    const auto semantic = router_->get();
    s["routing"] = policy_json(semantic->policy());
    // Spearman's rho between the metrics over the QoS windows: what the
    // correlation-aware weights (router.correlation_aware) divide by.
    nlohmann::json rho = nlohmann::json::object();
    for (size_t a = 0; a < kMetricCount; ++a) {
      for (size_t b = a + 1; b < kMetricCount; ++b) {
        rho[std::string(metric_name(static_cast<Metric>(a))) + "~" +
            metric_name(static_cast<Metric>(b))] =
            semantic->windows().spearman(static_cast<Metric>(a), static_cast<Metric>(b));
      }
    }
    s["correlations"] = rho;
  }
  if (router_) s["configured_routing"] = policy_json(planner_->base());
  if (knowledge_ && knowledge_->shared()) {
    s["replica"] = {{"name", knowledge_->replica()},
                    {"leads_placement", leader_ ? leader_->leading() : true}};
  }
  std::lock_guard lock(mutex_);
  s["goals"] = last_checks_;
  return s;
}

}  // namespace calm
