#include "lib/base/unique_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace vnetipam::base {
namespace {

bool isOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(UniqueFd, ClosesWhenItsOwnerGoesAndMovesOwnership) {
  int raw = -1;
  {
    UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    raw = fd.get();
    UniqueFd moved(std::move(fd));
    EXPECT_FALSE(fd.valid());  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(moved.get(), raw);
    EXPECT_TRUE(isOpen(raw));
  }
  EXPECT_FALSE(isOpen(raw)) << "closed with its last owner";
}

TEST(UniqueFd, AssignmentClosesTheOldDescriptorAndReleaseGivesItUp) {
  UniqueFd a(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  UniqueFd b(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int first = a.get();
  a = std::move(b);
  EXPECT_FALSE(isOpen(first));
  const int kept = a.release();
  EXPECT_FALSE(a.valid());
  EXPECT_TRUE(isOpen(kept)) << "release() does not close";
  ::close(kept);
}

}  // namespace
}  // namespace vnetipam::base
