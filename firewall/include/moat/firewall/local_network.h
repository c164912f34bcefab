// The node's local networks: what pve-firewall calls `local_network` when cluster.fw does not
// define that alias (the network of the node's own address), passed to compile() as
// CompileOptions::local_networks. The pure part picks networks from addresses; the detecting
// part reads /etc/hosts and takes the addresses from a snapshot of the node's namespace
// (bridges::observe()). Thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "moat/base/ip.h"
#include "moat/bridges/links.h"

namespace moat::firewall {

struct NodeAddress {
  std::string link;  // the interface holding it
  IpAddress ip;
  int prefix = 0;
};

// The addresses /etc/hosts (`hosts`, its text) gives `node`, in file order. Comments, aliases
// and malformed lines are handled as the resolver does (a line's first word is the address).
std::vector<IpAddress> node_addresses_from_hosts(std::string_view hosts, std::string_view node);

// The networks of `addresses` that hold one of `node_ips` (as pve-firewall: the network of the
// node's cluster address); when none does, the networks of every address. Loopback, link-local
// and guest-port (tap*, veth*, fwpr*, fwln*) addresses never count. Sorted, without repeats.
std::vector<IpRange> pick_local_networks(const std::vector<NodeAddress>& addresses,
                                         const std::vector<IpAddress>& node_ips);

// pick_local_networks() over the addresses of `observed` (a snapshot of the node's namespace)
// and `node`'s entries in the hosts file (a missing file gives no entries).
std::vector<IpRange> detect_local_networks(const bridges::Observed& observed, std::string_view node,
                                           const std::string& hosts_file = "/etc/hosts");

}  // namespace moat::firewall
