#include "lib/net/rtnl.h"

#include <cerrno>
#include <cstring>
#include <optional>
#include <span>

#include <fmt/format.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/stat.h>

namespace vnetipam::net {
namespace {

static_assert(kNetlinkHeaderLen == netlinkAlign(sizeof(nlmsghdr)));

// The socket() call itself, in whatever namespace the calling thread is in.
Result<UniqueFd> rawSocket(const Netns& ns, std::uint32_t groups) {
  const auto failed = [&](const char* step) {
    return fail(ErrorCode::kIo, fmt::format("{} a route netlink socket in network namespace {}: {}",
                                            step, ns.label(), std::strerror(errno)));
  };
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd.valid()) return failed("create");
  // Acks of failed requests without a copy of the request; extended acks are not used.
  const int one = 1;
  (void)::setsockopt(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = groups;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return failed("bind");
  }
  return fd;
}

// The (negative) error number of an NLMSG_ERROR message; 0 for an ack.
int errorOf(std::span<const std::uint8_t> message) {
  nlmsgerr e{};
  if (message.size() >= kNetlinkHeaderLen + sizeof e.error) {
    std::memcpy(&e.error, message.data() + kNetlinkHeaderLen, sizeof e.error);
  }
  return e.error;
}

}  // namespace

Result<RtnlSocket> RtnlSocket::open(const Netns& ns, std::uint32_t groups) {
  struct stat self {};
  if (::stat("/proc/thread-self/ns/net", &self) == 0 && self.st_ino == ns.inode()) {
    auto fd = rawSocket(ns, groups);
    if (!fd) return std::unexpected(fd.error());
    return RtnlSocket(std::move(*fd), ns.label());
  }
  // Sockets keep the namespace they were created in; the thread goes back right after.
  auto guard = NetnsGuard::enter(ns);
  if (!guard) return std::unexpected(guard.error());
  auto fd = rawSocket(ns, groups);
  guard->reset();
  if (!fd) return std::unexpected(fd.error());
  return RtnlSocket(std::move(*fd), ns.label());
}

std::uint16_t messageType(std::span<const std::uint8_t> message) {
  std::uint16_t type = 0;
  if (message.size() >= kNetlinkHeaderLen) {
    std::memcpy(&type, message.data() + offsetof(nlmsghdr, nlmsg_type), sizeof type);
  }
  return type;
}

std::uint32_t RtAttr::u32() const {
  std::uint32_t v = 0;
  if (data.size() >= sizeof v) std::memcpy(&v, data.data(), sizeof v);
  return v;
}

std::string_view RtAttr::str() const {
  std::string_view s(reinterpret_cast<const char*>(data.data()), data.size());
  if (const auto nul = s.find('\0'); nul != std::string_view::npos) s = s.substr(0, nul);
  return s;
}

std::vector<RtAttr> parseAttrs(std::span<const std::uint8_t> data) {
  std::vector<RtAttr> attrs;
  while (data.size() >= sizeof(nlattr)) {
    nlattr a{};
    std::memcpy(&a, data.data(), sizeof a);
    if (a.nla_len < sizeof a || a.nla_len > data.size()) break;
    attrs.push_back({.type = static_cast<std::uint16_t>(a.nla_type & NLA_TYPE_MASK),
                     .data = data.subspan(sizeof a, a.nla_len - sizeof a)});
    data = data.subspan(std::min<std::size_t>(netlinkAlign(a.nla_len), data.size()));
  }
  return attrs;
}

std::size_t RtnlBatch::begin(std::uint16_t type, std::uint16_t flags, const void* header,
                             std::size_t len, std::string what) {
  const std::size_t offset = buf_.size();
  nlmsghdr h{};
  h.nlmsg_type = type;
  h.nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  buf_.resize(offset + kNetlinkHeaderLen + netlinkAlign(len));
  std::memcpy(buf_.data() + offset, &h, sizeof h);
  std::memcpy(buf_.data() + offset + kNetlinkHeaderLen, header, len);
  requests_.push_back({.what = std::move(what), .offset = offset});
  return requests_.size() - 1;
}

void RtnlBatch::attr(std::uint16_t type, const void* data, std::size_t len) {
  const std::size_t offset = buf_.size();
  nlattr a{};
  a.nla_type = type;
  a.nla_len = static_cast<std::uint16_t>(sizeof(nlattr) + len);
  buf_.resize(offset + netlinkAlign(sizeof(nlattr) + len));
  std::memcpy(buf_.data() + offset, &a, sizeof a);
  if (len > 0) std::memcpy(buf_.data() + offset + sizeof(nlattr), data, len);
}

void RtnlBatch::bytes(const void* data, std::size_t len) {
  const std::size_t offset = buf_.size();
  buf_.resize(offset + netlinkAlign(len));
  std::memcpy(buf_.data() + offset, data, len);
}

void RtnlBatch::attrString(std::uint16_t type, std::string_view value) {
  std::string owned(value);
  attr(type, owned.c_str(), owned.size() + 1);
}

std::size_t RtnlBatch::nestBegin(std::uint16_t type) {
  const std::size_t offset = buf_.size();
  attr(static_cast<std::uint16_t>(type | NLA_F_NESTED), nullptr, 0);
  return offset;
}

void RtnlBatch::nestEnd(std::size_t offset) {
  const auto len = static_cast<std::uint16_t>(buf_.size() - offset);
  std::memcpy(buf_.data() + offset + offsetof(nlattr, nla_len), &len, sizeof len);
}

