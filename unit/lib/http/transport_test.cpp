#include "lib/http/transport.h"

#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

namespace vnetipam::http {
namespace {

TEST(HeaderNameLess, HeaderNamesCompareIgnoringCase) {
  Headers headers{{"Content-Type", "application/json"}};
  EXPECT_EQ(headers.at("content-type"), "application/json");
  EXPECT_FALSE(headers.contains("Content-Length"));
}

// A stream unregisters its callback and then destroys what the callback captures; a cancel() on
// another thread that had already taken the callback must be waited for (the agent crashed at
// exit on a cancellation source destroyed under a running cancel()).
TEST(CancelSignal, RemoveOnCancelWaitsForACallbackAlreadyRunning) {
  CancelSignal signal;
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> finished{false};
  const auto id = signal.onCancel([&] {
    entered.set_value();
    released.wait();
    finished = true;
  });
  std::thread canceller([&] { signal.cancel(); });
  entered.get_future().wait();  // cancel() has taken the callback and is running it
  std::promise<void> removing;
  bool finishedWhenRemoved = false;
  std::thread remover([&] {
    removing.set_value();
    signal.removeOnCancel(id);
    finishedWhenRemoved = finished;
  });
  removing.get_future().wait();
  release.set_value();
  remover.join();
  canceller.join();
  EXPECT_TRUE(finishedWhenRemoved) << "removeOnCancel returned while the callback still ran";
}

}  // namespace
}  // namespace vnetipam::http
