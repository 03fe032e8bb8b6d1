// lib/net reports errors in the project's type (lib/base/error.h), as the IPAM core does, so the
// CNI plugin handles one error type for allocation and plumbing alike. Kernel refusals map as:
// "exists" -> kConflict, "no such link/route/namespace" -> kNotFound, bad arguments ->
// kInvalidArgument, everything else -> kIo. Messages say what was being done: interface, namespace,
// address.
#pragma once

#include "lib/base/error.h"

namespace vnetipam::net {

using base::Error;
using base::ErrorCode;
using base::fail;
using base::Result;

}  // namespace vnetipam::net
