// azure-vnet-mock: a stand-in for the parts of Azure vnet-ipam uses (see arm_handler.h).
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "azure-mock/arm_handler.h"
#include "azure-mock/authorization.h"
#include "azure-mock/http_server.h"
#include "azure-mock/identity.h"
#include "azure-mock/route_programmer.h"
#include "azure-mock/state.h"

namespace {

using namespace vnetipam::azuremock;

constexpr std::string_view kUsage = R"(usage: azure-vnet-mock [flags]
  --listen URL              http://HOST:PORT or https://HOST:PORT (default http://127.0.0.1:8080)
  --cert FILE --key FILE    PEM certificate chain and key, required for https://
  --topology FILE           JSON topology (VNETs, subnets, VMs, NICs, clients) to start from
  --state-file FILE         persist the state here and start from it when it exists
  --prefix-length N         the only NIC prefix length accepted (default 28)
  --async-delay-ms N        how long a NIC PUT stays InProgress (default 1000)
  --throttle-rate R         share of ARM requests answered 429 (0..1, default 0)
  --retry-after-seconds N   Retry-After on injected 429/503 (default 1)
  --error-rate R            share of ARM requests answered 500/503 (0..1, default 0)
  --latency-ms N            added to every ARM response (default 0)
  --async-fail-rate R       share of NIC PUT operations that end Failed (0..1, default 0)
  --page-size N             NICs per list page before nextLink (default 100)
  --reads-per-5min N        NRP read limit, 0 = off (default 10000)
  --writes-per-5min N       NRP write limit, 0 = off (default 1000)
  --no-subscription-limits  turn ARM's per-subscription token buckets off (reads 250 +25/s,
                            writes and deletes 200 +10/s per principal; 15x that in all)
  --time-scale N            run the request limits N times faster (60: the 5-minute window
                            lasts 5 s, buckets refill 60x faster; default 1)
  --no-auth                 accept ARM calls without a bearer token
  --role-file FILE          allow only the actions of this Azure role definition (the JSON that
                            `az role definition create --role-definition` takes); others get 403
  --admin-token-file FILE   a bearer token that opens /mock/state and /mock/faults to peers off
                            loopback (without it, only loopback peers may use them)
  --sdn-netns NAME          program a route per NIC prefix in this network namespace (ip -n NAME)
  --seed N                  seed of the fault, etag and id randomness (default: random)
  --log-format text|json    (default text)
Admin: GET /mock/state, GET|PUT /mock/faults (loopback or the admin token), GET /mock/healthz
)";

struct Flags {
  ServerOptions server;
  StateOptions state;
  HandlerOptions handler;
  std::string topology;
  std::string adminTokenFile;
  std::string roleFile;
  std::optional<std::string> sdnNetns;
  std::string logFormat = "text";
  std::optional<std::uint64_t> seed;
};

template <typename T>
bool parseNumber(std::string_view text, T& out) {
  if constexpr (std::is_floating_point_v<T>) {
    try {
      std::size_t used = 0;
      out = static_cast<T>(std::stod(std::string(text), &used));
      return used == text.size();
    } catch (const std::exception&) {
      return false;
    }
  } else {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
  }
}

