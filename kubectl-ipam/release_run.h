// `kubectl ipam release`: the I/O half (release.h decides and renders). Reads the report, writes
// each block's release annotation (JSON merge patch with the block's resourceVersion, retried on
// a conflict so another writer's entries are kept), waits until every request is answered or the
// timeout passes, then removes its entries again: the agent may not write the annotation.
#pragma once

#include <chrono>
#include <string>

#include "kubectl-ipam/args.h"
#include "lib/kube/client.h"

namespace vnetipam::kubectl_ipam {

struct ReleaseIo {
  std::string reportText;  // the report file's contents
  std::chrono::milliseconds pollInterval{500};
};

// Prints to stdout what was done; returns the exit status (0 all released, 1 not all, 2 an error:
// the message goes to stderr).
int runRelease(kube::Client& client, const Args& args, const ReleaseIo& io);

}  // namespace vnetipam::kubectl_ipam
