// The daemons' spdlog set-up behind --log-format and --log-level: one stderr logger made the
// default. Text lines: "<local time> <level> <message>". JSON lines (UTC time): one object per
// line,
// {"time","level","logger","msg"}, with the message escaped so every line parses as JSON.
#pragma once

#include <string>

#include <spdlog/common.h>

#include "lib/cli/options.h"

namespace vnetipam::cli {

struct LoggingOptions {
  std::string name;  // the "logger" field of JSON lines
  LogFormat format = LogFormat::kText;
  std::string level = "info";  // debug | info | warn | error (parseLogLevel)
  spdlog::level::level_enum flushOn = spdlog::level::warn;
};

void setUpLogging(const LoggingOptions& options);

}  // namespace vnetipam::cli
