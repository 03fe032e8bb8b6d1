#include "lib/ipam/ip.h"

#include <array>
#include <charconv>

#include <arpa/inet.h>
#include <fmt/format.h>

namespace vnetipam::ipam {

std::string_view toString(Family f) { return f == Family::kV4 ? "IPv4" : "IPv6"; }

Result<IPAddress> IPAddress::parse(std::string_view text) {
  // inet_pton needs a NUL-terminated string; addresses are short, so copy to the stack.
  std::array<char, INET6_ADDRSTRLEN + 1> buf{};
  if (text.empty() || text.size() >= buf.size()) {
    return fail(
        ErrorCode::kInvalidArgument,
        fmt::format("\"{}\" is not an IP address: expected a.b.c.d or an IPv6 address", text));
  }
  text.copy(buf.data(), text.size());
  if (text.find(':') == std::string_view::npos) {
    in_addr a4{};
    if (inet_pton(AF_INET, buf.data(), &a4) == 1) return v4(ntohl(a4.s_addr));
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("\"{}\" is not an IPv4 address: expected four decimal octets 0-255 "
                            "without leading zeros, like 10.240.0.4",
                            text));
  }
  in6_addr a6{};
  if (inet_pton(AF_INET6, buf.data(), &a6) != 1) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("\"{}\" is not an IPv6 address: expected eight groups of hex digits "
                            "with at most one \"::\", like fd00:10:240::4",
                            text));
  }
  U128 bits = 0;
  for (unsigned char byte : a6.s6_addr)
    bits = (bits << 8) | byte;
  return fromBits(Family::kV6, bits);
}

// RFC 5952 text, written here rather than by inet_ntop so it matches Go's net/netip (and so the
// API server's CEL cidr library) byte for byte: glibc prints ::/96 addresses such as ::1:0 in the
// deprecated IPv4-compatible dotted form ("::0.1.0.0"). IPv4-mapped addresses (::ffff:0:0/96)
// are printed dotted, as both Go and glibc do.
std::string IPAddress::toString() const {
  const auto dotted = [](std::uint32_t v) {
    return fmt::format("{}.{}.{}.{}", v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
  };
  if (family_ == Family::kV4) return dotted(static_cast<std::uint32_t>(bits_));
  std::array<std::uint16_t, 8> groups{};
  for (std::size_t i = 0; i < 8; ++i) {
    groups[i] = static_cast<std::uint16_t>(bits_ >> (112 - 16 * i));
  }
  if ((bits_ >> 32) == 0xffff) return "::ffff:" + dotted(static_cast<std::uint32_t>(bits_));
  // The longest run of two or more zero groups (the first on a tie) becomes "::".
  std::size_t best_start = 8, best_len = 0;
  for (std::size_t i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < 8 && groups[j] == 0)
      ++j;
    if (j - i > best_len && j - i >= 2) {
      best_start = i;
      best_len = j - i;
    }
    i = j;
  }
  std::string out;
  for (std::size_t i = 0; i < 8; ++i) {
    if (i == best_start) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    out += fmt::format("{:x}", groups[i]);
  }
  return out;
}

namespace {

U128 hostMask(int width, int length) {
  const int host = width - length;
  if (host <= 0) return 0;
  if (host >= 128) return ~U128{0};
  return (U128{1} << host) - 1;
}

}  // namespace

bool Prefix::isAligned(IPAddress addr, int length) {
  return (addr.bits() & hostMask(ipam::bitLength(addr.family()), length)) == 0;
}

Prefix Prefix::masked(IPAddress addr, int length) {
  const U128 bits = addr.bits() & ~hostMask(ipam::bitLength(addr.family()), length);
  return Prefix(IPAddress::fromBits(addr.family(), bits), length);
}

Result<Prefix> Prefix::make(IPAddress addr, int length) {
  const int width = ipam::bitLength(addr.family());
  if (length < 0 || length > width) {
    return fail(ErrorCode::kOutOfRange,
                fmt::format("prefix length {} is out of range for {}: expected 0-{}", length,
                            ipam::toString(addr.family()), width));
  }
  if (!isAligned(addr, length)) {
    const Prefix aligned = masked(addr, length);
    return fail(ErrorCode::kNotAligned, fmt::format("\"{}/{}\" is not aligned: did you mean {}?",
                                                    addr.toString(), length, aligned.toString()));
  }
  return Prefix(addr, length);
}

Result<Prefix> Prefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("\"{}\" is not a CIDR prefix: expected address/length, like "
                            "10.240.0.0/16",
                            text));
  }
  auto addr = IPAddress::parse(text.substr(0, slash));
  if (!addr) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("\"{}\" is not a CIDR prefix: {}", text, addr.error().message));
  }
  const std::string_view len_text = text.substr(slash + 1);
  const int width = ipam::bitLength(addr->family());
  int length = -1;
  const auto [end, ec] =
      std::from_chars(len_text.data(), len_text.data() + len_text.size(), length);
  const bool leading_zero = len_text.size() > 1 && len_text.front() == '0';
  if (len_text.empty() || ec != std::errc{} || end != len_text.data() + len_text.size() ||
      leading_zero || length < 0 || length > width) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("\"{}\" has an invalid prefix length \"{}\": expected 0-{} for {}",
                            text, len_text, width, ipam::toString(addr->family())));
  }
  return make(*addr, length);
}

IPAddress Prefix::last() const {
  return IPAddress::fromBits(family(),
                             address_.bits() | hostMask(ipam::bitLength(family()), length_));
}

U128 Prefix::size() const {
  const int host = hostBits();
  if (host >= 128) return ~U128{0};
  return U128{1} << host;
}

bool Prefix::contains(IPAddress a) const {
  return a.family() == family() && masked(a, length_).address() == address_;
}

bool Prefix::contains(const Prefix& p) const {
  return p.family() == family() && p.length_ >= length_ && contains(p.address_);
}

bool Prefix::overlaps(const Prefix& p) const { return contains(p) || p.contains(*this); }

std::string Prefix::toString() const { return fmt::format("{}/{}", address_.toString(), length_); }

std::string toString(std::span<const Prefix> prefixes) {
  std::string text;
  for (const Prefix& prefix : prefixes) {
    if (!text.empty()) text += ", ";
    text += prefix.toString();
  }
  return text;
}

}  // namespace vnetipam::ipam
