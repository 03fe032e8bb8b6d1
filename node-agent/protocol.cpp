#include "node-agent/protocol.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/base/json_depth.h"

namespace vnetipam::agent {
namespace {

using base::ErrorCode::kInvalidArgument;
using base::ErrorCode::kIo;
using base::ErrorCode::kOutOfRange;
using nlohmann::json;

constexpr std::pair<Op, std::string_view> kOps[] = {
    {Op::kAllocate, "allocate"}, {Op::kRelease, "release"}, {Op::kCheck, "check"},
    {Op::kList, "list"},         {Op::kGc, "gc"},           {Op::kStatus, "status"},
};

std::optional<Op> parseOp(std::string_view text) {
  for (auto [op, name] : kOps) {
    if (name == text) return op;
  }
  return std::nullopt;
}

// Reads an optional string member; a present member of another type is an error naming it.
base::Result<std::string> stringField(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return base::fail(kInvalidArgument, fmt::format("field \"{}\" must be a string", name));
  }
  return it->get<std::string>();
}

// A non-negative integer that fits an int exactly. nlohmann keeps a non-negative integer literal
// as unsigned, so anything else (a float, a negative, "-0") is refused rather than converted:
// get<int>() would truncate 4294967297 to 1.
std::optional<int> exactInt(const json& j) {
  if (!j.is_number_unsigned()) return std::nullopt;
  const auto value = j.get<std::uint64_t>();
  if (value > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) return std::nullopt;
  return static_cast<int>(value);
}

base::Result<int> versionField(const json& j) {
  auto it = j.find("v");
  std::optional<int> version = it == j.end() ? std::nullopt : exactInt(*it);
  if (!version) {
    return base::fail(kInvalidArgument,
                      fmt::format("field \"v\" (protocol version) must be an integer from 0 to {}",
                                  std::numeric_limits<int>::max()));
  }
  return *version;
}

// Whether `text` is well-formed UTF-8: no stray continuation bytes, overlong forms, surrogates or
// code points past U+10FFFF.
bool isUtf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    char32_t cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      length = 2;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      length = 3;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      length = 4;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto c = static_cast<unsigned char>(text[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    constexpr char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kSmallest[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

// Valid UTF-8 without C0 controls (NUL included), DEL or C1 controls (U+0080-U+009F, which UTF-8
// spells C2 80 to C2 9F).
bool isPrintableUtf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x20 || b == 0x7F) return false;
    if (b == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xA0) {
      return false;
    }
  }
  return isUtf8(text);
}

bool isAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// The CNI spec's container ID: alphanumerics, then alphanumerics, '_', '.' or '-'.
bool isContainerID(std::string_view id) {
  if (id.empty() || id.size() > kMaxContainerIDBytes || !isAsciiAlnum(id.front())) return false;
  return std::ranges::all_of(
      id, [](char c) { return isAsciiAlnum(c) || c == '_' || c == '.' || c == '-'; });
}

// A Linux interface name as the CNI spec checks it (at most IFNAMSIZ - 1 bytes, no '/', ':' or
// whitespace, not "." or ".."), narrowed to printable ASCII: no runtime names an interface
// otherwise, and the kernel's notion of whitespace includes Latin-1 bytes.
bool isIfName(std::string_view name) {
  if (name.empty() || name.size() > kMaxIfNameBytes || name == "." || name == "..") return false;
  return std::ranges::all_of(name,
                             [](char c) { return c > ' ' && c < 0x7F && c != '/' && c != ':'; });
}

// Checks one string field of a request against its rule; empty means absent and is left to the
// operation's own requirements. The value is never echoed back: it is what failed the check.
base::Result<void> checkField(std::string_view name, std::string_view value) {
  if (value.empty()) return {};
  auto refuse = [&](std::string_view rule) {
    return base::fail(kInvalidArgument, fmt::format("field \"{}\" must be {} (got {} bytes)", name,
                                                    rule, value.size()));
  };
  if (name == "containerID") {
    if (!isContainerID(value)) {
      return refuse(
          fmt::format("1 to {} bytes of A-Z a-z 0-9 _ . - starting with a letter or "
                      "digit (a CNI container ID)",
                      kMaxContainerIDBytes));
    }
    return {};
  }
  if (name == "ifName") {
    if (!isIfName(value)) {
      return refuse(
          fmt::format("an interface name: 1 to {} bytes of printable ASCII without / : "
                      "or space, not . or ..",
                      kMaxIfNameBytes));
    }
    return {};
  }
  std::size_t limit = 0;
  if (name == "podNamespace") limit = kMaxPodNamespaceBytes;
  if (name == "podName") limit = kMaxPodNameBytes;
  if (name == "podUID") limit = kMaxPodUIDBytes;
  if (name == "network") limit = kMaxNetworkBytes;
  if (value.size() > limit || !isPrintableUtf8(value)) {
    return refuse(fmt::format("at most {} bytes of UTF-8 without control characters", limit));
  }
  return {};
}

json toJson(const Allocation& a) {
  json j{{"containerID", a.owner.containerID},
         {"ifName", a.owner.ifName},
         {"podNamespace", a.podNamespace},
         {"podName", a.podName},
         {"address", a.address.toString()},
         {"block", a.block.toString()},
         {"blockName", a.blockName}};
  // Optional: an allocation made by an older plugin has none, and its answer stays as it was.
  if (!a.podUID.empty()) j["podUID"] = a.podUID;
  if (!a.network.empty()) j["network"] = a.network;
  if (a.gateway) j["gateway"] = a.gateway->toString();
  return j;
}

base::Result<Allocation> allocationFromJson(const json& j, std::size_t index) {
  if (!j.is_object()) {
    return base::fail(kInvalidArgument, fmt::format("allocations[{}] must be an object", index));
  }
  Allocation a;
  auto field = [&](const char* name, std::string& out) -> base::Result<void> {
    auto v = stringField(j, name);
    if (!v)
      return base::fail(kInvalidArgument,
                        fmt::format("allocations[{}]: {}", index, v.error().message));
    out = std::move(*v);
    return {};
  };
  std::string address, block, gateway;
  for (auto [name, out] :
       {std::pair{"containerID", &a.owner.containerID}, std::pair{"ifName", &a.owner.ifName},
        std::pair{"podNamespace", &a.podNamespace}, std::pair{"podName", &a.podName},
        std::pair{"podUID", &a.podUID}, std::pair{"network", &a.network},
        std::pair{"blockName", &a.blockName}, std::pair{"address", &address},
        std::pair{"block", &block}, std::pair{"gateway", &gateway}}) {
    if (auto r = field(name, *out); !r) return std::unexpected(r.error());
  }
  auto addr = ipam::IPAddress::parse(address);
  if (!addr) {
    return base::fail(kInvalidArgument,
                      fmt::format("allocations[{}].address: {}", index, addr.error().message));
  }
  auto prefix = ipam::Prefix::parse(block);
  if (!prefix) {
    return base::fail(kInvalidArgument,
                      fmt::format("allocations[{}].block: {}", index, prefix.error().message));
  }
  if (prefix->family() != addr->family() || !prefix->contains(*addr)) {
    return base::fail(kInvalidArgument,
                      fmt::format("allocations[{}]: address {} is not in block {}", index,
                                  addr->toString(), prefix->toString()));
  }
  if (!gateway.empty()) {
    auto gw = ipam::IPAddress::parse(gateway);
    if (!gw || gw->family() != addr->family()) {
      return base::fail(kInvalidArgument,
                        fmt::format("allocations[{}].gateway must be an address of the family of "
                                    "{}",
                                    index, addr->toString()));
    }
    a.gateway = *gw;
  }
  a.address = *addr;
  a.block = *prefix;
  return a;
}

base::Result<json> parseObject(std::string_view line, std::string_view what, std::size_t maxBytes) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (line.size() > maxBytes) {
    return base::fail(kInvalidArgument, fmt::format("{} is {} bytes, longer than the limit of {}",
                                                    what, line.size(), maxBytes));
  }
  if (base::jsonNestingDepth(line, kMaxJsonDepth) > kMaxJsonDepth) {
    return base::fail(kInvalidArgument, fmt::format("{} nests arrays and objects deeper than {}",
                                                    what, kMaxJsonDepth));
  }
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return base::fail(kInvalidArgument, fmt::format("{} is not a JSON object", what));
  }
  return j;
}

