#include <cstdio>

#include "commands.h"
#include "moat/base/log.h"

namespace moat::cli {

void register_version(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "print the version");
  cmd->callback([] { std::printf("moat 0.1.0\n"); });
}

void init_logging(CLI::App& app) {
  static bool done = false;
  if (done) return;
  done = true;
  log::init(app.get_option("--log-level")->as<std::string>());
}

}  // namespace moat::cli
