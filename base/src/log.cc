#include "moat/base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace moat::log {

void init(std::string_view level) {
  auto logger = spdlog::stderr_color_mt("moat");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") parsed = spdlog::level::info;
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
}

}  // namespace moat::log
