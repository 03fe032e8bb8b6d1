// Batched rtnetlink requests on a raw NETLINK_ROUTE socket: all of lib/net's netlink traffic.
//
// A request-at-a-time library (libnl sends one request, then waits for its answer with two recvmsg
// calls, peek then read) makes every step of a pod's setup a round trip. Here several requests go
// out in one sendmsg and their answers are read together: the kernel runs the messages of one send
// in order and answers each failed one with its -errno (a GET with its data), and only the last
// asks for an ack: once that is read, every error of the batch has been read, attributed to its own
// request. A failed request does not stop the ones after it; callers batch only requests whose
// failure is undone as a whole (everything on one veth). Reads of whole tables are dumps
// (receiveDump), into one fixed read buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <linux/netlink.h>

#include "lib/net/error.h"
#include "lib/net/netns.h"

namespace vnetipam::net {

// A raw NETLINK_ROUTE socket bound to one namespace. Move-only; not for concurrent use.
class RtnlSocket {
 public:
  // Creates the socket inside ns. If the calling thread is not in ns already, the thread enters it
  // for the socket() call and returns at once (NetnsGuard; no extra thread). `groups` is an
  // RTMGRP_* mask to receive notifications.
  static Result<RtnlSocket> open(const Netns& ns, std::uint32_t groups = 0);

  int fd() const { return fd_.get(); }
  const std::string& netns() const { return netns_; }
  // The next sequence number (requests and their answers are matched by it).
  std::uint32_t nextSeq(std::uint32_t count) {
    const std::uint32_t first = seq_;
    seq_ += count;
    return first;
  }

 private:
  RtnlSocket(UniqueFd fd, std::string netns) : fd_(std::move(fd)), netns_(std::move(netns)) {}
  UniqueFd fd_;
  std::string netns_;
  std::uint32_t seq_ = 1;
};

// NLMSG_ALIGN and NLMSG_HDRLEN without the kernel macros' signed arithmetic.
constexpr std::size_t netlinkAlign(std::size_t n) { return (n + 3) & ~std::size_t{3}; }
inline constexpr std::size_t kNetlinkHeaderLen = 16;  // netlinkAlign(sizeof(nlmsghdr))

// Calls each(header, message) for the complete netlink messages of one read, in order, until it
// returns false.
template <typename Each>
void forEachMessage(std::span<const std::uint8_t> in, Each&& each) {
  std::size_t at = 0;
  while (at + sizeof(nlmsghdr) <= in.size()) {
    nlmsghdr h{};
    std::memcpy(&h, in.data() + at, sizeof h);
    if (h.nlmsg_len < sizeof h || at + h.nlmsg_len > in.size()) return;
    if (!each(h, in.subspan(at, h.nlmsg_len))) return;
    at += netlinkAlign(h.nlmsg_len);
  }
}

// The nlmsg_type of a whole netlink message (at least a header long, as forEachMessage gives).
std::uint16_t messageType(std::span<const std::uint8_t> message);

// One rtnetlink attribute as found in a message.
struct RtAttr {
  std::uint16_t type = 0;
  std::span<const std::uint8_t> data;
  std::uint32_t u32() const;
  std::string_view str() const;  // without the trailing NUL
};
// The attributes in `data` (a message's payload after its fixed header, or a nested attribute).
std::vector<RtAttr> parseAttrs(std::span<const std::uint8_t> data);

// Requests built into one buffer, sent with one sendmsg, answered together.
class RtnlBatch {
 public:
  // Starts a request: nlmsghdr with NLM_F_REQUEST | flags, then the fixed header (the last
  // request of the batch also gets NLM_F_ACK).
  // `what` describes it for errors ("add route ... in namespace ...").
  template <typename Header>
  std::size_t add(std::uint16_t type, std::uint16_t flags, const Header& header, std::string what) {
    return begin(type, flags, &header, sizeof header, std::move(what));
  }
  void attr(std::uint16_t type, const void* data, std::size_t len);
  void attrU32(std::uint16_t type, std::uint32_t value) { attr(type, &value, sizeof value); }
  void attrU64(std::uint16_t type, std::uint64_t value) { attr(type, &value, sizeof value); }
  void attrString(std::uint16_t type, std::string_view value);  // NUL-terminated
  // Raw bytes, padded to 4: a fixed header inside a nested attribute (VETH_INFO_PEER).
  void bytes(const void* data, std::size_t len);
  // Opens a nested attribute; close it with nestEnd(returned offset).
  std::size_t nestBegin(std::uint16_t type);
  void nestEnd(std::size_t offset);

  // Sends every request in one sendmsg.
  Result<void> send(RtnlSocket& sock);
  // Reads until the last request's ack: by then every failed request has its error. kIo if the
  // socket fails.
  Result<void> receive(RtnlSocket& sock);
  // For a batch of one request made with NLM_F_DUMP, after send(): calls onMessage with each
  // answer (the whole netlink message) until the kernel's NLMSG_DONE. kIo if the socket fails or
  // an answer does not fit the read buffer; the kernel's error (as errnoError) if it refuses the
  // dump. A dump the kernel marks interrupted (NLM_F_DUMP_INTR: the table changed meanwhile) is
  // still passed on and interrupted() says so: it may have missed or repeated an entry.
  Result<void> receiveDump(RtnlSocket& sock,
                           const std::function<void(std::span<const std::uint8_t>)>& onMessage);
  // Whether receiveDump saw NLM_F_DUMP_INTR.
  bool interrupted() const { return interrupted_; }

  std::size_t size() const { return requests_.size(); }
  // 0 or the kernel's -errno for request i.
  int error(std::size_t i) const { return requests_[i].error; }
  // The data answer of a GET request (the whole netlink message), empty for others.
  std::span<const std::uint8_t> reply(std::size_t i) const { return requests_[i].reply; }
  // The first failed request as an Error: "<what>: <strerror>", EEXIST -> kConflict,
  // ENODEV/ENOENT/ESRCH -> kNotFound, EINVAL/ERANGE -> kInvalidArgument, else kIo.
  Result<void> firstError() const;

 private:
  struct Request {
    std::string what;
    std::size_t offset = 0;
    int error = 0;
    bool answered = false;
    std::vector<std::uint8_t> reply;
  };
  std::size_t begin(std::uint16_t type, std::uint16_t flags, const void* header, std::size_t len,
                    std::string what);
  std::vector<std::uint8_t> buf_;
  std::vector<Request> requests_;
  std::uint32_t firstSeq_ = 0;
  bool interrupted_ = false;
};

// The kernel's errno as this project's Error ("<doing>: <strerror>"), mapped as in firstError().
Error errnoError(int err, std::string doing);

}  // namespace vnetipam::net
