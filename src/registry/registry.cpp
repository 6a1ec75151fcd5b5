#include "registry/registry.h"

#include <spdlog/spdlog.h>

#include "engines/llama_engine.h"
#include "engines/remote_engine.h"

namespace calm {

std::unique_ptr<Engine> make_engine(const ModelConfig& config) {
  if (config.is_local()) {
    return std::make_unique<LlamaEngine>(LlamaEngine::Options{
        .id = config.id,
        .gguf_path = config.gguf_path,
        .context = config.context,
        .parallel = config.parallel,
        .threads = config.threads,
        .batch = config.batch,
        .gpu_layers = config.gpu_layers,
    });
  }
  RemoteEngine::Options options;
  options.id = config.id;
  options.base_url = config.base_url;
  options.upstream_model = config.upstream_model;
  options.api_key = config.api_key;
  options.connect_timeout = config.connect_timeout;
  options.read_timeout = config.read_timeout;
  return std::make_unique<RemoteEngine>(std::move(options));
}

std::string Registry::Entry::load_error() const {
  std::lock_guard lock(mutex_);
  return load_error_;
}

Registry::Registry(const FleetConfig& config) {
  for (const auto& model : config.models) {
    auto entry = std::make_unique<Entry>();
    entry->config = model;
    entry->engine = make_engine(model);
    entries_.push_back(std::move(entry));
  }
}

Registry::Registry(std::vector<std::unique_ptr<Entry>> entries) : entries_(std::move(entries)) {}

Registry::~Registry() {
  unload_all();
}

namespace {

// Loads one entry's engine and records the outcome. Caller holds entry's mutex.
void try_load(Engine& engine, std::string& load_error) {
  try {
    engine.load();
    load_error.clear();
  } catch (const EngineError& e) {
    spdlog::error("{}", e.what());
    load_error = e.what();
  }
}

}  // namespace

void Registry::load_all() {
  for (auto& entry : entries_) {
    std::lock_guard lock(entry->mutex_);
    entry->last_try_ = std::chrono::steady_clock::now();
    try_load(*entry->engine, entry->load_error_);
  }
}

bool Registry::ensure_ready(Entry& entry) {
  if (entry.ready()) return true;
  if (entry.config.is_local()) return false;
  std::lock_guard lock(entry.mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (entry.ready() || now - entry.last_try_ < retry_interval) return entry.ready();
  entry.last_try_ = now;
  try_load(*entry.engine, entry.load_error_);
  return entry.ready();
}

void Registry::unload_all() {
  for (auto& entry : entries_) entry->engine->unload();
}

Registry::Entry* Registry::find(std::string_view id) const {
  for (const auto& entry : entries_) {
    if (entry->config.id == id) return entry.get();
  }
  return nullptr;
}

}  // namespace calm
