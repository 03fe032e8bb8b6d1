// The orphan sweeper: every period (and when a grace ends) it reads the Azure subnets of the
// PodSubnets, the NICs in them that carry a `vnetipam-*` ipConfiguration and that belong to no
// current Node, and takes off the prefixes no IPBlock has owned for the grace period. The rules are
// orphan_sweep.h; this is the I/O around them. Runs on a thread of its own, apart from the work
// queues, and writes only while this replica leads. Its ARM calls go through the same client, and
// so the same pacer, as every other.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "controller/cloud.h"
#include "controller/orphan_sweep.h"
#include "lib/base/clock.h"

namespace vnetipam::controller {

class EventSink;
class ControllerMetrics;

inline constexpr std::string_view kEventOrphanPrefixRemoved = "OrphanPrefixRemoved";

// The NICs a sweep reads: those with an ipConfiguration of ours in the subnets (`ours`, what
// Cloud::readSubnet found) that the NIC pass does not write (O1). Each NIC once (ignoring case),
// as first spelt.
std::vector<std::string> nicsToSweep(const OrphanSweepView& view,
                                     std::span<const OwnIpConfiguration> ours);

class OrphanSweeper {
 public:
  struct Hooks {
    // The controller's view, asked about these prefixes (Controller::orphanSweepView).
    std::function<OrphanSweepView(std::span<const ipam::Prefix>)> view;
    // This replica leads (Controller::canWrite): nothing is read or written otherwise.
    std::function<bool()> canWrite;
  };
  struct Options {
    std::chrono::seconds period{300};
    std::chrono::seconds grace{120};
  };

  // `cloud` and `clock` must outlive the sweeper; `events` and `metrics` may be null. The grace
  // is counted in clock.wallNow().
  OrphanSweeper(Cloud& cloud, Hooks hooks, EventSink* events, ControllerMetrics* metrics,
                Options options, base::Clock& clock = base::systemClock());
  ~OrphanSweeper();  // stops the thread
  OrphanSweeper(const OrphanSweeper&) = delete;
  OrphanSweeper& operator=(const OrphanSweeper&) = delete;

  struct Result {
    std::vector<std::string> errors;     // one line per failed read or removal
    std::vector<OrphanRemoval> removed;  // what was taken off, per NIC
    std::optional<Time> recheckAt;       // when the earliest grace ends
  };
  // One sweep (orphan_sweep.h). Does nothing while canWrite() is false.
  Result sweepOnce();

  // Sweeps every period, and at the end of a grace, on a thread of its own, until stop().
  void start();
  void stop();
  // Sweeps now, without waiting for the period: the controller found prefixes of ours on NICs
  // that no IPBlock holds (Controller::setOrphanSweepTrigger).
  void wake();

 private:
  void run();
  Time now() const;

  Cloud& cloud_;
  Hooks hooks_;
  EventSink* events_;
  ControllerMetrics* metrics_;
  Options options_;
  base::Clock& clock_;
  std::map<OrphanKey, Time> firstSeen_;  // only the sweeping thread touches it

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool woken_ = false;
  std::thread thread_;
};

}  // namespace vnetipam::controller
