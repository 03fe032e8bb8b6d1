// Malformed input at the plugins' boundary (input_bounds.h): every case must end as the spec's
// error object with a non-zero exit, never as a signal or a hang. Each plugin run happens in a
// forked child with an alarm, so a crash or a hang fails one case instead of the whole binary.
// The vnet-transparent cases use anonymous test namespaces (root), like transparent_plugin_test.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "node-agent/cni/input_bounds.h"
#include "node-agent/cni/ipam_plugin.h"
#include "node-agent/cni/transparent_plugin.h"
#include "unit/lib/net/test_netns.h"

extern char** environ;  // NOLINT: POSIX

namespace vnetipam::cni {
namespace {

using nlohmann::json;

// ---- running a case ---------------------------------------------------------------------------

struct Ran {
  std::optional<int> signal;  // set when the run ended on a signal (SIGALRM: it hung)
  int exitCode = 0;
  std::string out;
  std::chrono::milliseconds took{0};
};

// Runs fn in a forked child that dies of SIGALRM after `timeout`.
Ran isolated(const std::function<Invocation()>& fn, unsigned timeoutSeconds = 10) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) return {.signal = -1};
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipeFds[0]);
    ::alarm(timeoutSeconds);
    const Invocation inv = fn();
    std::string_view rest = inv.out;
    while (!rest.empty()) {
      const ssize_t n = ::write(pipeFds[1], rest.data(), rest.size());
      if (n <= 0) break;
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    ::_exit(inv.exitCode & 0xff);
  }
  ::close(pipeFds[1]);
  Ran ran;
  ran.out = readBounded(pipeFds[0], 64U << 20);
  ::close(pipeFds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ran.took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  if (WIFSIGNALED(status)) ran.signal = WTERMSIG(status);
  if (WIFEXITED(status)) ran.exitCode = WEXITSTATUS(status);
  return ran;
}

// The spec's error object, or nullopt (with the reason in *why) if `ran` is anything else.
std::optional<json> errorObject(const Ran& ran, std::string* why) {
  if (ran.signal) {
    *why = fmt::format("ended on signal {}", *ran.signal);
    return std::nullopt;
  }
  if (ran.exitCode == 0) {
    *why = "succeeded: " + ran.out;
    return std::nullopt;
  }
  auto doc = json::parse(ran.out, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("code") || !doc["code"].is_number_integer() ||
      !doc.contains("msg") || !doc["msg"].is_string() || !doc.contains("cniVersion")) {
    *why = "printed no error object: " + ran.out;
    return std::nullopt;
  }
  return doc;
}

#define EXPECT_CNI_ERROR(ran, wantCode, wantInMsg, label)                                   \
  do {                                                                                      \
    std::string why_;                                                                       \
    const auto err_ = errorObject(ran, &why_);                                              \
    if (!err_) {                                                                            \
      ADD_FAILURE() << (label) << ": " << why_;                                             \
      break;                                                                                \
    }                                                                                       \
    EXPECT_EQ((*err_)["code"].get<int>(), (wantCode)) << (label) << ": " << (*err_)["msg"]; \
    EXPECT_NE((*err_)["msg"].get<std::string>().find(wantInMsg), std::string::npos)         \
        << (label) << ": " << (*err_)["msg"];                                               \
  } while (0)

class FakeAgent : public AgentClient {
 public:
  base::Result<agent::Response> call(const std::string&, const agent::Request&,
                                     std::chrono::milliseconds) override {
    agent::Response response;
    response.ok = true;
    response.ready = true;
    response.freeIPs = 10;
    response.allocations.push_back({.address = *ipam::IPAddress::parse("10.0.0.5")});
    return response;
  }
};

class FakeIpam : public IpamDelegate {
 public:
  Outcome<Result> run(Command command, const Env&, const NetConf&) override {
    if (command != Command::kAdd) return Result{};
    Result r;
    r.ips.push_back({.address = *ipam::IPAddress::parse("10.77.0.5"), .prefixLength = 32});
    return r;
  }
};

