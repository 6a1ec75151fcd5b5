#include "router/router_factory.h"

#include "router/glove_embedder.h"
#include "router/llama_embedder.h"

namespace calm {

std::shared_ptr<SemanticRouter> make_semantic_router(
    const FleetConfig& config, const std::shared_ptr<SemanticRouter>& previous) {
  const RouterConfig& rc = config.router.value();
  std::shared_ptr<Embedder> embedder;
  if (previous && previous->settings().embeddings_source == rc.embeddings) {
    embedder = previous->embedder();
  } else if (rc.embeddings.size() > 5 && rc.embeddings.ends_with(".gguf")) {
    // A GGUF sentence-embedding model (MiniLM, bge, nomic) through llama.cpp.
    // One thread: routing sits in front of inference on the same cores.
    LlamaEmbedder::Options options;
    options.threads = 1;
    embedder = LlamaEmbedder::load(rc.embeddings, options);
  } else {
    embedder = GloveEmbedder::load(rc.embeddings);
  }

  SemanticRouterSettings settings;
  settings.auto_model = rc.auto_model;
  settings.embeddings_source = rc.embeddings;
  settings.window = static_cast<size_t>(rc.window);
  settings.similarity = parse_similarity_mode(rc.similarity).value();
  settings.knn = rc.knn;

  settings.policy.policy = parse_policy(rc.policy).value();
  settings.policy.lambda = rc.lambda;
  settings.policy.lambda_cache = rc.lambda_cache;
  settings.policy.correlation_aware = rc.correlation_aware;

  std::vector<RouteProfileSpec> profiles;
  for (const auto& m : config.models) profiles.push_back({m.id, m.description, m.examples, m.tags});
  return std::make_shared<SemanticRouter>(std::move(profiles), std::move(embedder),
                                          std::move(settings),
                                          previous ? previous->shared_windows() : nullptr);
}

}  // namespace calm
