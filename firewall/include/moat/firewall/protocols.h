// Name tables for `-p`, `-dport`/`-sport` and `-icmp-type`: IP protocols, TCP/UDP service names
// and ICMP / ICMPv6 type names.
//
// The data is embedded (taken from Debian 12's netbase /etc/protocols and /etc/services and the
// iptables / ip6tables icmp type names), never read from the host at run time, so a rule file
// compiles the same on every machine. All lookups are pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace moat::firewall {

// Resolves an IP protocol name or number to its number. Names are those of /etc/protocols (first
// column and aliases, e.g. "tcp", "ospf"/"ospfigp", "ipencap"/"ip-encap", "esp"/"ipsec-esp") plus
// "icmpv6" for 58, matched ignoring ASCII case. Also accepts any plain decimal 0-255, listed or
// not. Returns nullopt for unknown names, numbers above 255 and anything else.
std::optional<uint8_t> protocol_number(std::string_view name_or_number);

// The canonical lower-case /etc/protocols name of `number` ("tcp", "ipv6-icmp", "ip" for 0),
// or "" when the number has no name.
std::string_view protocol_name(uint8_t number);

// True for the protocols whose header has ports, i.e. which may carry -dport/-sport:
// tcp, udp, udplite, dccp, sctp.
bool protocol_has_ports(uint8_t number);

// Resolves a service name from /etc/services (tcp or udp entries, names and aliases, e.g. "ssh",
// "www", "domain", "ms-wbt-server") to its port, ignoring ASCII case. Numbers are NOT handled
// here; the port parser deals with them. nullopt when unknown.
std::optional<uint16_t> service_port(std::string_view name);

struct IcmpType {
  uint8_t type = 0;
  std::optional<uint8_t> code;  // nullopt: any code of this type

  friend bool operator==(const IcmpType&, const IcmpType&) = default;
};

// Resolves an IPv4 ICMP type by its iptables name ("echo-request" = 8, "host-unreachable" = 3/1,
// ...), matched ignoring ASCII case as iptables does, or by number: "8" or "3/1" (type/code, each
// 0-255). "any" is not a type and returns nullopt; callers that accept it handle it themselves.
std::optional<IcmpType> icmp_type(std::string_view name);

// Same for ICMPv6 with the ip6tables names ("echo-request" = 128, "reject-route" = 1/6,
// both "neighbour-" and "neighbor-solicitation" = 135, ...) or numbers.
std::optional<IcmpType> icmpv6_type(std::string_view name);

}  // namespace moat::firewall