// Waits until `fd` is ready for `events` or the deadline passes.
base::Result<void> waitFor(int fd, short events, std::chrono::steady_clock::time_point deadline,
                           std::string_view what) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return base::fail(kIo, fmt::format("timed out {}", what));
    pollfd p{.fd = fd, .events = events, .revents = 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return base::fail(kIo, fmt::format("{}: poll: {}", what, std::strerror(errno)));
    if (r > 0) return {};
  }
}

// One line of JSON. An invalid UTF-8 string (only a journal written before requests were checked
// could hold one) is replaced, not thrown: an exception here would end the agent.
std::string dumpLine(const json& j) {
  return j.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string_view toString(Op op) {
  for (auto [o, name] : kOps) {
    if (o == op) return name;
  }
  return "unknown";
}

Response Response::failure(ErrorCode code, std::string message, std::string details) {
  Response r;
  r.ok = false;
  r.code = code;
  r.message = std::move(message);
  r.details = std::move(details);
  return r;
}

std::string encode(const Request& request) {
  json j{{"v", request.version}, {"op", toString(request.op)}};
  if (!request.network.empty()) j["network"] = request.network;
  if (!request.owner.containerID.empty()) j["containerID"] = request.owner.containerID;
  if (!request.owner.ifName.empty()) j["ifName"] = request.owner.ifName;
  if (!request.podNamespace.empty()) j["podNamespace"] = request.podNamespace;
  if (!request.podName.empty()) j["podName"] = request.podName;
  if (!request.podUID.empty()) j["podUID"] = request.podUID;
  if (!request.families.empty()) {
    json list = json::array();
    for (ipam::Family f : request.families)
      list.push_back(static_cast<int>(f));
    j["families"] = std::move(list);
  }
  if (request.op == Op::kGc) {
    json list = json::array();
    for (const ipam::Owner& a : request.validAttachments) {
      list.push_back(json{{"containerID", a.containerID}, {"ifName", a.ifName}});
    }
    j["validAttachments"] = std::move(list);
  }
  return dumpLine(j);
}

std::string encode(const Response& response) {
  json j{{"v", response.version}, {"ok", response.ok}};
  if (!response.ok) {
    j["code"] = static_cast<int>(response.code);
    j["msg"] = response.message;
    if (!response.details.empty()) j["details"] = response.details;
  }
  if (!response.allocations.empty()) {
    json list = json::array();
    for (const Allocation& a : response.allocations)
      list.push_back(toJson(a));
    j["allocations"] = std::move(list);
  }
  if (response.ready) j["ready"] = true;
  if (response.freeIPs != 0) j["freeIPs"] = response.freeIPs;
  return dumpLine(j);
}

base::Result<Request> decodeRequest(std::string_view line) {
  auto j = parseObject(line, "the request", kMaxRequestBytes);
  if (!j) return std::unexpected(j.error());
  Request r;
  auto version = versionField(*j);
  if (!version) return std::unexpected(version.error());
  r.version = *version;
  auto op = stringField(*j, "op");
  if (!op) return std::unexpected(op.error());
  auto parsed = parseOp(*op);
  if (!parsed) {
    // Echoed only when short and printable: the answer and the log should not carry what a
    // client chose to send.
    const bool echo = op->size() <= 32 && isPrintableUtf8(*op);
    return base::fail(kInvalidArgument,
                      fmt::format("field \"op\" is {}: want one of allocate, release, check, "
                                  "list, gc, status",
                                  echo ? fmt::format("\"{}\"", *op) : std::string("not one")));
  }
  r.op = *parsed;
  for (auto [name, out] :
       {std::pair{"containerID", &r.owner.containerID}, std::pair{"ifName", &r.owner.ifName},
        std::pair{"podNamespace", &r.podNamespace}, std::pair{"podName", &r.podName},
        std::pair{"podUID", &r.podUID}, std::pair{"network", &r.network}}) {
    auto v = stringField(*j, name);
    if (!v) return std::unexpected(v.error());
    if (auto checked = checkField(name, *v); !checked) return std::unexpected(checked.error());
    *out = std::move(*v);
  }
  if (r.op == Op::kAllocate || r.op == Op::kRelease || r.op == Op::kCheck) {
    if (r.owner.containerID.empty() || r.owner.ifName.empty()) {
      return base::fail(kInvalidArgument,
                        fmt::format("op \"{}\" needs \"containerID\" and \"ifName\"", *op));
    }
  }
  if (auto it = j->find("families"); it != j->end() && !it->is_null()) {
    const auto bad = [] {
      return base::fail(kInvalidArgument,
                        "field \"families\" must be a list of distinct address families, 4 or 6");
    };
    if (!it->is_array() || it->size() > 2) return bad();
    for (const json& f : *it) {
      const std::optional<int> n = exactInt(f);
      if (!n || (*n != 4 && *n != 6)) return bad();
      const auto family = static_cast<ipam::Family>(*n);
      if (std::ranges::find(r.families, family) != r.families.end()) return bad();
      r.families.push_back(family);
    }
  }
  if (auto it = j->find("validAttachments"); it != j->end() && !it->is_null()) {
    if (!it->is_array()) {
      return base::fail(kInvalidArgument, "field \"validAttachments\" must be an array");
    }
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& a = (*it)[i];
      auto id = a.is_object() ? stringField(a, "containerID") : base::Result<std::string>();
      auto ifn = a.is_object() ? stringField(a, "ifName") : base::Result<std::string>();
      if (!a.is_object() || !id || !ifn || id->empty()) {
        return base::fail(kInvalidArgument,
                          fmt::format("validAttachments[{}] must be an object with a string "
                                      "\"containerID\" and \"ifName\"",
                                      i));
      }
      for (auto [name, value] : {std::pair{"containerID", &*id}, std::pair{"ifName", &*ifn}}) {
        if (auto checked = checkField(name, *value); !checked) {
          return base::fail(kInvalidArgument,
                            fmt::format("validAttachments[{}]: {}", i, checked.error().message));
        }
      }
      r.validAttachments.push_back(ipam::Owner{std::move(*id), std::move(*ifn)});
    }
  } else if (r.op == Op::kGc) {
    return base::fail(kInvalidArgument, "op \"gc\" needs \"validAttachments\" (may be empty)");
  }
  return r;
}

