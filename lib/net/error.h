// lib/net reports errors in the IPAM core's type, so the CNI plugin handles one error type for
// allocation and plumbing alike. Kernel refusals map as: "exists" -> kConflict, "no such
// link/route/namespace" -> kNotFound, bad arguments -> kInvalidArgument, everything else -> kIo.
// Messages say what was being done: interface, namespace, address.
#pragma once

#include "lib/ipam/error.h"

namespace vnetipam::net {

using ipam::Error;
using ipam::ErrorCode;
using ipam::fail;
using ipam::Result;

}  // namespace vnetipam::net
