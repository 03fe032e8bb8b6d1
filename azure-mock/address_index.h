// Which addresses of each subnet are held, and by whom: the subnet's reserved addresses and every
// NIC ipConfiguration (a /32 address or a prefix). MockState keeps it in step with its NICs on
// every change, so a NIC PUT checks its addresses in O(log n) instead of scanning every NIC.
//
// Subnets and NICs are keyed by their lower-cased ARM id (ARM ids compare case-insensitively).
// Not thread-safe, like MockState. Movable; iterators into it stay valid across a move.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "lib/ipam/ip.h"

namespace vnetipam::azuremock {

struct Subnet;
struct NetworkInterface;

class AddressIndex {
 public:
  // One held interval [first, last] of a subnet.
  struct Holder {
    ipam::U128 first = 0;
    ipam::U128 last = 0;
    // For messages: "the reserved addresses of subnet X" or the ipConfiguration's ARM id.
    std::string owner;
    bool reserved = false;
    // Empty for reserved addresses.
    std::string nicKey;
    std::size_t configIndex = 0;
  };

  AddressIndex() = default;
  AddressIndex(AddressIndex&&) = default;
  AddressIndex& operator=(AddressIndex&&) = default;
  AddressIndex(const AddressIndex&) = delete;
  AddressIndex& operator=(const AddressIndex&) = delete;

  // Holds the 5 addresses Azure keeps in every subnet (network, gateway, 2 x DNS, broadcast), in
  // each of its address prefixes.
  void addSubnet(const Subnet& subnet);
  void addSubnetPrefix(const Subnet& subnet, const ipam::Prefix& prefix);
  // Whether nothing but Azure's reservation holds an address of `prefix` in the subnet
  // (lower-cased id).
  bool onlyReservedIn(std::string_view subnetKey, const ipam::Prefix& prefix) const;
  // Drops every holder of `prefix` in the subnet: call when onlyReservedIn.
  void removeSubnetPrefix(std::string_view subnetKey, const ipam::Prefix& prefix);
  // Holds every ipConfiguration of `nic` under `nicKey` (its lower-cased id). Precondition: no
  // NIC is indexed under nicKey (removeNic first when replacing one).
  void addNic(const std::string& nicKey, const NetworkInterface& nic);
  // Releases whatever was indexed under nicKey; nothing if nothing was.
  void removeNic(std::string_view nicKey);

  // The holder of an address in [first, last] of the subnet (lower-cased id), ignoring those of
  // the NIC `ignoreNicKey`, or nullptr if none. When several overlap, the one a scan finds first
  // in this order: reserved addresses, then NICs by key, then configurations by position.
  const Holder* findOverlap(std::string_view subnetKey, ipam::U128 first, ipam::U128 last,
                            std::string_view ignoreNicKey) const;

  // How many addresses of the subnet (lower-cased id) are held: by ipConfigurations (a prefix
  // counts every address in it) and by Azure's reservation. Zeros for an unknown subnet.
  struct HeldCount {
    ipam::U128 byConfigurations = 0;
    ipam::U128 reserved = 0;
  };
  HeldCount heldCount(std::string_view subnetKey) const;

  // Every holder, in (subnet key, first address) order; for invariant checks.
  std::vector<const Holder*> all() const;

 private:
  struct SubnetSlots {
    std::multimap<ipam::U128, Holder> byFirst;
    // The longest interval ever held: an overlap of [first, last] starts after first - this.
    ipam::U128 longest = 1;
  };
  void hold(SubnetSlots& slots, Holder holder);

  std::map<std::string, SubnetSlots, std::less<>> subnets_;
  struct Held {
    SubnetSlots* slots;
    std::multimap<ipam::U128, Holder>::iterator at;
  };
  std::map<std::string, std::vector<Held>, std::less<>> byNic_;
};

}  // namespace vnetipam::azuremock