std::optional<Flags> parseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string value;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
      arg = arg.substr(0, eq);
    } else if (arg != "--no-auth" && arg != "--no-subscription-limits" && arg != "--help" &&
               arg != "-h") {
      if (i + 1 >= argc) {
        fmt::print(stderr, "{} needs a value\n{}", arg, kUsage);
        return std::nullopt;
      }
      value = argv[++i];
    }
    const auto rate = [&](double& out) { return parseNumber(value, out) && out >= 0 && out <= 1; };
    std::int64_t n = 0;
    bool ok = true;
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", kUsage);
      std::exit(0);
    } else if (arg == "--listen") {
      f.server.listenUrl = value;
    } else if (arg == "--cert") {
      f.server.certFile = value;
    } else if (arg == "--key") {
      f.server.keyFile = value;
    } else if (arg == "--topology") {
      f.topology = value;
    } else if (arg == "--state-file") {
      f.server.stateFile = value;
    } else if (arg == "--prefix-length") {
      ok = parseNumber(value, n) && n >= 1 && n <= 32;
      f.state.prefixLength = static_cast<int>(n);
    } else if (arg == "--async-delay-ms") {
      ok = parseNumber(value, n) && n >= 0;
      f.state.asyncDelay = std::chrono::milliseconds(n);
    } else if (arg == "--throttle-rate") {
      ok = rate(f.handler.faults.throttleRate);
    } else if (arg == "--error-rate") {
      ok = rate(f.handler.faults.errorRate);
    } else if (arg == "--async-fail-rate") {
      ok = rate(f.handler.faults.asyncFailRate);
    } else if (arg == "--retry-after-seconds") {
      ok = parseNumber(value, n) && n >= 0 && n <= 3600;
      f.handler.faults.retryAfterSeconds = static_cast<int>(n);
    } else if (arg == "--latency-ms") {
      ok = parseNumber(value, n) && n >= 0;
      f.handler.faults.latency = std::chrono::milliseconds(n);
    } else if (arg == "--page-size") {
      ok = parseNumber(value, n) && n >= 1;
      f.handler.listPageSize = static_cast<std::size_t>(n);
    } else if (arg == "--reads-per-5min") {
      ok = parseNumber(value, n) && n >= 0 && n < (1 << 30);
      f.handler.readsPer5Min = static_cast<int>(n);
    } else if (arg == "--writes-per-5min") {
      ok = parseNumber(value, n) && n >= 0 && n < (1 << 30);
      f.handler.writesPer5Min = static_cast<int>(n);
    } else if (arg == "--no-subscription-limits") {
      f.handler.subscriptionLimits = false;
    } else if (arg == "--time-scale") {
      ok = parseNumber(value, f.handler.timeScale) && f.handler.timeScale >= 0.001 &&
           f.handler.timeScale <= 100000;
    } else if (arg == "--no-auth") {
      f.handler.requireAuth = false;
    } else if (arg == "--admin-token-file") {
      f.adminTokenFile = value;
    } else if (arg == "--role-file") {
      f.roleFile = value;
    } else if (arg == "--sdn-netns") {
      f.sdnNetns = value;
    } else if (arg == "--seed") {
      std::uint64_t seed = 0;
      ok = parseNumber(value, seed);
      f.seed = seed;
    } else if (arg == "--log-format") {
      ok = value == "text" || value == "json";
      f.logFormat = value;
    } else {
      fmt::print(stderr, "unknown flag {}\n{}", arg, kUsage);
      return std::nullopt;
    }
    if (!ok) {
      fmt::print(stderr, "{}: bad value \"{}\"\n{}", arg, value, kUsage);
      return std::nullopt;
    }
  }
  return f;
}

int gSignalPipe[2] = {-1, -1};

void onSignal(int signal) {
  const auto byte = static_cast<unsigned char>(signal);
  // write(2) is async-signal-safe; nothing else happens here.
  [[maybe_unused]] const auto ignored = ::write(gSignalPipe[1], &byte, 1);
}

