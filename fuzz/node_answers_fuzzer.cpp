// Feeds: what a node answers calm (nodes/router_node.h), from another
// machine and so untrusted: a router-mode llama-server's GET /models body
// (parse_router_models) and a /metrics page (prometheus_sample), each parser
// given the whole input.
// parse_router_models documents std::invalid_argument for a body that is not
// a model list, and only that is caught; prometheus_sample throws nothing. A
// finding: another exception, a crash, a sanitizer report, a hang, or a
// broken promise of the header: a sample that is not a finite number.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "nodes/router_node.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    for (const calm::RouterNode::ModelStatus& model : calm::parse_router_models(text)) {
      (void)model.loaded();
    }
  } catch (const std::invalid_argument&) {
  }
  for (const char* name : {"llamacpp:requests_processing", "llamacpp:requests_deferred",
                           "vllm:num_requests_waiting"}) {
    const auto value = calm::prometheus_sample(text, name);
    if (value && !std::isfinite(*value)) std::abort();
  }
  return 0;
}
