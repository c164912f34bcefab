// Logging: a thin face over spdlog so the rest of Moat names one logger and one setup call.
// The logger writes to stderr; daemons may add sinks. spdlog loggers are thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace moat::log {

// Sets up the default logger ("moat") at `level` ("trace".."critical", "off"); an unknown
// level falls back to "info". Call once at program start.
void init(std::string_view level);

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::trace;
using spdlog::warn;

}  // namespace moat::log
