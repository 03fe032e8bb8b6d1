#include "api/codec.h"

#include <concepts>
#include <set>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "lib/base/json_depth.h"
#include "lib/ipam/ip.h"
#include "lib/ipam/owner.h"

namespace vnetipam::api {
namespace {

using nlohmann::json;

// Collects the first decode error with its JSON path. Reads after an error are no-ops, so a decoder
// reads straight through and checks once at the end.
class Decoder {
 public:
  bool failed() const { return error_.has_value(); }
  const std::string& error() const { return *error_; }
  void fail(const std::string& path, std::string_view message) {
    if (!error_) error_ = fmt::format("{}: {}", path, message);
  }
  void expected(const std::string& path, std::string_view what, const json& got) {
    fail(path, fmt::format("expected {}, got {}", what, got.type_name()));
  }

 private:
  std::optional<std::string> error_;
};

std::string child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}

// Returns v if it is an object; nullptr if it is absent or null; fails on anything else.
const json* asObject(Decoder& d, const json* v, const std::string& path) {
  if (v == nullptr || v->is_null()) return nullptr;
  if (!v->is_object()) {
    d.expected(path, "an object", *v);
    return nullptr;
  }
  return v;
}

// Reads the members of one JSON object. Absent and null members leave the output at its default.
// The members nobody asked for are rest(): the unknown fields an object keeps in `extra`.
class ObjectReader {
 public:
  ObjectReader(Decoder& d, const json* obj, std::string path)
      : d_(d), obj_(obj), path_(std::move(path)) {}

  std::string path(std::string_view key) const { return child(path_, key); }

  const json* get(std::string_view key) {
    consumed_.emplace(key);
    if (obj_ == nullptr || d_.failed()) return nullptr;
    const auto it = obj_->find(std::string(key));
    if (it == obj_->end() || it->is_null()) return nullptr;
    return &*it;
  }

  const json* object(std::string_view key) { return asObject(d_, get(key), path(key)); }

  void read(std::string_view key, std::string& out) {
    if (const json* v = get(key)) readString(*v, path(key), out);
  }

  void read(std::string_view key, std::optional<std::string>& out) {
    if (const json* v = get(key)) readString(*v, path(key), out.emplace());
  }

  template <std::integral I>
  void read(std::string_view key, I& out) {
    const json* v = get(key);
    if (v == nullptr) return;
    if (v->is_number_unsigned()) {
      const auto u = v->get<std::uint64_t>();
      if (std::in_range<I>(u)) {
        out = static_cast<I>(u);
        return;
      }
      d_.fail(path(key), fmt::format("{} is out of range for a {}-bit integer", u, 8 * sizeof(I)));
    } else if (v->is_number_integer()) {
      const auto s = v->get<std::int64_t>();
      if (std::in_range<I>(s)) {
        out = static_cast<I>(s);
        return;
      }
      d_.fail(path(key), fmt::format("{} is out of range for a {}-bit integer", s, 8 * sizeof(I)));
    } else {
      d_.expected(path(key), "an integer", *v);
    }
  }

  template <std::integral I>
  void read(std::string_view key, std::optional<I>& out) {
    if (get(key) != nullptr) read(key, out.emplace());
  }

  void read(std::string_view key, std::map<std::string, std::string>& out) {
    const json* v = object(key);
    if (v == nullptr) return;
    for (const auto& [k, value] : v->items()) {
      const std::string p = fmt::format("{}[{}]", path(key), k);
      if (!value.is_null()) readString(value, p, out[k]);
    }
  }

  void read(std::string_view key, std::vector<std::string>& out) {
    const json* v = get(key);
    if (v == nullptr) return;
    if (!v->is_array()) return d_.expected(path(key), "an array", *v);
    out.resize(v->size());
    for (std::size_t i = 0; i < v->size(); ++i) {
      readString((*v)[i], fmt::format("{}[{}]", path(key), i), out[i]);
    }
  }

  json rest() const {
    json extra = json::object();
    if (obj_ == nullptr) return extra;
    for (const auto& [k, value] : obj_->items()) {
      if (!consumed_.contains(k)) extra[k] = value;
    }
    return extra;
  }

