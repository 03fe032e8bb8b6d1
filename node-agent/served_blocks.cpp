#include "node-agent/served_blocks.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lib/base/file.h"
#include "lib/ipam/crc32c.h"

namespace vnetipam::agent {
namespace {

using nlohmann::json;

constexpr std::string_view kMagic = "vnet-ipam-served-blocks";
// A node has at most a few hundred blocks (256 NIC ipConfigurations); anything far larger is not
// a file this agent wrote.
constexpr std::size_t kMaxBody = 1 << 20;

template <typename Int>
bool parseNumber(std::string_view text, Int& out, int base = 10) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string encodeServedBlocks(const std::string& nodeName, std::vector<ServedBlock> blocks) {
  std::sort(blocks.begin(), blocks.end(),
            [](const ServedBlock& a, const ServedBlock& b) { return a.name < b.name; });
  json list = json::array();
  for (const ServedBlock& block : blocks)
    list.push_back({{"name", block.name}, {"cidr", block.cidr.toString()}});
  const std::string body = json{{"node", nodeName}, {"blocks", std::move(list)}}.dump();
  return fmt::format("{} {} {:08x} {}\n{}", kMagic, kServedBlocksVersion, ipam::crc32c(body),
                     body.size(), body);
}

std::expected<std::vector<ServedBlock>, std::string> decodeServedBlocks(
    std::string_view text, const std::string& nodeName) {
  const auto newline = text.find('\n');
  if (newline == std::string_view::npos) return std::unexpected(std::string("no header line"));
  std::string_view header = text.substr(0, newline);
  const std::string_view body = text.substr(newline + 1);
  std::vector<std::string_view> fields;
  while (!header.empty()) {
    const auto space = header.find(' ');
    fields.push_back(header.substr(0, space));
    header = space == std::string_view::npos ? std::string_view() : header.substr(space + 1);
  }
  if (fields.size() != 4 || fields[0] != kMagic) {
    return std::unexpected(std::string("not a served-blocks file (bad header)"));
  }
  int version = 0;
  if (!parseNumber(fields[1], version) || version != kServedBlocksVersion) {
    return std::unexpected(fmt::format("version {} is not {}, the one this agent reads", fields[1],
                                       kServedBlocksVersion));
  }
  std::uint32_t crc = 0;
  std::size_t length = 0;
  if (fields[2].size() != 8 || !parseNumber(fields[2], crc, 16) ||
      !parseNumber(fields[3], length) || length > kMaxBody) {
    return std::unexpected(std::string("bad checksum or length field"));
  }
  if (body.size() != length) {
    return std::unexpected(fmt::format(
        "the body is {} bytes, the header says {} (torn or appended to)", body.size(), length));
  }
  if (ipam::crc32c(body) != crc) {
    return std::unexpected(
        fmt::format("checksum mismatch: the header says {:08x}, the body has "
                    "{:08x}",
                    crc, ipam::crc32c(body)));
  }
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || !parsed.contains("node") || !parsed["node"].is_string() ||
      !parsed.contains("blocks") || !parsed["blocks"].is_array()) {
    return std::unexpected(std::string("the body is not {\"node\":...,\"blocks\":[...]}"));
  }
  if (parsed["node"].get<std::string>() != nodeName) {
    return std::unexpected(fmt::format("written for node \"{}\", not this node {}",
                                       parsed["node"].get<std::string>(), nodeName));
  }
  std::vector<ServedBlock> blocks;
  std::set<std::string, std::less<>> names;
  for (const json& entry : parsed["blocks"]) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
        !entry.contains("cidr") || !entry["cidr"].is_string()) {
      return std::unexpected(std::string("a block entry without a string name and cidr"));
    }
    const std::string name = entry["name"].get<std::string>();
    auto cidr = ipam::Prefix::parse(entry["cidr"].get<std::string>());
    if (name.empty() || !cidr) {
      return std::unexpected(fmt::format("block \"{}\": bad name or cidr", name));
    }
    if (!names.insert(name).second) {
      return std::unexpected(fmt::format("block \"{}\" is listed twice", name));
    }
    blocks.push_back(ServedBlock{.name = name, .cidr = *cidr});
  }
  return blocks;
}

base::Result<void> saveServedBlocks(const std::filesystem::path& stateDir,
                                    const std::string& nodeName,
                                    const std::vector<ServedBlock>& blocks) {
  return base::writeFileAtomically(stateDir, kServedBlocksFile,
                                   encodeServedBlocks(nodeName, blocks));
}

std::expected<std::vector<ServedBlock>, std::string> loadServedBlocks(
    const std::filesystem::path& stateDir, const std::string& nodeName) {
  const std::filesystem::path path = stateDir / kServedBlocksFile;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(fmt::format("{}: {}", path.string(), std::strerror(errno)));
  std::string text;
  // One byte past the largest valid file is enough to refuse a larger one.
  constexpr std::size_t kMaxFile = kMaxBody + 128;
  text.resize(kMaxFile + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return std::unexpected(fmt::format("{}: read error", path.string()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxFile) return std::unexpected(fmt::format("{}: too large", path.string()));
  auto blocks = decodeServedBlocks(text, nodeName);
  if (!blocks) return std::unexpected(fmt::format("{}: {}", path.string(), blocks.error()));
  return blocks;
}

}  // namespace vnetipam::agent
