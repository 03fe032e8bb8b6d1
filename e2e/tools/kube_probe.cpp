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
//   kube_probe --kubeconfig F [--timeout S] [--label-selector S] [--field-selector S]
//              [--page-size N] informer PATH
//       runs an Informer until stdin closes or --timeout passes, printing one line per handler
//       call {"type": "add"|"update"|"delete", "name", "resourceVersion"}, {"type": "synced"}
//       once the first list is in, {"type": "error", "code", "message"} per failure, and at the
//       end {"type": "cache", "items": [{"name", "resourceVersion"}...]}. Lines on stdin steer
//       the watch connection, for tests that must know when changes happen relative to it:
//         hold             the next watch connection waits (printing {"type": "held"}) ...
//         release [RV]     ... until this; with RV it asks the server for RV instead of the
//                          informer's resume point ("1" forces a 410 Gone: too old)
//         cut              breaks the current watch connection (as a network failure would)
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <unistd.h>

#include "lib/base/clock.h"
#include "lib/http/cpprest_transport.h"
#include "lib/http/transport.h"
#include "lib/kube/client.h"
#include "lib/kube/config.h"
#include "lib/kube/connect.h"
#include "lib/kube/error.h"
#include "lib/kube/informer.h"
#include "lib/kube/watch.h"

namespace {

using nlohmann::json;
namespace base = vnetipam::base;
namespace http = vnetipam::http;
namespace kube = vnetipam::kube;

constexpr std::string_view kUsage =
    "usage: kube_probe --kubeconfig FILE [--timeout SECONDS] COMMAND [ARGS]\n"
    "  get PATH | list PATH LIMIT | create PATH | apply PATH MANAGER |\n"
    "  apply-status PATH MANAGER | watch PATH RV COUNT |\n"
    "  informer PATH [--label-selector S] [--field-selector S] [--page-size N]\n";

// Counts the requests that go through, so `list` can report how many pages it took.
class CountingTransport final : public http::HttpTransport {
 public:
  explicit CountingTransport(http::HttpTransport& inner) : inner_(inner) {}
  http::Result<http::HttpResponse> send(const http::HttpRequest& request) override {
    ++sends_;
    return inner_.send(request);
  }
  http::Result<http::HttpResponse> stream(const http::HttpRequest& request,
                                          const std::function<bool(std::string_view)>& onChunk,
                                          http::CancelSignal& cancel) override {
    return inner_.stream(request, onChunk, cancel);
  }
  int sends() const { return sends_.load(); }

 private:
  http::HttpTransport& inner_;
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

int runWatch(http::HttpTransport& transport, const kube::TokenProvider& token,
             const std::string& path, std::string resourceVersion, long long count,
             std::chrono::seconds timeout) {
  http::CancelSignal cancel;
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

// Prints whole lines from several threads.
class LinePrinter {
 public:
  void print(const json& line) {
    std::lock_guard lock(mutex_);
    std::cout << line.dump() << std::endl;
  }

 private:
  std::mutex mutex_;
};

// Lets the test decide when the informer's watch connects and from where (see the usage above).
class SteerableTransport final : public http::HttpTransport {
 public:
  SteerableTransport(http::HttpTransport& inner, LinePrinter& out) : inner_(inner), out_(out) {}

  http::Result<http::HttpResponse> send(const http::HttpRequest& request) override {
    return inner_.send(request);
  }

  http::Result<http::HttpResponse> stream(const http::HttpRequest& request,
                                          const std::function<bool(std::string_view)>& onChunk,
                                          http::CancelSignal& cancel) override {
    http::HttpRequest steered = request;
    bool held = false;
    {
      std::lock_guard lock(mutex_);
      held = hold_;
    }
    if (held) {
      out_.print({{"type", "held"}});
      // Registered without our lock: a signal already cancelled runs the callback at once.
      const auto id = cancel.onCancel([this] {
        std::lock_guard lock(mutex_);
        wake_.notify_all();
      });
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return !hold_ || cancel.cancelled(); });
      }
      cancel.removeOnCancel(id);
    }
    {
      std::lock_guard lock(mutex_);
      if (resumeFrom_) {
        steered.target = withResourceVersion(steered.target, *resumeFrom_);
        resumeFrom_.reset();
      }
    }
    // An inner signal, so `cut` can end this one connection without stopping the informer.
    http::CancelSignal connection;
    const auto forward = cancel.onCancel([&connection] { connection.cancel(); });
    {
      std::lock_guard lock(mutex_);
      current_ = &connection;
    }
    auto response = inner_.stream(steered, onChunk, connection);
    {
      std::lock_guard lock(mutex_);
      current_ = nullptr;
    }
    cancel.removeOnCancel(forward);
    if (!response && response.error().code == http::ErrorCode::kCancelled && !cancel.cancelled()) {
      return http::fail(http::ErrorCode::kTransport, "watch connection cut by the test");
    }
    return response;
  }

