// The firewall simulator: what the compiled ruleset does to the first packet of a new
// connection. It walks the very nft::Ruleset that is applied to the kernel (never the model)
// through the netfilter hooks the packet would cross on this kernel (br_netfilter: bridged IP
// traffic also crosses the inet prerouting/forward hooks), so `moat fw simulate` and the tests
// check what the kernel will do, not what the compiler meant. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "moat/base/ip.h"
#include "moat/base/result.h"
#include "moat/firewall/ir.h"
#include "moat/firewall/model.h"

namespace moat::firewall::sim {

// One packet, the first of a new connection (conntrack state NEW, TCP SYN).
//
// Zones: "host" (the node; its address is on the guests' bridge), "outside" (beyond the
// bridge's uplink port "uplink0" when the other end is a bridge port, routed via "eth0"
// when the other end is the host), "vm<vmid>" / "ct<vmid>" (the guest's lowest-numbered
// NIC), "vm<vmid>/net<N>" / "ct<vmid>/net<N>", and "<bridge>/<port>" (any port of a bridge).
struct Packet {
  std::string from;
  std::string to;
  std::string protocol;  // tcp, udp, icmp, icmpv6, or any protocol name/number
  // Defaults: a container's ip=/ip6= or an address of a guest's ipfilter-net<N> ipset, else
  // 0.0.0.0 or :: (of the packet's family).
  std::optional<IpAddress> source, dest;
  std::optional<uint16_t> sport, dport;  // for protocols with ports; sport defaults to 40000
  std::optional<std::string> icmp_type;  // name or number ("3/1"); default echo-request

  // 4 or 6: the family of source/dest when given, else 6 for icmpv6, else 4.
  int family() const;
};

// One rule that matched (or the policy of a base chain that was reached), in order.
struct Step {
  std::string hook;       // "bridge prerouting 10": the base chain's family, hook and priority
  std::string table;      // "bridge moat-guests-4"
  std::string chain;      // the chain holding the rule
  std::string rule_text;  // nft::rule_text(), or "policy accept|drop" of a base chain
};

struct Outcome {
  enum class Verdict { Accept, Drop, Reject };
  Verdict verdict = Verdict::Accept;
  // The origin of the deciding rule ("firewall/100.fw:8", "dhcp", "macfilter net0"),
  // "policy of <chain>" for a chain's policy, or "default accept". For ACCEPT: the last
  // accepting rule that came from the configuration. A REJECT that the bridge chains defer
  // to the inet chains through the reject mark is credited to the rule that set the mark.
  std::string decided_by;
  // The chain of the deciding rule ("group-dbserver-in") and, when a rule jumped into it, the
  // origin of that rule ("firewall/101.fw:10", the GROUP line). Empty for "default accept".
  std::string chain;
  std::string via;
  std::vector<Step> trace;
};

const char* to_string(Outcome::Verdict v);  // "ACCEPT", "DROP", "REJECT"

// Evaluates `packet` against `ruleset` as the kernel would. `config` is only used to map zones
// to devices, bridges, MACs and default addresses. Errors: InvalidArgument for a bad zone,
// an unknown VMID or NIC, an unknown protocol or ICMP type, ports on a portless protocol;
// Internal when the ruleset references a chain, set or map it does not contain.
Result<Outcome> simulate(const nft::Ruleset& ruleset, const FirewallConfig& config,
                         const Packet& packet);

}  // namespace moat::firewall::sim
