#include "registry/registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "engines/llama_engine.h"
#include "engines/remote_engine.h"

namespace calm {

namespace {
constexpr int kMaxRemoteWorkers = 256;  // upstream requests at once, at most
}  // namespace

RemoteEngine::Options remote_engine_options(const ModelConfig& config) {
  RemoteEngine::Options options;
  options.id = config.id;
  options.base_url = config.base_url;
  options.upstream_model = config.upstream_model;
  options.api_key = config.api_key;
  options.connect_timeout = config.connect_timeout;
  options.read_timeout = config.read_timeout;
  options.ca_file = config.ca_file;
  options.tls_verify = config.tls_verify;
  options.workers = std::clamp(config.parallel, 1, kMaxRemoteWorkers);
  options.max_tokens_cap = config.max_tokens_cap;
  return options;
}

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
        .max_prompt_tokens = config.max_prompt_tokens,
        .max_tokens_cap = config.max_tokens_cap,
    });
  }
  if (config.backend == ModelConfig::Backend::kNodes) {
    throw std::invalid_argument("model '" + config.id +
                                "' is served by nodes: its engine comes from the node fleet");
  }
  return std::make_unique<RemoteEngine>(remote_engine_options(config));
}

std::string Registry::Entry::load_error() const {
  std::lock_guard lock(mutex_);
  return load_error_;
}

namespace {

Registry::EntryPtr make_entry(const ModelConfig& model, std::shared_ptr<Engine> engine) {
  auto entry = std::make_shared<Registry::Entry>();
  entry->config = model;
  entry->engine = std::move(engine);
  return entry;
}

}  // namespace

bool same_engine(const ModelConfig& a, const ModelConfig& b) {
  return a.id == b.id && a.backend == b.backend && a.gguf_path == b.gguf_path &&
         a.context == b.context && a.parallel == b.parallel && a.threads == b.threads &&
         a.batch == b.batch && a.gpu_layers == b.gpu_layers && a.base_url == b.base_url &&
         a.upstream_model == b.upstream_model && a.api_key == b.api_key &&
         a.connect_timeout == b.connect_timeout && a.read_timeout == b.read_timeout &&
         a.ca_file == b.ca_file && a.tls_verify == b.tls_verify && a.nodes == b.nodes &&
         a.estimated_bytes == b.estimated_bytes;
}

Registry::EntryPtr Registry::Snapshot::find(std::string_view id) const {
  for (const auto& entry : entries) {
    if (entry->config.id == id) return entry;
  }
  return nullptr;
}

Registry::Registry(const FleetConfig& config, NodeEngineFactory node_engines)
    : node_engines_(std::move(node_engines)) {
  auto first = std::make_shared<Snapshot>();
  first->version = 1;
  for (const auto& model : config.models)
    first->entries.push_back(make_entry(model, engine_for(model)));
  snapshot_ = std::move(first);
}

std::unique_ptr<Engine> Registry::engine_for(const ModelConfig& config) const {
  if (config.backend == ModelConfig::Backend::kNodes && node_engines_) return node_engines_(config);
  return make_engine(config);
}

Registry::~Registry() {
  rechecks_.stop();
  unload_all();
}

namespace {

// Loads one entry's engine and records the outcome in load_error.
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
  for (auto& entry : entries()) {
    if (entry->config.is_local()) continue;  // the model cache loads these
    std::lock_guard lock(entry->mutex_);
    entry->last_try_ = std::chrono::steady_clock::now();
    try_load(*entry->engine, entry->load_error_);
  }
}

bool Registry::ensure_ready(const EntryPtr& entry) {
  if (entry->ready()) return true;
  if (entry->config.is_local()) return false;
  {
    std::lock_guard lock(entry->mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (entry->checking_ || now - entry->last_try_ < retry_interval) return entry->ready();
    entry->checking_ = true;
    entry->last_try_ = now;
  }
  // Asked on the registry's thread: a backend that is down can take up to
  // its connect timeout to say so, and the caller is a transport's thread.
  // The entry's lock is not held while it asks: load_error() stays quick.
  rechecks_.after(std::chrono::milliseconds(0), [entry] {
    std::string error;
    try_load(*entry->engine, error);
    std::lock_guard lock(entry->mutex_);
    entry->load_error_ = error;
    entry->checking_ = false;
  });
  return false;
}

void Registry::unload_all() {
  for (auto& entry : entries()) entry->engine->unload();
}

Registry::Staged Registry::stage(const FleetConfig& config) {
  Staged staged;
  ReloadReport& report = staged.report;
  const SnapshotPtr current = snapshot();
  auto next = std::make_shared<Snapshot>();
  next->version = current->version + 1;
  for (const auto& model : config.models) {
    const EntryPtr old = current->find(model.id);
    if (old && same_engine(old->config, model)) {
      EntryPtr entry = make_entry(model, old->engine);
      {
        std::lock_guard lock(old->mutex_);
        entry->load_error_ = old->load_error_;
        entry->last_try_ = old->last_try_;
      }
      const bool changed = old->config.description != model.description ||
                           old->config.examples != model.examples || old->config.tags != model.tags;
      (changed ? report.updated : report.unchanged).push_back(model.id);
      next->entries.push_back(std::move(entry));
      continue;
    }
    // A remote is checked before it is listed (the old engine, if any, serves
    // meanwhile); a local model is loaded by the model cache when needed.
    EntryPtr entry = make_entry(model, engine_for(model));
    entry->last_try_ = std::chrono::steady_clock::now();
    if (!model.is_local()) try_load(*entry->engine, entry->load_error_);
    (old ? report.replaced : report.added).push_back(model.id);
    next->entries.push_back(std::move(entry));
  }
  for (const auto& e : current->entries) {
    if (!next->find(e->config.id)) report.removed.push_back(e->config.id);
  }
  staged.next = std::move(next);
  return staged;
}

uint64_t Registry::publish(const Staged& staged, const std::function<void()>& alongside) {
  SnapshotPtr old;
  {
    std::unique_lock change(fleet_change_);  // waits for admissions in progress
    {
      std::lock_guard lock(mutex_);
      old = std::exchange(snapshot_, staged.next);
    }
    if (alongside) alongside();
  }
  // Entries dropped with `old` unload their engines when their last request
  // ends (a request holds its entry).
  return staged.next->version;
}

Registry::ReloadReport Registry::apply(const FleetConfig& config) {
  Staged staged = stage(config);
  publish(staged);
  return staged.report;
}

std::shared_lock<std::shared_mutex> Registry::hold_fleet() const {
  return std::shared_lock(fleet_change_);
}

Registry::SnapshotPtr Registry::snapshot() const {
  std::lock_guard lock(mutex_);
  return snapshot_;
}

Registry::EntryPtr Registry::find(std::string_view id) const {
  return snapshot()->find(id);
}

bool Registry::is_ready(std::string_view id) const {
  const EntryPtr entry = find(id);
  return entry != nullptr && entry->ready();
}

std::vector<Registry::EntryPtr> Registry::entries() const {
  return snapshot()->entries;
}

}  // namespace calm
