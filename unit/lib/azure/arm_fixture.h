// What the tests of the ARM client and the clients on it share: the endpoint, client options
// without budgets or jitter, and a NetworkClient on an ArmClient over a test transport, a fake
// clock and a fake credential. Used here and by the Azure mock's tests that put the client in
// front of the mock.
#pragma once

#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "lib/azure/arm_client.h"
#include "lib/azure/network.h"
#include "unit/lib/azure/fake_credential.h"
#include "unit/lib/base/fake_clock.h"
#include "unit/lib/http/fake_transport.h"

namespace vnetipam::azure::testing {

inline constexpr std::string_view kArmEndpoint = "https://management.azure.com";

// No read or write budget (every request goes at once) and no jitter (a backoff is half its
// step), so a test can count requests and sleeps exactly.
inline ArmClientOptions unpacedArmOptions() {
  return {.readQps = 0, .writeQps = 0, .random01 = [] { return 0.0; }};
}

// A NetworkClient on an ArmClient at kArmEndpoint over `Transport`: the scripted FakeTransport,
// or a test's own that answers by what is asked.
template <class Transport = http::testing::FakeTransport>
class NetworkClientFixture : public ::testing::Test {
 protected:
  NetworkClientFixture()
      : arm_(transport_, std::string(kArmEndpoint), credential_, clock_, unpacedArmOptions()),
        network_(arm_) {}

  Transport transport_;
  base::testing::FakeClock clock_;
  FakeCredential credential_;
  ArmClient arm_;
  NetworkClient network_;
};

}  // namespace vnetipam::azure::testing
