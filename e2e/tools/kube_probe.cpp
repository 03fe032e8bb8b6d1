// kube_probe: a command-line driver of lib/kube for the e2e tests (e2e/test_kube_client.py). Every
// command prints JSON to stdout; a failure prints the error to stderr and exits 1 (2 for usage).
//
//   kube_probe --kubeconfig F [--timeout S] get PATH
//   kube_probe --kubeconfig F list PATH LIMIT            -> {"items": n, "pages": p}
//   kube_probe --kubeconfig F create PATH                (object on stdin)
//   kube_probe --kubeconfig F apply PATH MANAGER         (object on stdin; force)
//   kube_probe --kubeconfig F apply-status PATH MANAGER  (object on stdin; force)
//   kube_probe --kubeconfig F [--timeout S] watch PATH RV COUNT
//       one line {"type": ..., "name": ...} per event (bookmarks skipped) until COUNT events;
//       fails when --timeout seconds (default 30) pass first.
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lib/kube/client.h"
#include "lib/kube/clock.h"
#include "lib/kube/config.h"
#include "lib/kube/cpprest_transport.h"
#include "lib/kube/error.h"
#include "lib/kube/http_transport.h"
#include "lib/kube/watch.h"

namespace {

using nlohmann::json;
namespace kube = vnetipam::kube;

constexpr std::string_view kUsage =
    "usage: kube_probe --kubeconfig FILE [--timeout SECONDS] COMMAND [ARGS]\n"
    "  get PATH | list PATH LIMIT | create PATH | apply PATH MANAGER |\n"
    "  apply-status PATH MANAGER | watch PATH RV COUNT\n";

// Counts the requests that go through, so `list` can report how many pages it took.
class CountingTransport final : public kube::HttpTransport {
 public:
  explicit CountingTransport(kube::HttpTransport& inner) : inner_(inner) {}
  kube::Result<kube::HttpResponse> send(const kube::HttpRequest& request) override {
    ++sends_;
    return inner_.send(request);
  }
  kube::Result<kube::HttpResponse> stream(const kube::HttpRequest& request,
                                          const std::function<bool(std::string_view)>& onChunk,
                                          kube::CancelSignal& cancel) override {
    return inner_.stream(request, onChunk, cancel);
  }
  int sends() const { return sends_.load(); }

