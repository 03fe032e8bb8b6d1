// The IPAM core reports errors in the project's type (lib/base/error.h); its code names them
// unqualified, as lib/net does (lib/net/error.h). Everyone else says base::.
#pragma once

#include "lib/base/error.h"

namespace vnetipam::ipam {

using base::Error;
using base::ErrorCode;
using base::fail;
using base::Result;

}  // namespace vnetipam::ipam
