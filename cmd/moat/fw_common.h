// What the `moat fw` subcommands share: the --config-root/--node/--shards options, loading and
// compiling a node's configuration (warnings to stderr), and the exit-code convention
// (0 ok, 1 runtime failure, 2 invalid configuration or arguments).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "moat/firewall/compiler.h"
#include "moat/firewall/model.h"

namespace moat::cli {

struct FwArgs {
  std::string config_root = "/etc/pve";
  std::string node;
  int shards = 0;  // automatic
  std::string layout = "netdev";
  std::string strategy = "auto";
  std::string netns;
  std::string state_dir = "/run/moat";
  // --local-network: the node's local networks; empty: detected in `netns` (local_network.h).
  std::vector<std::string> local_networks;
  // --ovs-bridge, --vlan-aware-bridge and --firewall-bridged: the configured bridges that are
  // Open vSwitch bridges, the Linux bridges with VLAN filtering, and the guest ports on their
  // firewall bridges; each empty: detected in `netns` (nic_bridges.h).
  std::vector<std::string> ovs_bridges;
  std::vector<std::string> vlan_aware_bridges;
  std::vector<std::string> firewall_bridged;
};

// Adds --config-root, --node (required), --shards, --layout, --local-network, --ovs-bridge,
// --vlan-aware-bridge and --firewall-bridged to `cmd`, bound to `args`.
void add_config_options(CLI::App* cmd, FwArgs& args);

struct CompiledNode {
  firewall::FirewallConfig config;
  firewall::CompileResult compiled;
};

// Loads and compiles the node's configuration; prints load and compile warnings to stderr.
Result<CompiledNode> load_and_compile(const FwArgs& args, firewall::GuestStrategy strategy);

// Prints the error to stderr and returns the exit code for it.
int report_error(const Error& e);

}  // namespace moat::cli
