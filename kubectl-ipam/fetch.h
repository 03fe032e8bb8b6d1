// The I/O edge of kubectl-ipam: reads what a command needs from the API into a Snapshot. Lists
// are paged (limit/continue) and bounded: lib/kube's Client::list merges every page with no
// limit, so this pages itself and refuses a list that grows past FetchLimits instead of holding
// an unbounded response in memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kubectl-ipam/args.h"
#include "kubectl-ipam/snapshot.h"
#include "lib/kube/client.h"

namespace vnetipam::kubectl_ipam {

struct FetchLimits {
  std::int64_t pageSize = 500;
  // Per list. Far beyond any cluster this tool is for (5,000 nodes of 110 pods is 550,000 pods:
  // pods are listed per node there), and well below what would exhaust a laptop's memory.
  std::int64_t maxItems = 200'000;
  std::int64_t maxPages = 2'000;
};

struct ListQuery {
  std::string labelSelector;
  std::string fieldSelector;
};

// Every item of a collection, page by page; kBadResponse when the server sends more than the
// limits allow, or a page that is not a list.
kube::Result<std::vector<nlohmann::json>> listBounded(kube::Client& client,
                                                      std::string_view collectionPath,
                                                      const ListQuery& query,
                                                      const FetchLimits& limits = {});

// The pods of the vnet-ipam agent DaemonSet, by the chart's selector labels
// (charts/vnet-ipam/templates/_helpers.tpl, vnet-ipam.selectorLabels).
inline constexpr const char* kAgentSelector =
    "app.kubernetes.io/name=vnet-ipam,app.kubernetes.io/component=agent";

// What `args.command` needs, read now. Errors name the list that failed.
kube::Result<Snapshot> fetchSnapshot(kube::Client& client, const Args& args,
                                     const FetchLimits& limits = {});

}  // namespace vnetipam::kubectl_ipam
