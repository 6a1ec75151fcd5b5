#include "router/semantic_router.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace calm {

const char* similarity_mode_name(SimilarityMode mode) {
  switch (mode) {
    case SimilarityMode::kDescription:
      return "description";
    case SimilarityMode::kCentroid:
      return "centroid";
    case SimilarityMode::kExamples:
      return "examples";
    case SimilarityMode::kCombined:
      return "combined";
    case SimilarityMode::kClassifier:
      return "classifier";
  }
  return "?";
}

std::optional<SimilarityMode> parse_similarity_mode(std::string_view name) {
  for (auto m : {SimilarityMode::kDescription, SimilarityMode::kCentroid, SimilarityMode::kExamples,
                 SimilarityMode::kCombined, SimilarityMode::kClassifier}) {
    if (name == similarity_mode_name(m)) return m;
  }
  return std::nullopt;
}

SemanticRouter::SemanticRouter(std::vector<RouteProfileSpec> profiles,
                               std::shared_ptr<Embedder> embedder, SemanticRouterSettings settings,
                               std::shared_ptr<QosWindows> windows)
    : specs_(std::move(profiles)),
      embedder_(std::move(embedder)),
      settings_(std::move(settings)),
      windows_(windows ? std::move(windows) : std::make_shared<QosWindows>(settings_.window)),
      policy_(settings_.policy) {
  profiles_.reserve(specs_.size());
  for (const auto& spec : specs_) {
    Profile p;
    p.description = embedder_->embed(spec.description);
    for (const auto& example : spec.examples) {
      auto v = embedder_->embed(example);
      if (std::any_of(v.begin(), v.end(), [](float x) { return x != 0.0f; }))
        p.examples.push_back(std::move(v));
    }
    if (!p.examples.empty()) {
      p.centroid.assign(p.examples.front().size(), 0.0f);
      for (const auto& e : p.examples) {
        for (size_t d = 0; d < e.size(); ++d) p.centroid[d] += e[d];
      }
    }
    profiles_.push_back(std::move(p));
  }
  if (settings_.similarity == SimilarityMode::kClassifier) {
    std::vector<std::vector<float>> samples;
    std::vector<size_t> labels;
    size_t classes = 0;
    for (const auto& p : profiles_) {
      classifier_label_.push_back(p.examples.empty() ? -1 : static_cast<int>(classes));
      if (p.examples.empty()) continue;
      for (const auto& e : p.examples) {
        samples.push_back(e);
        labels.push_back(classes);
      }
      ++classes;
    }
    if (classes >= 2)
      classifier_ = ExampleClassifier::train(samples, labels, classes, settings_.classifier);
  }
}

std::vector<double> SemanticRouter::classifier_similarities(const std::vector<float>& q) const {
  std::vector<double> out(profiles_.size(), -1.0);
  if (!classifier_) return out;
  const std::vector<double> p = classifier_->probabilities(q);
  for (size_t i = 0; i < profiles_.size(); ++i) {
    if (classifier_label_[i] >= 0) out[i] = p[static_cast<size_t>(classifier_label_[i])];
  }
  return out;
}

double SemanticRouter::similarity(const std::vector<float>& q, const Profile& p) const {
  const double by_description = cosine(q, p.description);
  if (settings_.similarity == SimilarityMode::kDescription || p.examples.empty())
    return by_description;
  if (settings_.similarity == SimilarityMode::kCentroid) return cosine(q, p.centroid);

  // Mean of the k nearest examples: robust to a model whose examples spread
  // over several sub-topics, where one centroid would sit between them.
  std::vector<double> sims;
  sims.reserve(p.examples.size());
  for (const auto& e : p.examples) sims.push_back(cosine(q, e));
  const size_t k = std::min(sims.size(), static_cast<size_t>(std::max(1, settings_.knn)));
  std::partial_sort(sims.begin(), sims.begin() + static_cast<long>(k), sims.end(),
                    std::greater<>());
  double by_examples = 0;
  for (size_t i = 0; i < k; ++i) by_examples += sims[i];
  by_examples /= static_cast<double>(k);

  if (settings_.similarity == SimilarityMode::kExamples) return by_examples;
  return std::max(by_description, by_examples);
}