 private:
  void readString(const json& v, const std::string& p, std::string& out) {
    if (v.is_string()) {
      out = v.get<std::string>();
    } else {
      d_.expected(p, "a string", v);
    }
  }

  Decoder& d_;
  const json* obj_;
  std::string path_;
  std::set<std::string, std::less<>> consumed_;
};

ObjectMeta decodeMeta(Decoder& d, const json* v, const std::string& path) {
  ObjectMeta m;
  const json* obj = asObject(d, v, path);
  if (obj != nullptr) m.raw = *obj;
  ObjectReader r(d, obj, path);
  r.read("name", m.name);
  r.read("uid", m.uid);
  r.read("resourceVersion", m.resourceVersion);
  r.read("generation", m.generation);
  r.read("labels", m.labels);
  r.read("annotations", m.annotations);
  r.read("finalizers", m.finalizers);
  r.read("deletionTimestamp", m.deletionTimestamp);
  r.read("creationTimestamp", m.creationTimestamp);
  return m;
}

void decodeConditions(Decoder& d, ObjectReader& parent, std::vector<Condition>& out) {
  const json* v = parent.get("conditions");
  if (v == nullptr) return;
  const std::string path = parent.path("conditions");
  if (!v->is_array()) return d.expected(path, "an array", *v);
  for (std::size_t i = 0; i < v->size(); ++i) {
    const std::string item_path = fmt::format("{}[{}]", path, i);
    const json* item = asObject(d, &(*v)[i], item_path);
    if (item == nullptr) {
      if (!d.failed()) d.fail(item_path, "expected an object, got null");
      return;
    }
    ObjectReader r(d, item, item_path);
    Condition& c = out.emplace_back();
    r.read("type", c.type);
    r.read("status", c.status);
    r.read("reason", c.reason);
    r.read("message", c.message);
    r.read("lastTransitionTime", c.lastTransitionTime);
    r.read("observedGeneration", c.observedGeneration);
    c.extra = r.rest();
  }
}

LabelSelector decodeLabelSelector(Decoder& d, const json* v, const std::string& path) {
  LabelSelector sel;
  ObjectReader r(d, v, path);
  r.read("matchLabels", sel.matchLabels);
  if (const json* exprs = r.get("matchExpressions")) {
    const std::string list_path = r.path("matchExpressions");
    if (!exprs->is_array()) {
      d.expected(list_path, "an array", *exprs);
    } else {
      for (std::size_t i = 0; i < exprs->size(); ++i) {
        const std::string item_path = fmt::format("{}[{}]", list_path, i);
        const json* item = asObject(d, &(*exprs)[i], item_path);
        if (item == nullptr) {
          if (!d.failed()) d.fail(item_path, "expected an object, got null");
          break;
        }
        ObjectReader ir(d, item, item_path);
        LabelSelectorRequirement& req = sel.matchExpressions.emplace_back();
        ir.read("key", req.key);
        ir.read("operator", req.op);
        ir.read("values", req.values);
        req.extra = ir.rest();
      }
    }
  }
  sel.extra = r.rest();
  return sel;
}

PodSubnetSpec decodePodSubnetSpec(Decoder& d, const json* v) {
  PodSubnetSpec s;
  ObjectReader r(d, asObject(d, v, "spec"), "spec");
  r.read("azureSubnetID", s.azureSubnetID);
  r.read("cidr", s.cidr);
  r.read("blockPrefixLength", s.blockPrefixLength);
  if (const json* sel = r.object("nodeSelector")) {
    s.nodeSelector = decodeLabelSelector(d, sel, r.path("nodeSelector"));
  }
  r.read("minFreeIPsPerNode", s.minFreeIPsPerNode);
  r.read("maxBlocksPerNode", s.maxBlocksPerNode);
  r.read("releaseDelaySeconds", s.releaseDelaySeconds);
  r.read("reservedCIDRs", s.reservedCIDRs);
  s.extra = r.rest();
  return s;
}

PodSubnetStatus decodePodSubnetStatus(Decoder& d, const json* v) {
  PodSubnetStatus s;
  ObjectReader r(d, asObject(d, v, "status"), "status");
  r.read("cidr", s.cidr);
  r.read("cidrs", s.cidrs);
  r.read("totalBlocks", s.totalBlocks);
  r.read("allocatedBlocks", s.allocatedBlocks);
  r.read("allocatedIPs", s.allocatedIPs);
  r.read("foreignAddresses", s.foreignAddresses);
  decodeConditions(d, r, s.conditions);
  s.extra = r.rest();
  return s;
}

IPBlockSpec decodeIPBlockSpec(Decoder& d, const json* v) {
  IPBlockSpec s;
  ObjectReader r(d, asObject(d, v, "spec"), "spec");
  r.read("podSubnet", s.podSubnet);
  r.read("cidr", s.cidr);
  r.read("nodeName", s.nodeName);
  s.extra = r.rest();
  return s;
}

IPBlockStatus decodeIPBlockStatus(Decoder& d, const json* v) {
  IPBlockStatus s;
  ObjectReader r(d, asObject(d, v, "status"), "status");
  std::optional<std::string> phase;
  r.read("phase", phase);
  if (phase && !d.failed()) {
    if (auto p = parseBlockPhase(*phase)) {
      s.phase = *p;
    } else {
      d.fail("status.phase", fmt::format("unknown phase \"{}\": expected one of Pending, "
                                         "Programmed, Ready, Releasing",
                                         *phase));
    }
  }
  r.read("used", s.used);
  r.read("capacity", s.capacity);
  if (const json* nic = r.object("nic")) {
    ObjectReader nr(d, nic, "status.nic");
    NicRef& n = s.nic.emplace();
    nr.read("id", n.id);
    nr.read("ipConfiguration", n.ipConfiguration);
    n.extra = nr.rest();
  }
  if (const json* list = r.get("allocations")) {
    const std::string path = r.path("allocations");
    if (!list->is_array()) {
      d.expected(path, "an array", *list);
    } else {
      for (std::size_t i = 0; i < list->size(); ++i) {
        const std::string item_path = fmt::format("{}[{}]", path, i);
        const json* item = asObject(d, &(*list)[i], item_path);
        if (item == nullptr) {
          if (!d.failed()) d.fail(item_path, "expected an object, got null");
          break;
        }
        ObjectReader ar(d, item, item_path);
        IPAllocation& a = s.allocations.emplace_back();
        ar.read("address", a.address);
        ar.read("containerID", a.owner.containerID);
        ar.read("ifName", a.owner.ifName);
        ar.read("podNamespace", a.podNamespace);
        ar.read("podName", a.podName);
        ar.read("podUID", a.podUID);
        ar.read("network", a.network);
        a.extra = ar.rest();
      }
    }
  }
  decodeConditions(d, r, s.conditions);
  r.read("lastTransitionTime", s.lastTransitionTime);
  s.extra = r.rest();
  return s;
}

// Decodes the envelope shared by both kinds and hands spec and status to the kind's decoders.
template <typename Object, typename DecodeBody>
Result<Object> decodeObject(const json& j, std::string_view kind, DecodeBody decodeBody) {
  std::string name = "(no name)";
  if (j.is_object()) {
    const auto meta = j.find("metadata");
    if (meta != j.end() && meta->is_object()) {
      const auto n = meta->find("name");
      if (n != meta->end() && n->is_string()) name = fmt::format("\"{}\"", n->get<std::string>());
    }
  }
  Decoder d;
  Object obj;
  if (!j.is_object()) {
    d.expected("(top level)", "an object", j);
  } else {
    ObjectReader r(d, &j, "");
    std::optional<std::string> api_version, got_kind;
    r.read("apiVersion", api_version);
    r.read("kind", got_kind);
    if (api_version && *api_version != kApiVersion) {
      d.fail("apiVersion", fmt::format("expected \"{}\", got \"{}\"", kApiVersion, *api_version));
    }
    if (got_kind && *got_kind != kind) {
      d.fail("kind", fmt::format("expected \"{}\", got \"{}\"", kind, *got_kind));
    }
    obj.metadata = decodeMeta(d, r.get("metadata"), "metadata");
    decodeBody(d, r.get("spec"), r.get("status"), obj);
    obj.extra = r.rest();
  }
  if (d.failed()) {
    return base::fail(base::ErrorCode::kInvalidArgument,
                      fmt::format("{} {}: {}", kind, name, d.error()));
  }
  return obj;
}

// Sets key to value, or removes it when the typed field is unset (an explicit null is kept).
void put(json& m, const char* key, bool set, json value) {
  if (set) {
    m[key] = std::move(value);
  } else if (const auto it = m.find(key); it != m.end() && !it->is_null()) {
    m.erase(it);
  }
}

json withExtra(const json& extra) { return extra.is_object() ? extra : json::object(); }

json encodeConditions(const std::vector<Condition>& conditions) {
  json a = json::array();
  for (const Condition& c : conditions)
    a.push_back(toJson(c));
  return a;
}

}  // namespace

