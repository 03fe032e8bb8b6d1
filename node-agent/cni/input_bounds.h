// The limits and checks every byte from outside passes before the plugins act on it: the CNI_*
// environment, the configuration on stdin, and a delegated IPAM plugin's output.
//
// A runtime is trusted, but what it forwards is not always well formed (a config template with a
// typo, a CNI_NETNS left over from a crashed sandbox), and a plugin that dies on a signal leaves
// the runtime with nothing to log. So every rule here turns bad input into a CNI error (code 4 for
// the environment, 6 for content that does not decode) whose message names the variable or field,
// and the text a message echoes back is made printable first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "node-agent/cni/spec.h"

namespace vnetipam::cni {

// A network configuration is a few KiB; a GC with thousands of valid attachments stays well under
// this. Stdin is read no further than this (plus one byte, to tell "too large").
inline constexpr std::size_t kMaxConfigBytes = 1U << 20;
// Arrays and objects inside one another. A real config nests four or five deep; the limit is
// checked before a document is built, because building, copying and printing a JSON value recurse
// once per level and 100,000 levels overflow the stack.
inline constexpr int kMaxJsonDepth = 64;
// CNI_ARGS and CNI_PATH: lists, so longer than a name, but still bounded.
inline constexpr std::size_t kMaxEnvListBytes = 64 * 1024;
// CNI_NETNS: a path (PATH_MAX includes the NUL).
inline constexpr std::size_t kMaxNetnsBytes = 4095;
// CNI_CONTAINERID: runtimes use 64 hex digits; the spec sets no length, this is generous.
inline constexpr std::size_t kMaxContainerIdBytes = 1024;
// CNI_IFNAME: IFNAMSIZ less the NUL.
inline constexpr std::size_t kMaxIfNameBytes = 15;

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool isValidUtf8(std::string_view text);

// `text` made safe to put in a message: each byte that is not part of valid UTF-8 becomes U+FFFD,
// control characters other than newline and tab become '?', and more than `maxBytes` is cut with
// "...".
std::string printable(std::string_view text, std::size_t maxBytes = 256);

// A CNI_* value the plugin will read: valid UTF-8, no NUL, at most `maxBytes`. Code 4 naming it.
Outcome<void> checkEnvText(std::string_view variable, std::string_view value, std::size_t maxBytes);
// The spec's rules: CNI_CONTAINERID starts with a letter or digit, then letters, digits, '_', '.',
// '-'; CNI_IFNAME is a Linux interface name (1..15 bytes, not "." or "..", no '/', ':' or white
// space). Code 4 naming the variable.
Outcome<void> checkContainerId(std::string_view value);
Outcome<void> checkIfName(std::string_view value);

// Parses `text` as JSON after checking its size (kMaxConfigBytes) and nesting (kMaxJsonDepth).
// Code 6 naming `what` and the limit, or saying it is not JSON.
Outcome<nlohmann::json> parseBoundedJson(std::string_view text, std::string_view what);

// Reads fd to its end or to `limit` + 1 bytes, whichever comes first, so an endless writer cannot
// hold us; the caller sees "more than limit" as a size over the limit. A writer still writing
// when we stop gets EPIPE once the caller closes fd.
std::string readBounded(int fd, std::size_t limit);

// An integer JSON value within [min, max], or nullopt for anything else: a float, a boolean, a
// string, or a number out of range (which get<int>() would silently wrap).
std::optional<std::int64_t> integerIn(const nlohmann::json& value, std::int64_t min,
                                      std::int64_t max);

// dump() that cannot throw on a string holding invalid UTF-8 (such bytes become U+FFFD).
std::string dumpJson(const nlohmann::json& value);

}  // namespace vnetipam::cni
