// The fleet file's `nodes:` section: other machines, each running an
// existing engine whose models calm loads, places and balances
// (nodes/node_fleet.h). A model says which nodes serve it with `nodes:`
// instead of `gguf:` or `url:`.
//
//   nodes:
//     - id: box-a                      # the name models and /v1/calm/state use
//       kind: llama-server-router      # llama.cpp's llama-server --models-dir (router mode);
//                                      # or openai (a server with a fixed model set) or calm
//                                      # (another calm), where budget is optional
//       url: http://10.0.0.2:8080      # its base URL: http:// or https://
//       budget: 8GiB                   # bytes of models calm keeps loaded there at once
//       api_key: ""                    # the node's --api-key, when it has one
//       max_queue: 0                   # its requests (running + waiting) past which it
//                                      # counts as full and others are preferred; 0: no limit
//       connect_timeout_s: 2
//       load_timeout_s: 120            # a model load on it, at most
//   models:
//     - id: maths
//       nodes: [box-a, box-b]          # served by these nodes; calm picks one per request
//       upstream_model: maths-expert   # its name in the nodes' models directory (default: id)
//       bytes: 500MiB                  # what it takes loaded, before calm has seen a load
//                                      # (then the node's own figure); default 0
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace calm {

struct NodeConfig {
  std::string id;
  std::string kind = "llama-server-router";  // or "openai" or "calm" (nodes/node.h)
  std::string url;
  uint64_t budget_bytes =
      0;  // > 0; required for llama-server-router, 0 (no limit) allowed for openai
  std::string api_key;
  size_t max_queue = 0;  // 0: no limit
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds load_timeout{120000};
};

// Reads `nodes:` of the fleet file `source` (absent or null: none). Throws
// ConfigError naming the file, the line and the field.
std::vector<NodeConfig> parse_nodes(const YAML::Node& node, const std::string& source);

}  // namespace calm
