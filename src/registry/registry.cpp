#include "registry/registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>

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
    });
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
         a.ca_file == b.ca_file && a.tls_verify == b.tls_verify;
}

Registry::Registry(const FleetConfig& config) {
  for (const auto& model : config.models) entries_.push_back(make_entry(model, make_engine(model)));
}

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
  for (auto& entry : entries()) {
    if (entry->config.is_local()) continue;  // the model cache loads these
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
  for (auto& entry : entries()) entry->engine->unload();
}

Registry::ReloadReport Registry::apply(const FleetConfig& config) {
  ReloadReport report;
  const std::vector<EntryPtr> current = entries();
  std::vector<EntryPtr> next;
  for (const auto& model : config.models) {
    const auto old = std::find_if(current.begin(), current.end(),
                                  [&](const EntryPtr& e) { return e->config.id == model.id; });
    if (old != current.end() && same_engine((*old)->config, model)) {
      EntryPtr entry = make_entry(model, (*old)->engine);
      {
        std::lock_guard lock((*old)->mutex_);
        entry->load_error_ = (*old)->load_error_;
        entry->last_try_ = (*old)->last_try_;
      }
      const bool changed = (*old)->config.description != model.description ||
                           (*old)->config.examples != model.examples ||
                           (*old)->config.tags != model.tags;
      (changed ? report.updated : report.unchanged).push_back(model.id);
      next.push_back(std::move(entry));
      continue;
    }
    // A remote is checked before it is listed (the old engine, if any, serves
    // meanwhile); a local model is loaded by the model cache when needed.
    EntryPtr entry = make_entry(model, make_engine(model));
    entry->last_try_ = std::chrono::steady_clock::now();
    if (!model.is_local()) try_load(*entry->engine, entry->load_error_);
    (old == current.end() ? report.added : report.replaced).push_back(model.id);
    next.push_back(std::move(entry));
  }
  for (const auto& e : current) {
    const bool kept = std::any_of(next.begin(), next.end(),
                                  [&](const EntryPtr& n) { return n->config.id == e->config.id; });
    if (!kept) report.removed.push_back(e->config.id);
  }
  std::unique_lock lock(mutex_);
  entries_ = std::move(next);
  // Entries dropped here unload their engines when their last request ends.
  return report;
}

Registry::EntryPtr Registry::find(std::string_view id) const {
  std::shared_lock lock(mutex_);
  for (const auto& entry : entries_) {
    if (entry->config.id == id) return entry;
  }
  return nullptr;
}

bool Registry::is_ready(std::string_view id) const {
  const EntryPtr entry = find(id);
  return entry != nullptr && entry->ready();
}

std::vector<Registry::EntryPtr> Registry::entries() const {
  std::shared_lock lock(mutex_);
  return entries_;
}

}  // namespace calm
