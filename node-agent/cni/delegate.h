// Delegated IPAM, as the CNI spec describes it: the main plugin runs the binary named by
// `ipam.type`, found in CNI_PATH, with the same environment and the same stdin, for ADD, DEL,
// CHECK, GC and STATUS alike.
#pragma once

#include <string>
#include <string_view>

#include "node-agent/cni/spec.h"

namespace vnetipam::cni {

// What the main plugin needs from its IPAM plugin. Implementations pass the delegate's own error
// (code, msg, details) through unchanged.
class IpamDelegate {
 public:
  virtual ~IpamDelegate() = default;
  // Runs `command` of the IPAM plugin named in conf. For ADD the parsed result; for the others an
  // empty Result on success.
  virtual Outcome<Result> run(Command command, const Env& env, const NetConf& conf) = 0;
};

// Finds `type` in the directories of CNI_PATH. Code 7 when ipam.type is unusable (empty or holds
// a '/'), or names no executable in any directory (the message lists them).
Outcome<std::string> findPlugin(std::string_view type, const std::vector<std::string>& path);

// Execs the plugin binary: env.all with CNI_COMMAND replaced, conf.raw on stdin, its stdout
// parsed. A failing delegate's JSON error is returned as is; one that prints none becomes code 100
// naming the binary and its exit status.
class ExecIpamDelegate : public IpamDelegate {
 public:
  Outcome<Result> run(Command command, const Env& env, const NetConf& conf) override;
};

}  // namespace vnetipam::cni
