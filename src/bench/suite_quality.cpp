#include "bench/suite_quality.h"

#include "pipeline/api_error.h"
#include "server/openai_schema.h"

namespace calm {

std::optional<ReferenceScorer::Score> QualityScorer::score(const std::string& gguf_path,
                                                           int context, size_t index,
                                                           const WorkloadRequest& request) {
  reason_.clear();
  if (request.reference.empty()) {
    reason_ = "no reference";
    return std::nullopt;
  }
  const Key key{gguf_path, context, index};
  if (const auto it = scores_.find(key); it != scores_.end()) {
    reason_ = it->second.reason;
    return it->second.score;
  }

  const std::pair<std::string, int> model{gguf_path, context};
  if (const auto failed = load_errors_.find(model); failed != load_errors_.end()) {
    reason_ = failed->second;
    return std::nullopt;
  }
  auto& scorer = scorers_[model];
  if (!scorer) {
    try {
      scorer = std::make_unique<ReferenceScorer>(ReferenceScorer::Options{
          .gguf_path = gguf_path, .context = context, .threads = threads_});
    } catch (const std::exception& e) {
      scorers_.erase(model);
      reason_ = load_errors_[model] = e.what();
      return std::nullopt;
    }
  }

  Cached cached;
  try {
    if (request.prompt) {
      cached.score = scorer->score_prompt(*request.prompt, request.reference);
    } else {
      // The messages as the server reads them (content parts included).
      const ApiRequest parsed =
          parse_chat_request(nlohmann::json{{"model", "scoring"}, {"messages", request.messages}});
      cached.score = scorer->score(parsed.generation.messages, request.reference);
    }
  } catch (const EngineError& e) {
    if (e.kind() == EngineError::Kind::kContextOverflow) ++overflowed_;
    cached.reason = e.what();
  } catch (const ApiError& e) {  // messages the server would refuse too
    cached.reason = e.message;
  } catch (const std::exception& e) {
    cached.reason = e.what();
  }
  reason_ = cached.reason;
  return scores_.emplace(key, std::move(cached)).first->second.score;
}

}  // namespace calm
