// Small pieces of HTTP and ARM wire format shared by the handler's endpoints.
#pragma once

#include <expected>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "azure-mock/arm_handler.h"
#include "lib/base/text.h"

namespace vnetipam::azuremock {

using text::iequals;
// %XX decoding; '+' is a space in forms and queries. nullopt on a bad escape.
std::optional<std::string> percentDecode(std::string_view s, bool plusIsSpace);
// application/x-www-form-urlencoded (also query strings). nullopt on a bad escape or a repeated
// key: a repeated parameter is ambiguous, so it is refused rather than guessed.
std::optional<std::map<std::string, std::string>> parseForm(std::string_view text);
// The first header of that name (case-insensitive), or "".
std::string findHeader(const HeaderList& headers, std::string_view name);

// Deeper than any ARM resource body; JSON nested further is refused before it is parsed, because
// copying, printing and comparing a json value recurse once per level and a deep enough document
// would exhaust the stack.
inline constexpr int kMaxJsonDepth = 64;

// Parses a request body as JSON, refusing it before building any value when it nests deeper than
// `maxDepth` (400 InvalidRequestContent) and when it is not JSON (400 InvalidRequestFormat, with
// the parser's message in details).
std::expected<nlohmann::json, CloudError> parseJsonBody(std::string_view text,
                                                        int maxDepth = kMaxJsonDepth);

ArmResponse jsonResponse(int status, const nlohmann::json& body);
ArmResponse errorResponse(const CloudError& e);
ArmResponse error(int status, std::string code, std::string message);

}  // namespace vnetipam::azuremock
