#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <filesystem>
#include <iostream>

#include "app/commands.h"
#include "app/fleet_reloader.h"
#include "auth/api_keys.h"
#include "config/fleet_config.h"
#include "failover/circuit_breakers.h"
#include "knowledge/knowledge_store.h"
#include "knowledge/leader_lock.h"
#include "mapek/mape_loop.h"
#include "meters/energy_attributor.h"
#include "meters/make_energy_meter.h"
#include "nodes/node_fleet.h"
#include "nodes/placed_engine.h"
#include "pipeline/request_pipeline.h"
#include "registry/registry.h"
#include "router/router.h"
#include "router/router_factory.h"
#include "server/http_server.h"
#include "server/server_metrics.h"
#include "util/url.h"

namespace calm {
namespace {

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

// SIGINT, SIGTERM and SIGHUP are blocked in every thread (this runs before
// any thread starts) and awaited by the main thread (wait_for_stop), so a
// signal never interrupts a decode.
void block_stop_signals() {
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// Serves until SIGINT or SIGTERM; SIGHUP reloads the fleet file meanwhile.
void wait_for_stop(FleetReloader& reloader) {
  const sigset_t set = stop_signals();
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig != SIGHUP) {
      spdlog::info("{}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      return;
    }
    try {
      reloader.reload();
    } catch (const std::exception& e) {
      spdlog::error("reload failed, the fleet is unchanged: {}", e.what());
    }
  }
}

}  // namespace

Command add_serve_command(CLI::App& app) {
  struct Args {
    std::string config;
    std::string host;
    int port = -1;
    std::string log_level = "info";
    std::string knowledge;
    bool insecure = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd =
      app.add_subcommand("serve", "Serve a fleet of models behind one OpenAI-compatible endpoint");
  cmd->add_option("-c,--config", args->config, "Fleet file (YAML): models and server settings")
      ->required();
  cmd->add_option("--host", args->host, "Bind address (overrides server.host)");
  cmd->add_option("--port", args->port, "Port (overrides server.port; 0 picks a free one)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--knowledge", args->knowledge,
                  "SQLite knowledge file, or a postgresql:// URL that replicas share (overrides "
                  "loop.knowledge; every request is recorded in it even when the loop is off "
                  "or absent)");
  cmd->add_flag("--insecure", args->insecure,
                "Listen on an address other than loopback with no API keys (server.insecure)");
  cmd->add_option("--log-level", args->log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

  return [args] {
    spdlog::set_level(spdlog::level::from_str(args->log_level));
    std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up is an error return, not a kill
    // Likewise a file past the process's size limit (RLIMIT_FSIZE): the
    // knowledge store's write fails and is counted, calm serves on.
    std::signal(SIGXFSZ, SIG_IGN);
    block_stop_signals();

    FleetConfig config;
    try {
      config = load_fleet_config(args->config);
    } catch (const ConfigError& e) {
      std::cerr << "calm serve: " << e.what() << "\n";
      return 2;
    }
    if (!args->host.empty()) config.server.host = args->host;
    if (args->port >= 0) config.server.port = args->port;
    config.server.insecure = config.server.insecure || args->insecure;
    if (const auto refusal =
            exposure_refusal(config.server.host, config.auth, config.server.insecure)) {
      std::cerr << "calm serve: " << *refusal << "\n";
      return 2;
    }
    ApiKeys keys(config.auth);

    // The nodes, before the registry: their engines need them, and they must
    // outlive those engines (destroyed in the reverse order).
    std::unique_ptr<NodeFleet> nodes;
    Registry::NodeEngineFactory node_engines;
    if (!config.nodes.empty()) {
      try {
        nodes = std::make_unique<NodeFleet>(config);
      } catch (const std::exception& e) {
        std::cerr << "calm serve: " << config.source << ": nodes: " << e.what() << "\n";
        return 2;
      }
      node_engines = [&nodes](const ModelConfig& model) -> std::unique_ptr<Engine> {
        return std::make_unique<PlacedEngine>(*nodes, model);
      };
    }
    Registry registry(config, node_engines);
    std::unique_ptr<ResidentSet> resident;
    try {
      resident = std::make_unique<ResidentSet>(config, registry);
    } catch (const ConfigError& e) {
      std::cerr << "calm serve: " << e.what() << "\n";
      return 2;
    }
    Scheduler scheduler({.policy = config.scheduler.policy,
                         .max_wait = config.scheduler.max_wait,
                         .max_queue = config.scheduler.max_queue,
                         .queue_timeout = config.scheduler.queue_timeout,
                         .max_active_models = config.scheduler.max_active_models},
                        resident->cache(), scheduler_slots(config));
    std::shared_ptr<SemanticRouterSlot> semantic;
    std::unique_ptr<Router> router;
    if (config.router) {
      try {
        semantic = std::make_shared<SemanticRouterSlot>(make_semantic_router(config));
      } catch (const std::exception& e) {
        std::cerr << "calm serve: " << config.source << ": router.embeddings: " << e.what() << "\n";
        return 2;
      }
      router = std::make_unique<AutoRouter>(registry, semantic);
      spdlog::info("routing `model: {}` ({}, {} similarity)", config.router->auto_model,
                   config.router->policy, config.router->similarity);
    } else {
      router = std::make_unique<ModelNameRouter>(registry);
    }
    // The MAPE-K loop. Without a `loop:` section it still monitors (energy
    // and memory reach the QoS windows) but never plans.
    LoopConfig loop_config;
    loop_config.enabled = false;
    if (config.loop) loop_config = *config.loop;
    // The loop records every request whenever it has a knowledge file,
    // planning or not (`calm bench suite` reads them back).
    if (!args->knowledge.empty()) {
      loop_config.knowledge = is_postgres_url(args->knowledge)
                                  ? args->knowledge
                                  : std::filesystem::absolute(args->knowledge).string();
    }
    std::unique_ptr<EnergyMeter> meter;
    try {
      EnergyMeterOptions meter_options;
      meter_options.prefer = loop_config.energy_meter;
      meter_options.watts_per_core = loop_config.watts_per_core;
      meter = make_energy_meter(meter_options);
    } catch (const std::exception& e) {
      std::cerr << "calm serve: " << config.source << ": loop.energy_meter: " << e.what() << "\n";
      return 2;
    }
    EnergyAttributor energy(*meter);
    if (config.knowledge.keep_text && loop_config.knowledge.empty()) {
      std::cerr << "calm serve: " << config.source
                << ": knowledge.keep_text: needs a knowledge file to keep the text in "
                   "(loop.knowledge, or --knowledge)\n";
      return 2;
    }
    std::shared_ptr<KnowledgeStore> knowledge;
    // Replicas sharing a PostgreSQL store: the lock that says which leads
    // placement (knowledge/leader_lock.h).
    std::unique_ptr<LeaderLock> leader;
    if (!loop_config.knowledge.empty()) {
      try {
        KnowledgeStore::Options knowledge_options;
        knowledge_options.keep_text = config.knowledge.keep_text;
        knowledge_options.replica = config.knowledge.replica;
        knowledge = std::make_shared<KnowledgeStore>(loop_config.knowledge, knowledge_options);
      } catch (const std::exception& e) {
        std::cerr << "calm serve: " << config.source << ": loop.knowledge: " << e.what() << "\n";
        return 2;
      }
      if (knowledge->shared()) {
        leader = std::make_unique<LeaderLock>(loop_config.knowledge, knowledge->replica());
      }
    }
    MapeLoop loop(loop_config, semantic, knowledge, &scheduler, resident.get());
    if (leader) loop.set_leader(leader.get());
    if (nodes) loop.set_placement(&nodes->placement());  // plans each model's replicas
    // A model whose backend keeps failing is taken out for a cooldown, then
    // health-checked: a remote is asked its /health, a local model (whose
    // failures are loads) gets a trial request.
    CircuitBreakers breakers(
        {.failures = config.failover.breaker_failures,
         .cooldown = config.failover.breaker_cooldown},
        [&registry](const std::string& model, std::string& detail) {
          const Registry::EntryPtr entry = registry.find(model);
          if (entry == nullptr || entry->config.is_local()) return true;
          const EngineHealth health = entry->engine->health();
          detail = health.detail;
          return health.ok;
        },
        [&loop](const CircuitBreakers::Change& change) {
          loop.log_adaptation("breaker", "model '" + change.model + "': " + change.reason,
                              {{"model", change.model},
                               {"failures_in_a_row", change.status.failures_in_a_row},
                               {"retry_in_ms", change.status.retry_in.count()}},
                              {{"state", CircuitBreakers::state_name(change.from)}},
                              {{"state", CircuitBreakers::state_name(change.to)}});
        });
    // A node that goes down or comes back changes where models can go: an
    // adaptation, logged like the loop's. Reset before the loop is destroyed
    // (declared after it), so the fleet's monitor never calls a loop that is gone.
    struct NodeListenerReset {
      NodeFleet* fleet;
      ~NodeListenerReset() {
        if (fleet) fleet->set_on_health_change(nullptr);
      }
    } node_listener{nodes.get()};
    if (nodes) {
      nodes->set_on_health_change([&loop](const NodeFleet::HealthChange& change) {
        loop.log_adaptation(
            "node",
            "node '" + change.node + "' " +
                (change.healthy ? "is back: placement uses it again"
                                : "is down: out of placement (" + change.detail + ")"),
            {{"node", change.node}, {"detail", change.detail}}, {{"healthy", !change.healthy}},
            {{"healthy", change.healthy}});
      });
    }
    ServerMetrics metrics(resident->cache(), scheduler, loop, &breakers, knowledge.get());
    if (nodes) metrics.add_nodes(*nodes);
    spdlog::info("energy: {}; MAPE-K loop {}", meter->source(),
                 loop_config.enabled ? "on" : "off (monitoring only)");
    if (knowledge) {
      spdlog::info("knowledge: {}{} ({})", knowledge->name(),
                   knowledge->shared() ? ", shared as replica '" + knowledge->replica() + "'" : "",
                   config.knowledge.keep_text ? "keeps prompt and answer text (knowledge.keep_text)"
                                              : "metrics only, no prompt or answer text");
    }

    RequestPipeline pipeline(
        {.registry = registry,
         .router = *router,
         .resident = *resident,
         .scheduler = scheduler,
         .semantic = semantic,
         .loop = &loop,
         .energy = &energy,
         .on_record = [&metrics](const RequestMetrics& m) { metrics.record(m); },
         .on_refusal = [&metrics](const ApiError& e) { metrics.record_refusal(e.status, e.code); },
         .breakers = &breakers,
         .max_retries = config.failover.max_retries,
         .on_retry = [&metrics](const std::string& failed,
                                const std::string&) { metrics.record_retry(failed); },
         .on_failure = [&metrics](const std::string& model, const ApiError&,
                                  bool mid_stream) { metrics.record_failure(model, mid_stream); }});
    HttpServer server(
        config.server,
        {registry, *resident, scheduler, pipeline, semantic, &loop, &metrics, &keys, &breakers,
         config.knowledge.keep_text ? knowledge.get() : nullptr, nodes.get()});
    FleetReloader reloader(args->config, registry, *resident, scheduler, semantic,
                           {.keys = &keys,
                            .host = config.server.host,
                            .insecure = config.server.insecure,
                            .placed_layout = placed_layout(config)});
    server.set_reload_handler([&reloader] { return reloader.reload(); });
    int port = 0;
    try {
      port = server.bind();
    } catch (const ConfigError& e) {
      std::cerr << "calm serve: " << config.source << ": " << e.what() << "\n";
      return 2;
    } catch (const std::exception& e) {
      std::cerr << "calm serve: " << e.what() << "\n";
      return 2;
    }
    // Start-up, bottom-up: the nodes, the models, the loop, then the HTTP threads.
    if (nodes) {
      // A replica that does not lead placement leaves the nodes as they are:
      // what is loaded there may be the leader's.
      const bool leads = !leader || leader->refresh();
      nodes->start(/*forget_earlier=*/leads);
      spdlog::info("nodes: {} ({} eviction on each)", nodes->node_count(), config.cache.eviction);
    }
    registry.load_all();
    resident->preload();
    loop.start();
    server.start();
    if (config.auth.enabled()) {
      spdlog::info("API keys: {} (public endpoints: {})", config.auth.keys.size(),
                   fmt::join(config.auth.public_endpoints, ", "));
    } else if (!is_loopback_host(config.server.host)) {
      spdlog::warn("no API keys and listening on {} (--insecure): every endpoint is open",
                   config.server.host);
    }
    const auto budget = resident->cache().stats().budget_bytes;
    spdlog::info("model cache: {} budget, {} eviction; scheduler: {}",
                 config.cache.budget_bytes ? fmt::format("{:.1f} MiB", budget / 1048576.0)
                                           : std::string("no"),
                 config.cache.eviction, config.scheduler.policy);
    // Tests and scripts read this line to learn the port.
    std::cout << "calm: listening on " << (config.server.tls ? "https://" : "http://")
              << config.server.host << ":" << port << std::endl;

    wait_for_stop(reloader);

    // Shutdown, top-down. New requests get 503 and /health says "stopping"
    // while the requests in flight finish (up to the grace); then the HTTP
    // threads, the loop, the cache's worker, the queue and the models stop,
    // in that order.
    pipeline.drain(config.server.drain_grace);
    server.stop();
    loop.stop();
    resident->stop();
    scheduler.stop();
    registry.unload_all();
    spdlog::info("stopped");
    return 0;
  };
}

}  // namespace calm
