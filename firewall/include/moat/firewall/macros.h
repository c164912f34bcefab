// The built-in firewall macro table (`SSH(ACCEPT)`, `Ping(DROP)`, ...).
//
// Mirrors pve-firewall's table in Firewall.pm (converted from Shorewall, plus the IPv6 overrides
// for Ping, Trcrt, NeighborDiscovery and DHCPv6) and proxmox-ve-rs's macros.json, which adds
// HTTP/3 and PBS: 88 macros in total. The data is compiled in and immutable; every function here
// is pure and thread-safe, and returned pointers/spans stay valid for the life of the program.
#pragma once

#include <span>
#include <string_view>

namespace moat::firewall {

// One expansion line of a macro. Empty strings mean "not fixed by the macro"; the rule that uses
// the macro may supply them.
struct MacroEntry {
  std::string_view proto;      // "tcp", "udp", "icmp", "ipv6-icmp", "47", ...
  std::string_view dport;      // "22", "6800:7300", "135,445", "" ...
  std::string_view sport;      // "500", "67:68", "" ...
  std::string_view icmp_type;  // "echo-request" for Ping/Trcrt, "" otherwise
  int family = 0;              // 0: both, 4: IPv4 only, 6: IPv6 only
};

struct Macro {
  std::string_view name;  // canonical spelling, e.g. "SPICEproxy"
  std::string_view description;
  std::span<const MacroEntry> entries;  // never empty; a rule expands to one rule per entry
};

// Looks a macro up by name, ignoring ASCII case ("ssh", "sSh" and "SSH" all find SSH).
// Returns nullptr when there is no such macro.
const Macro* find_macro(std::string_view name);

// Every macro, sorted by name ignoring ASCII case (so "Ceph" < "Citrix" < "CVS").
std::span<const Macro> all_macros();

}  // namespace moat::firewall
