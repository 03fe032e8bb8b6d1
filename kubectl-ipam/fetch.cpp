#include "kubectl-ipam/fetch.h"

#include <chrono>

#include <fmt/format.h>

#include "api/codec.h"
#include "api/constants.h"
#include "lib/base/text.h"
#include "lib/kube/paths.h"

namespace vnetipam::kubectl_ipam {

using nlohmann::json;

namespace {

kube::Error badResponse(std::string message) {
  return kube::Error{kube::ErrorCode::kBadResponse, std::move(message)};
}

template <typename T, typename Decode>
kube::Result<std::vector<T>> decodeAll(const std::vector<json>& items, const std::string& what,
                                       Decode decode) {
  std::vector<T> out;
  out.reserve(items.size());
  for (const auto& item : items) {
    auto decoded = decode(item);
    if (!decoded) {
      return std::unexpected(badResponse(fmt::format("{}: {}", what, decoded.error().message)));
    }
    out.push_back(std::move(*decoded));
  }
  return out;
}

kube::Result<std::vector<PodInfo>> listPods(kube::Client& client, std::string_view path,
                                            const ListQuery& query, const FetchLimits& limits) {
  auto items = listBounded(client, path, query, limits);
  if (!items) return std::unexpected(std::move(items.error()));
  return decodeAll<PodInfo>(*items, "pods", podFromJson);
}

kube::Result<std::vector<EventInfo>> listWarnings(kube::Client& client, std::string_view path,
                                                  const std::string& kind, const std::string& name,
                                                  const FetchLimits& limits) {
  auto items =
      listBounded(client, path,
                  {.fieldSelector = fmt::format(
                       "type=Warning,involvedObject.kind={},involvedObject.name={}", kind, name)},
                  limits);
  if (!items) return std::unexpected(std::move(items.error()));
  return decodeAll<EventInfo>(*items, "events", eventFromJson);
}

}  // namespace

kube::Result<std::vector<json>> listBounded(kube::Client& client, std::string_view collectionPath,
                                            const ListQuery& query, const FetchLimits& limits) {
  std::vector<json> items;
  std::string continueToken;
  for (std::int64_t page = 0;; ++page) {
    if (page >= limits.maxPages) {
      return std::unexpected(
          badResponse(fmt::format("GET {}: more than {} pages: refusing an unbounded list",
                                  collectionPath, limits.maxPages)));
    }
    std::string target = fmt::format("{}?limit={}", collectionPath, limits.pageSize);
    if (!query.labelSelector.empty()) {
      target += "&labelSelector=" + text::percentEncode(query.labelSelector);
    }
    if (!query.fieldSelector.empty()) {
      target += "&fieldSelector=" + text::percentEncode(query.fieldSelector);
    }
    if (!continueToken.empty()) target += "&continue=" + text::percentEncode(continueToken);
    auto body = client.get(target);
    if (!body) return std::unexpected(std::move(body.error()));
    if (!body->is_object()) {
      return std::unexpected(badResponse(fmt::format("GET {}: not a list", collectionPath)));
    }
    const auto pageItems = body->find("items");
    if (pageItems != body->end() && !pageItems->is_null()) {
      if (!pageItems->is_array()) {
        return std::unexpected(
            badResponse(fmt::format("GET {}: items is not an array", collectionPath)));
      }
      if (static_cast<std::int64_t>(items.size() + pageItems->size()) > limits.maxItems) {
        return std::unexpected(
            badResponse(fmt::format("GET {}: more than {} items: refusing to hold them all",
                                    collectionPath, limits.maxItems)));
      }
      for (auto& item : *pageItems)
        items.push_back(std::move(item));
    }
    continueToken.clear();
    if (const auto meta = body->find("metadata"); meta != body->end() && meta->is_object()) {
      if (const auto c = meta->find("continue"); c != meta->end() && c->is_string()) {
        continueToken = c->get<std::string>();
      }
    }
    if (continueToken.empty()) return items;
  }
}

kube::Result<Snapshot> fetchSnapshot(kube::Client& client, const Args& args,
                                     const FetchLimits& limits) {
  Snapshot s;
  s.now =
      std::chrono::duration_cast<std::chrono::seconds>(client.clock().wallNow().time_since_epoch())
          .count();
  {
    auto items = listBounded(client, api::kPodSubnetsPath, {}, limits);
    if (!items) return std::unexpected(std::move(items.error()));
    auto subnets = decodeAll<SubnetInfo>(*items, "podsubnets", subnetFromJson);
    if (!subnets) return std::unexpected(std::move(subnets.error()));
    s.subnets = std::move(*subnets);
  }
  {
    auto items = listBounded(client, api::kIPBlocksPath, {}, limits);
    if (!items) return std::unexpected(std::move(items.error()));
    auto blocks = decodeAll<api::IPBlock>(*items, "ipblocks", api::ipBlockFromJson);
    if (!blocks) return std::unexpected(std::move(blocks.error()));
    s.blocks = std::move(*blocks);
  }
  {
    auto items = listBounded(client, kube::kNodesPath, {}, limits);
    if (!items) return std::unexpected(std::move(items.error()));
    auto nodes = decodeAll<NodeInfo>(*items, "nodes", nodeFromJson);
    if (!nodes) return std::unexpected(std::move(nodes.error()));
    s.nodes = std::move(*nodes);
  }

  switch (args.command) {
    case Command::kHelp:
    case Command::kRelease: break;  // release reads its report, not a snapshot
    case Command::kShow:
    case Command::kCheck: {
      // show --node needs that node's pods only; the pool view and check need every pod.
      ListQuery query;
      if (!args.node.empty()) query.fieldSelector = "spec.nodeName=" + args.node;
      auto pods = listPods(client, kube::kPodsPath, query, limits);
      if (!pods) return std::unexpected(std::move(pods.error()));
      s.pods = std::move(*pods);
      break;
    }
    case Command::kWhy: {
      auto body =
          client.get(fmt::format("{}/namespaces/{}/pods/{}", kube::kCoreApi,
                                 text::percentEncode(args.ns), text::percentEncode(args.pod)));
      if (!body) {
        if (body.error().code == kube::ErrorCode::kNotFound) return s;  // why() says so
        return std::unexpected(std::move(body.error()));
      }
      auto pod = podFromJson(*body);
      if (!pod) return std::unexpected(badResponse("pod: " + pod.error().message));
      s.pods.push_back(*pod);
      auto podEvents = listWarnings(
          client,
          fmt::format("{}/namespaces/{}/events", kube::kCoreApi, text::percentEncode(args.ns)),
          "Pod", args.pod, limits);
      if (!podEvents) return std::unexpected(std::move(podEvents.error()));
      s.events = std::move(*podEvents);
      if (pod->nodeName.empty()) break;
      auto agents = listPods(
          client, kube::kPodsPath,
          {.labelSelector = kAgentSelector, .fieldSelector = "spec.nodeName=" + pod->nodeName},
          limits);
      if (!agents) return std::unexpected(std::move(agents.error()));
      s.agentPods = std::move(*agents);
      // Events about cluster-scoped objects (the Node, IPBlocks) live in any namespace,
      // "default" by convention: ask across namespaces.
      std::vector<std::pair<std::string, std::string>> about{{"Node", pod->nodeName}};
      for (const auto& b : s.blocks) {
        if (b.spec.nodeName == pod->nodeName)
          about.emplace_back(api::kIPBlockKind, b.metadata.name);
      }
      for (const auto& [kind, name] : about) {
        auto events = listWarnings(client, kube::kEventsPath, kind, name, limits);
        if (!events) return std::unexpected(std::move(events.error()));
        s.events.insert(s.events.end(), events->begin(), events->end());
      }
      break;
    }
  }
  return s;
}

}  // namespace vnetipam::kubectl_ipam