std::optional<nlohmann::json> readJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    spdlog::error("cannot read {}", path);
    return std::nullopt;
  }
  auto doc = nlohmann::json::parse(in, nullptr, false);
  if (doc.is_discarded()) {
    spdlog::error("{} is not valid JSON", path);
    return std::nullopt;
  }
  return doc;
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = parseFlags(argc, argv);
  if (!flags) return 2;
  if (flags->logFormat == "json") {
    spdlog::set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"azure-vnet-mock","msg":"%v"})",
        spdlog::pattern_time_type::utc);
  }
  // Lines reach a file or pipe at once: tests and operators tail them.
  spdlog::flush_on(spdlog::level::info);
  // A handler, not sigwait with a blocked mask: libraries may start threads before main, and a
  // signal delivered to one of those would otherwise kill the process without a clean stop.
  if (::pipe2(gSignalPipe, O_CLOEXEC) != 0) {
    spdlog::error("pipe2: {}", std::strerror(errno));
    return 1;
  }
  struct sigaction action {};
  action.sa_handler = onSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  // A client that goes away mid-answer (a controller SIGKILLed, a timed-out request) must cost
  // that connection only: OpenSSL writes with write(2), which raises SIGPIPE on a closed socket.
  ::signal(SIGPIPE, SIG_IGN);

  vnetipam::base::SystemClock clock;
  Mt19937RandomImpl random{flags->seed.value_or(
      std::random_device{}() ^
      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()))};
  MockState state(flags->state, clock, random);

  if (!flags->roleFile.empty()) {
    auto doc = readJson(flags->roleFile);
    if (!doc) return 1;
    auto role = parseRoleDefinition(*doc);
    if (!role) {
      spdlog::error("--role-file {}: {}", flags->roleFile, role.error());
      return 1;
    }
    spdlog::info("ARM calls are authorized against role \"{}\" ({} actions)", role->name,
                 role->actions.size());
    flags->handler.role = std::move(*role);
  }

  std::optional<nlohmann::json> topology;
  if (!flags->topology.empty() && !(topology = readJson(flags->topology))) return 1;
  const bool resume =
      !flags->server.stateFile.empty() && std::filesystem::exists(flags->server.stateFile);
  std::optional<nlohmann::json> doc = resume ? readJson(flags->server.stateFile) : topology;
  if (!doc) {
    spdlog::error(resume ? "cannot resume from --state-file" : "--topology FILE is required");
    return 1;
  }
  if (auto ok = state.load(*doc); !ok) {
    spdlog::error("{}: {}", resume ? flags->server.stateFile : flags->topology, ok.error());
    return 1;
  }
  if (topology && topology->contains("clients") && (*topology)["clients"].is_array()) {
    for (const auto& c : (*topology)["clients"]) {
      flags->handler.clients.push_back(
          ClientCredential{.tenantId = c.value("tenantId", ""),
                           .clientId = c.value("clientId", ""),
                           .clientSecret = c.value("clientSecret", "")});
    }
  }

  std::unique_ptr<RouteProgrammer> programmer;
  std::unique_ptr<RouteSync> routes;
  if (flags->sdnNetns) {
    auto created = IpRouteProgrammerImpl::create(*flags->sdnNetns);
    if (!created) {
      spdlog::error("--sdn-netns: {}", created.error());
      return 2;
    }
    programmer = std::move(*created);
    routes = std::make_unique<RouteSync>(*programmer);
  }

  flags->handler.tokenKey = randomTokenKey();
  if (!flags->adminTokenFile.empty()) {
    std::ifstream in(flags->adminTokenFile);
    std::string token;
    // The first line, so a file written with a trailing newline works.
    if (!in || !std::getline(in, token) || token.empty()) {
      spdlog::error("--admin-token-file {}: cannot read a token from it", flags->adminTokenFile);
      return 2;
    }
    while (!token.empty() && (token.back() == '\r' || token.back() == ' '))
      token.pop_back();
    flags->handler.adminToken = std::move(token);
  }
  flags->handler.scheme = flags->server.listenUrl.starts_with("https://") ? "https" : "http";
  flags->handler.maxBodyBytes = flags->server.maxBodyBytes;
  ArmHandler handler(state, flags->handler, clock, random,
                     [] { return static_cast<std::int64_t>(std::time(nullptr)); });
  HttpServer server(flags->server, handler, routes.get());
  if (auto ok = server.start(); !ok) {
    spdlog::error("{}", ok.error());
    return 1;
  }
  spdlog::info("azure-vnet-mock listening on {} ({}{})", flags->server.listenUrl,
               resume ? "resumed from " + flags->server.stateFile : "topology " + flags->topology,
               flags->sdnNetns ? ", SDN in netns " + *flags->sdnNetns : "");
  unsigned char received = 0;
  while (::read(gSignalPipe[0], &received, 1) < 0 && errno == EINTR) {
  }
  spdlog::info("signal {}: stopping", static_cast<int>(received));
  server.stop();
  return 0;
}
