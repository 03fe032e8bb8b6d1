// kubectl-ipam: the `kubectl ipam` plugin (docs/kubectl-ipam.md). Reads the API; only `release`
// writes (the release annotation of the IPBlocks its report names, release_run.h).
// This file is the thin edge: arguments, kubeconfig, the transport; fetch.h reads, report.h
// decides and renders.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "kubectl-ipam/args.h"
#include "kubectl-ipam/fetch.h"
#include "kubectl-ipam/release_run.h"
#include "kubectl-ipam/report.h"
#include "lib/base/clock.h"
#include "lib/http/cpprest_transport.h"
#include "lib/kube/client.h"
#include "lib/kube/config.h"
#include "lib/kube/connect.h"

namespace base = vnetipam::base;
namespace http = vnetipam::http;
namespace ki = vnetipam::kubectl_ipam;
namespace kube = vnetipam::kube;

namespace {

constexpr int kUsageOrApiError = 2;

int fail(const std::string& message) {
  std::fprintf(stderr, "kubectl-ipam: %s\n", message.c_str());
  return kUsageOrApiError;
}

void print(const std::string& text) { std::fwrite(text.data(), 1, text.size(), stdout); }

void printJson(const nlohmann::json& j) { print(j.dump(2) + "\n"); }

}  // namespace

int main(int argc, char** argv) {
  auto args = ki::parseArgs({argv + 1, static_cast<std::size_t>(argc - 1)});
  if (!args) return fail(args.error() + " (see kubectl ipam --help)");
  if (args->command == ki::Command::kHelp) {
    print(ki::usage());
    return 0;
  }
  const auto path = ki::kubeconfigPath(*args, [](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    return value ? std::optional<std::string>(value) : std::nullopt;
  });
  if (!path) return fail(path.error());
  auto config = kube::loadKubeconfig(*path, args->context);
  if (!config) return fail(config.error().message);
  auto transport = http::CpprestTransportImpl::create(
      kube::transportOptions(*config, {.requestTimeout = std::chrono::seconds(30)}));
  if (!transport) return fail(config->origin + ": " + transport.error().message);
  base::Clock& clock = base::systemClock();
  // A person waits on this: few retries, no client-side rate limit beyond the server's.
  kube::Client client(
      **transport, clock,
      {.token = config->token, .qps = 0, .maxRetries = 2, .userAgent = "kubectl-ipam"});

  if (args->command == ki::Command::kRelease) {
    std::string text;
    if (args->fromReport == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
      std::ifstream in(args->fromReport);
      if (!in) return fail("--from-report " + args->fromReport + ": cannot read it");
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return ki::runRelease(client, *args, {.reportText = std::move(text)});
  }

  auto snapshot = ki::fetchSnapshot(client, *args);
  if (!snapshot) return fail(config->origin + ": " + snapshot.error().message);
  if (!args->podSubnet.empty()) {
    auto narrowed = ki::onlyPodSubnet(std::move(*snapshot), args->podSubnet);
    if (!narrowed) return fail("no PodSubnet named \"" + args->podSubnet + "\"");
    *snapshot = std::move(*narrowed);
  }
  const bool json = args->output == ki::Output::kJson;
  switch (args->command) {
    case ki::Command::kHelp:
    case ki::Command::kRelease: break;
    case ki::Command::kShow:
      if (args->node.empty()) {
        const auto pools = ki::showPools(*snapshot);
        json ? printJson(ki::toJson(pools)) : print(ki::renderPools(pools));
      } else {
        const auto report = ki::showNode(*snapshot, args->node);
        json ? printJson(ki::toJson(report)) : print(ki::renderNode(report));
      }
      return 0;
    case ki::Command::kCheck: {
      const auto report = ki::check(*snapshot);
      json ? printJson(ki::toJson(report)) : print(ki::renderCheck(report));
      return report.clean() ? 0 : 1;
    }
    case ki::Command::kWhy: {
      const auto report = ki::why(*snapshot, args->ns, args->pod);
      json ? printJson(ki::toJson(report)) : print(ki::renderWhy(report));
      return report.found ? 0 : kUsageOrApiError;
    }
  }
  return 0;
}