base::Result<Response> decodeResponse(std::string_view line) {
  auto j = parseObject(line, "the agent's response", kMaxResponseBytes);
  if (!j) return std::unexpected(j.error());
  Response r;
  auto version = versionField(*j);
  if (!version) return std::unexpected(version.error());
  r.version = *version;
  auto ok = j->find("ok");
  if (ok == j->end() || !ok->is_boolean()) {
    return base::fail(kInvalidArgument, "field \"ok\" must be a boolean");
  }
  r.ok = ok->get<bool>();
  if (!r.ok) {
    auto it = j->find("code");
    std::optional<int> code = it == j->end() ? std::nullopt : exactInt(*it);
    if (!code) {
      return base::fail(kInvalidArgument,
                        "a failed response needs a non-negative integer \"code\" that fits an int");
    }
    r.code = static_cast<ErrorCode>(*code);
    auto msg = stringField(*j, "msg");
    auto details = stringField(*j, "details");
    if (!msg) return std::unexpected(msg.error());
    if (!details) return std::unexpected(details.error());
    r.message = std::move(*msg);
    r.details = std::move(*details);
  }
  if (auto it = j->find("allocations"); it != j->end() && !it->is_null()) {
    if (!it->is_array())
      return base::fail(kInvalidArgument, "field \"allocations\" must be an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      auto a = allocationFromJson((*it)[i], i);
      if (!a) return std::unexpected(a.error());
      r.allocations.push_back(std::move(*a));
    }
  }
  if (auto it = j->find("ready"); it != j->end()) {
    if (!it->is_boolean()) return base::fail(kInvalidArgument, "field \"ready\" must be a boolean");
    r.ready = it->get<bool>();
  }
  if (auto it = j->find("freeIPs"); it != j->end()) {
    if (!it->is_number_unsigned()) {
      return base::fail(kInvalidArgument, "field \"freeIPs\" must be a non-negative integer");
    }
    r.freeIPs = it->get<std::uint64_t>();
  }
  return r;
}

