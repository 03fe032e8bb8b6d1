#include "lib/net/netns.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

namespace vnetipam::net {

namespace {

// What a file is, for a message that says why it is not a namespace.
const char* fileKind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a regular file";
}

}  // namespace

Result<Netns> Netns::open(std::string path) {
  // A path comes from outside (CNI_NETNS), and open() of a FIFO blocks until a writer comes, open()
  // of a device may act on the device. So: refuse anything but a regular file before opening
  // (an nsfs file is one), then open without blocking in case it was swapped meanwhile, then make
  // sure the open file lives on nsfs. Symlinks are followed on purpose: /proc/<pid>/ns/net is one.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    return fail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                fmt::format("open network namespace {}: {}", path, std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("{} is {}, not a network namespace", path, fileKind(st.st_mode)));
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return fail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                fmt::format("open network namespace {}: {}", path, std::strerror(err)));
  }
  UniqueFd owned(fd);
  struct statfs fs {};
  if (::fstatfs(owned.get(), &fs) != 0) {
    return fail(ErrorCode::kIo,
                fmt::format("statfs network namespace {}: {}", path, std::strerror(errno)));
  }
  if (fs.f_type != NSFS_MAGIC) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("{} is not a namespace file (not on nsfs)", path));
  }
  return adopt(std::move(owned), std::move(path));
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
