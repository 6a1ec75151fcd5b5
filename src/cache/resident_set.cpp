#include "cache/resident_set.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "engines/gguf_info.h"
#include "engines/llama_backend.h"
#include "engines/llama_engine.h"
#include "util/process_memory.h"

namespace calm {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> local_ids(const FleetConfig& config) {
  std::vector<std::string> ids;
  for (const auto& m : config.models) {
    if (m.is_local()) ids.push_back(m.id);
  }
  return ids;
}

std::vector<std::string> preload_ids(const FleetConfig& config) {
  std::vector<std::string> ids;
  for (const auto& m : config.models) {
    // With no budget every model fits, so load them all at start.
    if (m.is_local() && m.preload.value_or(config.cache.budget_bytes == 0)) ids.push_back(m.id);
  }
  return ids;
}

}  // namespace

std::vector<ModelCache::ModelSpec> ResidentSet::specs_for(const FleetConfig& config) const {
  std::vector<ModelCache::ModelSpec> specs;
  for (const auto& m : config.models) {
    if (!m.is_local()) continue;
    uint64_t estimate = 0;
    try {
      estimate = estimate_memory(read_gguf_info(m.gguf_path), m.context, m.parallel).total();
    } catch (const std::exception& e) {
      // A corrupt file still gets a place: its load fails with llama.cpp's reason.
      spdlog::warn("model '{}': no memory estimate ({}); assuming its file size", m.id, e.what());
      std::error_code ec;
      estimate = std::filesystem::file_size(m.gguf_path, ec);
      if (ec) estimate = 1;
    }
    specs.push_back({m.id, std::max<uint64_t>(estimate, 1), m.pinned});
  }
  return specs;
}

ResidentSet::ResidentSet(const FleetConfig& config, Registry& registry) : registry_(registry) {
  return_large_frees_to_the_kernel();
  // Once, at start: its cost is the process's (llama_backend.h).
  ensure_llama_backend();
  auto specs = specs_for(config);
  ModelCache::Options options;
  options.budget_bytes = config.cache.budget_bytes;  // 0: no limit
  options.max_resident = config.cache.max_resident;
  options.eviction = config.cache.eviction;
  try {
    cache_ = std::make_unique<ModelCache>(
        options, std::move(specs), [this](const std::string& id) { return load_measured(id); },
        [this](const std::string& id) { unload(id); });
  } catch (const CacheError& e) {
    throw ConfigError(config.source + ": cache.budget: " + e.what());
  }
  options_ = config.cache;
  preload_ = preload_ids(config);
  local_ids_ = local_ids(config);
  worker_ = std::thread([this] { background(); });
}

ResidentSet::~ResidentSet() {
  stop();
}

void ResidentSet::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

ModelCache::LoadResult ResidentSet::load_measured(const std::string& id) {
  const Registry::EntryPtr entry = registry_.find(id);
  if (!entry) throw std::runtime_error("no longer in the fleet");
  if (entry->config.inject_load_delay_ms > 0) {
    // Fault injection (models[].inject_load_delay_ms): a slow load, on
    // purpose, that stop() cuts short so that a shutdown never waits it out.
    std::unique_lock lock(mutex_);
    if (wake_.wait_for(lock, std::chrono::milliseconds(entry->config.inject_load_delay_ms),
                       [&] { return stopping_; })) {
      throw std::runtime_error("the server is stopping");
    }
  }
  std::lock_guard lock(memory_mutex_);
  const uint64_t before = process_rss_bytes();
  entry->engine->load();  // throws EngineError with llama.cpp's reason
  const uint64_t after = process_rss_bytes();
  const uint64_t rss_delta = after > before ? after - before : 0;
  // The charge: what llama.cpp allocated. 0 (keep the estimate) for an
  // engine that cannot say.
  const auto* llama = dynamic_cast<const LlamaEngine*>(entry->engine.get());
  const std::optional<LlamaMemory> memory = llama ? llama->memory() : std::nullopt;
  const uint64_t charge = memory ? memory->total() : 0;
  note_llama_model_load(rss_delta, charge);
  if (memory) {
    spdlog::info(
        "model '{}': charged {:.2f} MiB (weights {:.2f}, KV cache {:.2f}, compute {:.2f}{}); "
        "RSS grew {:.2f} MiB ({:.1f} -> {:.1f} MiB), a cross-check only",
        id, charge / 1048576.0, memory->weights / 1048576.0, memory->kv / 1048576.0,
        memory->compute / 1048576.0,
        memory->device > 0
            ? fmt::format("; {:.2f} MiB on the GPU, its free memory fell {:.2f} MiB",
                          memory->device / 1048576.0, memory->device_measured / 1048576.0)
            : "",
        rss_delta / 1048576.0, before / 1048576.0, after / 1048576.0);
  }
  return {charge, rss_delta};
}

