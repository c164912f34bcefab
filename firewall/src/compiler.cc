// compile(): the host table (inet) and the guest tables (bridge, sharded by VMID).
#include "moat/firewall/compiler.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <set>

#include "compile_internal.h"
#include "moat/firewall/names.h"

namespace moat::firewall {

const char* to_string(GuestStrategy s) {
  return s == GuestStrategy::BrNetfilter ? "br_netfilter" : "bridge-conntrack";
}

namespace detail {

using namespace build;

// The policy verdict at the end of a chain, with its log rule.
void add_policy(TableBuilder& b, nft::Chain& c, uint32_t vmid, Verdict policy, LogLevel level,
                Direction dir) {
  if (level != LogLevel::Nolog)
    c.rules.push_back(
        b.log_rule(vmid, level, c.name, std::string("policy ") + to_string(policy), dir));
  c.rules.push_back(rule({}, b.verdict(policy, dir), "policy"));
}

// Drops of sources in the cluster's `blacklist` ipset (host input and every guest's IN).
std::vector<nft::Rule> blacklist_rules(TableBuilder& b, const FirewallConfig& config) {
  std::vector<nft::Rule> out;
  if (!config.cluster) return out;
  auto bl = config.cluster->ipsets.find("blacklist");
  if (bl == config.cluster->ipsets.end()) return out;
  for (auto [family, name] : b.materialize_ipset(bl->second, "dc", Scope{})) {
    Field f = family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr;
    out.push_back(rule({b.family_match(family), Match{{f}, Match::Op::In, {}, name, 0}}, drop(),
                       bl->second.where.to_string()));
  }
  return out;
}

// EUI-64 link-local address of a MAC (fe80::/64 + flipped U/L bit + ff:fe).
std::optional<IpRange> link_local(const std::string& mac) {
  if (mac.size() != 17) return std::nullopt;
  IpAddress a;
  a.family = 6;
  a.bytes[0] = 0xfe;
  a.bytes[1] = 0x80;
  uint8_t m[6];
  for (int i = 0; i < 6; ++i)
    m[i] = static_cast<uint8_t>(std::stoi(mac.substr(i * 3, 2), nullptr, 16));
  a.bytes[8] = m[0] ^ 0x02;
  a.bytes[9] = m[1];
  a.bytes[10] = m[2];
  a.bytes[11] = 0xff;
  a.bytes[12] = 0xfe;
  a.bytes[13] = m[3];
  a.bytes[14] = m[4];
  a.bytes[15] = m[5];
  return IpRange{a, a};
}

std::optional<std::map<int, std::string>> ipfilter_sets(TableBuilder& b, const Guest& guest,
                                                        int index, const GuestNic& nic) {
  const GuestFw& fw = *guest.fw;
  std::string set_name = "ipfilter-net" + std::to_string(index);
  auto explicit_set = fw.ipsets.find(set_name);
  if (!fw.options.ipfilter && explicit_set == fw.ipsets.end()) return std::nullopt;
  IpSet set = explicit_set != fw.ipsets.end() ? explicit_set->second : IpSet{set_name, {}, {}, {}};
  std::vector<IpRange> extra;
  if (auto ll = link_local(nic.mac)) extra.push_back(*ll);
  if (nic.ip) extra.push_back(*nic.ip);
  if (nic.ip6) extra.push_back(*nic.ip6);
  return b.materialize_ipset(set, "guest", Scope{&guest}, extra, /*all_families=*/true);
}

std::vector<nft::Rule> deferred_reject_rules() {
  nft::Rule mark =
      rule({in_values(Field::Protocol, {nft::be16(0x0800), nft::be16(0x86dd)})}, accept());
  mark.mark = nft::MarkSet{~names::kMarkReject, names::kMarkReject};
  return {mark, rule({}, drop())};
}

nft::Rule out_reject_rule(std::vector<nft::Match> when, nft::Verdict then) {
  nft::Rule r = rule(std::move(when), then);
  r.mark = nft::MarkSet{~names::kMarkRejectIn, names::kMarkRejectIn};
  r.ether_daddr = names::reject_mac();
  return r;
}

bool answered_at_reject_port(const FirewallConfig& config, const GuestNic& nic) {
  return nic.firewall && !nic.mac.empty() && !nic.bridge.empty() &&
         !config.vlan_aware_bridges.contains(nic.bridge);
}

const std::string& reject_bridge(const FirewallConfig& config, const GuestNic& nic) {
  bool through_uplink =
      !nic.uplink.empty() && !nic.uplink_ovs && !config.vlan_aware_bridges.contains(nic.uplink);
  return through_uplink ? nic.uplink : nic.bridge;
}

nft::Rule no_answer_rule(std::vector<nft::Match> when) {
  return rule(std::move(when), drop(), "REJECT on a VLAN-aware bridge");
}

nft::Bytes mac_bytes(const std::string& mac) {
  nft::Bytes b;
  for (int i = 0; i < 6; ++i)
    b.push_back(static_cast<uint8_t>(std::stoi(mac.substr(i * 3, 2), nullptr, 16)));
  return b;
}

}  // namespace detail

namespace {

using detail::Scope;
using namespace detail::build;
using detail::add_policy;
using detail::blacklist_rules;
using detail::link_local;
using detail::mac_bytes;
using detail::out_reject_rule;
using detail::TableBuilder;
using nft::Field;
using nft::Match;
using nft::VerdictCode;

// A reject answer that conntrack found established (or related) on the first bridge it crossed.
Match tracked_answer() {
  uint32_t bits = names::kMarkAnswer | names::kMarkEstablished;
  return mask_eq(Field::Mark, bits, bits);
}

// Stash rules: meta mark bits from ct state (br_netfilter strategy), for chains that cannot
// read it (bridge chains without bridge conntrack, netdev egress). Established traffic, most
// packets, leaves after the first rule. `recorded`: this hook also applies the OUT verdicts
// the netdev layout's guest chains recorded at ingress, before conntrack (guest_netdev.cc):
// a drop here, a reject sent to be answered (out_reject_rule()); established traffic passes
// whatever the OUT rules say, as it should.
//
// Reject answers of the netdev layout (names::kMarkAnswer, from the reject ports) may cross
// more bridges after the one whose conntrack saw them first (a guest on a firewall bridge in
// front of a Linux bridge), where a TCP reset is invalid: `recorded` keeps the established bit
// the first one gave them. (After the established rule: most packets never test it.)
void add_stash(nft::Chain& c, const FirewallConfig& config, bool recorded, bool allow_invalid) {
  auto set_bits = [](nft::Rule r, uint32_t bits) {
    r.mark = nft::MarkSet{~names::kMarkMask, bits};
    return r;
  };
  c.rules.push_back(
      set_bits(rule({bits_any(Field::CtState, nft::kCtEstablished | nft::kCtRelated)}, accept()),
               names::kMarkEstablished));
  if (recorded) c.rules.push_back(rule({tracked_answer()}, accept()));
  c.rules.push_back(set_bits(nft::Rule{}, 0));
  Match invalid = bits_any(Field::CtState, nft::kCtInvalid);
  Match from_guest = bits_any(Field::Mark, names::kMarkOutVerdict | names::kMarkOutDefer);
  if (recorded && !allow_invalid)
    c.rules.push_back(rule({invalid, from_guest}, drop(), "conntrack invalid"));
  c.rules.push_back(set_bits(rule({invalid}, {}), names::kMarkInvalid));
  if (!recorded) return;
  c.rules.push_back(
      rule({mask_eq(Field::Mark, names::kMarkOutVerdict, names::kMarkOutDrop)}, drop()));
  Match rejected = mask_eq(Field::Mark, names::kMarkOutVerdict, names::kMarkOutReject);
  if (!config.vlan_aware_bridges.empty()) {
    // br_netfilter runs this hook with the bridge as input device.
    std::vector<nft::Bytes> bridges;
    for (const auto& b : config.vlan_aware_bridges) bridges.push_back(nft::ifname_bytes(b));
    c.rules.push_back(
        detail::no_answer_rule({rejected, one_of(Field::Iifname, std::move(bridges))}));
  }
  c.rules.push_back(out_reject_rule({rejected}, {}));
}

// ---- host table ----

struct HostInputs {
  const FirewallConfig& config;
  const CompileOptions& options;
  bool host_enabled;
  bool guests_present;
  std::set<std::string> bridges;  // bridges with guest ports (bridged_by())
  bool guest_nics;                // guests have ports, maybe on firewall bridges
};

// `reflect_established`: the answer carries the rejected packet's mark (fwmark_reflect); the
// TCP reset for a bridged packet (a host rule's REJECT of a guest's traffic to the host) leaves
// straight through the sender's port, past no stash, so the mark says "established" for the
// sender's netdev IN chain.
void add_inet_reject_chain(nft::Table& t, bool reflect_established) {
  nft::Chain& c = chain(t, names::kDoReject);
  c.rules.clear();
  if (reflect_established) {
    nft::Rule r;
    r.mark = nft::MarkSet{~names::kMarkEstablished, names::kMarkEstablished};
    c.rules.push_back(r);
  }
  c.rules.push_back(rule({l4(6)}, {VerdictCode::RejectTcpReset, {}}));
  c.rules.push_back(rule({}, {VerdictCode::RejectPortUnreach, {}}));
}

// nf_conntrack_helpers: kernels since 6.1 attach no helper by port on their own (Proxmox bug
// #4550), so new connections to each helper's well-known port get it attached here, in
// prerouting (after conntrack), for the host and for bridged guests alike (as pve-firewall's
// raw PREROUTING `CT --helper`). Ports and families are pve-firewall's.
void add_ct_helpers(TableBuilder& b, const std::vector<std::string>& wanted) {
  struct Known {
    const char* name;
    uint8_t protocol;
    uint16_t port;
    bool ipv6;
  };
  static constexpr Known kKnown[] = {
      {"amanda", 17, 10080, true},    {"ftp", 6, 21, true},     {"irc", 6, 6667, false},
      {"netbios-ns", 17, 137, false}, {"pptp", 6, 1723, false}, {"sane", 6, 6566, true},
      {"sip", 17, 5060, true},        {"snmp", 17, 161, false}, {"tftp", 17, 69, true}};
  if (wanted.empty()) return;
  nft::Table& t = b.table();
  nft::Chain& c =
      chain(t, "ct-helpers", nft::BaseChain{nft::Hook::Prerouting, names::kHelperPriority, false});
  for (const auto& k : kKnown) {
    if (std::find(wanted.begin(), wanted.end(), k.name) == wanted.end()) continue;
    for (int family : {4, 6}) {
      if (family == 6 && !k.ipv6) continue;
      std::string name = std::string(k.name) + (family == 4 ? "-v4" : "-v6");
      t.helpers[name] = nft::CtHelper{name, k.name, k.protocol, family};
      nft::Rule r =
          rule({b.family_match(family), l4(k.protocol), eq(Field::Dport, nft::be16(k.port)),
                bits_any(Field::CtState, nft::kCtNew)},
               {}, "nf_conntrack_helpers");
      r.ct_helper = name;
      c.rules.push_back(std::move(r));
    }
  }
}

void build_host(TableBuilder& b, const HostInputs& in) {
  nft::Table& t = b.table();
  const auto& cluster = *in.config.cluster;
  const HostOptions host = in.config.host ? in.config.host->options : HostOptions{};
  const std::vector<Rule> no_rules;
  const auto& host_rules = in.config.host ? in.config.host->rules : no_rules;
  Scope scope{};
  bool netdev = in.options.layout == GuestLayout::Netdev;
  bool brnf = in.options.strategy == GuestStrategy::BrNetfilter || netdev;
  add_inet_reject_chain(t, netdev && in.guests_present);
  add_ct_helpers(b, host.nf_conntrack_helpers);
  nft::Match deferred_reject = bits_any(Field::Mark, names::kMarkReject);
  // Guest chains that leave their REJECTs to the inet forward and input chains (the netdev
  // layout answers them at the bridges' reject ports).
  bool defers_rejects = in.guests_present && brnf && !netdev;

  if (in.guests_present && brnf) {
    add_stash(chain(t, "stash-prerouting",
                    nft::BaseChain{nft::Hook::Prerouting, names::kStashPriority, false}),
              in.config, netdev, host.nf_conntrack_allow_invalid);
    add_stash(
        chain(t, "stash-output", nft::BaseChain{nft::Hook::Output, names::kStashPriority, false}),
        in.config, false, host.nf_conntrack_allow_invalid);
  }

  // Forward: deferred guest rejects, VNet firewalls, then routed traffic.
  nft::Chain& fwd = chain(t, "forward", nft::BaseChain{nft::Hook::Forward, 0, false});
  if (in.guests_present && brnf) {
    // Established traffic first (the stash's mark says so; no deferred reject pending):
    // whatever follows accepts it too, one rule later for bridged and several for routed.
    fwd.rules.push_back(rule({mask_eq(Field::Mark, names::kMarkEstablished | names::kMarkReject,
                                      names::kMarkEstablished)},
                             accept()));
    if (defers_rejects) fwd.rules.push_back(rule({deferred_reject}, jump(names::kDoReject)));
  }
  std::map<std::string, const VnetFw*> vnets;
  for (const auto& [name, vnet] : in.config.vnets)
    if (vnet.options.enable) vnets[name] = &vnet;
  if (!vnets.empty()) {
    nft::Set& map = t.sets[names::kVnetMap];
    map.name = names::kVnetMap;
    map.kind = nft::Set::Kind::Vmap;
    map.key = {Field::Iifname, Field::Oifname};
    for (const auto& [name, vnet] : vnets) {
      std::string cname = names::vnet_chain(name);
      nft::Chain& vc = chain(t, cname);
      vc.rules.push_back(
          rule({bits_any(Field::CtState, nft::kCtEstablished | nft::kCtRelated)}, accept()));
      if (!host.nf_conntrack_allow_invalid)
        vc.rules.push_back(rule({bits_any(Field::CtState, nft::kCtInvalid)}, drop()));
      b.add_rules(vc, vnet->rules, Direction::Forward, scope);
      add_policy(b, vc, 0, vnet->options.policy_forward, vnet->options.log_level_forward,
                 Direction::Forward);
      auto key = nft::ifname_bytes(name);
      map.elements.push_back({{nft::single(key), nft::single(key)}, jump(cname), 0});
    }
    fwd.rules.push_back(rule({}, {}, ""));
    fwd.rules.back().vmap_fields = {Field::Iifname, Field::Oifname};
    fwd.rules.back().vmap = names::kVnetMap;
  }
  if (!in.bridges.empty()) {
    // Bridged guest traffic reaches inet forward through br_netfilter with the bridge as both
    // input and output device; the guest chains decided it, so the host's FORWARD policy for
    // routed traffic must not.
    nft::Set& pairs = t.sets[names::kBridgedPairs];
    pairs.name = names::kBridgedPairs;
    pairs.key = {Field::Iifname, Field::Oifname};
    for (const auto& br : in.bridges) {
      auto key = nft::ifname_bytes(br);
      pairs.elements.push_back({{nft::single(key), nft::single(key)}, {}, 0});
    }
    fwd.rules.push_back(
        rule({Match{{Field::Iifname, Field::Oifname}, Match::Op::In, {}, names::kBridgedPairs, 0}},
             accept()));
  }
  if (in.guest_nics) {
    // Proxmox's firewall bridges (fwbr<vmid>i<N>) carry nothing but their guest's traffic, and
    // which guests sit on one changes with every start (known only while they run): one rule
    // for all of them, so that a guest started on its firewall bridge after this apply needs no
    // pair of its own.
    auto fwbr = nft::ifname_wildcard(names::kFirewallBridgePrefix);
    fwd.rules.push_back(rule({Match{{Field::Iifname}, Match::Op::Eq, {fwbr}, "", 0},
                              Match{{Field::Oifname}, Match::Op::Eq, {fwbr}, "", 0}},
                             accept()));
  }
  if (!in.host_enabled) {
    // Guest OUT rules may still reject traffic to the host: answer those.
    if (defers_rejects)
      chain(t, "input", nft::BaseChain{nft::Hook::Input, 0, false})
          .rules.push_back(rule({deferred_reject}, jump(names::kDoReject)));
    return;
  }
  // Routed traffic into or out of a VNet goes through the VNet's rules too.
  for (const auto& [name, vnet] : vnets)
    for (Field f : {Field::Iifname, Field::Oifname})
      fwd.rules.push_back(rule({eq(f, nft::ifname_bytes(name))}, jump(names::vnet_chain(name))));

  auto ct_rules = [&](nft::Chain& c) {
    if (!host.nf_conntrack_allow_invalid)
      c.rules.push_back(rule({bits_any(Field::CtState, nft::kCtInvalid)}, drop()));
    c.rules.push_back(
        rule({bits_any(Field::CtState, nft::kCtEstablished | nft::kCtRelated)}, accept()));
  };
  auto management = cluster.ipsets.find("management");

  // Input.
  nft::Chain& input = chain(t, "input", nft::BaseChain{nft::Hook::Input, 0, false});
  input.rules.push_back(rule({eq(Field::Iifname, nft::ifname_bytes("lo"))}, accept()));
  if (netdev && in.guests_present) {
    // A reject answer to the host that conntrack saw on a bridge before (kMarkAnswer, from a
    // reject port) may be invalid by the time it comes in (the forward chain's first rule lets
    // it through for routed senders).
    input.rules.push_back(rule({tracked_answer()}, accept()));
  }
  if (defers_rejects) input.rules.push_back(rule({deferred_reject}, jump(names::kDoReject)));
  for (auto& r : blacklist_rules(b, in.config)) input.rules.push_back(std::move(r));
  ct_rules(input);
  if (host.protection_synflood) {
    // Per source, as pve-firewall's hashlimit: a source sending new SYNs faster than the rate
    // (after the burst) is dropped, the others are not. Sources are forgotten after 60 s.
    for (int family : {4, 6}) {
      std::string name = family == 4 ? "synflood-v4" : "synflood-v6";
      Field saddr = family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr;
      nft::Set& set = t.sets[name];
      set = nft::Set{.name = name, .key = {saddr}, .dynamic = true, .timeout_s = 60, .size = 65535};
      nft::Rule syn = rule({b.family_match(family), l4(6), bits_any(Field::TcpFlags, 0x02),
                            bits_any(Field::CtState, nft::kCtNew)},
                           drop(), "protection_synflood");
      syn.update = nft::SetUpdate{name,
                                  {saddr},
                                  nft::Limit{.rate = host.protection_synflood_rate,
                                             .unit = "second",
                                             .burst = host.protection_synflood_burst,
                                             .over = true}};
      input.rules.push_back(std::move(syn));
    }
  }
  if (host.nosmurfs) {
    // Smurf sources (pve-firewall's PVEFW-smurfs): whatever the routing table calls a broadcast
    // address (255.255.255.255 and the node's subnet broadcasts; 0.0.0.0 may send: DHCP), and
    // multicast sources.
    Match not_zero = neq(Field::Ip4Saddr, nft::Bytes(4, 0));
    Match multicast{{Field::Ip4Saddr},
                    Match::Op::Eq,
                    {detail::to_interval(*parse_ip_range("224.0.0.0/4"))},
                    {},
                    0};
    for (auto& m :
         std::vector<std::vector<Match>>{{b.family_match(4), not_zero,
                                          eq(Field::FibSaddrType, nft::host32(nft::kRtnBroadcast))},
                                         {b.family_match(4), multicast}}) {
      if (host.smurf_log_level != LogLevel::Nolog) {
        nft::Rule log = b.log_rule(0, host.smurf_log_level, "smurfs", "DROP");
        log.matches = m;
        input.rules.push_back(log);
      }
      input.rules.push_back(rule(m, drop(), "nosmurfs"));
    }
  }
  if (host.tcpflags) {
    // Flag combinations no TCP stack sends (as pve-firewall's PVEFW-tcpflags): xmas, null,
    // SYN+RST, SYN+FIN, FIN/PSH/URG without ACK, and port 0.
    const std::pair<uint32_t, uint32_t> kBad[] = {{0x3f, 0x29}, {0x3f, 0x00}, {0x06, 0x06},
                                                  {0x03, 0x03}, {0x11, 0x01}, {0x18, 0x08},
                                                  {0x30, 0x20}};
    nft::Chain& tf = chain(t, "tcpflags");
    for (auto [mask, value] : kBad) {
      std::vector<Match> m = {mask_eq(Field::TcpFlags, mask, value)};
      if (host.tcp_flags_log_level != LogLevel::Nolog) {
        nft::Rule log = b.log_rule(0, host.tcp_flags_log_level, "tcpflags", "DROP");
        log.matches = m;
        tf.rules.push_back(log);
      }
      tf.rules.push_back(rule(m, drop(), "tcpflags"));
    }
    for (Field port : {Field::Sport, Field::Dport})
      tf.rules.push_back(rule({eq(port, nft::be16(0))}, drop(), "tcpflags"));
    input.rules.push_back(rule({l4(6)}, jump("tcpflags")));
  }
  input.rules.push_back(rule({l4(2)}, accept()));  // IGMP
  if (host.ndp) input.rules.push_back(rule({l4(58), icmp6_types({133, 134, 135, 136})}, accept()));
  chain(t, "host-in");
  b.add_rules(t.chains["host-in"], host_rules, Direction::In, scope);
  chain(t, "cluster-in");
  b.add_rules(t.chains["cluster-in"], cluster.rules, Direction::In, scope);
  input.rules.push_back(rule({}, jump("host-in")));
  input.rules.push_back(rule({}, jump("cluster-in")));
  // Management: members of the `management` ipset plus local_network (the dc alias, else the
  // detected networks) reach the GUI, SSH, consoles and migration ports (pve-firewall).
  std::vector<IpRange> local;
  if (auto ln = cluster.aliases.find("local_network"); ln != cluster.aliases.end())
    local.push_back(ln->second.cidr);
  else
    local = in.options.local_networks;
  if (management != cluster.ipsets.end() || !local.empty()) {
    IpSet implicit{.name = "management", .comment = {}, .entries = {}, .where = {}};
    const IpSet& set = management != cluster.ipsets.end() ? management->second : implicit;
    auto sets = b.materialize_ipset(set, "dc", scope, local);
    std::string origin = set.where.line > 0 ? set.where.to_string() : "local_network";
    for (auto [family, name] : sets) {
      Field f = family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr;
      Match ports{{Field::Dport},
                  Match::Op::In,
                  {nft::single(nft::be16(22)),
                   {nft::be16(3128), nft::be16(3128)},
                   {nft::be16(5900), nft::be16(5999)},
                   nft::single(nft::be16(8006)),
                   {nft::be16(60000), nft::be16(60050)}},
                  {},
                  0};
      input.rules.push_back(
          rule({b.family_match(family), Match{{f}, Match::Op::In, {}, name, 0}, l4(6), ports},
               accept(), origin));
    }
  }
  if (!in.config.cluster_peers.empty()) {
    for (int family : {4, 6}) {
      std::vector<nft::Interval> peers;
      for (const auto& p : in.config.cluster_peers)
        if (p.family == family) peers.push_back(detail::to_interval(IpRange{p, p}));
      if (peers.empty()) continue;
      Field f = family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr;
      Match src = peers.size() == 1 ? Match{{f}, Match::Op::Eq, peers, {}, 0}
                                    : Match{{f}, Match::Op::In, peers, {}, 0};
      input.rules.push_back(
          rule({b.family_match(family), src, l4(17),
                Match{{Field::Dport}, Match::Op::Eq, {{nft::be16(5404), nft::be16(5405)}}, {}, 0}},
               accept(), "corosync"));
    }
  }
  add_policy(b, input, 0, cluster.options.policy_in, host.log_level_in, Direction::In);

  // Output.
  nft::Chain& output = chain(t, "output", nft::BaseChain{nft::Hook::Output, 0, false});
  output.rules.push_back(rule({eq(Field::Oifname, nft::ifname_bytes("lo"))}, accept()));
  ct_rules(output);
  if (host.ndp)  // the host's own neighbour discovery, whatever policy_out says
    output.rules.push_back(rule({l4(58), icmp6_types({133, 135, 136})}, accept(), "ndp"));
  chain(t, "host-out");
  b.add_rules(t.chains["host-out"], host_rules, Direction::Out, scope);
  chain(t, "cluster-out");
  b.add_rules(t.chains["cluster-out"], cluster.rules, Direction::Out, scope);
  output.rules.push_back(rule({}, jump("host-out")));
  output.rules.push_back(rule({}, jump("cluster-out")));
  add_policy(b, output, 0, cluster.options.policy_out, host.log_level_out, Direction::Out);

  // Forward (routed traffic).
  ct_rules(fwd);
  chain(t, "host-fwd");
  b.add_rules(t.chains["host-fwd"], host_rules, Direction::Forward, scope);
  chain(t, "cluster-fwd");
  b.add_rules(t.chains["cluster-fwd"], cluster.rules, Direction::Forward, scope);
  fwd.rules.push_back(rule({}, jump("host-fwd")));
  fwd.rules.push_back(rule({}, jump("cluster-fwd")));
  add_policy(b, fwd, 0, cluster.options.policy_forward, host.log_level_forward, Direction::Forward);
}

// ---- guest tables ----

// Port sets of a shard table: which firewalled guest devices have which option. The
// dispatch base chains apply these behaviours by set membership, so guest chains hold only
// the guest's own rules: fewer rules for every commit to validate and every packet to walk.
struct PortSets {
  static constexpr const char* kAll = "fw-ports";
  static constexpr const char* kDhcpOn = "dhcp-on";
  static constexpr const char* kDhcpOff = "dhcp-off";
  static constexpr const char* kNdpOn = "ndp-on";
  static constexpr const char* kNdpOff = "ndp-off";
  static constexpr const char* kRadvOn = "radv-on";
  static constexpr const char* kRadvOff = "radv-off";
  static constexpr const char* kIpfilter = "ipfilter-ports";
};

Match port_in(Field f, const char* set) { return Match{{f}, Match::Op::In, {}, set, 0}; }

// The stateful shortcut: established/related accepted, invalid dropped.
std::vector<nft::Rule> conntrack_rules(GuestStrategy strategy, bool allow_invalid, Field port) {
  std::vector<nft::Rule> out;
  bool brnf = strategy == GuestStrategy::BrNetfilter;
  out.push_back(rule({brnf ? bits_any(Field::Mark, names::kMarkEstablished)
                           : bits_any(Field::CtState, nft::kCtEstablished | nft::kCtRelated)},
                     accept()));
  if (!allow_invalid)
    out.push_back(
        rule({port_in(port, PortSets::kAll), brnf ? bits_any(Field::Mark, names::kMarkInvalid)
                                                  : bits_any(Field::CtState, nft::kCtInvalid)},
             drop(), "conntrack invalid"));
  return out;
}

// Neighbour discovery and (OUT) router advertisements: accepted or dropped by option. `sets`
// are the on/off port sets for ndp and radv; each rule starts with its port-set match.
std::vector<nft::Rule> ndp_rules(TableBuilder& b, bool is_out, std::array<const char*, 4> sets) {
  Field port = is_out ? Field::Iifname : Field::Oifname;
  Match v6 = b.family_match(6);
  std::vector<nft::Rule> out;
  std::vector<uint8_t> types =
      is_out ? std::vector<uint8_t>{133, 135, 136} : std::vector<uint8_t>{134, 135, 136};
  for (auto [set, verdict] : {std::pair{sets[0], accept()}, {sets[1], drop()}})
    out.push_back(rule({port_in(port, set), v6, l4(58), icmp6_types(types)}, verdict, "ndp"));
  if (is_out)
    for (auto [set, verdict] : {std::pair{sets[2], accept()}, {sets[3], drop()}})
      out.push_back(rule({port_in(port, set), v6, l4(58), icmp6_types({134})}, verdict, "radv"));
  return out;
}

// DHCP, NDP and router advertisements by option, for traffic from (OUT) or to (IN) a port.
void add_option_rules(TableBuilder& b, nft::Chain& c, bool is_out) {
  Field port = is_out ? Field::Iifname : Field::Oifname;
  Match v4 = b.family_match(4), v6 = b.family_match(6);
  uint16_t c4 = is_out ? 68 : 67, s4 = is_out ? 67 : 68, c6 = is_out ? 546 : 547,
           s6 = is_out ? 547 : 546;
  for (auto [set, verdict] :
       {std::pair{PortSets::kDhcpOn, accept()}, {PortSets::kDhcpOff, drop()}}) {
    c.rules.push_back(rule({port_in(port, set), v4, l4(17), eq(Field::Sport, nft::be16(c4)),
                            eq(Field::Dport, nft::be16(s4))},
                           verdict, "dhcp"));
    c.rules.push_back(rule({port_in(port, set), v6, l4(17), eq(Field::Sport, nft::be16(c6)),
                            eq(Field::Dport, nft::be16(s6))},
                           verdict, "dhcp"));
  }
  // NDP from a port with anti-spoofing is decided in its guest chain, after the check.
  std::vector<Match> unfiltered;
  if (is_out) unfiltered.push_back(Match{{port}, Match::Op::NotIn, {}, PortSets::kIpfilter, 0});
  for (auto& r :
       ndp_rules(b, is_out,
                 {PortSets::kNdpOn, PortSets::kNdpOff, PortSets::kRadvOn, PortSets::kRadvOff})) {
    r.matches.insert(r.matches.begin() + 1, unfiltered.begin(), unfiltered.end());
    c.rules.push_back(std::move(r));
  }
}

void ensure_guest_skeleton(TableBuilder& b, const FirewallConfig& config, GuestStrategy strategy,
                           bool allow_invalid) {
  nft::Table& t = b.table();
  if (t.chains.contains("out")) return;
  bool brnf = strategy == GuestStrategy::BrNetfilter;
  for (const char* name : {names::kOutPorts, names::kInPorts}) {
    nft::Set& m = t.sets[name];
    m.name = name;
    m.kind = nft::Set::Kind::Vmap;
    m.key = {std::string(name) == names::kOutPorts ? Field::Iifname : Field::Oifname};
  }
  for (const char* name :
       {PortSets::kAll, PortSets::kDhcpOn, PortSets::kDhcpOff, PortSets::kNdpOn, PortSets::kNdpOff,
        PortSets::kRadvOn, PortSets::kRadvOff, PortSets::kIpfilter, names::kMacfilterPorts}) {
    nft::Set& set = t.sets[name];
    set.name = name;
    set.key = {Field::Iifname};
  }
  nft::Set& macs = t.sets[names::kMacSet];
  macs.name = names::kMacSet;
  macs.key = {Field::Iifname, Field::EtherSaddr};
  Match arp = eq(Field::Protocol, nft::be16(0x0806));

  // OUT: traffic from a guest port, at bridge prerouting after br_netfilter's conntrack.
  nft::Chain& out =
      chain(t, "out", nft::BaseChain{nft::Hook::Prerouting, names::kGuestOutPriority, false});
  out.rules = conntrack_rules(strategy, allow_invalid, Field::Iifname);
  // Every shard's dispatch sees every bridged packet: others' ports leave after one lookup.
  out.rules.push_back(
      rule({Match{{Field::Iifname}, Match::Op::NotIn, {}, PortSets::kAll, 0}}, accept()));
  Match filtered = port_in(Field::Iifname, names::kMacfilterPorts);
  out.rules.push_back(
      rule({filtered,
            Match{{Field::Iifname, Field::EtherSaddr}, Match::Op::NotIn, {}, names::kMacSet, 0}},
           drop(), "macfilter"));
  out.rules.push_back(
      rule({filtered, arp,
            Match{{Field::Iifname, Field::ArpSha}, Match::Op::NotIn, {}, names::kMacSet, 0}},
           drop(), "macfilter"));
  add_option_rules(b, out, true);
  nft::Rule to_guest;
  to_guest.vmap_fields = {Field::Iifname};
  to_guest.vmap = names::kOutPorts;
  out.rules.push_back(to_guest);

  // IN: traffic to a guest port; bridged (forward, before br_netfilter's inet forward) and
  // from the host (output).
  auto in_rules = [&](bool forwarded) {
    std::vector<nft::Rule> rules = conntrack_rules(strategy, allow_invalid, Field::Oifname);
    if (brnf && forwarded)
      // A guest OUT rule already rejected it: the inet hook answers, the receiver's IN rules
      // must not turn the REJECT into their DROP.
      rules.push_back(rule({bits_any(Field::Mark, names::kMarkReject)}, accept()));
    rules.push_back(
        rule({Match{{Field::Oifname}, Match::Op::NotIn, {}, PortSets::kAll, 0}}, accept()));
    rules.push_back(rule({arp}, accept()));
    for (auto& r : blacklist_rules(b, config)) rules.push_back(std::move(r));
    nft::Chain scratch;
    add_option_rules(b, scratch, false);
    for (auto& r : scratch.rules) rules.push_back(std::move(r));
    nft::Rule r;
    r.vmap_fields = {Field::Oifname};
    r.vmap = names::kInPorts;
    rules.push_back(r);
    return rules;
  };
  chain(t, "in", nft::BaseChain{nft::Hook::Forward, names::kGuestInPriority, false}).rules =
      in_rules(true);
  chain(t, "in-local", nft::BaseChain{nft::Hook::Output, names::kGuestLocalPriority, false}).rules =
      in_rules(false);

  nft::Chain& rej = chain(t, names::kDoReject);
  if (brnf) {
    // No bridge-family reject here: mark the IP packet and let the inet forward/input chain
    // answer it; host-originated packets (bridge output) are dropped by "in-local-reject".
    rej.rules = detail::deferred_reject_rules();
    chain(t, "in-local-reject",
          nft::BaseChain{nft::Hook::Output, names::kGuestLocalPriority + 10, false})
        .rules = {rule({bits_any(Field::Mark, names::kMarkReject)}, drop())};
  } else {
    rej.rules = {rule({l4(6)}, {VerdictCode::RejectTcpReset, {}}),
                 rule({}, {VerdictCode::RejectPortUnreach, {}})};
  }
}

// Adds one guest: its two chains, its ports in the dispatch maps and option sets, its MACs,
// and its ipfilter sets.
void build_guest(TableBuilder& b, const FirewallConfig& config, const Guest& guest,
                 const CompileOptions& options, bool allow_invalid) {
  nft::Table& t = b.table();
  const GuestFw& fw = *guest.fw;
  const GuestOptions& o = fw.options;
  ensure_guest_skeleton(b, config, options.strategy, allow_invalid);
  Scope scope{&guest};
  std::string out_name = names::guest_chain(guest.vmid, Direction::Out);
  std::string in_name = names::guest_chain(guest.vmid, Direction::In);
  nft::Chain& out = chain(t, out_name);
  nft::Chain& in = chain(t, in_name);
  Match arp = eq(Field::Protocol, nft::be16(0x0806));
  for (const auto& [index, nic] : guest.nics) {
    if (!nic.firewall) continue;
    auto dev = nft::single(nft::ifname_bytes(names::guest_device(guest, index)));
    auto add = [&](const char* set) { t.sets[set].elements.push_back({{dev}, {}, 0}); };
    t.sets[names::kOutPorts].elements.push_back({{dev}, go(out_name), 0});
    t.sets[names::kInPorts].elements.push_back({{dev}, go(in_name), 0});
    add(PortSets::kAll);
    add(o.dhcp ? PortSets::kDhcpOn : PortSets::kDhcpOff);
    add(o.ndp ? PortSets::kNdpOn : PortSets::kNdpOff);
    add(o.radv ? PortSets::kRadvOn : PortSets::kRadvOff);
    if (o.macfilter && !nic.mac.empty()) {
      add(names::kMacfilterPorts);
      t.sets[names::kMacSet].elements.push_back({{dev, nft::single(mac_bytes(nic.mac))}, {}, 0});
    }
    // Anti-spoofing. It follows the DHCP rules of the dispatch chain: a DHCP client has no
    // address yet.
    auto filtered = detail::ipfilter_sets(b, guest, index, nic);
    if (!filtered) continue;
    auto& sets = *filtered;
    std::string origin = "ipfilter net" + std::to_string(index);
    Match from_dev = b.iface_match(names::guest_device(guest, index), false);
    add(PortSets::kIpfilter);
    for (auto [family, name] : sets) {
      Field f = family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr;
      out.rules.push_back(
          rule({from_dev, b.family_match(family), Match{{f}, Match::Op::NotIn, {}, name, 0}},
               drop(), origin));
      if (family == 4)
        out.rules.push_back(
            rule({from_dev, arp, Match{{Field::ArpSip}, Match::Op::NotIn, {}, name, 0}}, drop(),
                 origin));
    }
    // This port's NDP and router advertisements, now that its source is known to be its own.
    for (auto& r :
         ndp_rules(b, true,
                   {PortSets::kNdpOn, PortSets::kNdpOff, PortSets::kRadvOn, PortSets::kRadvOff})) {
      r.matches.front() = from_dev;
      bool on = r.origin == "ndp" ? o.ndp : o.radv;
      if ((r.verdict.code == VerdictCode::Accept) == on) out.rules.push_back(std::move(r));
    }
  }
  out.rules.push_back(rule({arp}, accept()));
  b.add_rules(out, fw.rules, Direction::Out, scope);
  b.add_rules(in, fw.rules, Direction::In, scope);
  add_policy(b, out, guest.vmid, o.policy_out, o.log_level_out, Direction::Out);
  add_policy(b, in, guest.vmid, o.policy_in, o.log_level_in, Direction::In);
}

}  // namespace

namespace {

bool has_firewalled_nic(const Guest& g) {
  if (!g.fw || !g.fw->options.enable) return false;
  for (const auto& [_, nic] : g.nics)
    if (nic.firewall) return true;
  return false;
}

}  // namespace

int resolve_shards(const FirewallConfig& config, int requested, GuestLayout layout) {
  if (requested > 0) return requested;
  int guests = 0;
  for (const auto& [_, g] : config.guests) guests += has_firewalled_nic(g);
  if (layout == GuestLayout::Netdev)
    return std::clamp((guests + kGuestsPerNetdevTable - 1) / kGuestsPerNetdevTable, 1, 256);
  return std::clamp((guests + kGuestsPerShard - 1) / kGuestsPerShard, 1, 32);
}

namespace {

// The Linux bridges that bridge the NIC's frames and need a bridged pair: its own, or the one
// its firewall bridge joins (OVS runs no hooks). Firewall bridges have one wildcard rule instead
// (build_host()).
std::vector<std::string> bridged_by(const GuestNic& nic) {
  std::vector<std::string> out;
  if (!nic.bridge.empty() && nic.uplink.empty()) out.push_back(nic.bridge);
  if (!nic.uplink.empty() && !nic.uplink_ovs) out.push_back(nic.uplink);
  return out;
}

// One guest in the netdev layout: its chains in its table `b`, and, when its OUT rules log,
// the deferred OUT chain in the verdicts table.
void build_netdev_guest(CompileResult& result, TableBuilder& b, const FirewallConfig& config,
                        const Guest& guest, const CompileOptions& options, bool allow_invalid) {
  detail::build_guest_netdev(b, config, guest, allow_invalid);
  if (detail::defers(b.table(), names::guest_chain(guest.vmid, Direction::Out))) {
    nft::Table& v = result.ruleset.table(nft::Family::Bridge, names::kVerdictTable);
    detail::build_verdicts(v, config);
    TableBuilder vb(v, options, config, result.warnings);
    detail::build_deferred_out(vb, config, guest);
  }
  for (const auto& [_, nic] : guest.nics)
    if (detail::answered_at_reject_port(config, nic))
      result.reject_port_bridges.insert(detail::reject_bridge(config, nic));
}

}  // namespace

const char* to_string(GuestLayout l) { return l == GuestLayout::Bridge ? "bridge" : "netdev"; }

std::optional<GuestLayout> parse_guest_layout(std::string_view text) {
  if (text == "bridge") return GuestLayout::Bridge;
  if (text == "netdev") return GuestLayout::Netdev;
  return std::nullopt;
}

Result<CompileResult> compile(const FirewallConfig& config, const CompileOptions& requested) {
  CompileResult result;
  if (requested.shards < 0 || requested.shards > 256)
    return fail(ErrorCode::InvalidArgument, "shards must be 0 (automatic) or 1..256");
  CompileOptions options = requested;
  options.shards = resolve_shards(config, requested.shards, requested.layout);
  result.shards = options.shards;
  if (!detail::cluster_enabled(config, options.now)) return result;  // the firewall is off

  bool allow_invalid = config.host && config.host->options.nf_conntrack_allow_invalid;
  std::set<std::string> bridges;  // every guest bridge: their traffic is the guests' business
  bool guest_nics = false;
  for (const auto& [_, guest] : config.guests)
    for (const auto& [_, nic] : guest.nics) {
      guest_nics = guest_nics || !nic.bridge.empty();
      for (const std::string& bridge : bridged_by(nic)) bridges.insert(bridge);
    }
  bool netdev = options.layout == GuestLayout::Netdev;
  for (const auto& [vmid, guest] : config.guests) {
    if (!has_firewalled_nic(guest)) continue;
    int shard = static_cast<int>(vmid % static_cast<uint32_t>(options.shards));
    nft::Table& t = result.ruleset.table(netdev ? nft::Family::Netdev : nft::Family::Bridge,
                                         names::guest_table(shard));
    TableBuilder b(t, options, config, result.warnings);
    if (!netdev) {
      build_guest(b, config, guest, options, allow_invalid);
      continue;
    }
    build_netdev_guest(result, b, config, guest, options, allow_invalid);
  }
  // The bridges of firewalled NICs that need more than a plain Linux bridge: VLAN-aware ones,
  // each with its first such NIC, and firewall bridges in front of OVS, with their NIC's MAC.
  std::map<std::string, const GuestNic*> vlan_aware;
  std::map<std::string, nft::Bytes> before_ovs;  // firewall bridges joining OVS, their NIC's MAC
  const GuestNic* first_before_linux = nullptr;  // on a firewall bridge joining a Linux bridge
  for (const auto& [_, guest] : config.guests)
    for (const auto& [_, nic] : guest.nics) {
      if (!nic.firewall) continue;
      if (config.vlan_aware_bridges.contains(nic.bridge)) vlan_aware.emplace(nic.bridge, &nic);
      if (!has_firewalled_nic(guest) || nic.uplink.empty() || nic.mac.empty()) continue;
      if (nic.uplink_ovs) before_ovs[nic.bridge] = mac_bytes(nic.mac);
      if (!nic.uplink_ovs && !first_before_linux) first_before_linux = &nic;
    }
  if (!netdev && first_before_linux && !result.ruleset.tables.empty())
    result.warnings.push_back(
        first_before_linux->where.to_string() + ": " + first_before_linux->bridge + " joins " +
        first_before_linux->uplink +
        ": the bridge layout does not answer the REJECTs of guests on firewall bridges in front "
        "of a Linux bridge reliably (the netdev layout does)");
  if (netdev && !result.ruleset.tables.empty()) {
    for (const auto& [bridge, nic] : vlan_aware)
      result.warnings.push_back(nic->where.to_string() + ": " + bridge +
                                " is VLAN-aware: REJECTs of its guests' traffic drop (no answers "
                                "in a guest's VLAN yet)");
    for (auto& [_, t] : result.ruleset.tables)
      if (t.family == nft::Family::Netdev) detail::finish_netdev_table(t);
    detail::build_reject_answers(result.ruleset.table(nft::Family::Netdev, names::kRejectTable),
                                 result.reject_port_bridges, before_ovs);
    // Kernel-made answers (TCP resets, ICMP errors) carry the mark of what they answer, so the
    // reset inet's do-reject sends straight out of a guest's port passes its IN chain.
    result.sysctls["net/ipv4/fwmark_reflect"] = "1";
    result.sysctls["net/ipv6/fwmark_reflect"] = "1";
  }
  bool host_enabled = !config.host || config.host->options.enable;
  if (config.host) {
    const HostOptions& h = config.host->options;
    if (h.nf_conntrack_max) {
      result.sysctls["net/netfilter/nf_conntrack_max"] = std::to_string(*h.nf_conntrack_max);
      result.sysctls["net/netfilter/nf_conntrack_buckets"] =
          std::to_string(*h.nf_conntrack_max / 4);
    }
    if (h.nf_conntrack_tcp_timeout_established)
      result.sysctls["net/netfilter/nf_conntrack_tcp_timeout_established"] =
          std::to_string(*h.nf_conntrack_tcp_timeout_established);
    if (h.nf_conntrack_tcp_timeout_syn_recv)
      result.sysctls["net/netfilter/nf_conntrack_tcp_timeout_syn_recv"] =
          std::to_string(*h.nf_conntrack_tcp_timeout_syn_recv);
    if (h.log_nf_conntrack)
      result.warnings.push_back(config.host->file +
                                ": log_nf_conntrack is not applied (conntrack event logging)");
  }
  bool guests_present = !result.ruleset.tables.empty();
  bool vnets_present = std::any_of(config.vnets.begin(), config.vnets.end(),
                                   [](const auto& v) { return v.second.options.enable; });
  result.needs_bridge_netfilter =
      (options.strategy == GuestStrategy::BrNetfilter && (guests_present || vnets_present)) ||
      (netdev && guests_present);
  // A VLAN-aware bridge gives every frame its VLAN's tag once past its prerouting hooks, and
  // br_netfilter runs the inet forward and postrouting hooks for tagged frames only with this:
  // without it conntrack never confirms a guest's connection there (every packet is new).
  if (result.needs_bridge_netfilter && !vlan_aware.empty())
    result.sysctls["net/bridge/bridge-nf-filter-vlan-tagged"] = "1";
  if (host_enabled || guests_present || vnets_present) {
    nft::Table& t = result.ruleset.table(nft::Family::Inet, names::kHostTable);
    TableBuilder b(t, options, config, result.warnings);
    build_host(b, HostInputs{config, options, host_enabled, guests_present, bridges, guest_nics});
  }
  // The same skipped rule is reported once, not once per direction it was compiled for.
  std::set<std::string> seen;
  std::erase_if(result.warnings, [&](const std::string& w) { return !seen.insert(w).second; });
  for (auto& [_, t] : result.ruleset.tables) {
    detail::intern_value_sets(t, {}, nullptr);
    for (auto& [_, s] : t.sets) std::sort(s.elements.begin(), s.elements.end());
  }
  return result;
}

std::set<std::string> reject_port_bridges(const nft::Ruleset& ruleset) {
  std::set<std::string> out;
  auto r = ruleset.tables.find(nft::table_key(nft::Family::Netdev, names::kRejectTable));
  if (r == ruleset.tables.end()) return out;
  const std::string answer = names::kAnswerChainPrefix;
  for (auto c = r->second.chains.lower_bound(answer);
       c != r->second.chains.end() && c->first.starts_with(answer); ++c)
    out.insert(c->first.substr(answer.size()));
  return out;
}

namespace {

bool any_guest_table(const nft::Ruleset& rs) {
  for (const auto& [_, t] : rs.tables)
    if (t.name.starts_with("moat-guests-")) return true;
  return false;
}

std::vector<nft::ObjectRef> all_objects(const nft::Ruleset& rs) {
  std::vector<nft::ObjectRef> out;
  for (const auto& [key, t] : rs.tables) {
    for (const auto& [name, _] : t.chains) out.push_back({key, false, name});
    for (const auto& [name, _] : t.sets) out.push_back({key, true, name});
  }
  return out;
}

}  // namespace

namespace {

// The chains and sets a chain's rules name (jump/goto targets, looked-up sets, verdict maps,
// updated sets), added to `chains` and `sets`.
void references(const nft::Chain& c, std::set<std::string>& chains, std::set<std::string>& sets) {
  for (const auto& r : c.rules) {
    for (const auto& m : r.matches)
      if (!m.set.empty()) sets.insert(m.set);
    if (!r.vmap.empty()) sets.insert(r.vmap);
    if (r.update) sets.insert(r.update->set);
    if (!r.verdict.chain.empty()) chains.insert(r.verdict.chain);
  }
}

// The chains of a bridge's reject port in `netdev moat-reject` (build_reject_answers()).
constexpr const char* kRejectPortChains[] = {names::kAnswerChainPrefix, names::kMarkChainPrefix,
                                             names::kUntrackChainPrefix};

// Adds the reject port chains of the bridges answering the guest's NICs that have none yet (new
// to the node): the caller makes their ports (reject_port_bridges()).
void add_reject_answers(nft::Ruleset& rs, const FirewallConfig& config, const Guest& guest,
                        std::vector<nft::ObjectRef>& touched) {
  nft::Table& t = rs.table(nft::Family::Netdev, names::kRejectTable);
  std::set<std::string> bridges;
  std::map<std::string, nft::Bytes> before_ovs;
  for (const auto& [_, nic] : guest.nics) {
    if (!detail::answered_at_reject_port(config, nic)) continue;
    const std::string& bridge = detail::reject_bridge(config, nic);
    if (t.chains.contains(names::kAnswerChainPrefix + bridge)) continue;
    bridges.insert(bridge);
    if (!nic.uplink.empty() && nic.uplink_ovs) before_ovs[bridge] = mac_bytes(nic.mac);
  }
  detail::build_reject_answers(t, bridges, before_ovs);
  std::string key = nft::table_key(t.family, t.name);
  for (const auto& bridge : bridges)
    for (const char* kind : kRejectPortChains)
      if (t.chains.contains(kind + bridge)) touched.push_back({key, false, kind + bridge});
}

// Removes the reject port chains of the bridges among `bridges` on which no guest's NIC is
// answered any more (no guest table's reject-<bridge> set has an element), as a full compile
// would not make them. The look is per guest table, not per guest.
void drop_unanswered_bridges(nft::Ruleset& rs, const std::set<std::string>& bridges,
                             std::vector<nft::ObjectRef>& touched) {
  std::string key = nft::table_key(nft::Family::Netdev, names::kRejectTable);
  auto r = rs.tables.find(key);
  if (r == rs.tables.end()) return;
  for (const auto& bridge : bridges) {
    bool answered = std::any_of(rs.tables.begin(), rs.tables.end(), [&](const auto& entry) {
      const nft::Table& t = entry.second;
      auto s = t.sets.find(names::kRejectSetPrefix + bridge);
      return t.family == nft::Family::Netdev && s != t.sets.end() && !s->second.elements.empty();
    });
    if (answered) continue;
    for (const char* kind : kRejectPortChains)
      if (r->second.chains.erase(kind + bridge)) touched.push_back({key, false, kind + bridge});
  }
}

// Removes from `t` the shared chains and sets among `chains`/`sets` (what a recompiled guest
// used before and no longer does: security groups, cluster ipsets, constant sets) that no
// other chain or verdict map of the table names any more, and what only those used, marking
// each touched. Scans the table only when a guest dropped a reference, which is rare.
void drop_unused(nft::Table& t, const std::string& key, std::set<std::string> chains,
                 std::set<std::string> sets, std::vector<nft::ObjectRef>& touched) {
  for (;;) {
    // do-reject (and a netdev table's verdict recorders) are part of every shard, as
    // compile() makes them, used or not.
    std::erase_if(chains, [&](const std::string& name) {
      auto it = t.chains.find(name);
      return it == t.chains.end() || it->second.base || name == names::kDoReject ||
             name.starts_with("rec-");
    });
    std::erase_if(sets, [&](const std::string& name) { return !t.sets.contains(name); });
    if (chains.empty() && sets.empty()) return;
    std::set<std::string> used_chains, used_sets;
    for (const auto& [name, c] : t.chains)
      if (!chains.contains(name)) references(c, used_chains, used_sets);
    for (const auto& [name, set] : t.sets)
      if (set.kind == nft::Set::Kind::Vmap && !sets.contains(name))
        for (const auto& e : set.elements) used_chains.insert(e.verdict.chain);
    std::set<std::string> next_chains, next_sets;
    for (const auto& name : chains) {
      if (used_chains.contains(name)) continue;
      auto it = t.chains.find(name);
      references(it->second, next_chains, next_sets);
      t.chains.erase(it);
      touched.push_back({key, false, name});
    }
    for (const auto& name : sets) {
      if (used_sets.contains(name)) continue;
      t.sets.erase(name);
      touched.push_back({key, true, name});
    }
    chains = std::move(next_chains);
    sets = std::move(next_sets);
  }
}

}  // namespace

namespace {

// What a guest has in table `t` (`key`), removed for its recompile: its chains, its ipsets,
// its ports' elements of port-keyed sets and verdict maps. The chains and sets its chains
// named are added to `chains`/`sets` (shared objects that may now be unused).
void erase_guest(nft::Table& t, const std::string& key, uint32_t vmid,
                 std::vector<nft::ObjectRef>& touched, std::set<std::string>& chains,
                 std::set<std::string>& sets) {
  std::string own[] = {names::guest_chain(vmid, Direction::Out),
                       names::guest_chain(vmid, Direction::In)};
  for (const auto& name : own) {
    if (auto c = t.chains.find(name); c != t.chains.end()) {
      references(c->second, chains, sets);
      t.chains.erase(c);
      touched.push_back({key, false, name});
    }
  }
  for (int family : {4, 6}) {
    std::string prefix = names::ipset(family, "guest", vmid, "");
    for (auto s = t.sets.lower_bound(prefix); s != t.sets.end() && s->first.starts_with(prefix);) {
      touched.push_back({key, true, s->first});
      s = t.sets.erase(s);
    }
  }
  // Sets keyed by a device (first key field an interface name) may hold this guest's
  // elements: the port option sets, the MAC filter, the reject sets.
  std::string tap = "tap" + std::to_string(vmid) + "i", veth = "veth" + std::to_string(vmid) + "i";
  for (auto& [name, set] : t.sets) {
    if (set.key.empty() || (set.key[0] != Field::Iifname && set.key[0] != Field::Oifname)) continue;
    size_t before = set.elements.size();
    std::erase_if(set.elements, [&](const nft::SetElement& e) {
      if (set.kind == nft::Set::Kind::Vmap)
        return e.verdict.chain == own[0] || e.verdict.chain == own[1];
      const char* p = reinterpret_cast<const char*>(e.key[0].lo.data());
      std::string_view dev(p, strnlen(p, e.key[0].lo.size()));
      return dev.starts_with(tap) || dev.starts_with(veth);
    });
    if (set.elements.size() != before) touched.push_back({key, true, name});
  }
}

bool has_guest_chains(const nft::Table& t) {
  auto it = t.chains.lower_bound("guest-");
  return it != t.chains.end() && it->first.starts_with("guest-");
}

}  // namespace

Result<std::vector<nft::ObjectRef>> recompile_guest(nft::Ruleset& ruleset,
                                                    const FirewallConfig& config, uint32_t vmid,
                                                    const CompileOptions& options,
                                                    std::vector<std::string>& warnings) {
  if (options.shards < 1)
    return fail(ErrorCode::InvalidArgument, "recompile_guest needs the shard count compile() used");
  auto git = config.guests.find(vmid);
  bool wanted = git != config.guests.end() && has_firewalled_nic(git->second);
  bool netdev = options.layout == GuestLayout::Netdev;
  std::string shard =
      names::guest_table(static_cast<int>(vmid % static_cast<uint32_t>(options.shards)));
  nft::Family family = netdev ? nft::Family::Netdev : nft::Family::Bridge;
  std::string key = nft::table_key(family, shard);
  std::string vkey = nft::table_key(nft::Family::Bridge, names::kVerdictTable);
  auto full = [&]() -> Result<std::vector<nft::ObjectRef>> {
    // The host table depends on whether any guest is firewalled: recompile everything.
    auto before = all_objects(ruleset);
    auto result = MOAT_TRY(compile(config, options));
    ruleset = std::move(result.ruleset);
    warnings = std::move(result.warnings);
    auto after = all_objects(ruleset);
    before.insert(before.end(), after.begin(), after.end());
    std::sort(before.begin(), before.end());
    before.erase(std::unique(before.begin(), before.end()), before.end());
    return before;
  };
  if (!detail::cluster_enabled(config, options.now) || !any_guest_table(ruleset)) return full();
  std::vector<std::string> keys = {key};
  if (netdev) keys.push_back(vkey);

  std::vector<nft::ObjectRef> touched;
  std::map<std::string, std::pair<std::set<std::string>, std::set<std::string>>> old_refs;
  // Port-keyed sets and maps: sorted again and touched when the guest changed their size.
  std::map<std::pair<std::string, std::string>, size_t> sizes;
  auto port_keyed = [](const nft::Set& set) {
    return !set.key.empty() && (set.key[0] == Field::Iifname || set.key[0] == Field::Oifname);
  };
  std::optional<nft::Chain> old_reject;
  for (const auto& k : keys) {
    auto it = ruleset.tables.find(k);
    if (it == ruleset.tables.end()) continue;
    nft::Table& t = it->second;
    erase_guest(t, k, vmid, touched, old_refs[k].first, old_refs[k].second);
    for (const auto& [name, set] : t.sets)
      if (port_keyed(set)) sizes[{k, name}] = set.elements.size();
    if (k == key && netdev) old_reject = t.chains[names::kDoReject];
  }
  if (auto it = ruleset.tables.find(key);
      it != ruleset.tables.end() && !has_guest_chains(it->second)) {
    ruleset.tables.erase(it);  // the shard's last guest left: the table goes
    if (!any_guest_table(ruleset)) return full();
    old_reject.reset();
  }
  // Tables this recompile makes (a new shard; the verdicts table for the first guest whose
  // OUT rules log): all of them is new.
  std::set<std::string> fresh;
  for (const auto& k : keys)
    if (wanted && !ruleset.tables.contains(k)) fresh.insert(k);
  for (auto dir : {Direction::Out, Direction::In})
    touched.push_back({key, false, names::guest_chain(vmid, dir)});
  if (wanted) {
    const Guest& guest = git->second;
    nft::Table& t = ruleset.table(family, shard);
    bool allow_invalid = config.host && config.host->options.nf_conntrack_allow_invalid;
    TableBuilder b(t, options, config, warnings);
    b.track(&touched);
    if (!netdev) {
      build_guest(b, config, guest, options, allow_invalid);
    } else {
      detail::build_guest_netdev(b, config, guest, allow_invalid);
      add_reject_answers(ruleset, config, guest, touched);
      if (detail::defers(t, names::guest_chain(vmid, Direction::Out))) {
        nft::Table& v = ruleset.table(nft::Family::Bridge, names::kVerdictTable);
        detail::build_verdicts(v, config);  // the first guest to defer makes the table
        TableBuilder vb(v, options, config, warnings);
        vb.track(&touched);
        detail::build_deferred_out(vb, config, guest);
        touched.push_back({vkey, false, names::guest_chain(vmid, Direction::Out)});
      }
    }
    // A bridge new to the node joins the host table's set of bridged pairs.
    std::string host_key = nft::table_key(nft::Family::Inet, names::kHostTable);
    auto h = ruleset.tables.find(host_key);
    if (h != ruleset.tables.end() && h->second.sets.contains(names::kBridgedPairs)) {
      auto& pairs = h->second.sets.at(names::kBridgedPairs);
      for (const auto& [_, nic] : guest.nics)
        for (const std::string& bridge : bridged_by(nic)) {
          auto k = nft::ifname_bytes(bridge);
          nft::SetElement e{{nft::single(k), nft::single(k)}, {}, 0};
          if (std::binary_search(pairs.elements.begin(), pairs.elements.end(), e)) continue;
          pairs.elements.insert(std::lower_bound(pairs.elements.begin(), pairs.elements.end(), e),
                                e);
          touched.push_back({host_key, true, names::kBridgedPairs});
        }
    }
  }
  if (auto v = ruleset.tables.find(vkey); netdev && v != ruleset.tables.end()) {
    // The last guest whose OUT rules log is gone: so is the verdicts table.
    auto deferred = v->second.sets.find(names::kOutDeferred);
    if (deferred == v->second.sets.end() || deferred->second.elements.empty()) {
      ruleset.tables.erase(v);
      touched.push_back({vkey, false, "out"});
    }
  }
  for (const auto& k : fresh) {
    auto it = ruleset.tables.find(k);
    if (it == ruleset.tables.end()) continue;
    for (const auto& [name, _] : it->second.chains) touched.push_back({k, false, name});
    for (const auto& [name, _] : it->second.sets) touched.push_back({k, true, name});
  }
  for (const auto& k : keys) {
    auto it = ruleset.tables.find(k);
    if (it == ruleset.tables.end()) continue;
    nft::Table& t = it->second;
    if (netdev && k == key) {
      detail::finish_netdev_table(t);
      if (!old_reject || *old_reject != t.chains.at(names::kDoReject))
        touched.push_back({k, false, names::kDoReject});
    }
    std::vector<std::string> chains;
    bool made = fresh.contains(k);
    if (!made)
      for (const auto& ref : touched)
        if (!ref.is_set && ref.table == k && t.chains.contains(ref.name))
          chains.push_back(ref.name);
    if (!chains.empty() || made) detail::intern_value_sets(t, chains, &touched);
    for (auto& [name, set] : t.sets) {
      if (!port_keyed(set)) continue;
      auto before = sizes.find({k, name});
      if (before != sizes.end() && before->second == set.elements.size()) continue;
      std::sort(set.elements.begin(), set.elements.end());
      touched.push_back({k, true, name});
    }
  }
  if (netdev) {
    // The bridges whose reject set the guest was in: their reject port goes with the last NIC.
    std::set<std::string> left;
    for (const auto& ref : touched)
      if (ref.is_set && ref.table == key && ref.name.starts_with(names::kRejectSetPrefix))
        left.insert(ref.name.substr(std::strlen(names::kRejectSetPrefix)));
    drop_unanswered_bridges(ruleset, left, touched);
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  // Shared objects only this guest used before go too, as a full compile would not make them.
  for (const auto& k : keys) {
    auto it = ruleset.tables.find(k);
    if (it == ruleset.tables.end()) continue;
    auto& [old_chains, old_sets] = old_refs[k];
    std::set<std::string> new_chains, new_sets;
    for (const auto& name :
         {names::guest_chain(vmid, Direction::Out), names::guest_chain(vmid, Direction::In)})
      if (auto c = it->second.chains.find(name); c != it->second.chains.end())
        references(c->second, new_chains, new_sets);
    std::erase_if(old_chains, [&](const std::string& n) { return new_chains.contains(n); });
    std::erase_if(old_sets, [&](const std::string& n) { return new_sets.contains(n); });
    drop_unused(it->second, k, std::move(old_chains), std::move(old_sets), touched);
  }
  return touched;
}

}  // namespace moat::firewall
