// Network namespace handles and per-thread namespace switching.
//
// A process's threads can sit in different network namespaces: setns(CLONE_NEWNET) moves only the
// calling thread. Everything here builds on that. A netlink socket or a /proc/sys/net file belongs
// to the namespace of the thread that created or opened it, and keeps that namespace for life, so
// the usual pattern is: enter the namespace on a short-lived thread, create the socket or open the
// file, leave. runInNetns() does exactly that; the caller's thread never changes namespace.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "lib/base/unique_fd.h"
#include "lib/net/error.h"

namespace vnetipam::net {

// Descriptors are held by the project's owner type.
using base::UniqueFd;

// An open network namespace. Holding it keeps the namespace alive even if its bind mount
// (/var/run/netns/<name>) or process goes away. Move-only.
class Netns {
 public:
  // Opens a namespace file: /var/run/netns/<name>, /proc/<pid>/ns/net, or a CNI_NETNS path.
  // kNotFound if the path does not exist, kInvalidArgument if it is not a network namespace (a
  // FIFO, a directory, a device or a plain file is refused without blocking or opening it).
  static Result<Netns> open(std::string path);
  // Opens /var/run/netns/<name> (the `ip netns` convention).
  static Result<Netns> openNamed(std::string_view name);
  // The namespace of the calling thread.
  static Result<Netns> current();
  // Takes ownership of an fd that refers to a network namespace (checked). `label` names it in
  // error messages.
  static Result<Netns> adopt(UniqueFd fd, std::string label);

  int fd() const { return fd_.get(); }
  // The path or label it was opened by; used in every error message that involves it.
  const std::string& label() const { return label_; }
  // The namespace's inode number: two handles with the same inode name the same namespace.
  unsigned long inode() const { return inode_; }

 private:
  Netns(UniqueFd fd, std::string label, unsigned long inode)
      : fd_(std::move(fd)), label_(std::move(label)), inode_(inode) {}
  UniqueFd fd_;
  std::string label_;
  unsigned long inode_ = 0;
};

// Moves the calling thread into a namespace and back to its original one on destruction. It is
// per-thread: other threads of the process are unaffected, and the guard must be destroyed on the
// thread that created it (it is neither copyable nor movable). If returning fails the process
// aborts, because a thread silently left in a pod's namespace would program the wrong namespace
// from then on. Prefer runInNetns(), which never moves the caller's thread at all.
class NetnsGuard {
 public:
  static Result<std::unique_ptr<NetnsGuard>> enter(const Netns& target);
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;
  ~NetnsGuard();

 private:
  explicit NetnsGuard(Netns original) : original_(std::move(original)) {}
  Netns original_;
};

// Runs fn on a new thread that has entered ns, waits for it and returns its result. The thread
// ends with fn, so nothing outlives the call in the wrong namespace. Sockets and files fn creates
// stay bound to ns and may be used from any thread afterwards.
Result<void> runInNetns(const Netns& ns, const std::function<Result<void>()>& fn);

}  // namespace vnetipam::net
