#include "pipeline/request_pipeline.h"

#include <spdlog/spdlog.h>

#include <deque>
#include <optional>
#include <random>
#include <vector>

#include "meters/energy_share.h"

namespace calm {
namespace {

using Clock = std::chrono::steady_clock;

std::string random_id(const std::string& prefix) {
  // A per-process random part and a counter: unique within a run, and
  // unlikely to repeat across restarts.
  static const uint64_t salt =
      (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  static std::atomic<uint64_t> counter{0};
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s-%016llx%06llx", prefix.c_str(),
                static_cast<unsigned long long>(salt),
                static_cast<unsigned long long>(counter.fetch_add(1) & 0xffffff));
  return buf;
}

long long unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double ms_since(Clock::time_point from) {
  return std::chrono::duration<double, std::milli>(Clock::now() - from).count();
}

ApiError unavailable(const std::string& message) {
  return ApiError{503, message, "server_error", "", "model_unavailable"};
}

ApiError cancelled_error() {
  return ApiError{499, "the client closed the request", "invalid_request_error", "", "cancelled"};
}

// What nothing else explains: a 500 that says what was thrown (and the log says where).
ApiError internal_error(const std::exception& e) {
  spdlog::error("request pipeline: unexpected exception: {}", e.what());
  return ApiError{500, std::string("internal error: ") + e.what(), "server_error", "",
                  "internal_error"};
}

ApiError circuit_open(const std::string& id, const CircuitBreakers::Status& status) {
  const auto retry_s = static_cast<int>((status.retry_in.count() + 999) / 1000);
  ApiError error = unavailable("the model '" + id + "' is out of service after " +
                               std::to_string(status.failures_in_a_row) +
                               " failures in a row (circuit open; health-checked again in " +
                               std::to_string(retry_s) + " s); the last: " + status.last_error);
  error.retry_after_s = std::max(1, retry_s);
  return error;
}

}  // namespace

// A routed request needs words to route by.
void require_query_text(const GenerationRequest& request) {
  const std::string text = SemanticRouter::query_text(request);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw ApiError::bad_request(
        "nothing to route by: the last user message (or the prompt) is empty",
        request.is_chat() ? "messages" : "prompt", "empty_query");
  }
}

// One request's state. `mutex` serialises every sink call and guards the
// fields below it; the sink is never called twice at once.
struct RequestPipeline::Call::State {
  uint64_t id = 0;
  RequestPipeline* pipeline = nullptr;  // outlives the call
  PipelineRequest request;
  std::shared_ptr<PipelineSink> sink;

  std::mutex mutex;
  bool ended = false;         // guarded by mutex; the sink was told the end
  bool cancelled = false;     // guarded by mutex
  bool started = false;       // guarded by mutex; the scheduler started it
  bool delayed = false;       // guarded by mutex; waiting out models[].inject_delay_ms
  bool told_started = false;  // guarded by mutex; the sink was told started
  bool delivered = false;     // guarded by mutex; a delta reached the sink: no failover now
  int retries = 0;            // guarded by mutex; fallbacks tried
  std::deque<Registry::EntryPtr> fallbacks;         // guarded by mutex; not yet tried, in order
  Registry::EntryPtr entry;                         // guarded by mutex; the model being tried
  std::shared_ptr<Scheduler::Admission> admission;  // guarded by mutex
  std::unique_ptr<Scheduler::Ticket> ticket;        // guarded by mutex
  std::shared_ptr<GenerationStream> stream;         // guarded by mutex
  std::unique_ptr<EnergyShare> energy;              // guarded by mutex
  PipelineStart start;                              // guarded by mutex
};

RequestPipeline::RequestPipeline(Parts parts)
    : registry_(parts.registry),
      router_(parts.router),
      resident_(parts.resident),
      scheduler_(parts.scheduler),
      semantic_(std::move(parts.semantic)),
      loop_(parts.loop),
      energy_(parts.energy),
      on_record_(std::move(parts.on_record)),
      on_refusal_(std::move(parts.on_refusal)),
      breakers_(parts.breakers),
      max_retries_(parts.max_retries),
      on_retry_(std::move(parts.on_retry)),
      on_failure_(std::move(parts.on_failure)) {}

