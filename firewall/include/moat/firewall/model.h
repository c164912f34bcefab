// The validated firewall model: what the Proxmox rule files (cluster.fw, host.fw, <vmid>.fw,
// sdn/firewall/<vnet>.fw) and guest configs mean, independent of nftables. Produced by the
// parser (parser.h), consumed by the compiler (compiler.h). Plain value types; every rule,
// alias and ipset entry remembers its source location so later errors point at the file.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "moat/base/ip.h"
#include "moat/base/result.h"

namespace moat::firewall {

enum class Direction { In, Out, Forward };
enum class Verdict { Accept, Drop, Reject };
// Syslog levels 0-7; Nolog (the default) writes nothing.
enum class LogLevel { Emerg, Alert, Crit, Err, Warning, Notice, Info, Debug, Nolog };

const char* to_string(Direction d);     // "IN", "OUT", "FORWARD"
const char* to_string(Verdict v);       // "ACCEPT", "DROP", "REJECT"
const char* to_string(LogLevel level);  // "info", ..., "nolog"

// A -source/-dest value: an ipset (+name), an alias (name), or literal addresses.
struct AddressMatch {
  enum class Kind { IpSet, Alias, Literal };
  Kind kind = Kind::Literal;
  std::string scope;             // "dc", "guest", "sdn", or "" for a legacy (unscoped) name
  std::string name;              // ipset or alias name, lower-cased
  std::vector<IpRange> literal;  // Literal: one family, at least one entry
  std::string text;              // as written
};

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

struct IcmpMatch {
  bool v6 = false;
  uint8_t type = 0;
  std::optional<uint8_t> code;
  std::string text;
};

// One line of a [RULES] or [group] section, after macro validation but before expansion.
struct Rule {
  enum class Kind { Action, Macro, Group };
  Kind kind = Kind::Action;
  bool enabled = true;
  Direction direction = Direction::In;
  Verdict verdict = Verdict::Accept;
  std::string macro;  // canonical macro name (Kind::Macro)
  std::string group;  // security group name (Kind::Group)
  std::string iface;  // -i
  std::optional<AddressMatch> source;
  std::optional<AddressMatch> dest;
  std::optional<uint8_t> proto;
  std::string proto_text;
  std::vector<PortRange> dport;
  std::vector<PortRange> sport;
  std::optional<IcmpMatch> icmp;
  LogLevel log = LogLevel::Nolog;
  std::string comment;
  SourceLocation where;
};

struct Alias {
  std::string name;  // lower-cased
  IpRange cidr;
  std::string comment;
  SourceLocation where;
};

struct IpSetEntry {
  bool nomatch = false;
  std::optional<IpRange> cidr;  // literal entry
  std::string alias_scope;      // alias entry: "dc", "guest" or ""
  std::string alias;            // alias entry name
  std::string comment;
  SourceLocation where;
};

struct IpSet {
  std::string name;  // lower-cased
  std::string comment;
  std::vector<IpSetEntry> entries;
  SourceLocation where;
};

struct SecurityGroup {
  std::string name;
  std::string comment;
  std::vector<Rule> rules;
  SourceLocation where;
};

struct LogRateLimit {
  bool enable = true;
  uint32_t rate = 1;
  std::string unit = "second";  // second|minute|hour|day
  uint32_t burst = 5;
};

struct ClusterOptions {
  int64_t enable = 0;  // >1: an anti-lockout timestamp (see is_enabled)
  bool ebtables = true;
  Verdict policy_in = Verdict::Drop;
  Verdict policy_out = Verdict::Accept;
  Verdict policy_forward = Verdict::Accept;
  LogRateLimit log_ratelimit;
};

struct HostOptions {
  bool enable = true;
  bool nftables = false;
  bool nosmurfs = true;
  bool tcpflags = false;
  bool ndp = true;
  bool nf_conntrack_allow_invalid = false;
  bool protection_synflood = false;
  uint32_t protection_synflood_rate = 200;
  uint32_t protection_synflood_burst = 1000;
  bool log_nf_conntrack = false;
  LogLevel log_level_in = LogLevel::Nolog;
  LogLevel log_level_out = LogLevel::Nolog;
  LogLevel log_level_forward = LogLevel::Nolog;
  LogLevel smurf_log_level = LogLevel::Nolog;
  LogLevel tcp_flags_log_level = LogLevel::Nolog;
  std::optional<uint32_t> nf_conntrack_max;
  std::optional<uint32_t> nf_conntrack_tcp_timeout_established;
  std::optional<uint32_t> nf_conntrack_tcp_timeout_syn_recv;
  std::vector<std::string> nf_conntrack_helpers;
};

struct GuestOptions {
  bool enable = false;
  bool macfilter = true;
  bool ipfilter = false;
  bool dhcp = true;
  bool ndp = true;
  bool radv = false;
  Verdict policy_in = Verdict::Drop;
  Verdict policy_out = Verdict::Accept;
  LogLevel log_level_in = LogLevel::Nolog;
  LogLevel log_level_out = LogLevel::Nolog;
};

struct VnetOptions {
  bool enable = false;
  Verdict policy_forward = Verdict::Accept;
  LogLevel log_level_forward = LogLevel::Nolog;
};

struct ClusterFw {
  std::string file;
  ClusterOptions options;
  std::map<std::string, Alias> aliases;
  std::map<std::string, IpSet> ipsets;
  std::vector<Rule> rules;
  std::map<std::string, SecurityGroup> groups;
};

struct HostFw {
  std::string file;
  HostOptions options;
  std::vector<Rule> rules;
};

struct GuestFw {
  std::string file;
  GuestOptions options;
  std::map<std::string, Alias> aliases;
  std::map<std::string, IpSet> ipsets;
  std::vector<Rule> rules;
};

struct VnetFw {
  std::string file;
  VnetOptions options;
  std::vector<Rule> rules;
};

// One NIC of a guest, from a `netN:` line of its config.
struct GuestNic {
  int index = 0;
  std::string mac;  // lower-case aa:bb:cc:dd:ee:ff
  // The Linux bridge the NIC's port is a member of: the config's `bridge=`, the bridge of the
  // NIC's VLAN on a bridge that is not VLAN-aware, or the NIC's firewall bridge fwbr<vmid>i<N>,
  // which Proxmox plugs in front of an Open vSwitch bridge, and its iptables firewall in front of
  // Linux bridges too (plug_nics(), nic_bridges.h).
  std::string bridge;
  // On a firewall bridge: the bridge it joins (one of the two others above), and whether that
  // is an OVS bridge (which runs no netfilter hooks). Else empty.
  std::string uplink;
  bool uplink_ovs = false;
  std::optional<uint16_t> tag;
  bool firewall = false;
  std::optional<IpRange> ip;  // containers: static ip= (host address), not dhcp/manual
  std::optional<IpRange> ip6;
  SourceLocation where;
};

struct Guest {
  enum class Type { Vm, Ct };
  uint32_t vmid = 0;
  Type type = Type::Vm;
  std::string file;
  std::map<int, GuestNic> nics;
  std::optional<GuestFw> fw;  // present when firewall/<vmid>.fw exists
};

// Everything one node's firewall is compiled from.
struct FirewallConfig {
  std::string node;
  std::optional<ClusterFw> cluster;
  std::optional<HostFw> host;
  std::map<uint32_t, Guest> guests;
  std::map<std::string, VnetFw> vnets;
  // Cluster peer addresses (corosync ring addresses), for the corosync accept rule.
  std::vector<IpAddress> cluster_peers;
  // Linux bridges with VLAN filtering (plug_nics(), nic_bridges.h): the netdev layout's reject
  // ports cannot answer there yet, so its guests' REJECTs drop.
  std::set<std::string> vlan_aware_bridges;
};

}  // namespace moat::firewall
