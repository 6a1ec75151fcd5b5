// TextKeepingSink: with `knowledge: {keep_text: true}`, what a request said
// (its prompt and its answer) goes to the knowledge store beside what it
// cost. It sits in front of the sink that writes the response and passes
// every event on unchanged; when the answer has finished it queues the text
// (KnowledgeStore::record_text, which never blocks on disk). A request that
// fails or is cancelled leaves no text.
//
// Without the option no TextKeepingSink is made, so nothing of a request's
// text is even copied (server/http_server.cpp).
//
// Not thread-safe by itself: the pipeline calls a sink one event at a time.
#pragma once

#include <memory>
#include <string>

#include "knowledge/knowledge_store.h"
#include "pipeline/request_pipeline.h"

namespace calm {

class TextKeepingSink : public PipelineSink {
 public:
  // endpoint: "chat" or "completions"; prompt as RequestText::prompt says.
  TextKeepingSink(std::shared_ptr<PipelineSink> inner, KnowledgeStore& store, std::string endpoint,
                  std::string prompt)
      : inner_(std::move(inner)),
        store_(store),
        endpoint_(std::move(endpoint)),
        prompt_(std::move(prompt)) {}

  void started(const PipelineStart& start) override;
  void delta(const std::string& text) override { inner_->delta(text); }
  void finished(const GenerationResult& result) override;
  void failed(const ApiError& error) override { inner_->failed(error); }

  // The prompt as stored: chat messages as JSON, or the completion prompt.
  static std::string prompt_text(const GenerationRequest& request);

 private:
  std::shared_ptr<PipelineSink> inner_;
  KnowledgeStore& store_;
  const std::string endpoint_;
  const std::string prompt_;
  std::string response_id_;  // set by started()
  std::string model_;        // set by started()
};

}  // namespace calm