std::string_view toString(BlockPhase phase) {
  switch (phase) {
    case BlockPhase::kPending: return "Pending";
    case BlockPhase::kProgrammed: return "Programmed";
    case BlockPhase::kReady: return "Ready";
    case BlockPhase::kReleasing: return "Releasing";
  }
  return "Unknown";
}

std::optional<BlockPhase> parseBlockPhase(std::string_view text) {
  for (BlockPhase p : {BlockPhase::kPending, BlockPhase::kProgrammed, BlockPhase::kReady,
                       BlockPhase::kReleasing}) {
    if (toString(p) == text) return p;
  }
  return std::nullopt;
}

Result<ObjectMeta> objectMetaFromJson(const json& j) {
  Decoder d;
  ObjectMeta m = decodeMeta(d, &j, "metadata");
  if (!j.is_object() && !d.failed()) d.expected("metadata", "an object", j);
  if (d.failed()) return base::fail(base::ErrorCode::kInvalidArgument, d.error());
  return m;
}

json toJson(const ObjectMeta& meta) {
  json m = withExtra(meta.raw);
  put(m, "name", !meta.name.empty(), meta.name);
  put(m, "uid", !meta.uid.empty(), meta.uid);
  put(m, "resourceVersion", !meta.resourceVersion.empty(), meta.resourceVersion);
  put(m, "generation", meta.generation != 0, meta.generation);
  put(m, "labels", !meta.labels.empty(), meta.labels);
  put(m, "annotations", !meta.annotations.empty(), meta.annotations);
  put(m, "finalizers", !meta.finalizers.empty(), meta.finalizers);
  put(m, "deletionTimestamp", meta.deletionTimestamp.has_value(),
      meta.deletionTimestamp.value_or(""));
  put(m, "creationTimestamp", meta.creationTimestamp.has_value(),
      meta.creationTimestamp.value_or(""));
  return m;
}

