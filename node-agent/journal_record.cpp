#include "node-agent/journal_record.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace vnetipam::agent {
namespace {

using base::ErrorCode::kCorruption;
using base::ErrorCode::kInvalidArgument;
using nlohmann::json;

std::int64_t toMillis(ipam::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

constexpr std::int64_t kMaxMillis =
    std::chrono::duration_cast<std::chrono::milliseconds>(ipam::TimePoint::duration::max()).count();

ipam::TimePoint fromMillis(std::int64_t ms) {
  return ipam::TimePoint(
      std::chrono::duration_cast<ipam::TimePoint::duration>(std::chrono::milliseconds(ms)));
}

// Typed access to a JSON object; the first failure is kept and reported once.
class Reader {
 public:
  explicit Reader(const json& j) : j_(j) {}
  std::string str(const char* name) {
    auto it = j_.find(name);
    if (it == j_.end() || !it->is_string()) {
      fail(name, "a string");
      return {};
    }
    return it->get<std::string>();
  }
  std::string optionalStr(const char* name) {
    auto it = j_.find(name);
    return it != j_.end() && it->is_string() ? it->get<std::string>() : std::string();
  }
  std::int64_t integer(const char* name) {
    auto it = j_.find(name);
    if (it == j_.end() || !it->is_number_integer() ||
        (it->is_number_unsigned() &&
         it->get<std::uint64_t>() > std::uint64_t{std::numeric_limits<std::int64_t>::max()})) {
      fail(name, "an integer");
      return 0;
    }
    return it->get<std::int64_t>();
  }
  // A time in milliseconds since the epoch that a TimePoint (nanoseconds in 64 bits, so up to
  // the year 2262) can hold: a larger one would overflow into a different time.
  ipam::TimePoint time(const char* name) {
    const std::int64_t ms = integer(name);
    if (ms < 0 || ms > kMaxMillis) {
      fail(name, "a time in milliseconds between the epoch and the year 2262");
      return {};
    }
    return fromMillis(ms);
  }
  ipam::IPAddress address(const char* name) {
    auto parsed = ipam::IPAddress::parse(str(name));
    if (!parsed) {
      fail(name, "an IP address");
      return {};
    }
    return *parsed;
  }
  ipam::Prefix prefix(const char* name) {
    auto parsed = ipam::Prefix::parse(str(name));
    if (!parsed) {
      fail(name, "a CIDR");
      return {};
    }
    return *parsed;
  }
  const std::string& error() const { return error_; }

 private:
  void fail(const char* name, const char* what) {
    if (error_.empty()) error_ = fmt::format("field \"{}\" must be {}", name, what);
  }
  const json& j_;
  std::string error_;
};

base::Result<json> parse(std::string_view payload) {
  json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return base::fail(kInvalidArgument, "not a JSON object");
  return j;
}

}  // namespace

std::string encodeEntry(const JournalEntry& e) {
  json j{{"t", e.kind == JournalEntry::Kind::kAllocate ? "a" : "r"},
         {"b", e.blockName},
         {"c", e.blockCidr.toString()},
         {"ip", e.allocation.address.toString()},
         {"id", e.allocation.owner.containerID},
         {"if", e.allocation.owner.ifName}};
  if (e.kind == JournalEntry::Kind::kAllocate) {
    j["ns"] = e.allocation.podNamespace;
    j["pod"] = e.allocation.podName;
    if (!e.allocation.podUID.empty()) j["uid"] = e.allocation.podUID;
    if (!e.allocation.network.empty()) j["net"] = e.allocation.network;
  } else {
    j["at"] = toMillis(e.releasedAt);
  }
  return j.dump();
}

base::Result<JournalEntry> decodeEntry(std::string_view payload) {
  auto j = parse(payload);
  if (!j) return std::unexpected(j.error());
  Reader r(*j);
  JournalEntry e;
  const std::string kind = r.str("t");
  if (kind == "a") {
    e.kind = JournalEntry::Kind::kAllocate;
  } else if (kind == "r") {
    e.kind = JournalEntry::Kind::kRelease;
  } else if (r.error().empty()) {
    return base::fail(kInvalidArgument, fmt::format("field \"t\" is \"{}\": want a or r", kind));
  }
  e.blockName = r.str("b");
  e.blockCidr = r.prefix("c");
  e.allocation.address = r.address("ip");
  e.allocation.owner.containerID = r.str("id");
  e.allocation.owner.ifName = r.str("if");
  if (e.kind == JournalEntry::Kind::kAllocate) {
    e.allocation.podNamespace = r.optionalStr("ns");
    e.allocation.podName = r.optionalStr("pod");
    e.allocation.podUID = r.optionalStr("uid");
    e.allocation.network = r.optionalStr("net");
  } else {
    e.releasedAt = r.time("at");
  }
  if (!r.error().empty()) return base::fail(kInvalidArgument, r.error());
  return e;
}

std::string encodeSnapshot(const RecordedState& state) {
  json blocks = json::array();
  for (const auto& [name, block] : state) {
    json alloc = json::array();
    for (const auto& [address, a] : block.allocations) {
      json item{{"ip", address.toString()},
                {"id", a.owner.containerID},
                {"if", a.owner.ifName},
                {"ns", a.podNamespace},
                {"pod", a.podName}};
      if (!a.podUID.empty()) item["uid"] = a.podUID;
      if (!a.network.empty()) item["net"] = a.network;
      if (a.seq != 0) item["seq"] = a.seq;
      alloc.push_back(std::move(item));
    }
    json cool = json::array();
    for (const auto& [address, at] : block.released) {
      cool.push_back(json{{"ip", address.toString()}, {"at", toMillis(at)}});
    }
    blocks.push_back(json{{"b", name},
                          {"c", block.cidr.toString()},
                          {"alloc", std::move(alloc)},
                          {"cool", std::move(cool)}});
  }
  return json{{"v", 1}, {"blocks", std::move(blocks)}}.dump();
}

base::Result<RecordedState> decodeSnapshot(std::string_view payload) {
  auto j = parse(payload);
  if (!j) return std::unexpected(j.error());
  auto version = j->find("v");
  if (version == j->end() || *version != 1) {
    return base::fail(kInvalidArgument, "snapshot version (field \"v\") is not 1");
  }
  auto blocks = j->find("blocks");
  if (blocks == j->end() || !blocks->is_array()) {
    return base::fail(kInvalidArgument, "field \"blocks\" must be an array");
  }
  RecordedState state;
  for (const json& b : *blocks) {
    if (!b.is_object()) return base::fail(kInvalidArgument, "blocks[] must be objects");
    Reader r(b);
    RecordedBlock block;
    std::string name = r.str("b");
    block.cidr = r.prefix("c");
    if (!r.error().empty()) return base::fail(kInvalidArgument, r.error());
    for (const char* list : {"alloc", "cool"}) {
      auto it = b.find(list);
      if (it == b.end() || !it->is_array()) {
        return base::fail(kInvalidArgument,
                          fmt::format("block {}: field \"{}\" must be an array", name, list));
      }
      for (const json& item : *it) {
        if (!item.is_object()) {
          return base::fail(kInvalidArgument,
                            fmt::format("block {}: {}[] must be objects", name, list));
        }
        Reader ir(item);
        AllocationRecord a;
        a.address = ir.address("ip");
        if (std::string_view(list) == "alloc") {
          a.owner.containerID = ir.str("id");
          a.owner.ifName = ir.str("if");
          a.podNamespace = ir.optionalStr("ns");
          a.podName = ir.optionalStr("pod");
          a.podUID = ir.optionalStr("uid");
          a.network = ir.optionalStr("net");
          if (item.contains("seq"))
            a.seq = static_cast<ipam::Seq>(std::max<std::int64_t>(0, ir.integer("seq")));
          block.allocations[a.address] = a;
        } else {
          block.released[a.address] = ir.time("at");
        }
        if (!ir.error().empty()) {
          return base::fail(kInvalidArgument, fmt::format("block {}: {}", name, ir.error()));
        }
      }
    }
    state.emplace(std::move(name), std::move(block));
  }
  return state;
}

void applyEntry(RecordedState& state, const JournalEntry& e) {
  auto [it, inserted] = state.try_emplace(e.blockName, RecordedBlock{.cidr = e.blockCidr});
  RecordedBlock& block = it->second;
  const ipam::IPAddress address = e.allocation.address;
  if (e.kind == JournalEntry::Kind::kAllocate) {
    block.released.erase(address);
    block.allocations[address] = e.allocation;
    return;
  }
  auto held = block.allocations.find(address);
  if (held == block.allocations.end() || held->second.owner != e.allocation.owner) {
    return;
  }
  block.allocations.erase(held);
  block.released[address] = e.releasedAt;
}

base::Result<RecordedState> replay(const ipam::Recovered& recovered) {
  auto asText = [](const std::vector<std::byte>& payload) {
    return std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size());
  };
  RecordedState state;
  if (recovered.snapshot) {
    auto snapshot = decodeSnapshot(asText(recovered.snapshot->payload));
    if (!snapshot) {
      return base::fail(kCorruption,
                        fmt::format("journal snapshot (seq {}): {}", recovered.snapshot->seq,
                                    snapshot.error().message));
    }
    state = std::move(*snapshot);
  }
  for (const ipam::RecoveredRecord& record : recovered.entries) {
    auto entry = decodeEntry(asText(record.payload));
    if (!entry) {
      return base::fail(kCorruption,
                        fmt::format("journal entry seq {}: {}", record.seq, entry.error().message));
    }
    applyEntry(state, *entry);
    if (entry->kind == JournalEntry::Kind::kAllocate) {
      state.at(entry->blockName).allocations.at(entry->allocation.address).seq = record.seq;
    }
  }
  return state;
}

}  // namespace vnetipam::agent