std::map<std::string, std::string> cniEnv(const char* command, std::string netns = "/run/netns/p") {
  return {
      {"CNI_COMMAND", command},        {"CNI_CONTAINERID", "ctr-1"},
      {"CNI_NETNS", std::move(netns)}, {"CNI_IFNAME", "eth0"},
      {"CNI_PATH", "/nonexistent"},    {"CNI_ARGS", "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0"}};
}

json prevResult() {
  return {{"cniVersion", "1.0.0"},
          {"interfaces",
           {{{"name", "eth0"}, {"mac", "aa:bb:cc:dd:ee:ff"}, {"mtu", 1500}, {"sandbox", "/n"}}}},
          {"ips", {{{"address", "10.0.0.5/32"}, {"gateway", "169.254.1.1"}, {"interface", 0}}}},
          {"routes", {{{"dst", "0.0.0.0/0"}, {"gw", "169.254.1.1"}}}},
          {"dns", {{"nameservers", {"10.0.0.10"}}}}};
}

json ipamConfig() {
  return {{"cniVersion", "1.0.0"},
          {"name", "vnet"},
          {"type", "vnet-ipam"},
          {"ipam",
           {{"type", "vnet-ipam"},
            {"socket", "/run/x.sock"},
            {"timeoutMs", 1000},
            {"addressPrefixLength", 32},
            {"routes", {{{"dst", "0.0.0.0/0"}, {"gw", "169.254.1.1"}}}}}},
          {"runtimeConfig", json::object()},
          {"prevResult", prevResult()}};
}

json transparentConfig() {
  json c = ipamConfig();
  c["type"] = "vnet-transparent";
  c["hostVethPrefix"] = "tst";
  c["mtu"] = 1400;
  c["ipam"] = {{"type", "fake-ipam"}};
  return c;
}

Ran runIpam(const std::map<std::string, std::string>& env, std::string_view input) {
  const std::string copy(input);
  return isolated([&] {
    FakeAgent agent;
    return runPlugin(makeIpamPlugin(agent), env, copy);
  });
}

// ---- the boundary's own rules ------------------------------------------------------------------

