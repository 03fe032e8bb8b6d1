// How deep a JSON text nests, found without parsing it: the one guard every input boundary (the
// CNI plugins' stdin, the agent's socket, the mock's request bodies) runs before building a
// document, because nlohmann::json parses, copies, prints and destroys a value with one level of
// recursion per level of nesting, and a deep enough text would exhaust the stack or the memory.
#pragma once

#include <string_view>

namespace vnetipam::base {

// The deepest nesting of objects and arrays in `text`, counting brackets outside strings (a
// backslash escapes the next character inside one). Stops at once when it passes `limit` and then
// returns a value above it; a stray closing bracket never counts below zero. Does not validate
// the JSON: on malformed text it may count more than a parser would reach, never less.
int jsonNestingDepth(std::string_view text, int limit);

}  // namespace vnetipam::base