json toJson(const Condition& c) {
  json j = withExtra(c.extra);
  j["type"] = c.type;
  j["status"] = c.status;
  j["reason"] = c.reason;
  j["message"] = c.message;
  j["lastTransitionTime"] = c.lastTransitionTime;
  if (c.observedGeneration != 0) j["observedGeneration"] = c.observedGeneration;
  return j;
}

json toJson(const IPAllocation& a) {
  json j = withExtra(a.extra);
  j["address"] = a.address;
  j["containerID"] = a.owner.containerID;
  j["ifName"] = a.owner.ifName;
  j["podNamespace"] = a.podNamespace;
  j["podName"] = a.podName;
  if (!a.podUID.empty()) j["podUID"] = a.podUID;
  if (!a.network.empty()) j["network"] = a.network;
  return j;
}

json toJson(const PodSubnetSpec& s) {
  json j = withExtra(s.extra);
  if (s.azureSubnetID) j["azureSubnetID"] = *s.azureSubnetID;
  if (s.cidr) j["cidr"] = *s.cidr;
  j["blockPrefixLength"] = s.blockPrefixLength;
  if (s.nodeSelector) j["nodeSelector"] = toJson(*s.nodeSelector);
  j["minFreeIPsPerNode"] = s.minFreeIPsPerNode;
  j["maxBlocksPerNode"] = s.maxBlocksPerNode;
  j["releaseDelaySeconds"] = s.releaseDelaySeconds;
  if (!s.reservedCIDRs.empty()) j["reservedCIDRs"] = s.reservedCIDRs;
  return j;
}

