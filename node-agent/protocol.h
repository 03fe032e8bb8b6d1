// The node agent's socket protocol, version 1: how the vnet-ipam CNI plugin (and tests, and
// benchmarks) ask the agent for addresses.
//
// Transport: a unix stream socket (mode 0600, root only). A client writes one request, a JSON
// object on a single line ending in '\n'; the agent answers with one JSON line. A connection may
// carry any number of request/response pairs, strictly in turn.
//
//   {"v":1,"op":"allocate","network":"vnet-ipam","containerID":"c1","ifName":"eth0",
//    "podNamespace":"ns","podName":"p","podUID":"0d2c...","families":[4,6]}
//   {"v":1,"ok":true,"allocations":[{"containerID":"c1","ifName":"eth0","network":"vnet-ipam",
//     "podNamespace":"ns","podName":"p","podUID":"0d2c...","address":"10.240.0.17",
//     "block":"10.240.0.16/28",
//     "blockName":"pods-10-240-0-16-28","gateway":"169.254.1.1"},
//    {..., "address":"fd00:0:0:1::11","block":"fd00:0:0:1::/112",..., "gateway":"fe80::1"}]}
//   {"v":1,"ok":false,"code":11,"msg":"no free address on node n1","details":"..."}
//
// Every operation on attachments (allocate, release, check, gc) may carry "network": the name of
// the CNI network (the network configuration's "name") the plugin runs for. The CNI spec keys an
// attachment by network, container ID and interface name, and a runtime sends one GC per network
// listing that network's attachments only. The agent records the network with each allocation and
// scopes every operation by it:
//   - allocate, release and check act on what the attachment holds for that network. An
//     allocation without a network (made by a plugin of an earlier release, which sent none) and a
//     request without one match any network, as before.
//   - allocate for an attachment that holds an address for another network fails with code 102
//     (kInterfaceExists): one network namespace cannot have two interfaces of one name, so it is a
//     misconfiguration, and handing over the other network's address would let either network's
//     DEL take it from the other. release for another network's attachment releases nothing and
//     succeeds (the runtime's DEL after that failed ADD must not free the other network's address).
//   - gc judges only the allocations of its network, plus, when its network is kAgentNetworkName
//     or it names none, the allocations that record no network; see gc below.
// Operations:
//   allocate  containerID+ifName (required), podNamespace/podName (recorded for GC and logs),
//             podUID (optional, K8S_POD_UID: recorded so GC also releases the allocation of a pod
//             deleted and recreated under the same name; an allocation without one is collected
//             only once no pod of that namespace/name is left). Idempotent per owner: a retried
//             ADD gets the address it already holds, with the pod fields it was first given.
//             families (optional): the address families the client can take, [4], [6] or [4,6].
//             The agent answers one address per family that is both asked for and served by the
//             node (a family is served while an IPBlock of it is assigned to the node and not being
//             deleted; one that is not Ready yet makes the allocate fail with 11, as an IPv4-only
//             node without a Ready block does). All or nothing: when one family cannot be
//             allocated, the others this allocate took are given back and it fails. Without
//             "families" (a plugin of the previous release) the agent serves IPv4 alone, the only
//             family that plugin can put in a result. A retried allocate returns what the owner
//             holds and completes the families it lacks; if one of those cannot be allocated it
//             fails and the owner keeps what an earlier allocate gave it (DEL or GC returns it).
//   release   containerID+ifName: every family it holds. Idempotent: releasing what is not held is
//             ok with no allocations.
//             Answers once the release is in the journal and fsynced, like an allocation
//             (see node-agent/allocation_store.h).
//   check     containerID+ifName. ok with its allocations (one per family held), or code 3
//             (unknown container).
//   list      every allocation on the node. An allocation carries "podUID" only when one was
//             recorded (an older plugin sends none).
//   gc        validAttachments: the runtime's valid attachments of `network`. Every allocation the
//             gc judges that is NOT in the list becomes a GC candidate (released after the agent's
//             grace period). Answers with the allocations it marked. A gc for network N judges the
//             allocations recorded for N. Allocations recorded without a network come from a plugin
//             that named none, which only the agent's own network (kAgentNetworkName) ran before
//             networks were recorded: a gc for that network, or a gc naming no network (a plugin
//             of that earlier release), judges them too, except one whose container ID the list
//             names under another interface (its sandbox lives; a second interface of a live
//             sandbox is most likely another network's attachment). A gc for any other network
//             leaves them alone; the pod side of GC still returns them once their pod is gone.
//   status    ok with `ready` and `freeIPs`: whether the agent can serve right now. freeIPs is the
//             free addresses of the scarcest family the node serves (on a dual-stack node an ADD
//             needs one of each), the free addresses in usable blocks on a single-family node.
//
// Versioning: a request carries "v". The agent answers a version it does not speak with code 1
// (incompatible version) and names the versions it does speak; fields it does not know are ignored,
// so adding optional fields does not need a new version. Dual stack is such an addition and stays
// version 1, so that during an upgrade either side may be the older one: an older plugin sends no
// "families" and is answered one IPv4 address as before (it ignores "gateway"); a newer plugin
// takes an older agent's single IPv4 allocation without "gateway" and uses the IPv4 gateway.
// A response's allocations are ordered by address, so IPv4 comes before IPv6.
//
// Error codes are the CNI spec's, so the plugin passes them through unchanged: 11 (try again later)
// for an exhausted node or an agent that is not ready yet — it answers at once, never blocks.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/error.h"
#include "lib/ipam/ip.h"
#include "lib/ipam/owner.h"
#include "node-agent/cni_error_codes.h"

