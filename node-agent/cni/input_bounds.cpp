#include "node-agent/cni/input_bounds.h"

#include <algorithm>
#include <cctype>
#include <cerrno>

#include <fmt/format.h>
#include <unistd.h>

#include "lib/base/json_depth.h"

namespace vnetipam::cni {
namespace {

// The length of the valid UTF-8 sequence at the start of `text`, or 0 if it does not start with
// one.
std::size_t utf8SequenceLength(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;   // the range of the second byte, narrowed to refuse overlong forms,
  unsigned char high = 0xBF;  // surrogates and code points above U+10FFFF
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  if (byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

}  // namespace

bool isValidUtf8(std::string_view text) {
  while (!text.empty()) {
    const std::size_t n = utf8SequenceLength(text);
    if (n == 0) return false;
    text.remove_prefix(n);
  }
  return true;
}

std::string printable(std::string_view text, std::size_t maxBytes) {
  std::string out;
  out.reserve(std::min(text.size(), maxBytes) + 3);
  while (!text.empty()) {
    if (out.size() >= maxBytes) {
      out += "...";
      break;
    }
    const std::size_t n = utf8SequenceLength(text);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      text.remove_prefix(1);
      continue;
    }
    const auto c = static_cast<unsigned char>(text[0]);
    if (n == 1 && ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F)) {
      out += '?';
    } else {
      out.append(text.substr(0, n));
    }
    text.remove_prefix(n);
  }
  return out;
}

Outcome<void> checkEnvText(std::string_view variable, std::string_view value,
                           std::size_t maxBytes) {
  if (value.size() > maxBytes) {
    return failWith(kInvalidEnvironment, fmt::format("{} is {} bytes long; at most {} are allowed",
                                                     variable, value.size(), maxBytes));
  }
  if (value.find('\0') != std::string_view::npos) {
    return failWith(kInvalidEnvironment,
                    fmt::format("{} \"{}\" contains a NUL byte", variable, printable(value)));
  }
  if (!isValidUtf8(value)) {
    return failWith(kInvalidEnvironment,
                    fmt::format("{} \"{}\" is not valid UTF-8", variable, printable(value)));
  }
  return {};
}

Outcome<void> checkContainerId(std::string_view value) {
  if (auto ok = checkEnvText("CNI_CONTAINERID", value, kMaxContainerIdBytes); !ok) return ok;
  const auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  const bool valid =
      !value.empty() && alnum(value.front()) && std::ranges::all_of(value, [&](char c) {
        return alnum(c) || c == '_' || c == '.' || c == '-';
      });
  if (!valid) {
    return failWith(kInvalidEnvironment,
                    fmt::format("CNI_CONTAINERID \"{}\" must start with a letter or digit and hold "
                                "only letters, digits, '_', '.' and '-'",
                                printable(value)));
  }
  return {};
}

Outcome<void> checkIfName(std::string_view value) {
  if (auto ok = checkEnvText("CNI_IFNAME", value, kMaxIfNameBytes); !ok) return ok;
  const bool valid =
      !value.empty() && value != "." && value != ".." && std::ranges::none_of(value, [](char c) {
        return c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c));
      });
  if (!valid) {
    return failWith(kInvalidEnvironment,
                    fmt::format("CNI_IFNAME \"{}\" is not a valid interface name (1..{} bytes, not "
                                "\".\" or \"..\", no '/', ':' or white space)",
                                printable(value), kMaxIfNameBytes));
  }
  return {};
}

Outcome<nlohmann::json> parseBoundedJson(std::string_view text, std::string_view what) {
  if (text.size() > kMaxConfigBytes) {
    return failWith(kDecodeFailure,
                    fmt::format("{} is larger than the limit of {} bytes", what, kMaxConfigBytes));
  }
  if (base::jsonNestingDepth(text, kMaxJsonDepth) > kMaxJsonDepth) {
    return failWith(kDecodeFailure,
                    fmt::format("{} nests arrays and objects deeper than the limit of {} levels",
                                what, kMaxJsonDepth));
  }
  auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return failWith(kDecodeFailure, fmt::format("{} is not JSON", what));
  return doc;
}

std::string readBounded(int fd, std::size_t limit) {
  std::string out;
  char buf[16384];
  while (out.size() <= limit) {
    const std::size_t want = std::min(sizeof buf, limit + 1 - out.size());
    const ssize_t n = ::read(fd, buf, want);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::optional<std::int64_t> integerIn(const nlohmann::json& value, std::int64_t min,
                                      std::int64_t max) {
  if (value.is_number_unsigned()) {
    const auto v = value.get<std::uint64_t>();
    if (max < 0 || v > static_cast<std::uint64_t>(max)) return std::nullopt;
    const auto signedValue = static_cast<std::int64_t>(v);
    if (signedValue < min) return std::nullopt;
    return signedValue;
  }
  if (value.is_number_integer()) {
    const auto v = value.get<std::int64_t>();
    if (v < min || v > max) return std::nullopt;
    return v;
  }
  return std::nullopt;
}

std::string dumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace vnetipam::cni
