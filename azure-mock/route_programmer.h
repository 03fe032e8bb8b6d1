// SDN emulation: the mock keeps one route per NIC prefix (block -> the NIC's primary IP) in a
// network namespace that plays the VNET fabric, the way Azure's SDN routes a prefix to its NIC.
#pragma once

#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "lib/ipam/ip.h"

namespace vnetipam::azuremock {

using Routes = std::map<ipam::Prefix, ipam::IPAddress>;

class RouteProgrammer {
 public:
  virtual ~RouteProgrammer() = default;
  // Adds or replaces the route `block via nextHop`, IPv4 or IPv6; nextHop must be of the block's
  // family (an IPv6 block goes via the NIC's IPv6 address). Idempotent. An error (a message naming
  // the namespace, block and what failed) leaves the route in an unknown state; retrying is safe.
  virtual std::expected<void, std::string> replaceRoute(const ipam::Prefix& block,
                                                        const ipam::IPAddress& nextHop) = 0;
  // Removes the route for `block`. Removing a route that is not there succeeds.
  virtual std::expected<void, std::string> deleteRoute(const ipam::Prefix& block) = 0;
};

// Shells out to `ip -n <netns> route replace|del ...` (argv, never a shell). Only ever inside the
// named namespace: the root namespace is never touched, so create() refuses an empty or odd name.
class IpRouteProgrammerImpl final : public RouteProgrammer {
 public:
  // Refuses a name that is empty, "." / "..", starts with "-", longer than 64 bytes, or holds
  // anything but [A-Za-z0-9_.-]: the name becomes a path under /run/netns and an argument to ip(8).
  static std::expected<std::unique_ptr<IpRouteProgrammerImpl>, std::string> create(
      std::string netns, std::string ipBinary = "ip");

  std::expected<void, std::string> replaceRoute(const ipam::Prefix& block,
                                                const ipam::IPAddress& nextHop) override;
  std::expected<void, std::string> deleteRoute(const ipam::Prefix& block) override;

 private:
  IpRouteProgrammerImpl(std::string netns, std::string ipBinary)
      : netns_(std::move(netns)), ip_(std::move(ipBinary)) {}
  std::expected<void, std::string> run(std::vector<std::string> args, bool missingIsOk);
  std::string netns_;
  std::string ip_;
};

// Keeps the programmer in step with a desired route set: sync() adds what is missing or changed
// and removes what is no longer wanted. A failed change is retried on the next sync(). Thread-safe.
class RouteSync {
 public:
  explicit RouteSync(RouteProgrammer& programmer) : programmer_(programmer) {}
  // Returns the failures of this round (empty when the programmer matches `desired`).
  std::vector<std::string> sync(const Routes& desired);
  Routes programmed() const;

 private:
  RouteProgrammer& programmer_;
  mutable std::mutex mutex_;
  Routes programmed_;
  bool firstSync_ = true;
};

}  // namespace vnetipam::azuremock