uint64_t ResidentSet::backend_overhead_bytes() const {
  return llama_backend_overhead().total();
}

void ResidentSet::unload(const std::string& id) {
  const Registry::EntryPtr entry = registry_.find(id);
  if (!entry) return;  // gone from the fleet: its engine unloads when its last request ends
  std::lock_guard lock(memory_mutex_);
  entry->engine->unload();
  // The model's small allocations (vocabulary, metadata) were made on the
  // thread that loaded it, in that thread's malloc arena; freed, they would
  // stay there and the process would creep past the budget swap by swap.
  release_free_memory();
}

void ResidentSet::preload() {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mutex_);
    ids = preload_;
  }
  for (const auto& id : ids) {
    try {
      cache_->acquire(id, 0ms);
    } catch (const CacheError& e) {
      spdlog::error("preload: {}", e.what());
    }
  }
}

ResidentSet::Plan ResidentSet::plan(const FleetConfig& config) const {
  Plan plan{specs_for(config), config.cache, preload_ids(config), local_ids(config)};
  try {
    cache_->check_fits(plan.specs);
  } catch (const CacheError& e) {
    throw ConfigError(config.source + ": cache.budget: " + e.what());
  }
  return plan;
}

void ResidentSet::prepare(const Plan& plan) {
  cache_->add_models(plan.specs);
}

void ResidentSet::apply(const Plan& plan, const Registry::ReloadReport& report) {
  cache_->update_models(plan.specs, report.replaced);
  std::lock_guard lock(mutex_);
  options_ = plan.options;
  preload_ = plan.preload;
  local_ids_ = plan.local_ids;
}

void ResidentSet::preload_new(const Registry::ReloadReport& report) {
  std::vector<std::string> fresh;
  {
    std::lock_guard lock(mutex_);
    for (const auto& id : preload_) {
      const bool is_new =
          std::find(report.added.begin(), report.added.end(), id) != report.added.end() ||
          std::find(report.replaced.begin(), report.replaced.end(), id) != report.replaced.end();
      if (is_new) fresh.push_back(id);
    }
  }
  for (const auto& id : fresh) {
    try {
      cache_->acquire(id, 0ms);
    } catch (const CacheError& e) {
      spdlog::error("reload: {}", e.what());
    }
  }
}

void ResidentSet::set_prefetch(bool on) {
  std::lock_guard lock(mutex_);
  options_.prefetch = on;
}

bool ResidentSet::prefetch() const {
  std::lock_guard lock(mutex_);
  return options_.prefetch;
}

bool ResidentSet::manages(const std::string& id) const {
  std::lock_guard lock(mutex_);
  return std::find(local_ids_.begin(), local_ids_.end(), id) != local_ids_.end();
}

std::string ResidentSet::load_error(const std::string& id) const {
  for (const auto& m : cache_->stats().models) {
    if (m.id == id) return m.state == "resident" ? "" : m.last_error;
  }
  return "";
}

void ResidentSet::note_request(const std::string& id) {
  std::lock_guard lock(mutex_);
  predictor_.observe(id);
  if (!options_.prefetch) return;
  const auto next = predictor_.predict_after(id);
  if (next && *next != id) {
    prefetches_.push_back(*next);
    wake_.notify_all();
  }
}

void ResidentSet::background() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, 1s, [&] { return stopping_ || !prefetches_.empty(); });
    if (stopping_) break;
    std::deque<std::string> prefetches;
    prefetches.swap(prefetches_);
    const auto idle = options_.idle_unload;
    lock.unlock();
    for (const auto& id : prefetches) {
      try {
        if (auto lease = cache_->try_prefetch(id)) {
          spdlog::info("prefetching model '{}'", id);
          lease->wait();
        }
      } catch (const CacheError& e) {
        spdlog::warn("prefetch: {}", e.what());
      }
    }
    if (idle.count() > 0) {
      for (const auto& id : cache_->unload_idle(idle)) {
        spdlog::info("model '{}' unloaded after {} s idle", id, idle.count() / 1000.0);
      }
    }
    lock.lock();
  }
}

}  // namespace calm
