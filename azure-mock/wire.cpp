#include "azure-mock/wire.h"

#include <algorithm>

#include <fmt/format.h>

#include "lib/base/json_depth.h"

namespace vnetipam::azuremock {

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> percentDecode(std::string_view s, bool plusIsSpace) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hexValue(s[i + 1]), lo = hexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (plusIsSpace && s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::optional<std::map<std::string, std::string>> parseForm(std::string_view text) {
  std::map<std::string, std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto amp = text.find('&', pos);
    if (amp == std::string_view::npos) amp = text.size();
    const auto pair = text.substr(pos, amp - pos);
    pos = amp + 1;
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto key = percentDecode(pair.substr(0, eq), true);
    auto value = percentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!key || !value) return std::nullopt;
    if (!out.emplace(std::move(*key), std::move(*value)).second) return std::nullopt;
  }
  return out;
}

std::string findHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return "";
}

std::expected<nlohmann::json, CloudError> parseJsonBody(std::string_view text, int maxDepth) {
  if (base::jsonNestingDepth(text, maxDepth) > maxDepth)
    return std::unexpected(CloudError{
        .status = 400,
        .code = "InvalidRequestContent",
        .message = fmt::format("The request content is invalid: JSON nested deeper than {} "
                               "levels is not accepted.",
                               maxDepth)});
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return std::unexpected(CloudError{
        .status = 400,
        .code = "InvalidRequestFormat",
        .message = "Cannot parse the request.",
        .details = nlohmann::json::array({{{"code", "InvalidJson"}, {"message", e.what()}}})});
  }
}

ArmResponse jsonResponse(int status, const nlohmann::json& body) {
  ArmResponse r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
  // Replace, never throw, on invalid UTF-8 echoed from a request.
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

ArmResponse errorResponse(const CloudError& e) { return jsonResponse(e.status, e.toJson()); }

ArmResponse error(int status, std::string code, std::string message) {
  return errorResponse(
      CloudError{.status = status, .code = std::move(code), .message = std::move(message)});
}

}  // namespace vnetipam::azuremock
