// parse_nodes: see node_config.h.
#include "config/node_config.h"

#include <yaml-cpp/yaml.h>

#include <set>

#include "config/fleet_config.h"
#include "config/yaml_fields.h"
#include "util/url.h"

namespace calm {

std::vector<NodeConfig> parse_nodes(const YAML::Node& node, const std::string& source) {
  std::vector<NodeConfig> nodes;
  if (!node.IsDefined() || node.IsNull()) return nodes;
  if (!node.IsSequence()) {
    throw ConfigError(yaml_error_text(source, node, "nodes", "expected a list of nodes"));
  }
  std::set<std::string> ids;
  for (size_t i = 0; i < node.size(); ++i) {
    Fields fields(node[i], source, "nodes[" + std::to_string(i) + "]");
    NodeConfig config;
    config.id = fields.string("id", "", true);
    if (config.id.empty() || config.id.find_first_of(" \t\r\n") != std::string::npos) {
      fields.fail("id", "must be a non-empty name without spaces");
    }
    if (!ids.insert(config.id).second) fields.fail("id", "duplicate node id '" + config.id + "'");
    config.kind = fields.string("kind", config.kind);
    if (config.kind != "llama-server-router" && config.kind != "openai" && config.kind != "calm") {
      fields.fail("kind", "unknown kind '" + config.kind +
                              "': expected llama-server-router, openai or calm");
    }
    config.url = fields.string("url", "", true);
    try {
      parse_url(config.url);
    } catch (const UrlError& e) {
      fields.fail("url", std::string(e.what()) + "; it must start with http:// or https://");
    }
    // A router-mode node needs a budget (calm decides what it loads there);
    // an openai or calm node's models are fixed, so its budget is optional.
    const YAML::Node budget = fields.get("budget");
    const bool needed = config.kind == "llama-server-router";
    if (budget.IsDefined() || needed) {
      const auto bytes = budget.IsScalar() ? parse_byte_size(budget.Scalar()) : std::nullopt;
      if (!bytes || *bytes == 0) {
        fields.fail("budget", std::string(needed ? "is required: " : "must be ") +
                                  "a size such as 8GiB, 512MiB or a number of bytes");
      }
      config.budget_bytes = *bytes;
    }
    config.api_key = fields.string("api_key", "");
    config.max_queue = static_cast<size_t>(fields.integer("max_queue", 0, 0, 1 << 20));
    config.connect_timeout = fields.seconds("connect_timeout_s", config.connect_timeout);
    config.load_timeout = fields.seconds("load_timeout_s", config.load_timeout);
    fields.reject_unknown();
    nodes.push_back(std::move(config));
  }
  return nodes;
}

}  // namespace calm