RequestPipeline::~RequestPipeline() {
  drain(std::chrono::milliseconds(0));
}

size_t RequestPipeline::in_flight() const {
  std::lock_guard lock(mutex_);
  return calls_.size();
}

std::shared_ptr<RequestPipeline::Call> RequestPipeline::submit(PipelineRequest request,
                                                               std::shared_ptr<PipelineSink> sink) {
  auto state = std::make_shared<Call::State>();
  state->pipeline = this;
  state->request = std::move(request);
  state->sink = std::move(sink);
  {
    std::lock_guard lock(mutex_);
    state->id = next_call_++;
    calls_[state->id] = state;
  }
  auto call = std::shared_ptr<Call>(new Call(state));
  if (draining_) {
    fail(state, ApiError{503, "the server is stopping", "server_error", "", "server_stopping", 1});
    return call;
  }
  admit(state);
  return call;
}

void RequestPipeline::admit(const std::shared_ptr<Call::State>& call) {
  const PipelineRequest& request = call->request;
  try {
    const auto fleet = registry_.hold_fleet();  // no reload lands until it is queued
    const uint64_t fleet_version = registry_.snapshot()->version;
    const auto semantic = semantic_ ? semantic_->get() : nullptr;
    if (semantic && request.model == semantic->settings().auto_model) {
      require_query_text(request.generation);
    }
    auto decision = router_.route(request.model, request.generation);
    if (!decision) {
      throw ApiError{404,
                     "the model '" + request.model + "' does not exist (GET /v1/models lists them)",
                     "invalid_request_error", "model", "model_not_found"};
    }
    {
      std::lock_guard lock(call->mutex);
      call->fallbacks.assign(decision->fallbacks.begin(), decision->fallbacks.end());
      call->start.response_id = random_id(request.id_prefix);
      call->start.fleet_version = fleet_version;
    }
    attempt(call, std::move(decision->entry), decision->reason);
  } catch (const ApiError& error) {
    fail(call, error);
  } catch (const std::exception& e) {
    fail(call, internal_error(e));
  }
}

void RequestPipeline::attempt(const std::shared_ptr<Call::State>& call, Registry::EntryPtr entry,
                              const std::string& reason) {
  const std::string id = entry->config.id;
  const bool local = entry->config.is_local();
  if (breakers_ && !breakers_->allow(id)) {
    if (const auto status = breakers_->status(id)) {
      fail_over(call, id, circuit_open(id, *status), /*backend_failure=*/false);
      return;
    }
  }
  if (!local && !registry_.ensure_ready(entry)) {
    // A remote the registry already knows is down (and asks again on its
    // own): not counted against the breaker, but a fallback may answer.
    const std::string why = entry->load_error();
    fail_over(
        call, id,
        unavailable("the model '" + id + "' is unavailable" + (why.empty() ? "" : ": " + why)),
        /*backend_failure=*/false);
    return;
  }
  {
    std::unique_lock lock(call->mutex);
    if (call->ended) return;
    if (call->cancelled) {  // left while its retry waited
      lock.unlock();
      fail(call, cancelled_error());
      return;
    }
    call->entry = std::move(entry);
    call->started = false;
    call->start.model = id;
    call->start.route_reason = reason;
    call->start.local = local;
  }
  if (local) resident_.note_request(id);
  std::shared_ptr<Scheduler::Admission> admission;
  try {
    admission = scheduler_.submit(
        id,
        [this, call](std::unique_ptr<Scheduler::Ticket> ticket) { start(call, std::move(ticket)); },
        [this, call, id](std::exception_ptr error) {
          try {
            std::rethrow_exception(error);
          } catch (const SchedulerError& e) {
            fail(call, ApiError::from_scheduler(e));
          } catch (const CacheError& e) {
            if (e.kind() == CacheError::Kind::kReplaced) {
              retry_replaced(call, id, e);
            } else {
              fail_over(call, id, unavailable(e.what()), /*backend_failure=*/true);  // failed load
            }
          } catch (const std::exception& e) {
            fail(call, internal_error(e));
          }
        });
  } catch (const SchedulerError& e) {
    fail(call, ApiError::from_scheduler(e));
    return;
  } catch (const CacheError& e) {
    fail_over(call, id, unavailable(e.what()), /*backend_failure=*/true);
    return;
  } catch (const std::out_of_range&) {
    // The registry and the scheduler disagree about the fleet: cannot
    // happen while it is held (a reload publishes both in one step), but
    // it would be a clear 503 rather than a 500.
    fail_over(call, id,
              unavailable("the model '" + id + "' was removed from the fleet by a reload"),
              /*backend_failure=*/false);
    return;
  }
  bool withdraw = false;
  {
    std::lock_guard lock(call->mutex);
    call->admission = admission;
    withdraw = call->cancelled && !call->started;
  }
  // The client left while it was being admitted.
  if (withdraw && admission->cancel()) fail(call, cancelled_error());
}