json toJson(const LabelSelector& s) {
  json j = withExtra(s.extra);
  if (!s.matchLabels.empty()) j["matchLabels"] = s.matchLabels;
  if (!s.matchExpressions.empty()) {
    json exprs = json::array();
    for (const LabelSelectorRequirement& req : s.matchExpressions) {
      json e = withExtra(req.extra);
      e["key"] = req.key;
      e["operator"] = req.op;
      if (!req.values.empty()) e["values"] = req.values;
      exprs.push_back(std::move(e));
    }
    j["matchExpressions"] = std::move(exprs);
  }
  return j;
}

json toJson(const PodSubnetStatus& s) {
  json j = withExtra(s.extra);
  if (!s.cidr.empty()) j["cidr"] = s.cidr;
  if (!s.cidrs.empty()) j["cidrs"] = s.cidrs;
  j["totalBlocks"] = s.totalBlocks;
  j["allocatedBlocks"] = s.allocatedBlocks;
  j["allocatedIPs"] = s.allocatedIPs;
  if (s.foreignAddresses) j["foreignAddresses"] = *s.foreignAddresses;
  if (!s.conditions.empty()) j["conditions"] = encodeConditions(s.conditions);
  return j;
}

json toJson(const IPBlockSpec& s) {
  json j = withExtra(s.extra);
  j["podSubnet"] = s.podSubnet;
  j["cidr"] = s.cidr;
  j["nodeName"] = s.nodeName;
  return j;
}

json toJson(const IPBlockStatus& s) {
  json j = withExtra(s.extra);
  j["phase"] = toString(s.phase);
  j["used"] = s.used;
  if (!s.allocations.empty()) {
    json list = json::array();
    for (const IPAllocation& a : s.allocations)
      list.push_back(toJson(a));
    j["allocations"] = std::move(list);
  }
  j["capacity"] = s.capacity;
  if (s.nic) {
    json nic = withExtra(s.nic->extra);
    nic["id"] = s.nic->id;
    nic["ipConfiguration"] = s.nic->ipConfiguration;
    j["nic"] = std::move(nic);
  }
  if (!s.conditions.empty()) j["conditions"] = encodeConditions(s.conditions);
  if (s.lastTransitionTime) j["lastTransitionTime"] = *s.lastTransitionTime;
  return j;
}

Result<PodSubnet> podSubnetFromJson(const json& j) {
  return decodeObject<PodSubnet>(
      j, kPodSubnetKind, [](Decoder& d, const json* spec, const json* status, PodSubnet& o) {
        o.spec = decodePodSubnetSpec(d, spec);
        o.status = decodePodSubnetStatus(d, status);
      });
}

namespace {

// A block created already programmed (kProgrammedOnAnnotation) reads, until the controller first
// writes its phase, as what its creator knew it to be: Ready, with the capacity of its CIDR and the
// NIC it is on. Only an absent status.phase is filled in, so every phase written later wins.
void deriveProgrammedOn(const json* status, IPBlock& o) {
  const auto on = o.metadata.annotations.find(std::string(kProgrammedOnAnnotation));
  if (on == o.metadata.annotations.end() || on->second.empty()) return;
  if (status != nullptr && status->is_object() && status->contains("phase")) return;
  o.status.phase = BlockPhase::kReady;
  if (o.status.capacity == 0) {
    if (auto cidr = ipam::Prefix::parse(o.spec.cidr)) o.status.capacity = cidr->countedSize();
  }
  if (!o.status.nic && on->second != kProgrammedOnNoCloud) {
    o.status.nic = NicRef{.id = on->second, .ipConfiguration = {}, .extra = json::object()};
  }
}

}  // namespace

Result<IPBlock> ipBlockFromJson(const json& j) {
  return decodeObject<IPBlock>(j, kIPBlockKind,
                               [](Decoder& d, const json* spec, const json* status, IPBlock& o) {
                                 o.spec = decodeIPBlockSpec(d, spec);
                                 o.status = decodeIPBlockStatus(d, status);
                                 if (!d.failed()) deriveProgrammedOn(status, o);
                               });
}

namespace {

template <typename Object>
json encodeObject(const Object& o, std::string_view kind) {
  json j = withExtra(o.extra);
  j["apiVersion"] = kApiVersion;
  j["kind"] = kind;
  j["metadata"] = toJson(o.metadata);
  j["spec"] = toJson(o.spec);
  if (o.status != decltype(o.status){}) j["status"] = toJson(o.status);
  return j;
}

}  // namespace

