// vnet-transparent: the CNI main plugin for transparent mode; see transparent_plugin.h.
#include <cstdio>

#include "lib/net/netns.h"
#include "node-agent/cni/delegate.h"
#include "node-agent/cni/skel.h"
#include "node-agent/cni/transparent_plugin.h"

int main() {
  auto hostNs = vnetipam::net::Netns::current();
  if (!hostNs) {
    const vnetipam::cni::Error error{
        vnetipam::cni::kIoFailure,
        "vnet-transparent: open own network namespace: " + hostNs.error().message};
    std::puts(vnetipam::cni::errorJson(error, vnetipam::cni::kLatestVersion).c_str());
    return 1;
  }
  vnetipam::cni::ExecIpamDelegate ipam;
  return vnetipam::cni::pluginMain(vnetipam::cni::makeTransparentPlugin(*hostNs, ipam));
}
