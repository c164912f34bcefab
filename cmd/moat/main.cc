// moat: the command-line tool. Each subsystem registers its subcommands (fw, net, ...) from its
// own file in this folder; main only sets up logging and dispatches.
#include <CLI/CLI.hpp>

#include "commands.h"
#include "moat/base/log.h"

int main(int argc, char** argv) {
  CLI::App app{"moat: software-defined networking and firewall for virtualization nodes"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  int exit_code = 0;
  moat::cli::register_version(app);
  moat::cli::register_fw(app, exit_code);
  moat::cli::register_net(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
