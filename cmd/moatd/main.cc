// moatd: the node daemon. For now it starts, logs, and stops cleanly on SIGTERM/SIGINT; the
// reconcilers (firewall, networking, SDN) and the API plug into its one io_context.
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>

#include "moat/base/log.h"

int main(int argc, char** argv) {
  CLI::App app{"moatd: the Moat node daemon"};
  std::string log_level = "info";
  std::string config_root = "/etc/pve";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  app.add_option("--config-root", config_root, "configuration tree shaped like /etc/pve");
  CLI11_PARSE(app, argc, argv);

  moat::log::init(log_level);
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    moat::log::info("received signal {}, stopping", signo);
    io.stop();
  });
  moat::log::info("moatd started (config root {})", config_root);
  io.run();
  moat::log::info("moatd stopped");
  return 0;
}