TEST(InputBounds, Utf8IsCheckedStrictly) {
  EXPECT_TRUE(isValidUtf8(""));
  EXPECT_TRUE(isValidUtf8("eth0"));
  EXPECT_TRUE(isValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  for (const std::string_view bad :
       {"\xFF", "\xC3", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82",
        "a\x80z", "\xF8\x88\x80\x80\x80"}) {
    EXPECT_FALSE(isValidUtf8(bad)) << printable(bad);
  }
  EXPECT_EQ(printable("a\xFFz"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(printable("a\x01z"), "a?z");
  EXPECT_EQ(printable(std::string(1000, 'x'), 10), std::string(10, 'x') + "...");
}

TEST(InputBounds, ContainerIdAndIfNameFollowTheSpec) {
  for (const std::string_view good : {"c", "ctr-1", "a_b.c-d", "0123abcdef"}) {
    EXPECT_TRUE(checkContainerId(good)) << good;
  }
  for (const std::string_view bad : {"", "-abc", ".a", "a/b", "a b", "a;b", "caf\xC3\xA9"}) {
    EXPECT_FALSE(checkContainerId(bad)) << printable(bad);
  }
  EXPECT_FALSE(checkContainerId(std::string(kMaxContainerIdBytes + 1, 'a')));
  for (const std::string_view good : {"eth0", "net1", "a", "123456789012345"}) {
    EXPECT_TRUE(checkIfName(good)) << good;
  }
  for (const std::string_view bad :
       {"", ".", "..", "a/b", "a:b", "a b", "a\tb", "1234567890123456", "\xFF"}) {
    EXPECT_FALSE(checkIfName(bad)) << printable(bad);
  }
}

TEST(InputBounds, IntegersAreRangeCheckedNotWrapped) {
  EXPECT_EQ(integerIn(json(24), 1, 32), 24);
  EXPECT_EQ(integerIn(json(4294967320ULL), 1, 32), std::nullopt) << "would wrap to 24";
  EXPECT_EQ(integerIn(json(-1), 0, 10), std::nullopt);
  EXPECT_EQ(integerIn(json(24.0), 1, 32), std::nullopt);
  EXPECT_EQ(integerIn(json(true), 0, 1), std::nullopt);
  EXPECT_EQ(integerIn(json("24"), 1, 32), std::nullopt);
  EXPECT_EQ(integerIn(json(UINT64_MAX), 0, INT64_MAX), std::nullopt);
  EXPECT_EQ(integerIn(json(INT64_MIN), INT64_MIN, 0), INT64_MIN);
}

TEST(InputBounds, JsonSizeAndDepthAreLimitedBeforeParsing) {
  EXPECT_TRUE(parseBoundedJson(R"({"a":[1,{"b":"[[[[{{{{"}]})", "x"));
  const auto nested = [](int depth) {
    const auto n = static_cast<std::size_t>(depth);
    return std::string(n, '[') + std::string(n, ']');
  };
  EXPECT_TRUE(parseBoundedJson(nested(kMaxJsonDepth), "x"));
  const auto deep = parseBoundedJson(nested(kMaxJsonDepth + 1), "stdin");
  ASSERT_FALSE(deep);
  EXPECT_EQ(deep.error().code, kDecodeFailure);
  EXPECT_NE(deep.error().msg.find("64 levels"), std::string::npos) << deep.error().msg;
  const auto big = parseBoundedJson(std::string(kMaxConfigBytes + 1, ' '), "stdin");
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().msg.find("1048576 bytes"), std::string::npos) << big.error().msg;
}

TEST(InputBounds, ReadBoundedStopsAfterTheLimit) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // An endless writer: the reader must stop on its own. The writer then sees EPIPE (SIGPIPE is
  // ignored here, as pluginMain ignores it).
  const auto previous = std::signal(SIGPIPE, SIG_IGN);
  std::thread writer([fd = fds[1]] {
    const std::string chunk(65536, 'x');
    while (::write(fd, chunk.data(), chunk.size()) > 0) {
    }
    ::close(fd);
  });
  const std::string got = readBounded(fds[0], 100000);
  ::close(fds[0]);  // the writer gets EPIPE and stops
  writer.join();
  std::signal(SIGPIPE, previous);
  EXPECT_EQ(got.size(), 100001U);
}

// ---- the environment ---------------------------------------------------------------------------

TEST(MalformedEnv, EveryVariableIsCheckedAndNeverBreaksTheErrorObject) {
  struct Case {
    const char* variable;
    std::string value;
  };
  std::vector<Case> cases;
  for (const char* variable :
       {"CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS", "CNI_ARGS", "CNI_PATH"}) {
    for (const std::string& bad : std::vector<std::string>{"\xFF\xFE", "a\xC0\xAF", "\xED\xA0\x80",
                                                           "x\xE2\x82", std::string("a\0b", 3)}) {
      cases.push_back({variable, bad});
    }
  }
  for (const char* bad : {"a/b", "-abc", "a b", "a;b"})
    cases.push_back({"CNI_CONTAINERID", bad});
  for (const char* bad : {"a:b", "eth 0", "1234567890123456", ".", "..", "a/b"})
    cases.push_back({"CNI_IFNAME", bad});
  cases.push_back({"CNI_NETNS", "/" + std::string(kMaxNetnsBytes, 'n')});
  cases.push_back({"CNI_ARGS", "A=" + std::string(kMaxEnvListBytes, 'a')});
  cases.push_back({"CNI_PATH", "/" + std::string(kMaxEnvListBytes, 'p')});
  cases.push_back({"CNI_COMMAND", "ADD\xFF"});

  const std::string config = ipamConfig().dump();
  for (const auto& c : cases) {
    for (const char* command : {"ADD", "DEL", "CHECK"}) {
      auto env = cniEnv(command);
      env[c.variable] = c.value;
      const auto label = fmt::format("{} {}={}", command, c.variable, printable(c.value, 40));
      EXPECT_CNI_ERROR(runIpam(env, config), kInvalidEnvironment, c.variable, label);
    }
  }
}

// ---- the configuration -------------------------------------------------------------------------

struct ConfigCase {
  std::string label;
  std::string input;
  int code;
  std::string inMsg;  // the field (or limit) the message must name
};

json with(json doc, const std::string& pointer, json value) {
  doc[json::json_pointer(pointer)] = std::move(value);
  return doc;
}

std::vector<ConfigCase> malformedConfigs(const json& base) {
  const auto c = [&](std::string pointer, json value, int code, std::string inMsg) {
    auto input = with(base, pointer, value).dump();
    return ConfigCase{pointer + " = " + value.dump().substr(0, 40), std::move(input), code,
                      std::move(inMsg)};
  };
  const auto huge = json(4294967320ULL);
  std::vector<ConfigCase> cases = {
      c("/prevResult/ips", "x", kDecodeFailure, "ips"),
      c("/prevResult/ips/0", "x", kDecodeFailure, "ips[0].address"),
      c("/prevResult/ips/0/address", 5, kDecodeFailure, "ips[0].address"),
      c("/prevResult/ips/0/address", "10.0.0.5/99", kDecodeFailure, "ips[0].address"),
      c("/prevResult/ips/0/gateway", 5, kDecodeFailure, "ips[0].gateway"),
      c("/prevResult/ips/0/interface", huge, kDecodeFailure, "ips[0].interface"),
      c("/prevResult/ips/0/interface", -1, kDecodeFailure, "ips[0].interface"),
      c("/prevResult/ips/0/interface", "0", kDecodeFailure, "ips[0].interface"),
      c("/prevResult/interfaces", json::object(), kDecodeFailure, "interfaces"),
      c("/prevResult/interfaces/0", 7, kDecodeFailure, "interfaces[0]"),
      c("/prevResult/interfaces/0/name", 5, kDecodeFailure, "interfaces[0].name"),
      c("/prevResult/interfaces/0/mac", json::array(), kDecodeFailure, "interfaces[0].mac"),
      c("/prevResult/interfaces/0/sandbox", true, kDecodeFailure, "interfaces[0].sandbox"),
      c("/prevResult/interfaces/0/mtu", json(1ULL << 40), kDecodeFailure, "interfaces[0].mtu"),
      c("/prevResult/interfaces/0/mtu", "1500", kDecodeFailure, "interfaces[0].mtu"),
      c("/prevResult/routes", "x", kDecodeFailure, "routes"),
      c("/prevResult/routes/0", json::array(), kDecodeFailure, "routes[0].dst"),
      c("/prevResult/routes/0/dst", 0, kDecodeFailure, "routes[0].dst"),
      c("/prevResult/routes/0/gw", json::object(), kDecodeFailure, "routes[0].gw"),
      c("/prevResult/dns", "x", kDecodeFailure, "dns"),
      c("/prevResult", "x", kDecodeFailure, "prevResult"),
      c("/cniVersion", 1, kInvalidConfig, "cniVersion"),
      c("/name", json::array(), kInvalidConfig, "name"),
      c("/type", json::object(), kInvalidConfig, "type"),
      c("/ipam", json::array(), kInvalidConfig, "ipam"),
      c("/ipam/type", 5, kInvalidConfig, "ipam.type"),
      c("/cni.dev~1valid-attachments", "x", kInvalidConfig, "valid-attachments"),
      c("/cni.dev~1valid-attachments", json::array({1}), kInvalidConfig, "valid-attachments"),
  };
  return cases;
}

std::vector<ConfigCase> ipamOnlyConfigs() {
  const auto base = ipamConfig();
  auto cases = malformedConfigs(base);
  const auto c = [&](std::string pointer, json value, std::string inMsg) {
    auto input = with(base, pointer, value).dump();
    cases.push_back(ConfigCase{pointer + " = " + value.dump(), std::move(input), kInvalidConfig,
                               std::move(inMsg)});
  };
  c("/ipam/addressPrefixLength", 4294967320ULL, "ipam.addressPrefixLength");
  c("/ipam/addressPrefixLength", -8, "ipam.addressPrefixLength");
  c("/ipam/addressPrefixLength", 24.0, "ipam.addressPrefixLength");
  c("/ipam/addressPrefixLength", "24", "ipam.addressPrefixLength");
  c("/ipam/timeoutMs", 1ULL << 40, "ipam.timeoutMs");
  c("/ipam/timeoutMs", 18446744073709551615ULL, "ipam.timeoutMs");
  c("/ipam/timeoutMs", -5, "ipam.timeoutMs");
  c("/ipam/socket", 5, "ipam.socket");
  c("/ipam/routes", "x", "ipam.routes");
  c("/ipam/routes/0", json::array({"a"}), "routes[0].dst");
  c("/ipam/routes/0/gw", 5, "routes[0].gw");
  return cases;
}

// Deeply nested or oversized input, at several places of a valid config.
std::vector<ConfigCase> limitConfigs(const json& base) {
  std::vector<ConfigCase> cases;
  const std::string text = base.dump();
  const auto insertAt = [&](std::string_view key, const std::string& value) {
    // `"key":` replaced by `"key":<value>,"was-key":`, keeping the rest of the document valid.
    std::string out = text;
    const std::string marker = fmt::format("\"{}\":", key);
    const auto at = out.find(marker);
    out.replace(at, marker.size(), fmt::format("{}{},\"was-{}\":", marker, value, key));
    return out;
  };
  const auto depth = [](int n, char open, char close, std::string_view inner = "") {
    return std::string(static_cast<std::size_t>(n), open) + std::string(inner) +
           std::string(static_cast<std::size_t>(n), close);
  };
  const std::string limit = fmt::format("{} levels", kMaxJsonDepth);
  cases.push_back({"200,000 unclosed [", std::string(200000, '['), kDecodeFailure, limit});
  cases.push_back({"ipam.routes: 200,000 [ unclosed",
                   text.substr(0, text.find("\"routes\":") + 9) + std::string(200000, '['),
                   kDecodeFailure, limit});
  cases.push_back({"ipam.routes: 100,000 nested arrays",
                   insertAt("routes", depth(100000, '[', ']')), kDecodeFailure, limit});
  std::string objects;
  for (int i = 0; i < 100000; ++i)
    objects += "{\"a\":";
  objects += "1" + std::string(100000, '}');
  cases.push_back(
      {"top level: 100,000 nested objects", insertAt("name", objects), kDecodeFailure, limit});
  cases.push_back({"prevResult: 65 nested arrays", insertAt("prevResult", depth(65, '[', ']')),
                   kDecodeFailure, limit});
  std::string big = text;
  big.insert(1, std::string(kMaxConfigBytes, ' '));
  cases.push_back({"1 MiB of padding", big, kDecodeFailure, "1048576 bytes"});
  return cases;
}

TEST(MalformedConfig, VnetIpamAnswersEachWithItsCodeAndField) {
  auto cases = ipamOnlyConfigs();
  for (auto& c : limitConfigs(ipamConfig()))
    cases.push_back(std::move(c));
  for (const auto& c : cases) {
    for (const char* command : {"ADD", "DEL", "CHECK"}) {
      EXPECT_CNI_ERROR(runIpam(cniEnv(command), c.input), c.code, c.inMsg,
                       fmt::format("{} {}", command, c.label));
    }
  }
  // The same config with the bad parts taken out succeeds: the cases fail for what they change.
  const auto valid = runIpam(cniEnv("ADD"), ipamConfig().dump());
  EXPECT_EQ(valid.exitCode, 0) << valid.out;
  EXPECT_FALSE(valid.signal);
}

TEST(MalformedConfig, VersionSurvivesAnyStdin) {
  for (const auto& c : limitConfigs(ipamConfig())) {
    const auto ran = runIpam({{"CNI_COMMAND", "VERSION"}}, c.input);
    EXPECT_FALSE(ran.signal) << c.label;
    EXPECT_EQ(ran.exitCode, 0) << c.label;
    EXPECT_EQ(json::parse(ran.out)["cniVersion"], kLatestVersion) << c.label;
  }
}

class TransparentMalformedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = net::testing::netnsUnavailable()) GTEST_SKIP() << *why;
    host_.emplace();
    pod_.emplace();
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("vnetipam-malformed-{}-{}", ::getpid(), counter_++);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  Ran run(const std::map<std::string, std::string>& env, const std::string& input,
          unsigned timeoutSeconds = 10) {
    return isolated(
        [&] {
          FakeIpam ipam;
          return runPlugin(makeTransparentPlugin(host_->ns(), ipam), env, input);
        },
        timeoutSeconds);
  }
  std::optional<net::testing::TestNetns> host_;
  std::optional<net::testing::TestNetns> pod_;
  std::filesystem::path dir_;
  static inline int counter_ = 0;
};

TEST_F(TransparentMalformedTest, ConfigErrorsNameTheField) {
  const auto base = transparentConfig();
  auto cases = malformedConfigs(base);
  for (auto& c : limitConfigs(base))
    cases.push_back(std::move(c));
  const auto c = [&](std::string pointer, json value, std::string inMsg) {
    cases.push_back({pointer + " = " + value.dump(), with(base, pointer, value).dump(),
                     kInvalidConfig, std::move(inMsg)});
  };
  c("/mtu", 1ULL << 40, "mtu");
  c("/mtu", 4294967296ULL + 1500, "mtu");
  c("/mtu", 1500.5, "mtu");
  c("/mtu", -1500, "mtu");
  c("/hostVethPrefix", 5, "hostVethPrefix");
  c("/hostVethPrefix", "much-too-long-prefix", "hostVethPrefix");
  for (const auto& k : cases) {
    for (const char* command : {"ADD", "DEL", "CHECK"}) {
      EXPECT_CNI_ERROR(run(cniEnv(command, pod_->procPath()), k.input), k.code, k.inMsg,
                       fmt::format("{} {}", command, k.label));
    }
  }
}

// CNI_NETNS naming something that is not a network namespace: refused at once, never opened in a
// way that blocks (a FIFO with no writer would block open() forever).
TEST_F(TransparentMalformedTest, NetnsThatIsNotANamespaceIsRefusedQuickly) {
  const auto fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto file = dir_ / "file";
  std::FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {fifo.string(), "a FIFO"},
      {file.string(), "not a namespace file"},
      {dir_.string(), "a directory"},
      {"/dev/null", "a character device"},
      {"/proc/self/ns/mnt", "not a network namespace"},
      {(dir_ / "missing").string(), "No such file"},
  };
  for (const auto& [path, why] : cases) {
    for (const char* command : {"ADD", "CHECK"}) {
      json config = transparentConfig();
      config["prevResult"]["interfaces"][0]["sandbox"] = path;
      const auto ran = run(cniEnv(command, path), config.dump(), /*timeoutSeconds=*/3);
      EXPECT_LT(ran.took, std::chrono::seconds(1)) << command << " " << path;
      EXPECT_CNI_ERROR(ran, kInvalidEnvironment, why, fmt::format("{} {}", command, path));
    }
  }
}

// ---- generated: a type swap at every path of a valid config ------------------------------------

// Every JSON pointer below `doc` (objects and arrays included).
void collectPointers(const json& doc, const std::string& at, std::vector<std::string>& out) {
  if (doc.is_object()) {
    for (const auto& [key, value] : doc.items()) {
      std::string escaped;  // RFC 6901: '~' is "~0", '/' is "~1"
      for (const char c : key)
        escaped += c == '~' ? std::string("~0") : c == '/' ? std::string("~1") : std::string(1, c);
      const std::string child = at + "/" + escaped;
      out.push_back(child);
      collectPointers(value, child, out);
    }
  } else if (doc.is_array()) {
    for (std::size_t i = 0; i < doc.size(); ++i) {
      const std::string child = fmt::format("{}/{}", at, i);
      out.push_back(child);
      collectPointers(doc[i], child, out);
    }
  }
}

std::vector<json> replacements() {
  return {json("x"),        json(4294967320ULL), json(-1),         json(1.5),
          json(true),       json(nullptr),       json::array(),    json::object(),
          json("\xC3\xA9"), json(1ULL << 63),    json::array({1}), json({{"a", 1}})};
}

struct Tally {
  int cases = 0, errors = 0, successes = 0;
};

// Runs every mutation of `base` through `run`, expecting a success or the error object and never
// a signal. Returns the tally, for the log.
Tally typeSwapAll(const json& base, const std::vector<const char*>& commands,
                  const std::function<Ran(const char*, const std::string&)>& run) {
  std::vector<std::string> pointers;
  collectPointers(base, "", pointers);
  Tally tally;
  for (const auto& pointer : pointers) {
    std::vector<std::string> inputs;
    for (const auto& value : replacements())
      inputs.push_back(with(base, pointer, value).dump());
    // And the key left out, where it is a key.
    const json::json_pointer at(pointer);
    json removed = base;
    if (json& parent = removed.at(at.parent_pointer()); parent.is_object()) {
      parent.erase(at.back());
      inputs.push_back(removed.dump());
    }
    for (const auto& input : inputs) {
      for (const char* command : commands) {
        const Ran ran = run(command, input);
        ++tally.cases;
        if (ran.signal) {
          ADD_FAILURE() << command << " " << pointer << ": signal " << *ran.signal << "\n" << input;
          continue;
        }
        if (ran.exitCode == 0) {
          ++tally.successes;
          continue;
        }
        std::string why;
        if (!errorObject(ran, &why)) {
          ADD_FAILURE() << command << " " << pointer << ": " << why;
          continue;
        }
        ++tally.errors;
      }
    }
  }
  return tally;
}

TEST(TypeSwap, VnetIpamNeverDiesOnAnyField) {
  const auto tally = typeSwapAll(ipamConfig(), {"ADD", "DEL", "CHECK"},
                                 [](const char* command, const std::string& input) {
                                   return runIpam(cniEnv(command), input);
                                 });
  std::printf("vnet-ipam type swaps: %d cases, %d errors, %d successes\n", tally.cases,
              tally.errors, tally.successes);
  EXPECT_GT(tally.cases, 600);
  EXPECT_GT(tally.errors, tally.cases / 3);
}

TEST_F(TransparentMalformedTest, TypeSwapNeverDiesOnAnyField) {
  // CHECK and DEL only: they read every field, and (unlike a successful ADD) leave the test
  // namespaces as they were, so the cases do not depend on one another.
  const auto tally = typeSwapAll(transparentConfig(), {"CHECK", "DEL"},
                                 [&](const char* command, const std::string& input) {
                                   return run(cniEnv(command, pod_->procPath()), input);
                                 });
  std::printf("vnet-transparent type swaps: %d cases, %d errors, %d successes\n", tally.cases,
              tally.errors, tally.successes);
  EXPECT_GT(tally.cases, 400);
}

// ---- the real binaries -------------------------------------------------------------------------

// Execs a built plugin with `env` (nothing else) and `input` on stdin, killing it after 5 s.
Ran execPlugin(const char* binary, const std::map<std::string, std::string>& env,
               const std::string& input) {
  static std::atomic<int> counter{0};
  const auto file = std::filesystem::temp_directory_path() /
                    fmt::format("vnetipam-stdin-{}-{}", ::getpid(), counter++);
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    if (f == nullptr) return {.signal = -1};
    std::fwrite(input.data(), 1, input.size(), f);
    std::fclose(f);
  }
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return {.signal = -1};
  const int in = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::vector<std::string> strings;
  for (const auto& [k, v] : env)
    strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string argv0 = binary;
  char* argv[] = {argv0.data(), nullptr};
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, binary, &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(in);
  ::close(out[1]);
  std::filesystem::remove(file);
  if (rc != 0) {
    ::close(out[0]);
    return {.signal = -1};
  }
  // A watchdog: a hung plugin is killed, and shows up as SIGKILL.
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 500 && !done; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!done) ::kill(pid, SIGKILL);
  });
  Ran ran;
  ran.out = readBounded(out[0], 64U << 20);
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  done = true;
  watchdog.join();
  ran.took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  if (WIFSIGNALED(status)) ran.signal = WTERMSIG(status);
  if (WIFEXITED(status)) ran.exitCode = WEXITSTATUS(status);
  return ran;
}

TEST(PluginBinaries, DeepNestingOversizeAndBadEnvironmentAreErrors) {
  const std::string config = ipamConfig().dump();
  for (const auto& c : limitConfigs(ipamConfig())) {
    EXPECT_CNI_ERROR(execPlugin(VNETIPAM_IPAM_PLUGIN, cniEnv("ADD"), c.input), c.code, c.inMsg,
                     "vnet-ipam " + c.label);
  }
  // More than the limit through a pipe larger than it: read no further, still one clear error.
  std::string huge = config;
  huge.insert(1, std::string(8 * kMaxConfigBytes, ' '));
  EXPECT_CNI_ERROR(execPlugin(VNETIPAM_IPAM_PLUGIN, cniEnv("ADD"), huge), kDecodeFailure,
                   "1048576 bytes", "vnet-ipam 8 MiB");
  for (const char* variable : {"CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS", "CNI_ARGS"}) {
    auto env = cniEnv("ADD");
    env[variable] = "bad\xFF\xFE";
    EXPECT_CNI_ERROR(execPlugin(VNETIPAM_IPAM_PLUGIN, env, config), kInvalidEnvironment, variable,
                     fmt::format("vnet-ipam {}", variable));
    EXPECT_CNI_ERROR(execPlugin(VNETIPAM_TRANSPARENT_PLUGIN, env, transparentConfig().dump()),
                     kInvalidEnvironment, variable, fmt::format("vnet-transparent {}", variable));
  }
  auto prefix = ipamConfig();
  prefix["ipam"]["addressPrefixLength"] = 4294967320ULL;
  EXPECT_CNI_ERROR(execPlugin(VNETIPAM_IPAM_PLUGIN, cniEnv("ADD"), prefix.dump()), kInvalidConfig,
                   "addressPrefixLength", "vnet-ipam addressPrefixLength");
}

TEST(PluginBinaries, TransparentRefusesAFifoNetnsWithinASecond) {
  const auto dir =
      std::filesystem::temp_directory_path() / fmt::format("vnetipam-fifo-{}", ::getpid());
  std::filesystem::create_directories(dir);
  const auto fifo = dir / "netns";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // ADD fails on the netns before it runs IPAM or touches any namespace.
  const auto ran = execPlugin(VNETIPAM_TRANSPARENT_PLUGIN, cniEnv("ADD", fifo.string()),
                              transparentConfig().dump());
  std::filesystem::remove_all(dir);
  EXPECT_LT(ran.took, std::chrono::seconds(1));
  EXPECT_CNI_ERROR(ran, kInvalidEnvironment, "a FIFO", "vnet-transparent FIFO netns");
}

}  // namespace
}  // namespace vnetipam::cni
