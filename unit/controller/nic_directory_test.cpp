// NicDirectory on its own, against the fake cloud: what a list of a resource group answers, and
// when. The controller's use of it (which nodes wait, what a join costs) is nic_wiring_test.cpp.
#include "controller/nic_directory.h"

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "unit/controller/fake_cloud.h"

namespace vnetipam::controller {
namespace {

constexpr std::string_view kGroup = "/subscriptions/s/resourceGroups/rg";

std::string vmId(const std::string& name) {
  return std::string(kGroup) + "/providers/Microsoft.Compute/virtualMachines/" + name;
}

class NicDirectoryTest : public ::testing::Test {
 protected:
  NicDirectoryTest() {
    for (const char* vm : {"vm-a", "vm-b", "vm-c", "vm-d"})
      cloud_.addNode("azure://" + vmId(vm), std::string("nic-") + (vm + 3));
  }
  std::optional<std::string> take(const std::string& vm, std::size_t waiting) {
    return directory_.take(kGroup, vmId(vm), [waiting](std::size_t n) { return waiting >= n; });
  }

  testing::FakeCloud cloud_;
  NicDirectory directory_{cloud_};
};

// A node that joined a running list goes on as soon as the page naming its VM has arrived, while
// the list still reads its later pages: a group of many pages holds no node back for all of them.
TEST_F(NicDirectoryTest, ANodeGoesOnOnceThePageNamingItsVmArrives) {
  cloud_.listPages = 2;  // vm-a and vm-b on the first page, vm-c and vm-d on the second
  std::future<std::optional<std::string>> joined;
  bool answeredBeforeTheLastPage = false;
  cloud_.beforePage = [&](int page) {
    if (page == 0) {
      joined = std::async(std::launch::async, [this] { return take("vm-b", 2); });
      // vm-b waits in the list before its page arrives (bounded, should it never get there).
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (directory_.joined() == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
      ASSERT_EQ(directory_.joined(), 1);
    } else {
      // Bounded: without per-page answers vm-b waits for this very page, and the test fails.
      answeredBeforeTheLastPage =
          joined.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    }
  };
  EXPECT_EQ(take("vm-d", 2), "nic-d") << "the node that made the list, from its last page";
  EXPECT_TRUE(answeredBeforeTheLastPage);
  EXPECT_EQ(joined.get(), "nic-b");
  EXPECT_EQ(cloud_.lists, 1);
  EXPECT_EQ(directory_.lists(), 1);
}

// What a list showed is taken once; a later complete list replaces what an earlier one showed
// and no node took.
TEST_F(NicDirectoryTest, AListIsTakenOnceAndACompleteListReplacesTheLastOne) {
  EXPECT_EQ(take("vm-a", 1), "nic-a");
  EXPECT_EQ(take("vm-b", 1), "nic-b") << "from the same list";
  EXPECT_EQ(cloud_.lists, 1);
  EXPECT_EQ(take("vm-a", 0), std::nullopt) << "taken already, and one node does not list";

  cloud_.removeVm("azure://" + vmId("vm-c"));
  EXPECT_EQ(take("vm-a", 1), "nic-a") << "a second list";
  EXPECT_EQ(cloud_.lists, 2);
  EXPECT_EQ(take("vm-c", 0), std::nullopt) << "the first list's vm-c is gone with it";
  EXPECT_EQ(take("vm-d", 0), "nic-d");
}

}  // namespace
}  // namespace vnetipam::controller
