// An owned file descriptor, closed when its owner goes. The journal, the netlink sockets and
// namespace handles, and the atomic file writer all hold descriptors through it, so no error path
// leaks one.
#pragma once

#include <utility>

namespace vnetipam::base {

// Move-only; -1 means none. Every owner here opens its descriptors close-on-exec.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives the descriptor up without closing it.
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

}  // namespace vnetipam::base
