// Feeds: what a node answers calm (nodes/router_node.h, nodes/openai_node.h),
// from another machine and so untrusted: a router-mode llama-server's
// GET /models body (parse_router_models), an OpenAI GET /v1/models body
// (parse_openai_model_ids) and a /metrics page (prometheus_sample,
// openai_node_queue, calm_node_queue), each parser given the whole input.
// The two list parsers document std::invalid_argument for a body that is not
// a model list, and only that is caught; the /metrics readers throw nothing. A
// finding: another exception, a crash, a sanitizer report, a hang, or a
// broken promise of the header: a sample that is not a finite number.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "nodes/openai_node.h"
#include "nodes/router_node.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    for (const calm::RouterNode::ModelStatus& model : calm::parse_router_models(text)) {
      (void)model.loaded();
    }
  } catch (const std::invalid_argument&) {
  }
  try {
    for (const std::string& id : calm::parse_openai_model_ids(text)) (void)id.size();
  } catch (const std::invalid_argument&) {
  }
  if (const auto queue = calm::openai_node_queue(text)) {
    if (!std::isfinite(queue->processing) || !std::isfinite(queue->deferred)) std::abort();
  }
  const calm::Node::Queue calm_queue = calm::calm_node_queue(text, {"m", "tiny", "q\"x"});
  if (!std::isfinite(calm_queue.processing) || !std::isfinite(calm_queue.deferred)) std::abort();
  for (const char* name : {"llamacpp:requests_processing", "llamacpp:requests_deferred",
                           "vllm:num_requests_waiting"}) {
    const auto value = calm::prometheus_sample(text, name);
    if (value && !std::isfinite(*value)) std::abort();
  }
  return 0;
}
