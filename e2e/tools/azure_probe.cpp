// azure_probe: drives lib/azure's NetworkClient against azure-vnet-mock for the e2e tests
// (e2e/test_azure_mock.py). Applies a plan {nicId: [prefix...]} with setNicPrefixes, one call per
// NIC, on a few threads, and prints one JSON summary to stdout:
//   {"nics", "written", "unchanged", "added", "removed", "conflicts", "failed", "errors": [...],
//    "responses": {"200": n, "429": n, ...}, "waits": {"Throttled": {"count", "ms"}, ...},
//    "elapsedMs"}
// Exit 0 when every NIC was set, 1 when any failed, 2 on usage or setup errors.
//
//   azure_probe --azure-json F --arm URL --authority URL [--ca-file F] [--threads N] --plan F
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lib/azure/config.h"
#include "lib/azure/connect.h"
#include "lib/azure/metrics.h"
#include "lib/azure/network.h"
#include "lib/base/clock.h"
#include "lib/ipam/ip.h"

namespace {

using nlohmann::json;
namespace azure = vnetipam::azure;
namespace base = vnetipam::base;
namespace ipam = vnetipam::ipam;

constexpr std::string_view kUsage =
    "usage: azure_probe --azure-json FILE --arm URL --authority URL [--ca-file FILE]\n"
    "                   [--threads N] --plan FILE\n";

// Counts every attempt by status and every wait by reason.
class CountingObserver final : public azure::ArmObserver {
 public:
  void onRequest(std::string_view, int status, std::chrono::nanoseconds) override {
    std::lock_guard lock(mutex_);
    ++responses_[std::to_string(status)];
  }
  void onWait(std::string_view, azure::WaitReason reason, std::chrono::nanoseconds wait) override {
    std::lock_guard lock(mutex_);
    auto& [count, total] = waits_[std::string(azure::toString(reason))];
    ++count;
    total += wait;
  }
  json toJson() {
    std::lock_guard lock(mutex_);
    json waits = json::object();
    for (const auto& [reason, w] : waits_) {
      waits[reason] = {
          {"count", w.first},
          {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(w.second).count()}};
    }
    return {{"responses", responses_}, {"waits", std::move(waits)}};
  }

 private:
  std::mutex mutex_;
  std::map<std::string, int> responses_;
  std::map<std::string, std::pair<int, std::chrono::nanoseconds>> waits_;
};

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

int usage(std::string_view why) {
  fmt::print(stderr, "{}\n{}", why, kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (!arg.starts_with("--") || i + 1 >= argc) return usage(fmt::format("bad argument {}", arg));
    flags[std::string(arg.substr(2))] = argv[++i];
  }
  for (const auto* required : {"azure-json", "arm", "authority", "plan"}) {
    if (!flags.contains(required)) return usage(fmt::format("--{} is required", required));
  }
  int threads = 4;
  if (flags.contains("threads")) {
    const auto& t = flags["threads"];
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), threads);
    if (ec != std::errc() || end != t.data() + t.size() || threads < 1 || threads > 64)
      return usage("--threads must be 1..64");
  }

  // Hermetic: no AZURE_* variables from the test runner's environment.
  const azure::EnvLookup noEnv = [](std::string_view) { return std::optional<std::string>(); };
  auto config =
      azure::loadAzureConfig(flags["azure-json"], noEnv,
                             azure::EndpointOverrides{.resourceManager = flags["arm"],
                                                      .authorityHost = flags["authority"]});
  if (!config) return usage(config.error().message);

  std::string caPem;
  if (flags.contains("ca-file")) {
    auto text = readFile(flags["ca-file"]);
    if (!text) return usage(fmt::format("cannot read {}", flags["ca-file"]));
    caPem = std::move(*text);
  }

  auto planText = readFile(flags["plan"]);
  if (!planText) return usage(fmt::format("cannot read {}", flags["plan"]));
  const json planDoc = json::parse(*planText, nullptr, false);
  if (!planDoc.is_object()) return usage("the plan must be a JSON object {nicId: [prefix...]}");
  std::vector<std::pair<std::string, std::vector<ipam::Prefix>>> plan;
  for (const auto& [nicId, prefixes] : planDoc.items()) {
    if (!prefixes.is_array()) return usage(fmt::format("plan[{}] must be an array", nicId));
    std::vector<ipam::Prefix> desired;
    for (const auto& p : prefixes) {
      auto prefix =
          p.is_string() ? ipam::Prefix::parse(p.get<std::string>()) : ipam::Prefix::parse("");
      if (!prefix) return usage(fmt::format("plan[{}]: bad prefix {}", nicId, p.dump()));
      desired.push_back(*prefix);
    }
    plan.emplace_back(nicId, std::move(desired));
  }

  base::SystemClock clock;
  CountingObserver observer;
  // No client-side budgets: the test is about the server's throttling and faults.
  auto clients = azure::connectAzure(
      *config, clock, azure::ArmClientOptions{.readQps = 0, .writeQps = 0, .observer = &observer},
      azure::CredentialOptions{.observer = &observer}, caPem);
  if (!clients) return usage(clients.error().message);
  azure::NetworkClient& network = *(*clients)->network;

  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  int written = 0, unchanged = 0, added = 0, removed = 0, conflicts = 0;
  json errors = json::array();
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (std::size_t i = next++; i < plan.size(); i = next++) {
        const auto& [nicId, desired] = plan[i];
        auto change = network.setNicPrefixes(nicId, desired);
        std::lock_guard lock(mutex);
        if (!change) {
          errors.push_back({{"nic", nicId},
                            {"code", azure::toString(change.error().code)},
                            {"httpStatus", change.error().httpStatus},
                            {"message", change.error().message}});
          continue;
        }
        (change->written ? written : unchanged) += 1;
        added += static_cast<int>(change->added.size());
        removed += static_cast<int>(change->removed.size());
        conflicts += change->conflicts;
      }
    });
  }
  for (auto& w : workers)
    w.join();

  json summary = observer.toJson();
  summary["nics"] = plan.size();
  summary["written"] = written;
  summary["unchanged"] = unchanged;
  summary["added"] = added;
  summary["removed"] = removed;
  summary["conflicts"] = conflicts;
  summary["failed"] = errors.size();
  summary["errors"] = std::move(errors);
  summary["elapsedMs"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - start)
                             .count();
  fmt::print("{}\n", summary.dump());
  return summary["failed"] == 0 ? 0 : 1;
}