  void hold() {
    std::lock_guard lock(mutex_);
    hold_ = true;
  }
  void release(std::optional<std::string> resourceVersion) {
    std::lock_guard lock(mutex_);
    hold_ = false;
    resumeFrom_ = std::move(resourceVersion);
    wake_.notify_all();
  }
  void cut() {
    // Under the lock: stream() clears current_ under it before the signal goes away. The only
    // callbacks on that signal are the transport's, which take no lock of ours.
    std::lock_guard lock(mutex_);
    if (current_ != nullptr) current_->cancel();
  }

 private:
  static std::string withResourceVersion(const std::string& target, const std::string& rv) {
    const std::string key = "resourceVersion=";
    std::size_t at = target.find("&" + key);
    if (at == std::string::npos) at = target.find("?" + key);
    if (at == std::string::npos) return fmt::format("{}&{}{}", target, key, rv);
    const std::size_t valueStart = at + 1 + key.size();
    const std::size_t valueEnd = std::min(target.find('&', valueStart), target.size());
    return target.substr(0, valueStart) + rv + target.substr(valueEnd);
  }

  http::HttpTransport& inner_;
  LinePrinter& out_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool hold_ = false;
  std::optional<std::string> resumeFrom_;
  http::CancelSignal* current_ = nullptr;
};

json summary(const json& object) {
  return {{"name", object["metadata"].value("name", "")},
          {"resourceVersion", object["metadata"].value("resourceVersion", "")}};
}

int runInformer(http::HttpTransport& real, const kube::TokenProvider& token,
                const std::string& path, const kube::ListOptions& listOptions,
                std::chrono::seconds timeout) {
  LinePrinter out;
  SteerableTransport transport(real, out);
  base::SystemClock clock;
  kube::Client client(transport, clock, {.token = token, .userAgent = "kube_probe"});
  auto line = [&out](std::string_view type, const json& object) {
    json l = summary(object);
    l["type"] = type;
    out.print(l);
  };
  kube::Informer informer(
      client, path,
      {.list = listOptions,
       .watchTimeoutSeconds = static_cast<int>(timeout.count()) + 1,
       // Short, so a test's API server restart is followed by a prompt reconnect.
       .reconnect = {.initialBackoff = std::chrono::milliseconds(100),
                     .maxBackoff = std::chrono::milliseconds(2000)},
       .onError =
           [&out](const kube::Error& error) {
             out.print({{"type", "error"},
                        {"code", kube::toString(error.code)},
                        {"message", error.message}});
           }},
      {.onAdd = [&](const json& o) { line("add", o); },
       .onUpdate = [&](const json&, const json& o) { line("update", o); },
       .onDelete = [&](const json& o) { line("delete", o); }});
  informer.start();

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool syncedPrinted = false;
  std::string input;
  for (;;) {
    if (!syncedPrinted && informer.hasSynced()) {
      out.print({{"type", "synced"}});
      syncedPrinted = true;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    pollfd in{.fd = STDIN_FILENO, .events = POLLIN, .revents = 0};
    if (poll(&in, 1, 20) <= 0) continue;
    char buffer[4096];
    const ssize_t got = read(STDIN_FILENO, buffer, sizeof buffer);
    if (got <= 0) break;  // stdin closed
    input.append(buffer, static_cast<std::size_t>(got));
    for (std::size_t end; (end = input.find('\n')) != std::string::npos;) {
      const std::string command = input.substr(0, end);
      input.erase(0, end + 1);
      if (command == "hold") {
        transport.hold();
      } else if (command == "release") {
        transport.release(std::nullopt);
      } else if (command.starts_with("release ")) {
        transport.release(command.substr(8));
      } else if (command == "cut") {
        transport.cut();
      } else if (!command.empty()) {
        std::cerr << "kube_probe: unknown informer command: " << command << "\n";
      }
    }
  }
  transport.release(std::nullopt);
  informer.stop();
  json items = json::array();
  for (const json& object : informer.list())
    items.push_back(summary(object));
  out.print({{"type", "cache"}, {"items", items}});
  return 0;
}

int run(int argc, char** argv) {
  std::string kubeconfig;
  std::chrono::seconds timeout{30};
  std::vector<std::string> args;
  kube::ListOptions listOptions;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "--label-selector" || arg == "--field-selector" || arg == "--page-size") &&
        i + 1 < argc) {
      const std::string_view value = argv[++i];
      if (arg == "--label-selector") {
        listOptions.labelSelector = value;
      } else if (arg == "--field-selector") {
        listOptions.fieldSelector = value;
      } else {
        long long limit = 0;
        if (!parseInt(value, limit) || limit < 0) return usage("--page-size: not a number >= 0");
        listOptions.limit = limit;
      }
    } else if ((arg == "--kubeconfig" || arg == "--timeout") && i + 1 < argc) {
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
  auto real = http::CpprestTransportImpl::create(
      kube::transportOptions(*config, {.streamTimeout = timeout + std::chrono::seconds(30)}));
  if (!real) return failWith(kube::fromTransport(real.error()));
  CountingTransport transport(**real);
  base::SystemClock clock;
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
  if (command == "informer" && want(1)) {
    return runInformer(transport, config->token, args[1], listOptions, timeout);
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
