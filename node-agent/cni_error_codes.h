// The CNI specification's well-known error codes (1-99) and this project's own (100+): the one
// place they are numbered. The plugins report them to the runtime (cni/spec.h) and the agent
// answers with them over its socket (protocol.h's ErrorCode), so a plugin passes an agent's code
// through unchanged. The numbers are wire values: never renumber.
#pragma once

namespace vnetipam::cni {

enum Code : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnvironment = 4,
  kIoFailure = 5,
  kDecodeFailure = 6,
  kInvalidConfig = 7,
  kTryAgainLater = 11,
  kPluginNotAvailable = 50,
  kDegradedConnectivity = 51,
  kInternal = 100,        // an unexpected failure inside the plugin or the agent
  kLayoutMismatch = 101,  // CHECK: the pod's network differs from prevResult
  // ADD: the container already has an interface of the requested name. The spec requires an error
  // ("If an interface of the requested name already exists in the container, the CNI plugin MUST
  // return with an error") but numbers none for it, and none of 1-11 means this, so it is ours.
  kInterfaceExists = 102,
};

}  // namespace vnetipam::cni
