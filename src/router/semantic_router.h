// SemanticRouter: chooses the model for a request by meaning and by QoS (the
// paper's SORA), and explains every choice.
//
//   query text ──embed──► q
//   for each model m:  sim(q, m)      description, examples (k nearest), or both
//                      dyn(m)         rolling QoS window means (qos_window.h)
//                      score(q, m)    the policy's formula (scoring.h)
//   ranking, best first ──► the first model answers
//
// The query text is the last user message of a chat (the turn being
// answered), or the prompt of a completion. When the embedder knows none of
// its words, every similarity is 0 and the QoS term alone decides; ties go to
// the model listed first in the fleet file.
//
// A request that names a real model id bypasses routing; only the configured
// auto name ("auto" by default) is routed.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "router/embedder.h"
#include "router/example_classifier.h"
#include "router/qos_window.h"
#include "router/router.h"
#include "router/scoring.h"

namespace calm {

// What the router knows of one model (from the fleet file).
struct RouteProfileSpec {
  std::string id;
  std::string description;
  std::vector<std::string> examples;
  std::vector<std::string> tags;  // e.g. the domain; route-eval matches on id or tag
};

// description: cosine to the description (the paper); centroid: cosine to
// the mean of the model's examples; examples: mean cosine of the k nearest
// examples; combined: the larger of description and examples; classifier: a
// softmax classifier trained on all models' examples (its probability).
enum class SimilarityMode { kDescription, kCentroid, kExamples, kCombined, kClassifier };
const char* similarity_mode_name(SimilarityMode mode);
std::optional<SimilarityMode> parse_similarity_mode(std::string_view name);

struct SemanticRouterSettings {
  std::string auto_model = "auto";
  std::string embeddings_source;  // where the embedder came from (reloads reuse it)
  PolicySettings policy;
  size_t window = 100;
  SimilarityMode similarity = SimilarityMode::kCombined;
  ExampleClassifier::Options classifier;
  int knn = 5;  // nearest examples averaged
};

struct Ranking {
  std::string query;
  bool query_known = true;  // false: no word of the query is known to the embedder
  RoutingPolicy policy = RoutingPolicy::kProConfidence;
  std::vector<ScoredCandidate> candidates;  // best first
};

class SemanticRouter {
 public:
  // Embeds every description and example once. Thread-safe afterwards.
  // windows: the QoS windows to keep (a reload passes the previous router's),
  // or null for fresh ones.
  SemanticRouter(std::vector<RouteProfileSpec> profiles, std::shared_ptr<Embedder> embedder,
                 SemanticRouterSettings settings, std::shared_ptr<QosWindows> windows = nullptr);

  // Thread-safe. `loaded(id)` tells pro-cache which models are resident.
  Ranking rank(const std::string& query,
               const std::function<bool(const std::string&)>& loaded) const;

  // Thread-safe: the MAPE-K loop changes these while serving.
  void set_policy(const PolicySettings& policy);
  PolicySettings policy() const;

  QosWindows& windows() { return *windows_; }
  std::shared_ptr<QosWindows> shared_windows() const { return windows_; }
  std::shared_ptr<Embedder> embedder() const { return embedder_; }
  const SemanticRouterSettings& settings() const { return settings_; }
  const std::vector<RouteProfileSpec>& profiles() const { return specs_; }

  // The text a request is routed by.
  static std::string query_text(const GenerationRequest& request);

 private:
  struct Profile {
    std::vector<float> description;
    std::vector<std::vector<float>> examples;
    std::vector<float> centroid;  // mean of the examples (cosine ignores its length)
  };
  double similarity(const std::vector<float>& q, const Profile& p) const;
  // The classifier's probability per profile (-1 for profiles without examples).
  std::vector<double> classifier_similarities(const std::vector<float>& q) const;

  std::vector<RouteProfileSpec> specs_;
  std::vector<Profile> profiles_;                // same order as specs_
  std::optional<ExampleClassifier> classifier_;  // kClassifier only
  std::vector<int> classifier_label_;            // per profile: its class, or -1
  std::shared_ptr<Embedder> embedder_;
  SemanticRouterSettings settings_;
  std::shared_ptr<QosWindows> windows_;
  mutable std::mutex policy_mutex_;
  PolicySettings policy_;  // guarded by policy_mutex_
};

// Confidence of a generation from the model's own token probabilities: the
// geometric mean probability of the generated tokens, exp(mean log p), in
// [0, 1]. 1 when there is no token (nothing to doubt).
double confidence_from_logprobs(const std::vector<float>& logprobs);

// The semantic router in use, replaced whole when the fleet file is
// reloaded. Thread-safe.
class SemanticRouterSlot {
 public:
  explicit SemanticRouterSlot(std::shared_ptr<SemanticRouter> router)
      : router_(std::move(router)) {}
  std::shared_ptr<SemanticRouter> get() const;
  void set(std::shared_ptr<SemanticRouter> router);

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<SemanticRouter> router_;  // guarded by mutex_
};

// The Router seam in front of the registry: "auto" is routed, a real id
// bypasses, anything else is unknown.
class AutoRouter : public Router {
 public:
  AutoRouter(const Registry& registry, std::shared_ptr<SemanticRouterSlot> slot)
      : registry_(registry), slot_(std::move(slot)) {}
  std::optional<RouteDecision> route(const std::string& requested_model,
                                     const GenerationRequest& request) override;
  // Records latency and confidence in the chosen model's QoS window.
  void observe(const std::string& model_id, const GenerationResult& result) override;

 private:
  const Registry& registry_;
  std::shared_ptr<SemanticRouterSlot> slot_;
};

}  // namespace calm
