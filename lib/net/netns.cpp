#include "lib/net/netns.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vnetipam::net {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

int UniqueFd::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

Result<Netns> Netns::open(std::string path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return fail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                fmt::format("open network namespace {}: {}", path, std::strerror(err)));
  }
  return adopt(UniqueFd(fd), std::move(path));
}

Result<Netns> Netns::openNamed(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos || name == "." || name == "..") {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("network namespace name '{}' must be a plain file name", name));
  }
  return open(fmt::format("/var/run/netns/{}", name));
}

Result<Netns> Netns::current() { return open("/proc/thread-self/ns/net"); }

Result<Netns> Netns::adopt(UniqueFd fd, std::string label) {
  // NS_GET_NSTYPE (Linux 4.11) tells a namespace file from any other file.
  const int type = ::ioctl(fd.get(), NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    return fail(ErrorCode::kInvalidArgument, fmt::format("{} is not a network namespace", label));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return fail(ErrorCode::kIo,
                fmt::format("stat network namespace {}: {}", label, std::strerror(errno)));
  }
  return Netns(std::move(fd), std::move(label), st.st_ino);
}

Result<std::unique_ptr<NetnsGuard>> NetnsGuard::enter(const Netns& target) {
  auto original = Netns::current();
  if (!original) return std::unexpected(original.error());
  if (::setns(target.fd(), CLONE_NEWNET) != 0) {
    return fail(ErrorCode::kIo, fmt::format("enter network namespace {}: {}", target.label(),
                                            std::strerror(errno)));
  }
  return std::unique_ptr<NetnsGuard>(new NetnsGuard(std::move(*original)));
}

NetnsGuard::~NetnsGuard() {
  if (::setns(original_.fd(), CLONE_NEWNET) != 0) {
    // "Cannot happen" short of a kernel or seccomp refusal; carrying on would program the wrong
    // namespace, so stop loudly.
    fmt::print(stderr, "vnetipam: cannot return to network namespace {}: {}\n", original_.label(),
               std::strerror(errno));
    std::abort();
  }
}

Result<void> runInNetns(const Netns& ns, const std::function<Result<void>()>& fn) {
  Result<void> result;
  try {
    std::thread worker([&] {
      // No guard: the thread ends right after fn, so it never needs to come back.
      if (::setns(ns.fd(), CLONE_NEWNET) != 0) {
        result = fail(ErrorCode::kIo, fmt::format("enter network namespace {}: {}", ns.label(),
                                                  std::strerror(errno)));
        return;
      }
      result = fn();
    });
    worker.join();
  } catch (const std::system_error& e) {
    return fail(ErrorCode::kIo,
                fmt::format("start a thread for network namespace {}: {}", ns.label(), e.what()));
  }
  return result;
}

}  // namespace vnetipam::net
