// What `kubectl ipam` reads from the API, reduced to what its reports need. The I/O edge
// (fetch.h) fills a Snapshot; everything in report.h works on a Snapshot alone, so each finding
// and each cause is tested without an API server.
//
// Decoding is lenient on purpose: a tool that explains a broken cluster must not refuse to run
// because one Pod or Event has an odd shape. A missing field reads as empty; only an object that
// is not a JSON object at all is an error.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/types.h"
#include "lib/base/error.h"

namespace vnetipam::kubectl_ipam {

struct PodInfo {
  std::string ns;
  std::string name;
  std::string uid;
  std::string nodeName;  // spec.nodeName; empty: not scheduled
  bool hostNetwork = false;
  std::string phase;             // status.phase: Pending, Running, Succeeded, Failed, Unknown
  std::vector<std::string> ips;  // status.podIPs (status.podIP when podIPs is absent)
  std::string startTime;         // status.startTime, RFC 3339
  bool ready = false;            // condition Ready is True
  bool deleting = false;         // metadata.deletionTimestamp is set
  std::map<std::string, std::string> labels;

  // Terminated pods keep status.podIPs but no longer hold their addresses.
  bool terminated() const { return phase == "Succeeded" || phase == "Failed"; }
};

struct NodeInfo {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<api::Condition> conditions;
};

struct EventInfo {
  std::string ns;
  std::string type;  // Normal or Warning
  std::string reason;
  std::string message;
  std::string objectKind;  // involvedObject / regarding
  std::string objectName;
  std::string objectNamespace;
  std::string time;  // the last time it was seen, RFC 3339 (see eventFromJson)
  std::int64_t count = 1;
};

// A PodSubnet, decoded with api/codec.h and judged with api/validation.h as the controller does:
// a PodSubnet the controller would refuse (a spec that does not decode or validate, such as an
// empty nodeSelector, which is what the API server leaves of the label map of earlier versions)
// selects no node, and `invalid` says why.
struct SubnetInfo {
  std::string name;
  std::string cidr;                                // status.cidr, else spec.cidr, else ""
  std::optional<api::LabelSelector> nodeSelector;  // nullopt: every node
  std::int64_t totalBlocks = 0;                    // status
  std::int64_t allocatedBlocks = 0;                // status
  std::optional<std::int64_t> foreignAddresses;    // status; nullopt: not known
  std::vector<api::Condition> conditions;
  std::string invalid;  // empty: the controller accepts the spec

  bool selects(const std::map<std::string, std::string>& nodeLabels) const;
  // The selector as text for messages: "pool=a,zone In (1,2)", or why it selects nothing.
  std::string selectorText() const;
};

struct Snapshot {
  std::vector<SubnetInfo> subnets;
  std::vector<api::IPBlock> blocks;
  std::vector<NodeInfo> nodes;
  std::vector<PodInfo> pods;
  std::vector<EventInfo>
      events;  // only what the report asked for (why: the pod's, node's, blocks')
  // The vnet-ipam agent pods (the chart's labels, see agentSelector in fetch.h).
  std::vector<PodInfo> agentPods;
  std::int64_t now = 0;  // seconds since the epoch, for ages
};

// The snapshot narrowed to one PodSubnet: that PodSubnet and its blocks only. Nodes and pods
// stay; the reports leave out nodes no remaining PodSubnet serves. nullopt when no PodSubnet has
// that name.
std::optional<Snapshot> onlyPodSubnet(Snapshot snapshot, const std::string& name);

base::Result<SubnetInfo> subnetFromJson(const nlohmann::json& j);
base::Result<PodInfo> podFromJson(const nlohmann::json& j);
base::Result<NodeInfo> nodeFromJson(const nlohmann::json& j);
base::Result<EventInfo> eventFromJson(const nlohmann::json& j);

// Seconds since the epoch of an RFC 3339 time (base::parseRfc3339); nullopt when it does not
// parse.
std::optional<std::int64_t> parseTime(const std::string& text);

// The condition of `type` in `conditions`, or null.
const api::Condition* findCondition(const std::vector<api::Condition>& conditions,
                                    std::string_view type);

}  // namespace vnetipam::kubectl_ipam