 private:
  kube::HttpTransport& inner_;
  std::atomic<int> sends_{0};
};

int failWith(const kube::Error& error) {
  std::cerr << fmt::format("kube_probe: {} ({})\n", error.message, kube::toString(error.code));
  return 1;
}

int usage(std::string_view why) {
  std::cerr << "kube_probe: " << why << "\n" << kUsage;
  return 2;
}

bool parseInt(std::string_view text, long long& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

int printResult(const kube::Result<json>& result) {
  if (!result) return failWith(result.error());
  std::cout << result->dump() << "\n";
  return 0;
}

kube::Result<json> readStdinJson() {
  const std::string text{std::istreambuf_iterator<char>(std::cin),
                         std::istreambuf_iterator<char>()};
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return kube::fail(kube::ErrorCode::kInvalidArgument, "stdin: not JSON");
  return body;
}

std::string_view typeName(kube::WatchEventType type) {
  switch (type) {
    case kube::WatchEventType::kAdded: return "ADDED";
    case kube::WatchEventType::kModified: return "MODIFIED";
    case kube::WatchEventType::kDeleted: return "DELETED";
    case kube::WatchEventType::kBookmark: return "BOOKMARK";
  }
  return "UNKNOWN";
}

int runWatch(kube::HttpTransport& transport, const kube::TokenProvider& token,
             const std::string& path, std::string resourceVersion, long long count,
             std::chrono::seconds timeout) {
  kube::CancelSignal cancel;
  std::mutex mutex;
  std::condition_variable wake;
  bool done = false;
  bool timedOut = false;
  // Cancels the watch when the deadline passes; ends early once the watch is over.
  std::thread timer([&] {
    std::unique_lock lock(mutex);
    if (!wake.wait_for(lock, timeout, [&] { return done; })) {
      timedOut = true;
      lock.unlock();
      cancel.cancel();
    }
  });
  long long seen = 0;
  kube::Result<std::string> result;
  while (seen < count && !cancel.cancelled()) {
    kube::WatchOptions options{.resourceVersion = resourceVersion,
                               .timeoutSeconds = static_cast<int>(timeout.count()) + 1};
    result = kube::watch(
        transport, token, path, options,
        [&](kube::WatchEvent event) {
          if (event.type == kube::WatchEventType::kBookmark || seen >= count) return;
          const json line = {{"type", typeName(event.type)},
                             {"name", event.object["metadata"].value("name", "")}};
          std::cout << line.dump() << std::endl;
          if (++seen >= count) cancel.cancel();
        },
        cancel);
    if (result) {
      resourceVersion = *result;  // the server ended the stream: resume where it stopped
    } else if (result.error().code != kube::ErrorCode::kCancelled) {
      break;
    }
  }
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  wake.notify_all();
  timer.join();
  if (seen >= count) return 0;
  if (timedOut) {
    std::cerr << fmt::format("kube_probe: watch {}: timed out after {}s with {} of {} events\n",
                             path, timeout.count(), seen, count);
    return 1;
  }
  return failWith(result.error());
}

int run(int argc, char** argv) {
  std::string kubeconfig;
  std::chrono::seconds timeout{30};
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "--kubeconfig" || arg == "--timeout") && i + 1 < argc) {
      const std::string_view value = argv[++i];
      if (arg == "--kubeconfig") {
        kubeconfig = value;
      } else {
        long long seconds = 0;
        if (!parseInt(value, seconds) || seconds <= 0) return usage("--timeout: not a number > 0");
        timeout = std::chrono::seconds(seconds);
      }
    } else {
      args.emplace_back(arg);
    }
  }
  if (kubeconfig.empty()) return usage("--kubeconfig is required");
  if (args.empty()) return usage("no command");

  auto config = kube::loadKubeconfig(kubeconfig);
  if (!config) return failWith(config.error());
  auto real = kube::CpprestTransportImpl::create({
      .server = config->server,
      .caPem = config->caPem,
      .clientCertPem = config->clientCertPem,
      .clientKeyPem = config->clientKeyPem,
      .insecureSkipTlsVerify = config->insecureSkipTlsVerify,
      .streamTimeout = timeout + std::chrono::seconds(30),
  });
  if (!real) return failWith(real.error());
  CountingTransport transport(**real);
  kube::SteadyClockImpl clock;
  kube::Client client(transport, clock, {.token = config->token, .userAgent = "kube_probe"});

  const std::string& command = args[0];
  const auto want = [&](std::size_t n) { return args.size() == n + 1; };
  if (command == "get" && want(1)) return printResult(client.get(args[1]));
  if (command == "list" && want(2)) {
    long long limit = 0;
    if (!parseInt(args[2], limit) || limit < 0) return usage("list: LIMIT is not a number >= 0");
    auto list = client.list(args[1], {.limit = limit});
    if (!list) return failWith(list.error());
    std::cout << json{{"items", (*list)["items"].size()}, {"pages", transport.sends()}}.dump()
              << "\n";
    return 0;
  }
  if ((command == "create" && want(1)) ||
      ((command == "apply" || command == "apply-status") && want(2))) {
    auto body = readStdinJson();
    if (!body) return failWith(body.error());
    if (command == "create") return printResult(client.create(args[1], *body));
    const kube::ApplyOptions options{.fieldManager = args[2], .force = true};
    if (command == "apply") return printResult(client.apply(args[1], *body, options));
    return printResult(client.applyStatus(args[1], *body, options));
  }
  if (command == "watch" && want(3)) {
    long long count = 0;
    if (!parseInt(args[3], count) || count <= 0) return usage("watch: COUNT is not a number > 0");
    return runWatch(transport, config->token, args[1], args[2], count, timeout);
  }
  return usage(fmt::format("unknown command or wrong arguments: {}", command));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kube_probe: unexpected exception: " << e.what() << "\n";
    return 1;
  }
}