namespace vnetipam::agent {

inline constexpr int kProtocolVersion = 1;
inline constexpr std::string_view kDefaultSocketPath = "/run/vnet-ipam/agent.sock";
// The "name" of the network configuration list the agent installs (cni_config.h): the network
// the allocations of plugins that sent no network belong to (see gc above).
inline constexpr std::string_view kAgentNetworkName = "vnet-ipam";

// Limits on what the agent reads, checked before a request is parsed, so that one client cannot
// make the agent build a JSON tree hundreds of times the size of its line (a 4 MiB line of nested
// brackets cost 300 MB).
//
// The largest legitimate request is a gc naming every attachment on the node: about 100 bytes per
// attachment with a 64-character container ID, so 256 KiB holds 2,500 of them, ten times the most
// pods a node runs (AKS allows 250). Every other request is under 1 KiB. The agent answers a
// longer line with code 6 and closes the connection without reading the rest.
inline constexpr std::size_t kMaxRequestBytes = 256 * 1024;
// What a client reads from the agent: a list answer carries every allocation of the node (about
// 300 bytes each). The agent is root's own socket, so this only bounds a confused peer.
inline constexpr std::size_t kMaxResponseBytes = 4 * 1024 * 1024;
// Arrays and objects nested deeper than this are refused before a tree is built. Messages nest 3
// deep (an object, a list, its items); the rest is room for optional fields to come.
inline constexpr int kMaxJsonDepth = 16;

// The string fields of a request, checked by decodeRequest (every string must be valid UTF-8
// without control characters; a NUL in an owner's parts once let two owners share an address):
//   containerID   1 to 256 bytes of A-Z a-z 0-9 _ . -, starting with a letter or digit (the CNI
//                 spec's rule; runtimes use 64 hex digits)
//   ifName        1 to 15 bytes (a Linux interface name) of printable ASCII without / : or
//                 space, not "." or ".."
//   podNamespace  at most 63 bytes, podName at most 253 (Kubernetes' limits), podUID at most 128
//                 (a UID is 36)
//   network       at most 253 bytes (a CNI network name: the spec's rule is the container ID's
//                 alphabet, but runtimes before libcni v1.1 did not check it, so any printable name
//                 a network already has is taken)
inline constexpr std::size_t kMaxContainerIDBytes = 256;
inline constexpr std::size_t kMaxIfNameBytes = 15;
inline constexpr std::size_t kMaxPodNamespaceBytes = 63;
inline constexpr std::size_t kMaxPodNameBytes = 253;
inline constexpr std::size_t kMaxPodUIDBytes = 128;
inline constexpr std::size_t kMaxNetworkBytes = 253;

enum class Op : std::uint8_t { kAllocate, kRelease, kCheck, kList, kGc, kStatus };
std::string_view toString(Op op);

// The CNI spec's error codes (1-99), plus 100 for a failure inside the agent itself: a subset of
// cni::Code (node-agent/cni_error_codes.h), so the plugin hands them to the runtime unchanged.
enum class ErrorCode : int {
  kIncompatibleVersion = cni::kIncompatibleVersion,
  kUnsupportedField = cni::kUnsupportedField,
  kUnknownContainer = cni::kUnknownContainer,
  kInvalidEnvironment = cni::kInvalidEnvironment,
  kIoFailure = cni::kIoFailure,
  kDecodeFailure = cni::kDecodeFailure,
  kInvalidConfig = cni::kInvalidConfig,
  kTryAgainLater = cni::kTryAgainLater,
  kAgentInternal = cni::kInternal,
  kInterfaceExists = cni::kInterfaceExists,  // allocate: the attachment is another network's
};

struct Request {
  int version = kProtocolVersion;
  Op op = Op::kStatus;
  std::string network;  // the CNI network's name; empty: not sent (a plugin of an earlier release)
  ipam::Owner owner;    // allocate, release, check: the attachment (containerID, ifName)
  std::string podNamespace;
  std::string podName;
  std::string podUID;  // allocate only; optional (empty: not known)
  // allocate only: the families the client takes, at most one of each; empty: IPv4 alone (a
  // plugin of the previous release).
  std::vector<ipam::Family> families;
  std::vector<ipam::Owner> validAttachments;  // gc only

