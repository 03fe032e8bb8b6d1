// Delegated IPAM, as the CNI spec describes it: the main plugin runs the binary named by
// `ipam.type`, found in CNI_PATH, with the same environment and the same stdin, for ADD, DEL,
// CHECK, GC and STATUS alike.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "node-agent/cni/spec.h"

namespace vnetipam::cni {

// One IPAM command under way (see IpamDelegate::start).
class IpamCall {
 public:
  virtual ~IpamCall() = default;
  // Waits for the command and returns what run() would have. Call at most once.
  virtual Outcome<Result> finish() = 0;
};

// What the main plugin needs from its IPAM plugin. Implementations pass the delegate's own error
// (code, msg, details) through unchanged.
class IpamDelegate {
 public:
  virtual ~IpamDelegate() = default;
  // Runs `command` of the IPAM plugin named in conf. For ADD the parsed result; for the others an
  // empty Result on success.
  virtual Outcome<Result> run(Command command, const Env& env, const NetConf& conf) = 0;
  // Starts `command` and returns while it may still run, so the caller can work meanwhile; the
  // result comes from finish(). Destroying an unfinished call waits for it. The default runs it
  // to completion here. env and conf must outlive the call.
  virtual std::unique_ptr<IpamCall> start(Command command, const Env& env, const NetConf& conf);
};

// Finds `type` in the directories of CNI_PATH. Code 7 when ipam.type is unusable (empty or holds
// a '/'), or names no executable in any directory (the message lists them).
Outcome<std::string> findPlugin(std::string_view type, const std::vector<std::string>& path);

// Execs the plugin binary: env.all with CNI_COMMAND replaced, conf.raw on stdin, its stdout
// parsed. A failing delegate's JSON error is returned as is; one that prints none becomes code 100
// naming the binary and its exit status.
// start() returns once the plugin process runs with its stdin written.
class ExecIpamDelegate : public IpamDelegate {
 public:
  Outcome<Result> run(Command command, const Env& env, const NetConf& conf) override;
  std::unique_ptr<IpamCall> start(Command command, const Env& env, const NetConf& conf) override;
};

}  // namespace vnetipam::cni
