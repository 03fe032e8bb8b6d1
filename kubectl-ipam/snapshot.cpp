#include "kubectl-ipam/snapshot.h"

#include <algorithm>
#include <charconv>
#include <chrono>

#include <fmt/format.h>

#include "api/codec.h"
#include "api/selector.h"
#include "api/validation.h"
#include "lib/base/time.h"

namespace vnetipam::kubectl_ipam {

using nlohmann::json;

namespace {

// The member `key` of `j` when it is a string, else "".
std::string text(const json& j, const char* key) {
  if (!j.is_object()) return {};
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json& member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  const auto it = j.find(key);
  return it != j.end() ? *it : kNull;
}

std::map<std::string, std::string> stringMap(const json& j) {
  std::map<std::string, std::string> out;
  if (!j.is_object()) return out;
  for (const auto& [k, v] : j.items()) {
    if (v.is_string()) out.emplace(k, v.get<std::string>());
  }
  return out;
}

std::vector<api::Condition> conditions(const json& j) {
  std::vector<api::Condition> out;
  if (!j.is_array()) return out;
  for (const auto& c : j) {
    if (!c.is_object()) continue;
    out.push_back({.type = text(c, "type"),
                   .status = text(c, "status"),
                   .reason = text(c, "reason"),
                   .message = text(c, "message"),
                   .lastTransitionTime = text(c, "lastTransitionTime")});
  }
  return out;
}

base::Error notAnObject(std::string_view kind) {
  return base::Error{base::ErrorCode::kInvalidArgument,
                     fmt::format("a {} in the list is not a JSON object", kind)};
}

}  // namespace

base::Result<SubnetInfo> subnetFromJson(const json& j) {
  if (!j.is_object()) return std::unexpected(notAnObject("PodSubnet"));
  SubnetInfo subnet{.name = text(member(j, "metadata"), "name")};
  auto decoded = api::podSubnetFromJson(j);
  if (!decoded) {
    // Still show what can be read: the status the controller wrote.
    const json& status = member(j, "status");
    subnet.cidr = text(status, "cidr");
    subnet.conditions = conditions(member(status, "conditions"));
    subnet.invalid = decoded.error().message;
    return subnet;
  }
  const api::PodSubnet& s = *decoded;
  subnet.cidr = !s.status.cidr.empty() ? s.status.cidr : s.spec.cidr.value_or("");
  subnet.nodeSelector = s.spec.nodeSelector;
  subnet.totalBlocks = s.status.totalBlocks;
  subnet.allocatedBlocks = s.status.allocatedBlocks;
  subnet.foreignAddresses = s.status.foreignAddresses;
  subnet.conditions = s.status.conditions;
  if (const auto errors = api::validate(s.spec); !errors.empty())
    subnet.invalid = api::describe("PodSubnet", subnet.name, errors);
  return subnet;
}

bool SubnetInfo::selects(const std::map<std::string, std::string>& labels) const {
  return invalid.empty() && api::matches(nodeSelector, labels);
}

std::string SubnetInfo::selectorText() const {
  if (!invalid.empty()) return fmt::format("no node: {}", invalid);
  return api::describe(nodeSelector);
}

std::optional<Snapshot> onlyPodSubnet(Snapshot snapshot, const std::string& name) {
  std::erase_if(snapshot.subnets, [&](const SubnetInfo& s) { return s.name != name; });
  if (snapshot.subnets.empty()) return std::nullopt;
  std::erase_if(snapshot.blocks, [&](const api::IPBlock& b) { return b.spec.podSubnet != name; });
  return snapshot;
}

base::Result<PodInfo> podFromJson(const json& j) {
  if (!j.is_object()) return std::unexpected(notAnObject("Pod"));
  const json& meta = member(j, "metadata");
  const json& spec = member(j, "spec");
  const json& status = member(j, "status");
  PodInfo pod{.ns = text(meta, "namespace"),
              .name = text(meta, "name"),
              .uid = text(meta, "uid"),
              .nodeName = text(spec, "nodeName"),
              .phase = text(status, "phase"),
              .startTime = text(status, "startTime"),
              .deleting = !text(meta, "deletionTimestamp").empty(),
              .labels = stringMap(member(meta, "labels"))};
  const json& hostNetwork = member(spec, "hostNetwork");
  pod.hostNetwork = hostNetwork.is_boolean() && hostNetwork.get<bool>();
  const json& podIPs = member(status, "podIPs");
  if (podIPs.is_array()) {
    for (const auto& entry : podIPs) {
      if (auto ip = text(entry, "ip"); !ip.empty()) pod.ips.push_back(std::move(ip));
    }
  }
  if (pod.ips.empty()) {
    if (auto ip = text(status, "podIP"); !ip.empty()) pod.ips.push_back(std::move(ip));
  }
  for (const auto& c : conditions(member(status, "conditions"))) {
    if (c.type == "Ready") pod.ready = c.status == "True";
  }
  return pod;
}

base::Result<NodeInfo> nodeFromJson(const json& j) {
  if (!j.is_object()) return std::unexpected(notAnObject("Node"));
  const json& meta = member(j, "metadata");
  return NodeInfo{.name = text(meta, "name"),
                  .labels = stringMap(member(meta, "labels")),
                  .conditions = conditions(member(member(j, "status"), "conditions"))};
}

base::Result<EventInfo> eventFromJson(const json& j) {
  if (!j.is_object()) return std::unexpected(notAnObject("Event"));
  const json& meta = member(j, "metadata");
  // Read through core/v1: an events.k8s.io/v1 Event (what lib/kube/events.h writes) shows its
  // regarding as involvedObject and its note as message; its time is in eventTime or series.
  const json& involved = member(j, "involvedObject");
  EventInfo event{.ns = text(meta, "namespace"),
                  .type = text(j, "type"),
                  .reason = text(j, "reason"),
                  .message = text(j, "message"),
                  .objectKind = text(involved, "kind"),
                  .objectName = text(involved, "name"),
                  .objectNamespace = text(involved, "namespace")};
  for (const std::string& t :
       {text(member(j, "series"), "lastObservedTime"), text(j, "lastTimestamp"),
        text(j, "eventTime"), text(j, "firstTimestamp"), text(meta, "creationTimestamp")}) {
    if (!t.empty()) {
      event.time = t;
      break;
    }
  }
  const json& count = member(j, "count");
  const json& seriesCount = member(member(j, "series"), "count");
  if (seriesCount.is_number_integer()) {
    event.count = seriesCount.get<std::int64_t>();
  } else if (count.is_number_integer()) {
    event.count = count.get<std::int64_t>();
  }
  return event;
}

std::optional<std::int64_t> parseTime(const std::string& text) {
  const auto t = base::parseRfc3339(text);
  if (!t) return std::nullopt;
  return t->time_since_epoch().count();
}

const api::Condition* findCondition(const std::vector<api::Condition>& conditions,
                                    std::string_view type) {
  for (const auto& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

}  // namespace vnetipam::kubectl_ipam
