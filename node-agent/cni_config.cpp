#include "node-agent/cni_config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "node-agent/protocol.h"

namespace vnetipam::agent {

std::string cniConfigList(const std::string& hostVethPrefix, int mtu, const std::string& socket,
                          bool chainPortmap) {
  // ordered_json keeps the documented member order, which is easier on humans reading the file.
  using nlohmann::ordered_json;
  ordered_json plugins = ordered_json::array();
  plugins.push_back(
      ordered_json{{"type", "vnet-transparent"},
                   {"hostVethPrefix", hostVethPrefix},
                   {"mtu", mtu},
                   {"ipam", ordered_json{{"type", "vnet-ipam"}, {"socket", socket}}}});
  if (chainPortmap) {
    plugins.push_back(ordered_json{{"type", "portmap"},
                                   {"capabilities", ordered_json{{"portMappings", true}}},
                                   {"snat", true}});
  }
  // Spec 1.1.0 for the runtimes that speak it, 1.0.0 for those that do not, in one list. A runtime
  // runs the list at one version for every plugin in it: our plugins and the portmap chained here
  // (the pinned release the image ships, scripts/cni-plugins/go.mod) speak both. "cniVersions"
  // (spec 1.1.0) lists what the list supports; a runtime whose libcni knows it (v1.2 and later)
  // runs the highest one it implements, 1.1.0, and so sends GC and STATUS. One whose libcni
  // predates it ignores the field and runs "cniVersion": 1.0.0. That cannot be 1.1.0: such a
  // libcni (v1.1.x, in containerd 1.6 and 1.7) fails every ADD on a 1.1.0 result ("unsupported CNI
  // result version"), and those runtimes never send GC or STATUS anyway.
  ordered_json list{{"cniVersion", "1.0.0"},
                    {"cniVersions", ordered_json::array({"1.0.0", "1.1.0"})},
                    {"name", kAgentNetworkName},
                    {"plugins", std::move(plugins)}};
  return list.dump(2) + "\n";
}

}  // namespace vnetipam::agent
