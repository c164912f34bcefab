#include "fw_common.h"

#include <cstdio>
#include <ctime>
#include <optional>
#include <set>

#include "moat/bridges/link_driver.h"
#include "moat/firewall/local_network.h"
#include "moat/firewall/nic_bridges.h"
#include "moat/firewall/parser.h"

namespace moat::cli {

void add_config_options(CLI::App* cmd, FwArgs& args) {
  cmd->add_option("--config-root", args.config_root, "configuration tree shaped like /etc/pve")
      ->capture_default_str();
  cmd->add_option("--node", args.node, "node name (nodes/<node>/...)")->required();
  cmd->add_option("--shards", args.shards,
                  "bridge tables guests are spread over (0: one per 500 firewalled guests)")
      ->capture_default_str();
  cmd->add_option("--layout", args.layout,
                  "where guest rules live: bridge (sharded bridge tables) or netdev (chains "
                  "bound to each guest's ports, docs/firewall-netdev.md)")
      ->check(CLI::IsMember({"bridge", "netdev"}))
      ->capture_default_str();
  cmd->add_option("--local-network", args.local_networks,
                  "the node's local network (CIDR, repeatable) for the local_network alias; "
                  "default: detected from the node's addresses and /etc/hosts");
  cmd->add_option("--ovs-bridge", args.ovs_bridges,
                  "a bridge of the guest configs that is an Open vSwitch bridge (repeatable): "
                  "its firewalled NICs are on Proxmox's fwbr<vmid>i<N> bridges; default: the "
                  "configured bridges that exist in the namespace and are not Linux bridges");
  cmd->add_option("--vlan-aware-bridge", args.vlan_aware_bridges,
                  "a Linux bridge of the guest configs that is VLAN-aware (repeatable): NICs with "
                  "tag= are its ports; on any other Linux bridge they are on Proxmox's "
                  "<bridge>v<tag> bridge; default: the configured bridges with VLAN filtering in "
                  "the namespace");
  cmd->add_option("--firewall-bridged", args.firewall_bridged,
                  "a guest port (tap<vmid>i<N>, veth<vmid>i<N>) that Proxmox's iptables firewall "
                  "plugged into its fwbr<vmid>i<N> bridge in front of a Linux bridge "
                  "(repeatable); default: the firewalled guest ports found on theirs in the "
                  "namespace");
}

namespace {

// The --local-network values, or the networks detected in the node's namespace.
Result<std::vector<IpRange>> local_networks(const FwArgs& args, const bridges::Observed* observed) {
  if (args.local_networks.empty()) return firewall::detect_local_networks(*observed, args.node);
  std::vector<IpRange> out;
  for (const auto& text : args.local_networks) {
    auto range = parse_ip_range(text);
    if (!range)
      return fail(ErrorCode::InvalidArgument, "--local-network: " + range.error().message());
    out.push_back(*range);
  }
  return out;
}

// The --ovs-bridge, --vlan-aware-bridge and --firewall-bridged values, each in place of what
// the node's namespace says.
firewall::BridgeKinds bridge_kinds(const FwArgs& args, const bridges::Observed* observed,
                                   const firewall::FirewallConfig& config) {
  firewall::BridgeKinds kinds;
  if (observed) kinds = firewall::detect_bridge_kinds(*observed, config);
  if (!args.ovs_bridges.empty()) kinds.ovs = {args.ovs_bridges.begin(), args.ovs_bridges.end()};
  if (!args.vlan_aware_bridges.empty())
    kinds.vlan_aware = {args.vlan_aware_bridges.begin(), args.vlan_aware_bridges.end()};
  if (!args.firewall_bridged.empty())
    kinds.firewall_bridged = {args.firewall_bridged.begin(), args.firewall_bridged.end()};
  return kinds;
}

}  // namespace

Result<CompiledNode> load_and_compile(const FwArgs& args, firewall::GuestStrategy strategy) {
  auto loaded = MOAT_TRY(firewall::load_config(args.config_root, args.node));
  for (const auto& w : loaded.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  // One snapshot of the node's namespace serves every detection the flags leave to us.
  std::optional<bridges::Observed> observed;
  if (args.local_networks.empty() || args.ovs_bridges.empty() || args.vlan_aware_bridges.empty() ||
      args.firewall_bridged.empty())
    observed = MOAT_TRY(bridges::observe(args.netns));
  const bridges::Observed* seen = observed ? &*observed : nullptr;
  firewall::plug_nics(loaded.config, bridge_kinds(args, seen, loaded.config));
  if (seen)
    for (const auto& w : firewall::check_plugging(*seen, loaded.config))
      std::fprintf(stderr, "warning: %s\n", w.c_str());
  firewall::CompileOptions options{.strategy = strategy,
                                   .layout = *firewall::parse_guest_layout(args.layout),
                                   .shards = args.shards,
                                   .now = std::time(nullptr),
                                   .local_networks = MOAT_TRY(local_networks(args, seen))};
  auto compiled = MOAT_TRY(firewall::compile(loaded.config, options));
  for (const auto& w : compiled.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  return CompiledNode{std::move(loaded.config), std::move(compiled)};
}

int report_error(const Error& e) {
  std::fprintf(stderr, "%s\n", e.to_string().c_str());
  return e.code() == ErrorCode::InvalidConfig || e.code() == ErrorCode::InvalidArgument ? 2 : 1;
}

}  // namespace moat::cli
