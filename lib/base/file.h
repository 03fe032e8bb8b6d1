// Whole-file replacement that a crash cannot tear: what the agent's CNI config and served-blocks
// file and the Azure mock's state file are written with. (The journal installs its snapshots with
// its own steps: it keeps the new file open and must tell a failure before the rename from one
// after it.)
#pragma once

#include <filesystem>
#include <string_view>

#include "lib/base/error.h"

namespace vnetipam::base {

// Writes `content` to dir/name so that a reader sees the old file or the whole new one, never a
// part: a temporary file in the same directory (a dot name, which a CNI runtime reading the
// directory ignores), fsync, rename, directory fsync. Creates `dir` if missing; an empty one is
// the working directory. kIo naming the path and errno's text.
Result<void> writeFileAtomically(const std::filesystem::path& dir, std::string_view name,
                                 std::string_view content);

}  // namespace vnetipam::base
