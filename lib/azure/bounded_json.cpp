#include "lib/azure/bounded_json.h"

#include <algorithm>

#include <fmt/format.h>

#include "lib/base/json_depth.h"

namespace vnetipam::azure {

Result<nlohmann::json> parseBoundedJson(std::string_view body, std::size_t maxBytes,
                                        std::string_view what,
                                        std::span<const std::string_view> keepKeys) {
  if (body.size() > maxBytes) {
    return fail(ErrorCode::kBadResponse,
                fmt::format("{}: the response is {} bytes, more than the limit of {}", what,
                            body.size(), maxBytes));
  }
  if (base::jsonNestingDepth(body, kMaxJsonDepth) > kMaxJsonDepth) {
    return fail(ErrorCode::kBadResponse,
                fmt::format("{}: the response nests deeper than {} levels", what, kMaxJsonDepth));
  }
  try {
    if (keepKeys.empty()) return nlohmann::json::parse(body);
    return nlohmann::json::parse(
        body, [keepKeys](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
          if (event != nlohmann::json::parse_event_t::key) return true;
          const auto& key = parsed.get_ref<const std::string&>();
          return std::ranges::find(keepKeys, key) != keepKeys.end();
        });
  } catch (const nlohmann::json::parse_error& e) {
    // Only the position: the parser's own message quotes the text around it.
    return fail(
        ErrorCode::kBadResponse,
        fmt::format("{}: the response is not JSON (syntax error at byte {})", what, e.byte));
  } catch (const nlohmann::json::out_of_range&) {
    // The parser's other refusal: a number like 1e999 that no double holds.
    return fail(ErrorCode::kBadResponse,
                fmt::format("{}: the response holds a number too large to read", what));
  }
}

std::string stringField(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return {};
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string clipText(std::string_view text, std::size_t maxBytes) {
  if (text.size() <= maxBytes) return std::string(text);
  std::size_t end = maxBytes;
  // Back off continuation bytes (10xxxxxx) so a multi-byte character is kept whole or dropped.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0U) == 0x80U)
    --end;
  return std::string(text.substr(0, end)) + "...";
}

}  // namespace vnetipam::azure
