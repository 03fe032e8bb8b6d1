// Object names: the deterministic IPBlock name and the Kubernetes name syntax checks.
#pragma once

#include <string>
#include <string_view>

#include "lib/base/error.h"
#include "lib/ipam/ip.h"

namespace vnetipam::api {

// The name of the IPBlock that holds `cidr` of PodSubnet `podSubnet`:
//   <podSubnet>-<address with '.' and ':' replaced by '-'>-<prefix length>
// with the address in canonical text (dotted quad; RFC 5952 compressed IPv6, lower case), e.g.
//   pods, 10.240.0.16/28     -> pods-10-240-0-16-28
//   pods, fd00:10:240::/112  -> pods-fd00-10-240---112
// Because the name is a function of (subnet, CIDR), creating a block that already exists fails
// with AlreadyExists: the API server itself refuses a second allocation of the same CIDR. The CRD
// checks the same scheme (metadata.name must equal it), so no block can exist under another name.
//
// The text is ipam::Prefix::toString(); the CRD builds the same name from spec.cidr, which it
// requires in the canonical form of Go's netip. Prefix::toString prints that same form (its own
// RFC 5952 writer, not glibc's, which would print ::1:0 as "::0.1.0.0"), so the two agree.
//
// For one subnet the mapping is injective (the canonical text of a prefix is unique, and an IPv4
// tail has exactly five numbers and no "--", an IPv6 one has nine groups or a "--"). Across
// subnets two names can coincide only when one subnet's name is another's plus "-<hex>" and both
// are IPv6 (x, 1:2::/64 and x-1, 2::/64); on AlreadyExists the caller compares spec.podSubnet and
// spec.cidr of the existing block to tell such a collision from a real double allocation.
//
// Fails (kInvalidArgument) if podSubnet is not a DNS-1123 subdomain or the result would exceed
// 253 characters (a PodSubnet name of at most kMaxPodSubnetNameLength never does).
base::Result<std::string> blockName(std::string_view podSubnet, const ipam::Prefix& cidr);

// RFC 1123 subdomain as Kubernetes checks object names: at most 253 characters of lower-case
// alphanumerics, '-' and '.', starting and ending with an alphanumeric; each dot-separated part
// starts and ends with an alphanumeric.
bool isDns1123Subdomain(std::string_view name);

// A label key ([prefix/]name: prefix a DNS-1123 subdomain, name at most 63 characters of
// alphanumerics, '-', '_', '.', starting and ending with an alphanumeric) and a label value (the
// same syntax as a name, or empty).
bool isLabelKey(std::string_view key);
bool isLabelValue(std::string_view value);

}  // namespace vnetipam::api
