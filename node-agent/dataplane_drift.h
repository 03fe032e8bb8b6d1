// Dataplane drift: whether the host network namespace still carries what the agent's allocations
// promise. Pure functions over plain values; the netlink read (lib/net/host_dataplane.h) and the
// reporting (api_sync.h, metrics.h, agent_events.h) live elsewhere.
//
// What an allocation promises on the host (the vnet-transparent recipe, lib/net/transparent.h): a
// host route to its address (a /32 for IPv4, a /128 for IPv6) in the main table whose output device
// exists, is up and is a host veth. A host veth is recognised by the configured prefix alone, never
// by recomputing its name from the container ID: the naming scheme after the prefix belongs to the
// plugin.
//
// The reverse is drift too: a host route (/32, /128) in the main table to an address inside one of
// this node's blocks that no allocation holds (a stale route: a pod's traffic could be sent to a
// veth of a pod that no longer owns the address).
//
// Timing: the CNI plugin allocates first and wires afterwards, and DEL unwires and releases in two
// steps, so one look can catch an allocation without its route (or a route without its
// allocation) for an instant. DriftTracker therefore confirms a finding only when the previous
// check found it too, or when the allocation has been known for longer than a grace period.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "lib/ipam/ip.h"
#include "lib/ipam/owner.h"

namespace vnetipam::agent {

// One block of this node.
struct DriftBlock {
  std::string name;
  ipam::Prefix cidr;
};

// One allocation the agent holds.
struct HeldAddress {
  std::string block;
  ipam::IPAddress address;
  ipam::Owner owner;
  std::string podNamespace;
  std::string podName;
};

// What the host namespace shows: its links, and its IPv4 and IPv6 unicast routes in the main
// table.
struct ObservedLink {
  std::string name;
  int ifindex = 0;
  bool up = false;  // IFF_UP
};
struct ObservedRoute {
  ipam::Prefix dst;
  int oif = 0;  // output device (RTA_OIF); 0: none (a multipath or blackhole route)
};
struct ObservedDataplane {
  std::vector<ObservedLink> links;
  std::vector<ObservedRoute> routes;
};

enum class DriftKind : std::uint8_t {
  kMissingRoute,  // an allocation without a working host route (none, or its device is wrong)
  kStaleRoute,    // a host route to an address of this node's blocks that nobody holds
};
std::string_view toString(DriftKind kind);  // "missing_route", "stale_route" (metric labels)

struct DriftFinding {
  DriftKind kind = DriftKind::kMissingRoute;
  std::string block;
  ipam::IPAddress address;
  std::string pod;   // "namespace/name" of the holder (missing routes), empty if not known
  std::string what;  // what is wrong, for humans: "no host route", "host veth vnet1a2b is down"
  bool operator==(const DriftFinding&) const = default;
};

// Every finding, sorted by block, then address. An allocation whose address has several host
// routes is fine when any of them is. Only host routes count: /32 for IPv4, /128 for IPv6 (the
// recipe makes no others; fe80::/64 and the like are the kernel's).
std::vector<DriftFinding> findDrift(const std::vector<DriftBlock>& blocks,
                                    const std::vector<HeldAddress>& held,
                                    const ObservedDataplane& observed,
                                    std::string_view hostVethPrefix);

// Confirms findings across checks (see the timing note above). Not thread-safe: one caller.
class DriftTracker {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit DriftTracker(std::chrono::nanoseconds grace) : grace_(grace) {}

  // `held` is what the agent holds at `now` (its ages are counted from the first check that saw
  // each one); `found` is findDrift() of the same moment. Returns the confirmed findings: those
  // the previous check found as well, and missing routes of allocations known for at least the
  // grace period.
  std::vector<DriftFinding> confirm(const std::vector<HeldAddress>& held,
                                    const std::vector<DriftFinding>& found, TimePoint now);

 private:
  // An allocation: owner and address (a new allocation under the same owner is a new one).
  using HeldKey = std::tuple<ipam::Owner, ipam::IPAddress>;
  using FindingKey = std::tuple<DriftKind, std::string, ipam::IPAddress>;

  std::chrono::nanoseconds grace_;
  std::map<HeldKey, TimePoint> firstSeen_;
  std::set<FindingKey> previous_;
};

// The DataplaneSynced condition of one block, without its transition time.
struct DataplaneCondition {
  std::string status;  // "True" or "False"
  std::string reason;  // kReasonInSync or kReasonDrift
  std::string message;
  bool operator==(const DataplaneCondition&) const = default;
};
inline constexpr std::string_view kReasonInSync = "InSync";
inline constexpr std::string_view kReasonDrift = "Drift";
// How many findings a condition message or an Event names before "and N more".
inline constexpr std::size_t kDriftNamed = 3;

// The condition of every block in `blocks` given the confirmed findings.
std::map<std::string, DataplaneCondition> dataplaneConditions(
    const std::vector<DriftBlock>& blocks, const std::vector<DriftFinding>& confirmed);

// "10.0.0.5 (pod default/web): no host route; 10.0.0.9: stale host route via vnet1a2b, and 2 more"
// for up to `named` findings.
std::string describeDrift(const std::vector<DriftFinding>& findings,
                          std::size_t named = kDriftNamed);

}  // namespace vnetipam::agent
