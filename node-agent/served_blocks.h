// The blocks this agent serves, persisted next to the journal so that a restart during a
// control-plane outage can serve again without the API server.
//
// The safety rule that makes serving from this file correct: the controller creates every IPBlock
// with the finalizer vnetipam.io/agent-drain (api::kAgentDrainFinalizer) and never returns a block
// of a live node to the pool (nor removes its prefix from the NIC) until that finalizer is gone;
// this agent removes it only after it has durably dropped the block from this file (and holds no
// allocation in it). So every block in the file still belongs to this node, and an agent serving
// from the file can never hand out an address from a block the controller may have taken back.
// The controller removes the finalizer itself only when the block's Node no longer exists, and
// then no agent of that node serves.
//
// Format, version 1: one header line, then the body.
//   vnet-ipam-served-blocks 1 <crc32c of the body, 8 hex digits> <body length in bytes>\n
//   {"node":"<node name>","blocks":[{"name":"<IPBlock name>","cidr":"<prefix>"},...]}
// Written atomically (temporary file, fsync, rename, directory fsync). Anything that does not
// read back exactly (a missing or torn file, a bad checksum, another version, another node, a
// block that does not parse) is "no persisted blocks": never a licence to serve.
#pragma once

#include <expected>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/error.h"
#include "lib/ipam/ip.h"

namespace vnetipam::agent {

inline constexpr std::string_view kServedBlocksFile = "served-blocks";
inline constexpr int kServedBlocksVersion = 1;

// A block this agent serves: it was Ready, not being deleted and not marked Invalid.
struct ServedBlock {
  std::string name;
  ipam::Prefix cidr;
  bool operator==(const ServedBlock&) const = default;
};

// The file's bytes for `blocks` (sorted by name, so equal sets encode alike).
std::string encodeServedBlocks(const std::string& nodeName, std::vector<ServedBlock> blocks);

// The blocks `text` holds for `nodeName`; the error says why the text is not a valid file.
std::expected<std::vector<ServedBlock>, std::string> decodeServedBlocks(
    std::string_view text, const std::string& nodeName);

// Writes stateDir/served-blocks atomically and durably (base::writeFileAtomically). kIo on failure:
// the old file (or none) is then still in place.
base::Result<void> saveServedBlocks(const std::filesystem::path& stateDir,
                                    const std::string& nodeName,
                                    const std::vector<ServedBlock>& blocks);

// What stateDir/served-blocks holds for `nodeName`. The error ("no file", a damage) means: no
// persisted blocks.
std::expected<std::vector<ServedBlock>, std::string> loadServedBlocks(
    const std::filesystem::path& stateDir, const std::string& nodeName);

}  // namespace vnetipam::agent