void RequestPipeline::fail_over(const std::shared_ptr<Call::State>& call, const std::string& model,
                                const ApiError& error, bool backend_failure) {
  if (backend_failure && breakers_) breakers_->record_failure(model, error.message);
  // This try's place in the queue, slot and stream are let go (outside the
  // lock: a ticket's release starts the next request).
  std::unique_ptr<Scheduler::Ticket> ticket;
  std::shared_ptr<GenerationStream> stream;
  std::unique_ptr<EnergyShare> energy;
  Registry::EntryPtr next;
  bool cancelled = false;
  {
    std::lock_guard lock(call->mutex);
    if (call->ended) return;
    ticket = std::move(call->ticket);
    stream = std::move(call->stream);
    energy = std::move(call->energy);
    call->admission.reset();
    cancelled = call->cancelled;
    while (!cancelled && next == nullptr && !call->fallbacks.empty() &&
           call->retries < max_retries_) {
      Registry::EntryPtr candidate = std::move(call->fallbacks.front());
      call->fallbacks.pop_front();
      // One whose breaker is open is passed over, not tried.
      if (breakers_ && !breakers_->allow(candidate->config.id)) continue;
      next = std::move(candidate);
      call->retries++;
    }
  }
  if (stream) stream->cancel();
  ticket.reset();
  if (cancelled) {
    fail(call, cancelled_error());
    return;
  }
  if (next == nullptr) {
    if (backend_failure && on_failure_) on_failure_(model, error, /*mid_stream=*/false);
    fail(call, error);
    return;
  }
  const std::string next_id = next->config.id;
  spdlog::warn("failover: '{}' failed before its first token ({}); trying '{}'", model,
               error.message, next_id);
  if (on_retry_) on_retry_(model, next_id);
  // Admitted again off this thread (often an engine's or the loader's), with
  // the fleet held, as a new request would be.
  const std::string reason = "fallback for '" + model + "' (" + error.code + ")";
  delays_.after(std::chrono::milliseconds(0), [this, call, next = std::move(next), reason] {
    try {
      const auto fleet = registry_.hold_fleet();
      attempt(call, next, reason);
    } catch (const std::exception& e) {
      fail(call, internal_error(e));
    }
  });
}

void RequestPipeline::retry_replaced(const std::shared_ptr<Call::State>& call,
                                     const std::string& model, const CacheError& error) {
  // Not the backend's fault: the request goes again, first of its
  // fallbacks, to the engine the reload put in the model's place.
  if (Registry::EntryPtr fresh = registry_.find(model)) {
    std::lock_guard lock(call->mutex);
    call->fallbacks.push_front(std::move(fresh));
  }
  fail_over(call, model, unavailable(error.what()), /*backend_failure=*/false);
}

void RequestPipeline::start(const std::shared_ptr<Call::State>& call,
                            std::unique_ptr<Scheduler::Ticket> ticket) {
  int delay_ms = 0;
  {
    std::lock_guard lock(call->mutex);
    call->started = true;
    if (!call->cancelled) {
      // The engine the cache loaded is the registry's current one for this id
      // (a reload may have replaced the one routed to while it waited).
      if (call->start.local && !call->entry->ready()) {
        if (auto current = registry_.find(call->start.model)) call->entry = current;
      }
      call->start.cache_hit = ticket->cache_hit();
      call->start.queue_ms = ticket->queue_ms() + ticket->load_ms();
      call->ticket = std::move(ticket);
      delay_ms = call->entry->config.inject_delay_ms;
      call->delayed = delay_ms > 0;
    }
  }
  if (ticket) {  // cancelled while it waited: the slot frees now
    ticket.reset();
    fail(call, cancelled_error());
    return;
  }
  if (delay_ms > 0) {
    // Fault injection (models[].inject_delay_ms): a slow model, on purpose.
    delays_.after(std::chrono::milliseconds(delay_ms), [this, call] { run_engine(call); });
    return;
  }
  run_engine(call);
}