base::Result<std::string> readLine(int fd, std::string& buffer, std::chrono::milliseconds timeout,
                                   std::size_t maxBytes) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t scanned = 0;
  auto tooLong = [&] {
    return base::fail(kOutOfRange, fmt::format("message longer than {} bytes", maxBytes));
  };
  for (;;) {
    if (auto nl = buffer.find('\n', scanned); nl != std::string::npos) {
      if (nl > maxBytes) return tooLong();
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return line;
    }
    scanned = buffer.size();
    // Checked before every read, so a peer that never sends '\n' costs at most maxBytes plus one
    // chunk, however much it writes.
    if (buffer.size() > maxBytes) return tooLong();
    // Try the read first and poll only when nothing is there: an answer that is already
    // waiting (the common case on a busy socket) then costs one system call, not two.
    char chunk[8192];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto w = waitFor(fd, POLLIN, deadline, "waiting for a message"); !w) {
        return std::unexpected(w.error());
      }
      continue;
    }
    if (n < 0) return base::fail(kIo, fmt::format("reading: {}", std::strerror(errno)));
    if (n == 0) {
      return base::fail(kIo, buffer.empty() ? "the peer closed the connection"
                                            : "the peer closed the connection mid-message");
    }
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

base::Result<void> writeAll(int fd, std::string_view data, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR)) continue;
    if (n < 0 && errno == EAGAIN) {
      if (auto w = waitFor(fd, POLLOUT, deadline, "writing a message"); !w) {
        return std::unexpected(w.error());
      }
      continue;
    }
    if (n < 0) return base::fail(kIo, fmt::format("writing: {}", std::strerror(errno)));
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

