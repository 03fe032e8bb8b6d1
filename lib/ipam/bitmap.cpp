#include "lib/ipam/bitmap.h"

#include <bit>

#include <fmt/format.h>

namespace vnetipam::ipam {
namespace {

constexpr std::uint64_t kFull = ~std::uint64_t{0};

constexpr std::uint64_t bitOf(std::uint64_t index) { return std::uint64_t{1} << (index % 64); }

// A level of `bits` bits, with the padding past `bits` set.
std::vector<std::uint64_t> makeLevel(std::uint64_t bits) {
  const std::uint64_t words = bits == 0 ? 1 : (bits + 63) / 64;
  std::vector<std::uint64_t> level(words, 0);
  const std::uint64_t used_in_last = bits % 64;
  if (bits == 0) {
    level.back() = kFull;
  } else if (used_in_last != 0) {
    level.back() = kFull << used_in_last;
  }
  return level;
}

}  // namespace

Bitmap::Bitmap(std::uint64_t size) : size_(size) {
  levels_.push_back(makeLevel(size));
  while (levels_.back().size() > 1) {
    const std::uint64_t below = levels_.back().size();
    std::vector<std::uint64_t> level = makeLevel(below);
    // A fully padded word below (possible only for size 0) is full; mark it so.
    for (std::uint64_t w = 0; w < below; ++w) {
      if (levels_.back()[w] == kFull) level[w / 64] |= bitOf(w);
    }
    levels_.push_back(std::move(level));
  }
}

bool Bitmap::test(std::uint64_t index) const {
  return (levels_[0][index / 64] & bitOf(index)) != 0;
}

bool Bitmap::set(std::uint64_t index) {
  std::uint64_t& word = levels_[0][index / 64];
  if ((word & bitOf(index)) != 0) return false;
  word |= bitOf(index);
  ++set_;
  // Propagate "this word is full" upwards for as long as it fills the word above too.
  std::uint64_t child = index / 64;
  for (std::size_t level = 0; level + 1 < levels_.size(); ++level) {
    if (levels_[level][child] != kFull) break;
    std::uint64_t& parent = levels_[level + 1][child / 64];
    parent |= bitOf(child);
    child /= 64;
  }
  return true;
}

bool Bitmap::clear(std::uint64_t index) {
  std::uint64_t& word = levels_[0][index / 64];
  if ((word & bitOf(index)) == 0) return false;
  const bool was_full = word == kFull;
  word &= ~bitOf(index);
  --set_;
  if (!was_full) return true;
  // The word is no longer full: clear its summary bit, and the one above while that was full.
  std::uint64_t child = index / 64;
  for (std::size_t level = 1; level < levels_.size(); ++level) {
    std::uint64_t& parent = levels_[level][child / 64];
    const bool parent_was_full = parent == kFull;
    parent &= ~bitOf(child);
    if (!parent_was_full) break;
    child /= 64;
  }
  return true;
}

std::optional<std::uint64_t> Bitmap::findClearAtOrAfter(std::size_t level,
                                                        std::uint64_t pos) const {
  const std::vector<std::uint64_t>& words = levels_[level];
  std::uint64_t word_index = pos / 64;
  if (word_index >= words.size()) return std::nullopt;
  // Treat the bits below pos in its word as taken.
  const std::uint64_t below = bitOf(pos) - 1;
  std::uint64_t word = words[word_index] | below;
  if (word == kFull) {
    if (level + 1 == levels_.size()) return std::nullopt;
    const auto next = findClearAtOrAfter(level + 1, word_index + 1);
    if (!next) return std::nullopt;
    word_index = *next;
    word = words[word_index];
  }
  return word_index * 64 + static_cast<std::uint64_t>(std::countr_one(word));
}

std::optional<std::uint64_t> Bitmap::findClearFrom(std::uint64_t start) const {
  if (start >= size_) start = 0;
  if (auto found = findClearAtOrAfter(0, start)) return found;
  if (start == 0) return std::nullopt;
  return findClearAtOrAfter(0, 0);
}

std::optional<std::string> Bitmap::invariantViolation() const {
  std::uint64_t count = 0;
  for (std::uint64_t i = 0; i < size_; ++i)
    count += test(i) ? 1u : 0u;
  if (count != set_) return fmt::format("count {} but {} bits are set", set_, count);
  for (std::uint64_t i = size_; i < levels_[0].size() * 64; ++i) {
    if ((levels_[0][i / 64] & bitOf(i)) == 0) return fmt::format("padding bit {} is clear", i);
  }
  for (std::size_t level = 0; level + 1 < levels_.size(); ++level) {
    const auto& below = levels_[level];
    const auto& above = levels_[level + 1];
    for (std::uint64_t w = 0; w < above.size() * 64; ++w) {
      const bool summary = (above[w / 64] & bitOf(w)) != 0;
      const bool expected = w >= below.size() || below[w] == kFull;
      if (summary != expected) {
        return fmt::format("level {} bit {} is {} but word {} of level {} is {}full", level + 1, w,
                           summary ? "set" : "clear", w, level, expected ? "" : "not ");
      }
    }
  }
  if (levels_.back().size() != 1) return "top level has more than one word";
  return std::nullopt;
}

}  // namespace vnetipam::ipam