  bool operator==(const Request&) const = default;
};

struct Allocation {
  ipam::Owner owner;
  std::string network;  // empty: its allocate named no network
  std::string podNamespace;
  std::string podName;
  std::string podUID;  // empty when the allocate did not carry one
  ipam::IPAddress address;
  ipam::Prefix block;  // the CIDR of the IPBlock the address came from
  std::string blockName;
  // The pod's gateway for the address's family (lib/ipam/pod_gateway.h); unset in an older
  // agent's answer and in list/gc answers.
  std::optional<ipam::IPAddress> gateway;

  bool operator==(const Allocation&) const = default;
};

struct Response {
  int version = kProtocolVersion;
  bool ok = true;
  ErrorCode code = ErrorCode::kAgentInternal;  // meaningful only when !ok
  std::string message;                         // when !ok: what failed, naming the owner
  std::string details;                         // when !ok: optional
  std::vector<Allocation> allocations;
  bool ready = false;         // status
  std::uint64_t freeIPs = 0;  // status

  static Response failure(ErrorCode code, std::string message, std::string details = {});
  bool operator==(const Response&) const = default;
};

// Encoders return one line including the trailing '\n'. Decoders take a line with or without it;
// their errors (kInvalidArgument) name the field and what was expected. Integers are taken only
// when they fit their type exactly: a float, a negative or an out-of-range value is an error, never
// rounded or truncated. decodeRequest also refuses a line longer than kMaxRequestBytes, nesting
// deeper than kMaxJsonDepth and a string field outside its rule (above); decodeResponse a line
// longer than kMaxResponseBytes or nested deeper than kMaxJsonDepth.
std::string encode(const Request& request);
std::string encode(const Response& response);
base::Result<Request> decodeRequest(std::string_view line);
base::Result<Response> decodeResponse(std::string_view line);

// Framing on a connected stream socket, shared by the agent and its clients.
//   readLine: appends to `buffer` until it holds a '\n', then moves the first line (without '\n')
//   into the result. kIo on a timeout or a closed peer (before a full line), the message says
//   which; kOutOfRange as soon as the line is longer than `maxBytes`, without reading the rest
//   (`buffer` then holds at most `maxBytes` plus one read).
base::Result<std::string> readLine(int fd, std::string& buffer, std::chrono::milliseconds timeout,
                                   std::size_t maxBytes = kMaxResponseBytes);
base::Result<void> writeAll(int fd, std::string_view data, std::chrono::milliseconds timeout);

// A client connection to the agent. Not thread-safe: one request at a time per connection.
class AgentConnection {
 public:
  // kIo naming the path when the agent is not listening there (the plugin turns that into CNI
  // code 11: the agent may be starting).
  static base::Result<AgentConnection> open(const std::string& socketPath,
                                            std::chrono::milliseconds timeout);
  AgentConnection(AgentConnection&& other) noexcept;
  AgentConnection& operator=(AgentConnection&& other) noexcept;
  ~AgentConnection();

  // Sends the request and waits up to `timeout` for the answer. A transport failure is an error;
  // an agent that answers "no" is a Response with ok == false.
  base::Result<Response> call(const Request& request, std::chrono::milliseconds timeout);

 private:
  explicit AgentConnection(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
  std::string buffer_;
};

// One connection, one request.
base::Result<Response> callAgent(const std::string& socketPath, const Request& request,
                                 std::chrono::milliseconds timeout);

}  // namespace vnetipam::agent
