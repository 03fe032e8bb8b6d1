// The Kubernetes core (v1) resource paths the project's components read. The vnetipam.io paths are
// api/constants.h's; an object is "<collection>/<name>", percent-encoded by the caller.
#pragma once

#include <string_view>

namespace vnetipam::kube {

// A namespaced collection is "<kCoreApi>/namespaces/<namespace>/<plural>".
inline constexpr std::string_view kCoreApi = "/api/v1";
inline constexpr std::string_view kNodesPath = "/api/v1/nodes";
// Every namespace's pods and core Events; a field or label selector narrows them.
inline constexpr std::string_view kPodsPath = "/api/v1/pods";
inline constexpr std::string_view kEventsPath = "/api/v1/events";

}  // namespace vnetipam::kube
