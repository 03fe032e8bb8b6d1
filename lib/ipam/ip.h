// IPv4 and IPv6 address and prefix value types.
//
// Both are small, trivially copyable values. Parsing is strict (no leading zeros in IPv4 octets,
// no host bits in a prefix) because a lenient parser is how two components end up disagreeing
// about which block an address is in. Every parse error names the text and what would be valid.
#pragma once

#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "lib/ipam/error.h"

namespace vnetipam::ipam {

// 128 bits hold either family; IPv4 uses the low 32. A GCC/Clang extension, used only here.
__extension__ using U128 = unsigned __int128;

enum class Family : std::uint8_t { kV4 = 4, kV6 = 6 };

constexpr int bitLength(Family f) { return f == Family::kV4 ? 32 : 128; }
std::string_view toString(Family f);
// The family as a label value and a /proc/sys directory spell it: "ipv4", "ipv6".
constexpr const char* labelOf(Family f) { return f == Family::kV4 ? "ipv4" : "ipv6"; }

class IPAddress {
 public:
  // 0.0.0.0
  constexpr IPAddress() = default;

  static Result<IPAddress> parse(std::string_view text);
  static constexpr IPAddress v4(std::uint32_t host_order) { return {Family::kV4, host_order}; }
  // Precondition: bits fit the family (the high 96 bits are zero for IPv4).
  static constexpr IPAddress fromBits(Family f, U128 bits) { return {f, bits}; }

  constexpr Family family() const { return family_; }
  constexpr U128 bits() const { return bits_; }
  // Canonical text: dotted quad, or RFC 5952 compressed IPv6.
  std::string toString() const;

  // Orders IPv4 before IPv6, then numerically.
  constexpr auto operator<=>(const IPAddress&) const = default;

 private:
  constexpr IPAddress(Family f, U128 bits) : family_(f), bits_(bits) {}
  Family family_ = Family::kV4;
  U128 bits_ = 0;
};

// A CIDR prefix whose address has no host bits set (an "aligned" prefix). Construct with parse()
// or masked(); there is no way to hold a misaligned one.
class Prefix {
 public:
  constexpr Prefix() = default;

  // Accepts "a.b.c.d/n" or "x::y/n" with an aligned address; a misaligned one is refused with
  // the aligned prefix it probably meant.
  static Result<Prefix> parse(std::string_view text);
  // Checks the length against the family; returns kNotAligned if addr has host bits set.
  static Result<Prefix> make(IPAddress addr, int length);
  // The prefix of the given length containing addr (host bits cleared). Precondition: length is
  // within 0..bitLength(addr.family()).
  static Prefix masked(IPAddress addr, int length);
  // True if addr has no bits set beyond the first length bits.
  static bool isAligned(IPAddress addr, int length);

  constexpr IPAddress address() const { return address_; }
  constexpr int length() const { return length_; }
  constexpr Family family() const { return address_.family(); }
  constexpr int hostBits() const { return ipam::bitLength(family()) - length_; }
  IPAddress first() const { return address_; }
  IPAddress last() const;
  // Number of addresses, saturating at 2^128 - 1 for ::/0.
  U128 size() const;
  // Number of addresses as a count the API carries (an int64), capped at 2^62: an IPv6 /64 block
  // holds more than an int64 can count.
  std::int64_t countedSize() const {
    constexpr U128 kMax = U128{1} << 62;
    const U128 n = size();
    return static_cast<std::int64_t>(n > kMax ? kMax : n);
  }

  bool contains(IPAddress a) const;
  bool contains(const Prefix& p) const;
  bool overlaps(const Prefix& p) const;

  std::string toString() const;

  constexpr auto operator<=>(const Prefix&) const = default;

 private:
  constexpr Prefix(IPAddress a, int len) : address_(a), length_(len) {}
  IPAddress address_;
  int length_ = 0;
};

// "10.0.0.0/24, 10.1.0.0/26": prefixes for a message.
std::string toString(std::span<const Prefix> prefixes);

}  // namespace vnetipam::ipam