void RequestPipeline::run_engine(const std::shared_ptr<Call::State>& call) {
  Registry::EntryPtr entry;
  bool cancelled = false;
  {
    std::lock_guard lock(call->mutex);
    call->delayed = false;
    cancelled = call->cancelled;
    entry = call->entry;
  }
  if (cancelled) {
    fail(call, cancelled_error());
    return;
  }
  std::shared_ptr<GenerationStream> stream;
  try {
    auto energy = std::make_unique<EnergyShare>(energy_);
    stream = entry->engine->submit(call->request.generation);
    std::lock_guard lock(call->mutex);
    if (call->ended) {  // ended meanwhile (cancelled): the generation stops at once
      stream->cancel();
      return;
    }
    call->energy = std::move(energy);
    call->stream = stream;
    call->start.created = unix_now();
    if (call->cancelled) stream->cancel();  // the client left while it started
  } catch (const EngineError& error) {
    if (error.backend_failure()) {
      fail_over(call, entry->config.id, ApiError::from_engine(error), /*backend_failure=*/true);
    } else {
      fail(call, ApiError::from_engine(error));
    }
    return;
  } catch (const std::exception& e) {
    fail(call, internal_error(e));
    return;
  }
  stream->set_listener([this, call] { drain_stream(call); }, !call->request.stream);
}

void RequestPipeline::drain_stream(const std::shared_ptr<Call::State>& call) {
  bool ended = false;
  std::optional<ApiError> retry;  // failed before the client saw anything
  std::string model;
  {
    std::lock_guard lock(call->mutex);
    if (call->ended) return;
    model = call->start.model;
    // The head goes out with the first token (or the end): until then the
    // request can still fail over without the client seeing it.
    const auto tell_started = [&] {
      if (!call->told_started) call->sink->started(call->start);
      call->told_started = true;
    };
    while (auto event = call->stream->try_next()) {
      if (const auto* delta = std::get_if<GenerationStream::Delta>(&*event)) {
        if (call->request.stream) {
          tell_started();
          call->sink->delta(delta->text);
          call->delivered = true;
        }
        continue;
      }
      if (const auto* result = std::get_if<GenerationResult>(&*event)) {
        call->ended = ended = true;
        // The breaker hears of it before the client does, so that a client
        // that saw the answer also sees the breaker closed.
        if (breakers_ && result->finish_reason != "cancelled") breakers_->record_success(model);
        tell_started();
        monitor(*call, *result);
        call->sink->finished(*result);
        break;
      }
      const EngineError& engine_error = std::get<EngineError>(*event);
      const ApiError error = ApiError::from_engine(engine_error);
      if (engine_error.backend_failure() && !call->delivered && !call->cancelled) {
        retry = error;
        break;
      }
      call->ended = ended = true;
      if (engine_error.backend_failure()) {
        // Counted before the client hears of it (as a success is, above).
        if (breakers_) breakers_->record_failure(model, error.message);
        if (on_failure_) on_failure_(model, error, /*mid_stream=*/call->delivered);
      }
      if (on_refusal_) on_refusal_(error);
      call->sink->failed(error);
      break;
    }
  }
  if (retry) {
    fail_over(call, model, *retry, /*backend_failure=*/true);
    return;
  }
  if (ended) end(call);
}

void RequestPipeline::fail(const std::shared_ptr<Call::State>& call, const ApiError& error) {
  {
    std::lock_guard lock(call->mutex);
    if (call->ended) return;
    call->ended = true;
    if (on_refusal_ && error.status != 499) on_refusal_(error);
    call->sink->failed(error);
  }
  end(call);
}

