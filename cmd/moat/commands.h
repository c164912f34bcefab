// Subcommand registration for the moat CLI. Each register_* adds one subcommand tree whose
// callbacks run during parsing and store their exit status in `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

namespace moat::cli {

void register_version(CLI::App& app);
void register_fw(CLI::App& app, int& exit_code);
void register_net(CLI::App& app, int& exit_code);
void register_fw_simulate(CLI::App* fw, CLI::App& app, int& exit_code);

// Sets up logging once the global --log-level is known (called by each subcommand callback).
void init_logging(CLI::App& app);

}  // namespace moat::cli