base::Result<AgentConnection> AgentConnection::open(const std::string& socketPath,
                                                    std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socketPath.empty() || socketPath.size() >= sizeof addr.sun_path) {
    return base::fail(kInvalidArgument,
                      fmt::format("agent socket path \"{}\" must be 1 to {} bytes", socketPath,
                                  sizeof addr.sun_path - 1));
  }
  std::memcpy(addr.sun_path, socketPath.data(), socketPath.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return base::fail(kIo, fmt::format("socket: {}", std::strerror(errno)));
  // A unix-socket connect either succeeds at once or fails (ECONNREFUSED when the backlog is
  // full or nobody listens); the timeout bounds the conversation, not the connect.
  (void)timeout;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    return base::fail(kIo, fmt::format("connecting to the vnet-ipam agent at {}: {}", socketPath,
                                       std::strerror(err)));
  }
  return AgentConnection(fd, socketPath);
}

AgentConnection::AgentConnection(AgentConnection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      buffer_(std::move(other.buffer_)) {}

AgentConnection& AgentConnection::operator=(AgentConnection&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

AgentConnection::~AgentConnection() {
  if (fd_ >= 0) ::close(fd_);
}

base::Result<Response> AgentConnection::call(const Request& request,
                                             std::chrono::milliseconds timeout) {
  auto context = [&](const base::Error& e) {
    return base::fail(e.code, fmt::format("{} request to the vnet-ipam agent at {}: {}",
                                          toString(request.op), path_, e.message));
  };
  if (auto w = writeAll(fd_, encode(request), timeout); !w) return context(w.error());
  auto line = readLine(fd_, buffer_, timeout);
  if (!line) return context(line.error());
  auto response = decodeResponse(*line);
  if (!response) return context(response.error());
  return response;
}

base::Result<Response> callAgent(const std::string& socketPath, const Request& request,
                                 std::chrono::milliseconds timeout) {
  auto conn = AgentConnection::open(socketPath, timeout);
  if (!conn) return std::unexpected(conn.error());
  return conn->call(request, timeout);
}

}  // namespace vnetipam::agent
