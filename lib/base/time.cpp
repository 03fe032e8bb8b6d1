#include "lib/base/time.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <vector>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "lib/base/text.h"

namespace vnetipam::base {

std::string formatRfc3339(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", std::chrono::floor<std::chrono::seconds>(t));
}

std::string formatRfc3339Micro(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto micros = floor<microseconds>(t);
  const auto day = floor<days>(micros);
  const year_month_day ymd{day};
  const hh_mm_ss hms{micros - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count(),
                     hms.subseconds().count());
}

std::optional<std::chrono::sys_seconds> parseRfc3339(std::string_view text) {
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || text[13] != ':' ||
      text[16] != ':') {
    return std::nullopt;
  }
  auto number = [&](std::size_t at, std::size_t len) -> std::optional<int> {
    int value = 0;
    const char* begin = text.data() + at;
    const auto [end, ec] = std::from_chars(begin, begin + len, value);
    if (ec != std::errc() || end != begin + len) return std::nullopt;
    return value;
  };
  const auto year = number(0, 4), month = number(5, 2), day = number(8, 2);
  const auto hour = number(11, 2), minute = number(14, 2), second = number(17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  std::size_t at = 19;
  if (at < text.size() && text[at] == '.') {
    ++at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9')
      ++at;
  }
  std::int64_t offset = 0;
  if (at < text.size() && (text[at] == 'Z' || text[at] == 'z') && at + 1 == text.size()) {
    offset = 0;
  } else if (at + 6 == text.size() && (text[at] == '+' || text[at] == '-') && text[at + 3] == ':') {
    const auto oh = number(at + 1, 2), om = number(at + 4, 2);
    if (!oh || !om) return std::nullopt;
    offset = (text[at] == '+' ? 1 : -1) * (std::int64_t{*oh} * 3600 + std::int64_t{*om} * 60);
  } else {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year(*year),
                                         std::chrono::month(static_cast<unsigned>(*month)),
                                         std::chrono::day(static_cast<unsigned>(*day))};
  if (!date.ok() || *hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
  return std::chrono::sys_days(date) + std::chrono::hours(*hour) + std::chrono::minutes(*minute) +
         std::chrono::seconds(*second) - std::chrono::seconds(offset);
}

namespace {

bool parseNumber(std::string_view text, int& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

std::vector<std::string_view> splitOn(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(separator, start), text.size());
    if (end > start) parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::optional<unsigned> monthNumber(std::string_view name) {
  constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (std::size_t i = 0; i < kMonths.size(); ++i) {
    if (name == kMonths[i]) return static_cast<unsigned>(i + 1);
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::chrono::sys_seconds> parseHttpDate(std::string_view value) {
  const std::vector<std::string_view> words = splitOn(text::trimOws(value), ' ');
  std::string_view day, month, year, time;
  if (words.size() == 6 && words[0].ends_with(',') && words[5] == "GMT") {
    // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    day = words[1], month = words[2], year = words[3], time = words[4];
  } else if (words.size() == 4 && words[0].ends_with(',') && words[3] == "GMT") {
    // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    const std::vector<std::string_view> date = splitOn(words[1], '-');
    if (date.size() != 3) return std::nullopt;
    day = date[0], month = date[1], year = date[2], time = words[2];
  } else if (words.size() == 5) {
    // asctime: Sun Nov  6 08:49:37 1994
    month = words[1], day = words[2], time = words[3], year = words[4];
  } else {
    return std::nullopt;
  }
  const std::vector<std::string_view> clock = splitOn(time, ':');
  int d = 0, y = 0, h = 0, m = 0, s = 0;
  const auto mon = monthNumber(month);
  if (!mon || clock.size() != 3 || !parseNumber(day, d) || !parseNumber(year, y) ||
      !parseNumber(clock[0], h) || !parseNumber(clock[1], m) || !parseNumber(clock[2], s)) {
    return std::nullopt;
  }
  if (year.size() == 2) y += y < 70 ? 2000 : 1900;  // RFC 850's two-digit years
  const std::chrono::year_month_day date{std::chrono::year(y), std::chrono::month(*mon),
                                         std::chrono::day(static_cast<unsigned>(d))};
  if (d < 1 || !date.ok() || h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 60) {
    return std::nullopt;
  }
  return std::chrono::sys_days(date) + std::chrono::hours(h) + std::chrono::minutes(m) +
         std::chrono::seconds(s);
}

}  // namespace vnetipam::base
