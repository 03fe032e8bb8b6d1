// What the agent writes into its journal (lib/ipam/journal.h keeps payloads opaque): one JSON
// object per record.
//
//   entry, allocation: {"t":"a","b":"<block name>","c":"<block cidr>","ip":"10.0.0.17",
//                       "id":"<container id>","if":"eth0","ns":"<pod namespace>","pod":"<pod>",
//                       "uid":"<pod uid>","net":"<CNI network name>"}
//   entry, release:    {"t":"r","b":"<block name>","c":"<block cidr>","ip":"10.0.0.17",
//                       "id":"<container id>","if":"eth0","at":<release time, ms since epoch>}
//   snapshot:          {"v":1,"blocks":[{"b":..,"c":..,"alloc":[{"ip","id","if","ns","pod","uid",
//                       "net","seq"}], "cool":[{"ip":..,"at":<ms>}]}]}
//
// "uid" (the pod's metadata.uid) is optional and written only when known: journals written before
// it existed load unchanged (no uid), and a record with one is still readable by an agent that
// ignores it. So does "net" (the CNI network the allocate named, protocol.h; absent when it named
// none): an older agent reads a record with it and drops the network, a record without it loads
// as an allocation of no network. The same holds for "seq" in a snapshot (the sequence number of
// the entry that allocated it: an entry's own is its record's). The snapshot version stays 1.
//
// The release time is recorded so the cooldown survives a restart: an address released just
// before a crash is still held back after it.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/error.h"
#include "lib/ipam/block_allocator.h"
#include "lib/ipam/ip.h"
#include "lib/ipam/journal.h"
#include "lib/ipam/owner.h"

namespace vnetipam::agent {

struct AllocationRecord {
  ipam::IPAddress address;
  ipam::Owner owner;
  std::string podNamespace;
  std::string podName;
  std::string podUID;   // empty: not recorded
  std::string network;  // the CNI network; empty: not recorded (an earlier plugin or agent)
  // The sequence number of the journal record that allocated it (replay() sets it; a snapshot
  // keeps it as "seq"): which of two allocations came first, which an admin's release request
  // needs (release_request.h). 0: not known (a snapshot written before it was kept).
  ipam::Seq seq = 0;
  bool operator==(const AllocationRecord&) const = default;
};

// One journal entry: an allocation or a release in one block.
struct JournalEntry {
  enum class Kind { kAllocate, kRelease } kind = Kind::kAllocate;
  std::string blockName;
  ipam::Prefix blockCidr;
  AllocationRecord allocation;  // for a release, only address and owner matter
  ipam::TimePoint releasedAt;   // release only
  bool operator==(const JournalEntry&) const = default;
};

// The recorded state of one block: what is allocated and what is cooling (by release time).
struct RecordedBlock {
  ipam::Prefix cidr;
  std::map<ipam::IPAddress, AllocationRecord> allocations;
  std::map<ipam::IPAddress, ipam::TimePoint> released;
  bool operator==(const RecordedBlock&) const = default;
};
using RecordedState = std::map<std::string, RecordedBlock, std::less<>>;  // by block name

std::string encodeEntry(const JournalEntry& entry);
base::Result<JournalEntry> decodeEntry(std::string_view payload);

std::string encodeSnapshot(const RecordedState& state);
base::Result<RecordedState> decodeSnapshot(std::string_view payload);

// Applies one entry to a recorded state (replay). A release of an address held by another owner
// is ignored: the journal's order makes that a stale release.
void applyEntry(RecordedState& state, const JournalEntry& entry);

// The snapshot then every entry, in order. kCorruption naming the sequence number of a record
// that does not decode (a checksummed record that does not parse was not written by this agent).
base::Result<RecordedState> replay(const ipam::Recovered& recovered);

}  // namespace vnetipam::agent