Ranking SemanticRouter::rank(const std::string& query,
                             const std::function<bool(const std::string&)>& loaded) const {
  Ranking ranking;
  ranking.query = query;
  const std::vector<float> q = embedder_->embed(query);
  ranking.query_known = std::any_of(q.begin(), q.end(), [](float x) { return x != 0.0f; });

  std::vector<std::string> ids;
  ids.reserve(specs_.size());
  for (const auto& s : specs_) ids.push_back(s.id);
  const auto terms = windows_->terms(ids);

  const std::vector<double> by_classifier =
      ranking.query_known ? classifier_similarities(q) : std::vector<double>(specs_.size(), -1.0);
  std::vector<CandidateInput> inputs;
  inputs.reserve(specs_.size());
  for (size_t i = 0; i < specs_.size(); ++i) {
    double sim = 0.0;
    if (ranking.query_known)
      sim = by_classifier[i] >= 0 ? by_classifier[i] : similarity(q, profiles_[i]);
    inputs.push_back({specs_[i].id, sim, terms[i], loaded ? loaded(specs_[i].id) : false});
  }
  const PolicySettings settings = policy();
  ranking.policy = settings.policy;
  ranking.candidates = rank_candidates(
      settings, inputs, [this](Metric a, Metric b) { return windows_->spearman(a, b); });
  return ranking;
}

std::shared_ptr<SemanticRouter> SemanticRouterSlot::get() const {
  std::lock_guard lock(mutex_);
  return router_;
}

void SemanticRouterSlot::set(std::shared_ptr<SemanticRouter> router) {
  std::lock_guard lock(mutex_);
  router_ = std::move(router);
}

void SemanticRouter::set_policy(const PolicySettings& policy) {
  std::lock_guard lock(policy_mutex_);
  policy_ = policy;
}

PolicySettings SemanticRouter::policy() const {
  std::lock_guard lock(policy_mutex_);
  return policy_;
}

std::string SemanticRouter::query_text(const GenerationRequest& request) {
  if (!request.is_chat()) return *request.prompt;
  for (auto it = request.messages.rbegin(); it != request.messages.rend(); ++it) {
    if (it->role == "user") return it->content;
  }
  return request.messages.empty() ? "" : request.messages.back().content;
}

double confidence_from_logprobs(const std::vector<float>& logprobs) {
  if (logprobs.empty()) return 1.0;
  double sum = 0;
  for (float lp : logprobs) sum += lp;
  return std::exp(sum / static_cast<double>(logprobs.size()));
}

void AutoRouter::observe(const std::string& model_id, const GenerationResult& result) {
  if (result.finish_reason == "cancelled") return;  // a client that left says nothing of the model
  Observation o;
  o.latency_ms = result.total_ms;
  o.confidence = confidence_from_logprobs(result.token_logprobs);
  slot_->get()->windows().record(model_id, o);
}

std::optional<RouteDecision> AutoRouter::route(const std::string& requested_model,
                                               const GenerationRequest& request) {
  const std::shared_ptr<SemanticRouter> semantic = slot_->get();
  if (requested_model != semantic->settings().auto_model) {
    Registry::EntryPtr entry = registry_.find(requested_model);
    if (entry == nullptr) return std::nullopt;
    auto fallbacks = listed_fallbacks(registry_, *entry);
    return RouteDecision{std::move(entry), "named in the request", std::move(fallbacks)};
  }
  const Ranking ranking =
      semantic->rank(SemanticRouter::query_text(request),
                     [this](const std::string& id) { return registry_.is_ready(id); });
  // The best candidate still in the registry: during a reload the router
  // can briefly know a model that the registry has just dropped.
  std::optional<RouteDecision> decision;
  std::vector<Registry::EntryPtr> next;  // the candidates after the best, in rank order
  for (const ScoredCandidate& candidate : ranking.candidates) {
    Registry::EntryPtr entry = registry_.find(candidate.id);
    if (entry == nullptr) continue;
    if (decision) {
      next.push_back(std::move(entry));
      continue;
    }
    std::ostringstream reason;
    reason << policy_name(ranking.policy) << " score " << candidate.score << " (similarity "
           << candidate.similarity << (ranking.query_known ? "" : ", no known word in the query")
           << ")";
    decision = RouteDecision{std::move(entry), reason.str(), {}};
  }
  if (decision) {
    decision->fallbacks = decision->entry->config.fallbacks.empty()
                              ? std::move(next)
                              : listed_fallbacks(registry_, *decision->entry);
  }
  return decision;
}

}  // namespace calm
