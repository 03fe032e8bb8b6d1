// lease_probe: one leader-election candidate (lib/kube/leader_election.h) for the e2e tests
// (e2e/test_leader_election.py). Prints one JSON line per change, flushed at once:
//   {"event": "started" | "stopped", "identity": <own identity>, "t": <CLOCK_MONOTONIC seconds>}
//   {"event": "new_leader", "identity": <the leader seen>, "t": ...}
// "t" is the machine-wide monotonic clock (Python's time.monotonic()), so a test can order the
// lines of several probes. SIGTERM or SIGINT releases the lease (unless --no-release) and exits 0;
// losing the lease exits 1. Diagnostics go to stderr.
//
//   lease_probe --kubeconfig F --namespace NS --name LEASE --identity ID
//               [--lease-duration S] [--renew-deadline S] [--retry-period S] [--jitter F]
//               [--no-release] [--event]
// --event: record an events.k8s.io Event (reason LeaderElected) about the Lease on start.
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pthread.h>

#include "lib/base/clock.h"
#include "lib/http/cpprest_transport.h"
#include "lib/http/transport.h"
#include "lib/kube/client.h"
#include "lib/kube/config.h"
#include "lib/kube/connect.h"
#include "lib/kube/events.h"
#include "lib/kube/leader_election.h"

namespace {

using nlohmann::json;
namespace base = vnetipam::base;
namespace http = vnetipam::http;
namespace kube = vnetipam::kube;

constexpr std::string_view kUsage =
    "usage: lease_probe --kubeconfig FILE --namespace NS --name LEASE --identity ID\n"
    "         [--lease-duration S] [--renew-deadline S] [--retry-period S] [--jitter F]\n"
    "         [--no-release] [--event]\n";

std::mutex outputMutex;

void emit(std::string_view event, const std::string& identity) {
  const double t =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  const json line = {{"event", event}, {"identity", identity}, {"t", t}};
  std::lock_guard lock(outputMutex);
  std::cout << line.dump() << std::endl;
}

int usage(std::string_view why) {
  std::cerr << "lease_probe: " << why << "\n" << kUsage;
  return 2;
}

bool parseSeconds(std::string_view text, base::Clock::Duration& out) {
  try {
    std::size_t used = 0;
    const double seconds = std::stod(std::string(text), &used);
    if (used != text.size() || seconds <= 0) return false;
    out = std::chrono::duration_cast<base::Clock::Duration>(std::chrono::duration<double>(seconds));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

int run(int argc, char** argv) {
  std::string kubeconfig;
  bool recordEvent = false;
  kube::LeaderElectionConfig config{.leaseDuration = std::chrono::seconds(3),
                                    .renewDeadline = std::chrono::seconds(2),
                                    .retryPeriod = std::chrono::milliseconds(500),
                                    .jitterFactor = 0};
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--event") {
      recordEvent = true;
      continue;
    }
    if (arg == "--no-release") {
      config.releaseOnCancel = false;
      continue;
    }
    if (i + 1 >= argc) return usage(fmt::format("{}: missing value", arg));
    const std::string_view value = argv[++i];
    if (arg == "--kubeconfig") {
      kubeconfig = value;
    } else if (arg == "--namespace") {
      config.leaseNamespace = value;
    } else if (arg == "--name") {
      config.leaseName = value;
    } else if (arg == "--identity") {
      config.identity = value;
    } else if (arg == "--lease-duration") {
      if (!parseSeconds(value, config.leaseDuration)) return usage("--lease-duration: not > 0");
    } else if (arg == "--renew-deadline") {
      if (!parseSeconds(value, config.renewDeadline)) return usage("--renew-deadline: not > 0");
    } else if (arg == "--retry-period") {
      if (!parseSeconds(value, config.retryPeriod)) return usage("--retry-period: not > 0");
    } else if (arg == "--jitter") {
      try {
        config.jitterFactor = std::stod(std::string(value));
      } catch (const std::exception&) {
        return usage("--jitter: not a number");
      }
    } else {
      return usage(fmt::format("unknown argument {}", arg));
    }
  }
  if (kubeconfig.empty()) return usage("--kubeconfig is required");
  if (auto problem = kube::LeaderElector::validate(config)) return usage(*problem);

  // Block the signals in every thread (cpprest's included, so start none before this); one
  // thread takes them with sigwait and cancels the election.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  http::CancelSignal cancel;
  std::thread([&cancel, signals] {
    int received = 0;
    sigwait(&signals, &received);
    cancel.cancel();
  }).detach();

  auto loaded = kube::loadKubeconfig(kubeconfig);
  if (!loaded) {
    std::cerr << "lease_probe: " << loaded.error().message << "\n";
    return 1;
  }
  // A short request timeout: the renew deadline is checked between calls (leader_election.h).
  auto transport = http::CpprestTransportImpl::create(
      kube::transportOptions(*loaded, {.requestTimeout = std::chrono::seconds(1)}));
  if (!transport) {
    std::cerr << "lease_probe: " << transport.error().message << "\n";
    return 1;
  }
  base::SystemClock clock;
  kube::Client client(**transport, clock,
                      {.token = loaded->token,
                       .maxRetries = 1,
                       .initialBackoff = std::chrono::milliseconds(100),
                       .userAgent = "lease_probe"});
  kube::EventRecorder recorder(
      client, clock,
      {.reportingController = "vnetipam.io/lease-probe", .reportingInstance = config.identity});
  recorder.start();

  const std::string identity = config.identity;
  kube::LeaderElector* electorRef = nullptr;
  config.onStartedLeading = [&] {
    emit("started", identity);
    if (!recordEvent) return;
    const json lease = electorRef->observedLease();
    const json metadata =
        lease.is_object() ? lease.value("metadata", json::object()) : json::object();
    recorder.record({.apiVersion = "coordination.k8s.io/v1",
                     .kind = "Lease",
                     .name = metadata.value("name", ""),
                     .ns = metadata.value("namespace", ""),
                     .uid = metadata.value("uid", "")},
                    kube::EventType::kNormal, "LeaderElected", "Acquire",
                    fmt::format("{} became leader of lease {}/{}", identity,
                                metadata.value("namespace", ""), metadata.value("name", "")));
  };
  config.onStoppedLeading = [&] { emit("stopped", identity); };
  config.onNewLeader = [](const std::string& leader) { emit("new_leader", leader); };
  config.log = [](std::string_view line) { std::cerr << "lease_probe: " << line << std::endl; };

  kube::LeaderElector elector(client, clock, config);
  electorRef = &elector;
  elector.run(cancel);
  recorder.stop();  // writes what is queued
  return cancel.cancelled() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "lease_probe: unexpected exception: " << e.what() << "\n";
    return 1;
  }
}
