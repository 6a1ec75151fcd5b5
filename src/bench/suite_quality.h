// Judge-free answer quality for `calm bench suite`: each reference answer of
// the workload scored under the GGUF of the model that served the request
// (ReferenceScorer: teacher-forced mean log-probability of the reference
// after the chat prompt).
//
// Many systems serve the same (model, request) pair, and loading a model and
// reading a long prompt are the expensive parts, so one QualityScorer lives
// for the whole suite: it keeps one ReferenceScorer per (GGUF, context) and
// every score by (GGUF, context, request index). A score therefore never
// depends on which system asked for it first. The suite calls it only after
// a system's server has stopped, so scoring never competes with serving.
//
// Not thread-safe: one caller at a time.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include "bench/workload.h"
#include "eval/reference_scorer.h"

namespace calm {

class QualityScorer {
 public:
  explicit QualityScorer(int threads = 0) : threads_(threads) {}

  // The request's reference scored by the model in `gguf_path` with a
  // `context`-token window; nullopt when it cannot be scored: no reference,
  // prompt and reference overflow the context, or the GGUF does not load
  // (reason() says why). Cached per (gguf_path, context, index).
  std::optional<ReferenceScorer::Score> score(const std::string& gguf_path, int context,
                                              size_t index, const WorkloadRequest& request);

  // Why the last score() returned nullopt.
  const std::string& reason() const { return reason_; }
  // References skipped because they overflowed the context, over all calls
  // (each pair counted once).
  size_t overflowed() const { return overflowed_; }

 private:
  using Key = std::tuple<std::string, int, size_t>;
  struct Cached {
    std::optional<ReferenceScorer::Score> score;
    std::string reason;
  };

  const int threads_;
  std::map<std::pair<std::string, int>, std::unique_ptr<ReferenceScorer>> scorers_;
  std::map<std::pair<std::string, int>, std::string> load_errors_;
  std::map<Key, Cached> scores_;
  std::string reason_;
  size_t overflowed_ = 0;
};

}  // namespace calm
