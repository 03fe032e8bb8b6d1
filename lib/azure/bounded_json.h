// The limits every body Azure sends passes before this client builds a JSON value of it: a size
// and a nesting depth, both checked on the text. A truncated, mangled or hostile answer (a proxy's
// HTML page, an endless stream, 100,000 nested brackets) then becomes a kBadResponse that names
// what was wrong, instead of an exception, a stack overflow or a gigabyte of JSON tree:
// nlohmann::json copies, prints and compares a value with one level of recursion per level of
// nesting, and NetworkClient keeps and re-sends whole resources.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lib/azure/error.h"

namespace vnetipam::azure {

// The largest ARM answer this client expects is a virtual network read with its subnets, because
// every subnet lists a reference to each ipConfiguration in it: about 200 bytes per address in
// use, so a full /16 comes to some 13 MB. The limit leaves room above that.
inline constexpr std::size_t kMaxArmBodyBytes = 64U << 20;
// A token endpoint's answer is the token (a few KiB) and a handful of fields.
inline constexpr std::size_t kMaxTokenBodyBytes = 1U << 20;
// ARM resources nest about ten deep (a NIC's ipConfigurations' subnets' ids); CloudError details
// a few. Anything deeper is not an answer of these APIs.
inline constexpr int kMaxJsonDepth = 64;
// Strings from a response that go into a message are cut to this many bytes: CloudError codes and
// messages, an AAD error description.
inline constexpr std::size_t kMaxQuotedBytes = 1024;

// Parses `body` once it is no longer than `maxBytes` and nests no deeper than kMaxJsonDepth.
// kBadResponse "<what>: ..." naming the size, the depth, or the byte at which the text stops
// being JSON. Never echoes the body (token responses carry secrets). Never throws.
// `keepKeys`, when not empty: object members whose key is not among them are dropped while the
// text is parsed, with all they hold, so that a large answer of which the caller needs a few
// fields (a page of a thousand NICs) never becomes a whole tree.
Result<nlohmann::json> parseBoundedJson(std::string_view body, std::size_t maxBytes,
                                        std::string_view what,
                                        std::span<const std::string_view> keepKeys = {});

// The string member `key` of `object`, or "" when `object` is not an object or the member is
// missing or not a string: the lenient read for optional fields (a CloudError's code).
std::string stringField(const nlohmann::json& object, std::string_view key);

// `text` cut to `maxBytes`, with "..." when something was cut. Never splits a UTF-8 sequence.
std::string clipText(std::string_view text, std::size_t maxBytes = kMaxQuotedBytes);

}  // namespace vnetipam::azure