Result<void> RtnlBatch::send(RtnlSocket& sock) {
  firstSeq_ = sock.nextSeq(static_cast<std::uint32_t>(requests_.size()));
  for (std::size_t i = 0; i < requests_.size(); ++i) {
    const std::size_t end = i + 1 < requests_.size() ? requests_[i + 1].offset : buf_.size();
    nlmsghdr h{};
    std::memcpy(&h, buf_.data() + requests_[i].offset, sizeof h);
    h.nlmsg_len = static_cast<std::uint32_t>(end - requests_[i].offset);
    h.nlmsg_seq = firstSeq_ + static_cast<std::uint32_t>(i);
    // Only the last request asks for an ack: the kernel runs a send's messages in order and
    // answers a failed one with its error anyway, so once the last ack is read every earlier error
    // has been read too.
    if (i + 1 < requests_.size()) h.nlmsg_flags &= static_cast<std::uint16_t>(~NLM_F_ACK);
    std::memcpy(buf_.data() + requests_[i].offset, &h, sizeof h);
  }
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  while (true) {
    const ssize_t n = ::sendto(sock.fd(), buf_.data(), buf_.size(), 0,
                               reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
    if (n >= 0) return {};
    if (errno != EINTR) {
      return fail(ErrorCode::kIo,
                  fmt::format("send {} netlink requests in namespace {}: {}", requests_.size(),
                              sock.netns(), std::strerror(errno)));
    }
  }
}

Result<void> RtnlBatch::receive(RtnlSocket& sock) {
  if (requests_.empty()) return {};
  // A link answer is ~1.5 KiB; 32 KiB takes a whole batch's answers in one read.
  std::vector<std::uint8_t> in(32768);
  while (!requests_.back().answered) {
    const ssize_t n = ::recv(sock.fd(), in.data(), in.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(ErrorCode::kIo, fmt::format("read netlink answers in namespace {}: {}",
                                              sock.netns(), std::strerror(errno)));
    }
    const auto read = std::span<const std::uint8_t>(in).first(static_cast<std::size_t>(n));
    forEachMessage(read, [&](const nlmsghdr& h, std::span<const std::uint8_t> message) {
      const std::uint32_t index = h.nlmsg_seq - firstSeq_;
      if (index < requests_.size() && !requests_[index].answered) {
        Request& r = requests_[index];
        if (h.nlmsg_type == NLMSG_ERROR) {
          r.error = errorOf(message);
          r.answered = true;
        } else if (h.nlmsg_type != NLMSG_DONE && h.nlmsg_type != NLMSG_NOOP) {
          r.reply.assign(message.begin(), message.end());
        }
      }
      return true;
    });
  }
  return {};
}

Result<void> RtnlBatch::receiveDump(
    RtnlSocket& sock, const std::function<void(std::span<const std::uint8_t>)>& onMessage) {
  if (requests_.size() != 1) {
    return fail(ErrorCode::kInvalidArgument, "a netlink dump is a batch of exactly one request");
  }
  // The kernel fills each read with as many messages as fit in ~32 KiB (less if the socket's
  // receive buffer is smaller); MSG_TRUNC says if one did not fit.
  std::vector<std::uint8_t> in(65536);
  while (true) {
    const ssize_t n = ::recv(sock.fd(), in.data(), in.size(), MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(ErrorCode::kIo,
                  fmt::format("{}: read: {}", requests_[0].what, std::strerror(errno)));
    }
    if (static_cast<std::size_t>(n) > in.size()) {
      return fail(ErrorCode::kIo,
                  fmt::format("{}: an answer of {} bytes does not fit", requests_[0].what, n));
    }
    std::optional<Result<void>> outcome;  // set by the end of the dump or an error
    const auto read = std::span<const std::uint8_t>(in).first(static_cast<std::size_t>(n));
    forEachMessage(read, [&](const nlmsghdr& h, std::span<const std::uint8_t> message) {
      // Anything else on the socket (a late ack of an earlier request) is not ours.
      if (h.nlmsg_seq != firstSeq_) return true;
      if ((h.nlmsg_flags & NLM_F_DUMP_INTR) != 0) interrupted_ = true;
      if (h.nlmsg_type == NLMSG_DONE) {
        outcome = Result<void>{};
      } else if (h.nlmsg_type == NLMSG_ERROR) {
        // An ack (the request carried NLM_F_ACK) is not the end: the dump still ends with
        // NLMSG_DONE.
        if (const int err = errorOf(message); err != 0) {
          outcome = std::unexpected(errnoError(-err, requests_[0].what));
        }
      } else if (h.nlmsg_type != NLMSG_NOOP) {
        onMessage(message);
      }
      return !outcome;
    });
    if (outcome) return *outcome;
  }
}

Result<void> RtnlBatch::firstError() const {
  for (const auto& r : requests_) {
    if (r.error != 0) return std::unexpected(errnoError(-r.error, r.what));
  }
  return {};
}

Error errnoError(int err, std::string doing) {
  ErrorCode code = ErrorCode::kIo;
  switch (err) {
    case EEXIST: code = ErrorCode::kConflict; break;
    case ENODEV:
    case ENOENT:
    case ESRCH: code = ErrorCode::kNotFound; break;
    case EINVAL:
    case ERANGE: code = ErrorCode::kInvalidArgument; break;
    default: break;
  }
  return Error{code, fmt::format("{}: {}", doing, std::strerror(err))};
}

}  // namespace vnetipam::net
