// The command dispatch every CNI plugin shares: read the environment and stdin, check the version
// and the command against it, call the plugin's handler, print the result or the spec's error.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "node-agent/cni/spec.h"

namespace vnetipam::cni {

// A plugin's handlers. ADD returns the result to print (in the configuration's version); the
// others print nothing on success. A handler left empty answers code 2 ("not supported").
struct Plugin {
  std::string name;  // for log lines on stderr
  std::function<Outcome<Result>(const Env&, const NetConf&)> add;
  std::function<Outcome<void>(const Env&, const NetConf&)> del;
  std::function<Outcome<void>(const Env&, const NetConf&)> check;
  std::function<Outcome<void>(const Env&, const NetConf&)> gc;
  std::function<Outcome<void>(const Env&, const NetConf&)> status;
};

struct Invocation {
  int exitCode = 0;
  std::string out;  // what goes to stdout: a result, version info, an error object, or nothing
};

// One invocation, without touching the process: environment and stdin in, exit code and stdout
// out. Rules beyond parseEnv/parseNetConf: VERSION answers {"cniVersion","supportedVersions"}
// without needing a valid config; CHECK needs cniVersion >= 0.4.0, GC and STATUS >= 1.1.0 (code 1
// otherwise, as the reference skel does). Never throws: whatever the input, the outcome is a
// result or the spec's error object.
Invocation runPlugin(const Plugin& plugin, const std::map<std::string, std::string>& environment,
                     std::string_view stdinText);

// The process entry point: reads environ and stdin (no more than kMaxConfigBytes + 1, see
// input_bounds.h), runs, writes stdout, returns the exit code. Ignores SIGPIPE so a runtime that
// closes our stdout early gets an exit code, not a signal.
int pluginMain(const Plugin& plugin);

}  // namespace vnetipam::cni
