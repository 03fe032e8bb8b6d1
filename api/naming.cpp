#include "api/naming.h"

#include <algorithm>

#include <fmt/format.h>

#include "api/constants.h"

namespace vnetipam::api {
namespace {

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isAlnum(char c) { return isLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63 characters.
bool isQualifiedNamePart(std::string_view s) {
  if (s.empty() || s.size() > 63 || !isAlnum(s.front()) || !isAlnum(s.back())) return false;
  return std::ranges::all_of(s,
                             [](char c) { return isAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

}  // namespace

bool isDns1123Subdomain(std::string_view name) {
  if (name.empty() || name.size() > static_cast<std::size_t>(kMaxDns1123SubdomainLength)) {
    return false;
  }
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = name.find('.', start);
    const std::string_view part =
        name.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (part.empty() || !isLowerAlnum(part.front()) || !isLowerAlnum(part.back())) return false;
    if (!std::ranges::all_of(part, [](char c) { return isLowerAlnum(c) || c == '-'; }))
      return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool isLabelKey(std::string_view key) {
  const std::size_t slash = key.find('/');
  if (slash == std::string_view::npos) return isQualifiedNamePart(key);
  return isDns1123Subdomain(key.substr(0, slash)) && isQualifiedNamePart(key.substr(slash + 1));
}

bool isLabelValue(std::string_view value) { return value.empty() || isQualifiedNamePart(value); }

base::Result<std::string> blockName(std::string_view podSubnet, const ipam::Prefix& cidr) {
  if (!isDns1123Subdomain(podSubnet)) {
    return base::fail(base::ErrorCode::kInvalidArgument,
                      fmt::format("cannot name a block of PodSubnet \"{}\": the name is not a "
                                  "DNS-1123 subdomain",
                                  podSubnet));
  }
  std::string address = cidr.address().toString();
  std::ranges::replace(address, '.', '-');
  std::ranges::replace(address, ':', '-');
  std::string name = fmt::format("{}-{}-{}", podSubnet, address, cidr.length());
  if (name.size() > static_cast<std::size_t>(kMaxDns1123SubdomainLength)) {
    return base::fail(base::ErrorCode::kInvalidArgument,
                      fmt::format("cannot name the block {} of PodSubnet \"{}\": \"{}\" is longer "
                                  "than 253 characters; PodSubnet names must be at most {}",
                                  cidr.toString(), podSubnet, name, kMaxPodSubnetNameLength));
  }
  return name;
}

}  // namespace vnetipam::api