void RequestPipeline::end(const std::shared_ptr<Call::State>& call) {
  // Released outside the call's lock: a ticket's release starts the next
  // request, whose callbacks take that request's own lock.
  std::unique_ptr<Scheduler::Ticket> ticket;
  std::shared_ptr<GenerationStream> stream;
  std::unique_ptr<EnergyShare> energy;
  std::shared_ptr<PipelineSink> sink;
  Registry::EntryPtr entry;
  {
    std::lock_guard lock(call->mutex);
    ticket = std::move(call->ticket);
    stream = std::move(call->stream);
    energy = std::move(call->energy);
    // The sink (and through it the transport's reply, whose client-gone
    // callback holds this call) is let go: nothing is told after the end.
    sink = std::move(call->sink);
    entry = std::move(call->entry);
    call->admission.reset();
  }
  // A reload may have left this call the last owner of its engine, and end()
  // often runs on that engine's own worker thread, which cannot join itself:
  // the entry is let go on the pipeline's own thread instead.
  if (entry)
    delays_.after(std::chrono::milliseconds(0),
                  [entry = std::move(entry)]() mutable { entry.reset(); });
  if (stream) stream->cancel();  // no-op once finished
  ticket.reset();
  {
    std::lock_guard lock(mutex_);
    calls_.erase(call->id);
  }
  idle_.notify_all();
}

void RequestPipeline::Call::cancel() {
  std::shared_ptr<GenerationStream> stream;
  std::shared_ptr<Scheduler::Admission> admission;
  bool delayed = false;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->ended || state_->cancelled) return;
    state_->cancelled = true;
    stream = state_->stream;
    delayed = state_->delayed;
    if (!state_->started) admission = state_->admission;
  }
  // Running: the engine stops at its next token and the stream ends
  // "cancelled", which ends the call. Queued: it leaves the queue now.
  // Started but not yet running: start() or run_engine() sees the flag.
  // Being admitted (no admission yet): admit() sees the flag.
  // Waiting out an injected delay: it ends now (run_engine then does nothing).
  if (stream) {
    stream->cancel();
  } else if (delayed || (admission && admission->cancel())) {
    state_->pipeline->fail(state_, cancelled_error());
  }
}

void RequestPipeline::monitor(const Call::State& call, const GenerationResult& r) {
  RequestMetrics m;
  m.response_id = call.start.response_id;
  m.model = call.start.model;
  m.routed_by = call.start.route_reason;
  m.queue_ms = call.start.local ? call.start.queue_ms : 0;
  m.latency_ms = ms_since(call.request.arrival);
  m.ttft_ms = r.time_to_first_token_ms;
  m.tokens_in = r.prompt_tokens;
  m.tokens_out = r.completion_tokens;
  const double decode_ms = r.total_ms - r.time_to_first_token_ms;
  m.decode_tps = decode_ms > 0 ? 1000.0 * std::max(0, r.completion_tokens - 1) / decode_ms : 0;
  if (call.energy) {
    m.energy_j = call.energy->end();
    m.energy_source = call.energy->source();
  }
  m.memory_bytes = static_cast<double>(resident_.cache().charged_bytes(m.model).value_or(0));
  m.confidence = confidence_from_logprobs(r.token_logprobs);
  m.cancelled = r.finish_reason == "cancelled";
  if (loop_) {
    loop_->on_request(m);
  } else {
    router_.observe(m.model, r);
  }
  if (on_record_) on_record_(m);
}

void RequestPipeline::drain(std::chrono::milliseconds grace) {
  draining_ = true;
  std::unique_lock lock(mutex_);
  idle_.wait_for(lock, grace, [&] { return calls_.empty(); });
  std::vector<std::shared_ptr<Call::State>> left;
  for (auto& [id, weak] : calls_) {
    if (auto state = weak.lock()) left.push_back(std::move(state));
  }
  lock.unlock();
  if (!left.empty()) spdlog::warn("stopping: cancelling {} requests still in flight", left.size());
  for (auto& state : left) Call(state).cancel();
  lock.lock();
  // Cancelled generations end at their next token; a remote one within its
  // read timeout at worst.
  if (!idle_.wait_for(lock, std::chrono::seconds(30), [&] { return calls_.empty(); })) {
    spdlog::error("stopping: {} requests did not end after cancellation", calls_.size());
  }
}

}  // namespace calm
