// Who an address is allocated to: one CNI attachment.
#pragma once

#include <compare>
#include <string>

namespace vnetipam::ipam {

// The CNI attachment an address is allocated to: CNI_CONTAINERID and CNI_IFNAME, what a CNI DEL
// names. The agent keys its allocations by it (with the address family); the plugin, the socket
// protocol, the journal and the IPBlock's status.allocations carry it as these two fields.
// Compared field by field, never as the parts joined into one string (a separator can occur
// inside a part).
struct Owner {
  std::string containerID;
  std::string ifName;
  bool operator==(const Owner&) const = default;
  auto operator<=>(const Owner&) const = default;
};

// "container <containerID> interface <ifName>", for messages and logs.
inline std::string toString(const Owner& owner) {
  return "container " + owner.containerID + " interface " + owner.ifName;
}

}  // namespace vnetipam::ipam
