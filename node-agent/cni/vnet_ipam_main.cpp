// vnet-ipam: the CNI IPAM plugin. Exec'd by the runtime or by a main plugin (vnet-transparent,
// ptp); see ipam_plugin.h.
#include "node-agent/cni/ipam_plugin.h"
#include "node-agent/cni/skel.h"

int main() {
  vnetipam::cni::SocketAgentClient client;
  return vnetipam::cni::pluginMain(vnetipam::cni::makeIpamPlugin(client));
}