Result<std::vector<ReleaseRequest>> releaseRequestsFromAnnotation(std::string_view value) {
  auto refuse = [](std::string message) {
    return base::fail(base::ErrorCode::kInvalidArgument,
                      fmt::format("annotation {}: {}", kReleaseAnnotation, message));
  };
  // An annotation is at most 256 KiB, but its nesting is the writer's choice: bounded before
  // parsing, as every JSON the agent reads from others.
  if (base::jsonNestingDepth(value, 8) > 8) return refuse("nested too deeply");
  const json j = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return refuse("not JSON");
  if (!j.is_array()) return refuse(fmt::format("expected a list, got {}", j.type_name()));
  if (j.size() > static_cast<std::size_t>(kMaxReleaseRequests)) {
    return refuse(fmt::format("{} entries, at most {}", j.size(), kMaxReleaseRequests));
  }
  Decoder d;
  std::vector<ReleaseRequest> out;
  for (std::size_t i = 0; i < j.size() && !d.failed(); ++i) {
    const std::string path = fmt::format("[{}]", i);
    const json* item = asObject(d, &j[i], path);
    if (item == nullptr) {
      if (!d.failed()) d.fail(path, "expected an object, got null");
      break;
    }
    ObjectReader r(d, item, path);
    ReleaseRequest& request = out.emplace_back();
    r.read("address", request.address);
    r.read("containerID", request.owner.containerID);
    r.read("ifName", request.owner.ifName);
    request.extra = r.rest();
    for (const auto& [field, text, limit] :
         {std::tuple{"address", &request.address, kMaxAddressLength},
          std::tuple{"containerID", &request.owner.containerID, kMaxContainerIDLength},
          std::tuple{"ifName", &request.owner.ifName, kMaxIfNameLength}}) {
      if (text->empty()) {
        d.fail(r.path(field), "required");
      } else if (text->size() > static_cast<std::size_t>(limit)) {
        d.fail(r.path(field), fmt::format("longer than {} characters", limit));
      }
    }
  }
  if (d.failed()) return refuse(d.error());
  return out;
}

std::string toAnnotation(const std::vector<ReleaseRequest>& requests) {
  json list = json::array();
  for (const ReleaseRequest& r : requests) {
    json entry = withExtra(r.extra);
    entry["address"] = r.address;
    entry["containerID"] = r.owner.containerID;
    entry["ifName"] = r.owner.ifName;
    list.push_back(std::move(entry));
  }
  return list.dump();
}

std::string describe(const ReleaseRequest& request) {
  return fmt::format("{} ({})", request.address, ipam::toString(request.owner));
}

json toJson(const PodSubnet& subnet) { return encodeObject(subnet, kPodSubnetKind); }
json toJson(const IPBlock& block) { return encodeObject(block, kIPBlockKind); }

namespace {

json statusApply(std::string_view kind, std::string_view name, json status) {
  return {{"apiVersion", kApiVersion},
          {"kind", kind},
          {"metadata", {{"name", name}}},
          {"status", std::move(status)}};
}

}  // namespace

json ipBlockStatusApply(std::string_view name, const IPBlockControllerStatus& s) {
  json status = json::object();
  if (s.phase) status["phase"] = toString(*s.phase);
  if (s.capacity) status["capacity"] = *s.capacity;
  if (s.lastTransitionTime) status["lastTransitionTime"] = *s.lastTransitionTime;
  if (s.nic) {
    json nic = withExtra(s.nic->extra);
    nic["id"] = s.nic->id;
    nic["ipConfiguration"] = s.nic->ipConfiguration;
    status["nic"] = std::move(nic);
  }
  if (!s.conditions.empty()) status["conditions"] = encodeConditions(s.conditions);
  return statusApply(kIPBlockKind, name, std::move(status));
}

json podSubnetStatusApply(std::string_view name, const PodSubnetStatus& status) {
  return statusApply(kPodSubnetKind, name, toJson(status));
}

json finalizersPatch(const std::vector<std::string>& finalizers, std::string_view resourceVersion) {
  return {{"metadata", {{"finalizers", finalizers}, {"resourceVersion", resourceVersion}}}};
}

}  // namespace vnetipam::api
