// The agent's tests name the unit tests' one temp dir (unit/lib/base/temp_dir.h) testing::TempDir.
#pragma once

#include "unit/lib/base/temp_dir.h"

namespace vnetipam::agent::testing {

using base::testing::TempDir;

}  // namespace vnetipam::agent::testing
