// compile(): the host table (inet) and the guest tables (bridge, sharded by VMID).
#include "moat/firewall/compiler.h"

#include <algorithm>
#include <cstring>

#include "compile_internal.h"
#include "moat/firewall/names.h"

namespace moat::firewall {

const char* to_string(GuestStrategy s) {
  return s == GuestStrategy::BrNetfilter ? "br_netfilter" : "bridge-conntrack";
}

namespace {

using detail::Scope;
using detail::TableBuilder;
using nft::Field;
using nft::Match;
using nft::VerdictCode;

Match eq(Field f, nft::Bytes v) { return Match{{f}, Match::Op::Eq, {nft::single(std::move(v))}, {}, 0}; }
Match in_values(Field f, std::vector<nft::Bytes> values) {
  Match m{{f}, Match::Op::In, {}, {}, 0};
  for (auto& v : values) m.values.push_back(nft::single(std::move(v)));
  return m;
}
Match bits_any(Field f, uint32_t mask) { return Match{{f}, Match::Op::BitsAny, {}, {}, mask}; }
Match l4(uint8_t proto) { return eq(Field::L4proto, nft::u8(proto)); }
Match icmp6_types(std::vector<uint8_t> types) {
  std::vector<nft::Bytes> v;
  for (auto t : types) v.push_back(nft::u8(t));
  return v.size() == 1 ? eq(Field::Icmp6Type, v[0]) : in_values(Field::Icmp6Type, v);
}

nft::Rule rule(std::vector<Match> matches, nft::Verdict verdict, std::string origin = {}) {
  nft::Rule r;
  r.matches = std::move(matches);
  r.verdict = std::move(verdict);
  r.origin = std::move(origin);
  return r;
}
nft::Verdict accept() { return {VerdictCode::Accept, {}}; }
nft::Verdict drop() { return {VerdictCode::Drop, {}}; }
nft::Verdict jump(std::string chain) { return {VerdictCode::Jump, std::move(chain)}; }
nft::Verdict go(std::string chain) { return {VerdictCode::Goto, std::move(chain)}; }

nft::Chain& chain(nft::Table& t, const std::string& name, std::optional<nft::BaseChain> base = {}) {
  nft::Chain& c = t.chains[name];
  c.name = name;
  c.base = base;
  return c;
}

// Stash rules: meta mark bits from ct state (br_netfilter strategy).
void add_stash(nft::Chain& c) {
  nft::Rule clear;
  clear.mark = nft::MarkSet{~names::kMarkMask, 0};
  c.rules.push_back(clear);
  for (auto [state, bit] : {std::pair{nft::kCtEstablished | nft::kCtRelated, names::kMarkEstablished},
                            {nft::kCtInvalid, names::kMarkInvalid}}) {
    nft::Rule r;
    r.matches = {bits_any(Field::CtState, state)};
    r.mark = nft::MarkSet{~names::kMarkMask, bit};
    c.rules.push_back(r);
  }
}

// The policy verdict at the end of a chain, with its log rule.
void add_policy(TableBuilder& b, nft::Chain& c, uint32_t vmid, Verdict policy, LogLevel level) {
  if (level != LogLevel::Nolog)
    c.rules.push_back(b.log_rule(vmid, level, c.name, std::string("policy ") + to_string(policy)));
  c.rules.push_back(rule({}, b.verdict(policy), "policy"));
}

// ---- host table ----

struct HostInputs {
  const FirewallConfig& config;
  const CompileOptions& options;
  bool host_enabled;
  bool guests_present;
  std::set<std::string> bridges;  // bridges with firewalled guest ports
};

void add_inet_reject_chain(nft::Table& t) {
  nft::Chain& c = chain(t, names::kDoReject);
  c.rules = {rule({l4(6)}, {VerdictCode::RejectTcpReset, {}}),
             rule({}, {VerdictCode::RejectPortUnreach, {}})};
}

void build_host(TableBuilder& b, const HostInputs& in) {
  nft::Table& t = b.table();
  const auto& cluster = *in.config.cluster;
  const HostOptions host = in.config.host ? in.config.host->options : HostOptions{};
  const std::vector<Rule> no_rules;
  const auto& host_rules = in.config.host ? in.config.host->rules : no_rules;
  Scope scope{};
  bool brnf = in.options.strategy == GuestStrategy::BrNetfilter;
  add_inet_reject_chain(t);
  nft::Match deferred_reject = bits_any(Field::Mark, names::kMarkReject);

  if (in.guests_present && brnf) {
    add_stash(chain(t, "stash-prerouting", nft::BaseChain{nft::Hook::Prerouting, names::kStashPriority, false}));
    add_stash(chain(t, "stash-output", nft::BaseChain{nft::Hook::Output, names::kStashPriority, false}));
  }

  // Forward: deferred guest rejects, VNet firewalls, then routed traffic.
  nft::Chain& fwd = chain(t, "forward", nft::BaseChain{nft::Hook::Forward, 0, false});
  if (in.guests_present && brnf) fwd.rules.push_back(rule({deferred_reject}, jump(names::kDoReject)));
  std::map<std::string, const VnetFw*> vnets;
  for (const auto& [name, vnet] : in.config.vnets)
    if (vnet.options.enable && in.host_enabled) vnets[name] = &vnet;
  if (!vnets.empty()) {
    nft::Set& map = t.sets[names::kVnetMap];
    map.name = names::kVnetMap;
    map.kind = nft::Set::Kind::Vmap;
    map.key = {Field::Iifname, Field::Oifname};
    for (const auto& [name, vnet] : vnets) {
      std::string cname = names::vnet_chain(name);
      nft::Chain& vc = chain(t, cname);
      vc.rules.push_back(rule({bits_any(Field::CtState, nft::kCtEstablished | nft::kCtRelated)}, accept()));
      if (!host.nf_conntrack_allow_invalid)
        vc.rules.push_back(rule({bits_any(Field::CtState, nft::kCtInvalid)}, drop()));
      b.add_rules(vc, vnet->rules, Direction::Forward, scope);
      add_policy(b, vc, 0, vnet->options.policy_forward, vnet->options.log_level_forward);
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
    fwd.rules.push_back(rule({Match{{Field::Iifname, Field::Oifname}, Match::Op::In, {}, names::kBridgedPairs, 0}}, accept()));
  }
  if (!in.host_enabled) return;

  auto ct_rules = [&](nft::Chain& c) {
    if (!host.nf_conntrack_allow_invalid) c.rules.push_back(rule({bits_any(Field::CtState, nft::kCtInvalid)}, drop()));
    c.rules.push_back(rule({bits_any(Field::CtState, nft::kCtEstablished | nft::kCtRelated)}, accept()));
  };
  auto blacklist = cluster.ipsets.find("blacklist");
  auto management = cluster.ipsets.find("management");

  // Input.
  nft::Chain& input = chain(t, "input", nft::BaseChain{nft::Hook::Input, 0, false});
  input.rules.push_back(rule({eq(Field::Iifname, nft::ifname_bytes("lo"))}, accept()));
  if (in.guests_present && brnf) input.rules.push_back(rule({deferred_reject}, jump(names::kDoReject)));
  if (blacklist != cluster.ipsets.end()) {
    auto sets = b.materialize_ipset(blacklist->second, "dc", scope);
    for (auto [family, name] : sets) {
      Field f = family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr;
      input.rules.push_back(rule({b.family_match(family), Match{{f}, Match::Op::In, {}, name, 0}}, drop(),
                                 blacklist->second.where.to_string()));
    }
  }
  ct_rules(input);
  if (host.protection_synflood) {
    // Per-source SYN rate limit is approximated by a global limit here; see docs/firewall.md.
    nft::Rule syn = rule({l4(6), bits_any(Field::TcpFlags, 0x02), bits_any(Field::CtState, nft::kCtNew)}, {});
    syn.limit = nft::Limit{host.protection_synflood_rate, "second", host.protection_synflood_burst};
    syn.verdict = {VerdictCode::Return, {}};
    nft::Chain& sf = chain(t, "synflood");
    sf.rules = {syn, rule({}, drop(), "protection_synflood")};
    input.rules.push_back(rule({l4(6), bits_any(Field::TcpFlags, 0x02), bits_any(Field::CtState, nft::kCtNew)}, jump("synflood")));
  }
  input.rules.push_back(rule({l4(2)}, accept()));  // IGMP
  if (host.ndp)
    input.rules.push_back(rule({l4(58), icmp6_types({133, 134, 135, 136})}, accept()));
  chain(t, "host-in");
  b.add_rules(t.chains["host-in"], host_rules, Direction::In, scope);
  chain(t, "cluster-in");
  b.add_rules(t.chains["cluster-in"], cluster.rules, Direction::In, scope);
  input.rules.push_back(rule({}, jump("host-in")));
  input.rules.push_back(rule({}, jump("cluster-in")));
  if (management != cluster.ipsets.end()) {
    std::vector<IpRange> extra;
    if (auto ln = cluster.aliases.find("local_network"); ln != cluster.aliases.end()) extra.push_back(ln->second.cidr);
    auto sets = b.materialize_ipset(management->second, "dc", scope, extra);
    for (auto [family, name] : sets) {
      Field f = family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr;
      Match ports{{Field::Dport}, Match::Op::In,
                  {nft::single(nft::be16(22)), {nft::be16(3128), nft::be16(3128)},
                   {nft::be16(5900), nft::be16(5999)}, nft::single(nft::be16(8006)),
                   {nft::be16(60000), nft::be16(60050)}}, {}, 0};
      input.rules.push_back(rule({b.family_match(family), Match{{f}, Match::Op::In, {}, name, 0}, l4(6), ports},
                                 accept(), management->second.where.to_string()));
    }
  }
  if (!in.config.cluster_peers.empty()) {
    for (int family : {4, 6}) {
      std::vector<nft::Interval> peers;
      for (const auto& p : in.config.cluster_peers)
        if (p.family == family) peers.push_back(detail::to_interval(IpRange{p, p}));
      if (peers.empty()) continue;
      Field f = family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr;
      Match src = peers.size() == 1 ? Match{{f}, Match::Op::Eq, peers, {}, 0} : Match{{f}, Match::Op::In, peers, {}, 0};
      input.rules.push_back(rule({b.family_match(family), src, l4(17),
                                  Match{{Field::Dport}, Match::Op::Eq, {{nft::be16(5404), nft::be16(5405)}}, {}, 0}},
                                 accept(), "corosync"));
    }
  }
  add_policy(b, input, 0, cluster.options.policy_in, host.log_level_in);

  // Output.
  nft::Chain& output = chain(t, "output", nft::BaseChain{nft::Hook::Output, 0, false});
  output.rules.push_back(rule({eq(Field::Oifname, nft::ifname_bytes("lo"))}, accept()));
  ct_rules(output);
  chain(t, "host-out");
  b.add_rules(t.chains["host-out"], host_rules, Direction::Out, scope);
  chain(t, "cluster-out");
  b.add_rules(t.chains["cluster-out"], cluster.rules, Direction::Out, scope);
  output.rules.push_back(rule({}, jump("host-out")));
  output.rules.push_back(rule({}, jump("cluster-out")));
  add_policy(b, output, 0, cluster.options.policy_out, host.log_level_out);

  // Forward (routed traffic).
  ct_rules(fwd);
  chain(t, "host-fwd");
  b.add_rules(t.chains["host-fwd"], host_rules, Direction::Forward, scope);
  chain(t, "cluster-fwd");
  b.add_rules(t.chains["cluster-fwd"], cluster.rules, Direction::Forward, scope);
  fwd.rules.push_back(rule({}, jump("host-fwd")));
  fwd.rules.push_back(rule({}, jump("cluster-fwd")));
  add_policy(b, fwd, 0, cluster.options.policy_forward, host.log_level_forward);
}

// ---- guest tables ----

// EUI-64 link-local address of a MAC (fe80::/64 + flipped U/L bit + ff:fe).
std::optional<IpRange> link_local(const std::string& mac) {
  if (mac.size() != 17) return std::nullopt;
  IpAddress a;
  a.family = 6;
  a.bytes[0] = 0xfe;
  a.bytes[1] = 0x80;
  uint8_t m[6];
  for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(std::stoi(mac.substr(i * 3, 2), nullptr, 16));
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

nft::Bytes mac_bytes(const std::string& mac) {
  nft::Bytes b;
  for (int i = 0; i < 6; ++i) b.push_back(static_cast<uint8_t>(std::stoi(mac.substr(i * 3, 2), nullptr, 16)));
  return b;
}

void ensure_guest_skeleton(nft::Table& t, GuestStrategy strategy) {
  if (t.chains.contains("out")) return;
  for (const char* name : {names::kOutPorts, names::kInPorts}) {
    nft::Set& m = t.sets[name];
    m.name = name;
    m.kind = nft::Set::Kind::Vmap;
    m.key = {std::string(name) == names::kOutPorts ? Field::Iifname : Field::Oifname};
  }
  auto dispatch = [&](const char* cname, nft::Hook hook, int prio, Field f, const char* map) {
    nft::Chain& c = chain(t, cname, nft::BaseChain{hook, prio, false});
    nft::Rule r;
    r.vmap_fields = {f};
    r.vmap = map;
    c.rules.push_back(r);
  };
  dispatch("out", nft::Hook::Prerouting, names::kGuestOutPriority, Field::Iifname, names::kOutPorts);
  dispatch("in", nft::Hook::Forward, names::kGuestInPriority, Field::Oifname, names::kInPorts);
  dispatch("in-local", nft::Hook::Output, names::kGuestLocalPriority, Field::Oifname, names::kInPorts);
  nft::Chain& rej = chain(t, names::kDoReject);
  if (strategy == GuestStrategy::BrNetfilter) {
    // No bridge-family reject here: mark the IP packet and let the inet forward/input chain
    // answer it; host-originated packets (bridge output) are dropped by "in-local-reject".
    nft::Rule mark = rule({in_values(Field::Protocol, {nft::be16(0x0800), nft::be16(0x86dd)})}, accept());
    mark.mark = nft::MarkSet{~names::kMarkReject, names::kMarkReject};
    rej.rules = {mark, rule({}, drop())};
    chain(t, "in-local-reject", nft::BaseChain{nft::Hook::Output, names::kGuestLocalPriority + 10, false})
        .rules = {rule({bits_any(Field::Mark, names::kMarkReject)}, drop())};
  } else {
    rej.rules = {rule({l4(6)}, {VerdictCode::RejectTcpReset, {}}), rule({}, {VerdictCode::RejectPortUnreach, {}})};
  }
}

// The conntrack shortcut every guest chain starts with (through pre-in / pre-out).
void add_conntrack_shortcut(nft::Chain& c, GuestStrategy strategy, bool allow_invalid) {
  if (strategy == GuestStrategy::BrNetfilter) {
    if (!allow_invalid) c.rules.push_back(rule({bits_any(Field::Mark, names::kMarkInvalid)}, drop()));
    c.rules.push_back(rule({bits_any(Field::Mark, names::kMarkEstablished)}, accept()));
  } else {
    if (!allow_invalid) c.rules.push_back(rule({bits_any(Field::CtState, nft::kCtInvalid)}, drop()));
    c.rules.push_back(rule({bits_any(Field::CtState, nft::kCtEstablished | nft::kCtRelated)}, accept()));
  }
}

// Shared per shard table, so a guest chain holds a few jumps instead of a copy of them:
//   pre-out / pre-in: conntrack shortcut, MAC filter (ports in macfilter-ports), ARP on IN;
//   opts-out-DNR / opts-in-DN: DHCP, NDP and router advertisements by the guest's options
//   (D dhcp, N ndp, R radv: 0 or 1), then ARP accept on OUT.
void ensure_shared_guest_chains(TableBuilder& b, GuestStrategy strategy, bool allow_invalid) {
  nft::Table& t = b.table();
  if (t.chains.contains("pre-out")) return;
  nft::Chain& out = chain(t, "pre-out");
  add_conntrack_shortcut(out, strategy, allow_invalid);
  nft::Set& ports = t.sets[names::kMacfilterPorts];
  ports.name = names::kMacfilterPorts;
  ports.key = {Field::Iifname};
  nft::Set& macs = t.sets[names::kMacSet];
  macs.name = names::kMacSet;
  macs.key = {Field::Iifname, Field::EtherSaddr};
  Match filtered{{Field::Iifname}, Match::Op::In, {}, names::kMacfilterPorts, 0};
  out.rules.push_back(rule({filtered, Match{{Field::Iifname, Field::EtherSaddr}, Match::Op::NotIn, {}, names::kMacSet, 0}},
                           drop(), "macfilter"));
  out.rules.push_back(rule({filtered, eq(Field::Protocol, nft::be16(0x0806)),
                            Match{{Field::Iifname, Field::ArpSha}, Match::Op::NotIn, {}, names::kMacSet, 0}},
                           drop(), "macfilter"));
  // Anti-spoofing (ipfilter): ports in ipfilter-ports may send only their allowed sources.
  nft::Set& fports = t.sets[names::kIpfilterPorts];
  fports.name = names::kIpfilterPorts;
  fports.key = {Field::Iifname};
  for (auto [family, name] : {std::pair{4, names::kIpfilterV4}, {6, names::kIpfilterV6}}) {
    nft::Set& allowed = t.sets[name];
    allowed.name = name;
    allowed.key = {Field::Iifname, family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr};
    allowed.interval = true;
  }
  Match ipfiltered{{Field::Iifname}, Match::Op::In, {}, names::kIpfilterPorts, 0};
  out.rules.push_back(rule({ipfiltered, b.family_match(4),
                            Match{{Field::Iifname, Field::Ip4Saddr}, Match::Op::NotIn, {}, names::kIpfilterV4, 0}},
                           drop(), "ipfilter"));
  out.rules.push_back(rule({ipfiltered, eq(Field::Protocol, nft::be16(0x0806)),
                            Match{{Field::Iifname, Field::ArpSip}, Match::Op::NotIn, {}, names::kIpfilterV4, 0}},
                           drop(), "ipfilter"));
  out.rules.push_back(rule({ipfiltered, b.family_match(6),
                            Match{{Field::Iifname, Field::Ip6Saddr}, Match::Op::NotIn, {}, names::kIpfilterV6, 0}},
                           drop(), "ipfilter"));
  nft::Chain& in = chain(t, "pre-in");
  add_conntrack_shortcut(in, strategy, allow_invalid);
  in.rules.push_back(rule({eq(Field::Protocol, nft::be16(0x0806))}, accept()));
}

std::string options_chain(TableBuilder& b, Direction dir, const GuestOptions& o) {
  nft::Table& t = b.table();
  bool is_out = dir == Direction::Out;
  std::string name = std::string(is_out ? "opts-out-" : "opts-in-") + (o.dhcp ? "1" : "0") + (o.ndp ? "1" : "0") +
                     (is_out ? (o.radv ? "1" : "0") : "");
  if (t.chains.contains(name)) return name;
  nft::Chain& c = chain(t, name);
  Match v4 = b.family_match(4), v6 = b.family_match(6);
  auto dhcp = o.dhcp ? accept() : drop();
  uint16_t c4 = is_out ? 68 : 67, s4 = is_out ? 67 : 68, c6 = is_out ? 546 : 547, s6 = is_out ? 547 : 546;
  c.rules.push_back(rule({v4, l4(17), eq(Field::Sport, nft::be16(c4)), eq(Field::Dport, nft::be16(s4))}, dhcp, "dhcp"));
  c.rules.push_back(rule({v6, l4(17), eq(Field::Sport, nft::be16(c6)), eq(Field::Dport, nft::be16(s6))}, dhcp, "dhcp"));
  auto ndp = o.ndp ? accept() : drop();
  if (is_out) {
    c.rules.push_back(rule({v6, l4(58), icmp6_types({133, 135, 136})}, ndp, "ndp"));
    c.rules.push_back(rule({v6, l4(58), icmp6_types({134})}, o.radv ? accept() : drop(), "radv"));
    c.rules.push_back(rule({eq(Field::Protocol, nft::be16(0x0806))}, accept()));
  } else {
    c.rules.push_back(rule({v6, l4(58), icmp6_types({134, 135, 136})}, ndp, "ndp"));
  }
  return name;
}

// Adds one guest: its chains, its dispatch and MAC elements, its ipfilter sets.
void build_guest(TableBuilder& b, const Guest& guest, const CompileOptions& options, bool allow_invalid) {
  nft::Table& t = b.table();
  const GuestFw& fw = *guest.fw;
  const GuestOptions& o = fw.options;
  ensure_guest_skeleton(t, options.strategy);
  ensure_shared_guest_chains(b, options.strategy, allow_invalid);
  Scope scope{&guest};
  std::string out_name = names::guest_chain(guest.vmid, Direction::Out);
  std::string in_name = names::guest_chain(guest.vmid, Direction::In);
  nft::Chain& out = chain(t, out_name);
  nft::Chain& in = chain(t, in_name);
  out.rules.push_back(rule({}, jump("pre-out")));
  in.rules.push_back(rule({}, jump("pre-in")));

  for (const auto& [index, nic] : guest.nics) {
    if (!nic.firewall) continue;
    std::string dev = names::guest_device(guest, index);
    auto dev_key = nft::single(nft::ifname_bytes(dev));
    t.sets[names::kOutPorts].elements.push_back({{dev_key}, go(out_name), 0});
    t.sets[names::kInPorts].elements.push_back({{dev_key}, go(in_name), 0});
    if (o.macfilter && !nic.mac.empty()) {
      t.sets[names::kMacfilterPorts].elements.push_back({{dev_key}, {}, 0});
      t.sets[names::kMacSet].elements.push_back({{dev_key, nft::single(mac_bytes(nic.mac))}, {}, 0});
    }
    std::string set_name = "ipfilter-net" + std::to_string(index);
    auto explicit_set = fw.ipsets.find(set_name);
    if (o.ipfilter || explicit_set != fw.ipsets.end()) {
      // Only this NIC's device carries this NIC's allowed addresses.
      Guest one = guest;
      one.nics = {{index, nic}};
      IpSet set = explicit_set != fw.ipsets.end() ? explicit_set->second : IpSet{set_name, {}, {}, {}};
      std::vector<IpRange> extra;
      if (auto ll = link_local(nic.mac)) extra.push_back(*ll);
      if (nic.ip) extra.push_back(*nic.ip);
      if (nic.ip6) extra.push_back(*nic.ip6);
      t.sets[names::kIpfilterPorts].elements.push_back({{dev_key}, {}, 0});
      b.materialize_guest_ipset(set, one, names::kIpfilterV4, names::kIpfilterV6, extra, /*all_families=*/true);
    }
  }
  // DHCP, NDP and router advertisements come before the user's rules, whatever the policy.
  out.rules.push_back(rule({}, jump(options_chain(b, Direction::Out, o))));
  in.rules.push_back(rule({}, jump(options_chain(b, Direction::In, o))));
  b.add_rules(out, fw.rules, Direction::Out, scope);
  b.add_rules(in, fw.rules, Direction::In, scope);
  add_policy(b, out, guest.vmid, o.policy_out, o.log_level_out);
  add_policy(b, in, guest.vmid, o.policy_in, o.log_level_in);
}

}  // namespace

Result<CompileResult> compile(const FirewallConfig& config, const CompileOptions& options) {
  CompileResult result;
  if (options.shards < 1 || options.shards > 256)
    return fail(ErrorCode::InvalidArgument, "shards must be 1..256");
  if (!detail::cluster_enabled(config, options.now)) return result;  // the firewall is off

  bool allow_invalid = config.host && config.host->options.nf_conntrack_allow_invalid;
  std::set<std::string> bridges;  // every guest bridge: their traffic is the guests' business
  for (const auto& [_, guest] : config.guests)
    for (const auto& [_, nic] : guest.nics)
      if (!nic.bridge.empty()) bridges.insert(nic.bridge);
  for (const auto& [vmid, guest] : config.guests) {
    if (!guest.fw || !guest.fw->options.enable) continue;
    bool any = false;
    for (const auto& [_, nic] : guest.nics) any = any || nic.firewall;
    if (!any) continue;
    int shard = static_cast<int>(vmid % static_cast<uint32_t>(options.shards));
    nft::Table& t = result.ruleset.table(nft::Family::Bridge, names::guest_table(shard));
    TableBuilder b(t, options, config, result.warnings);
    build_guest(b, guest, options, allow_invalid);
  }
  bool host_enabled = !config.host || config.host->options.enable;
  bool guests_present = !result.ruleset.tables.empty();
  if (host_enabled || guests_present) {
    nft::Table& t = result.ruleset.table(nft::Family::Inet, names::kHostTable);
    TableBuilder b(t, options, config, result.warnings);
    build_host(b, HostInputs{config, options, host_enabled, guests_present, bridges});
  }
  for (auto& [_, t] : result.ruleset.tables) {
    detail::intern_value_sets(t, {}, nullptr);
    for (auto& [_, s] : t.sets) std::sort(s.elements.begin(), s.elements.end());
  }
  return result;
}

namespace {

bool has_firewalled_nic(const Guest& g) {
  if (!g.fw || !g.fw->options.enable) return false;
  for (const auto& [_, nic] : g.nics)
    if (nic.firewall) return true;
  return false;
}

bool any_guest_table(const nft::Ruleset& rs) {
  for (const auto& [_, t] : rs.tables)
    if (t.family == nft::Family::Bridge) return true;
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

Result<std::vector<nft::ObjectRef>> recompile_guest(nft::Ruleset& ruleset, const FirewallConfig& config,
                                                    uint32_t vmid, const CompileOptions& options,
                                                    std::vector<std::string>& warnings) {
  auto git = config.guests.find(vmid);
  bool wanted = git != config.guests.end() && has_firewalled_nic(git->second);
  bool had_guests = any_guest_table(ruleset);
  std::string key = nft::table_key(nft::Family::Bridge,
                                   names::guest_table(static_cast<int>(vmid % static_cast<uint32_t>(options.shards))));
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
  if (!detail::cluster_enabled(config, options.now) || !had_guests) return full();

  std::vector<nft::ObjectRef> touched;
  std::string out_chain = names::guest_chain(vmid, Direction::Out);
  std::string in_chain = names::guest_chain(vmid, Direction::In);
  if (auto it = ruleset.tables.find(key); it != ruleset.tables.end()) {
    nft::Table& t = it->second;
    t.chains.erase(out_chain);
    t.chains.erase(in_chain);
    touched.push_back({key, false, out_chain});
    touched.push_back({key, false, in_chain});
    // Every set keyed by a device (first key field an interface name) may hold this guest's
    // elements: guest ipsets, ipfilter, MAC filter.
    std::string tap = "tap" + std::to_string(vmid) + "i", veth = "veth" + std::to_string(vmid) + "i";
    for (auto& [name, set] : t.sets) {
      if (set.kind != nft::Set::Kind::Set || set.key.empty() || set.key[0] != Field::Iifname) continue;
      size_t before = set.elements.size();
      std::erase_if(set.elements, [&](const nft::SetElement& e) {
        const char* p = reinterpret_cast<const char*>(e.key[0].lo.data());
        std::string_view dev(p, strnlen(p, e.key[0].lo.size()));
        return dev.starts_with(tap) || dev.starts_with(veth);
      });
      if (set.elements.size() != before) touched.push_back({key, true, name});
    }
    for (const char* map : {names::kOutPorts, names::kInPorts}) {
      if (auto m = t.sets.find(map); m != t.sets.end()) {
        std::erase_if(m->second.elements, [&](const nft::SetElement& e) {
          return e.verdict.chain == out_chain || e.verdict.chain == in_chain;
        });
        touched.push_back({key, true, map});
      }
    }
    if (!wanted && t.sets[names::kOutPorts].elements.empty()) {
      ruleset.tables.erase(it);  // the shard's last guest left: the table goes
      if (!any_guest_table(ruleset)) return full();
    }
  }
  if (wanted) {
    const Guest& guest = git->second;
    bool fresh = !ruleset.tables.contains(key);
    nft::Table& t = ruleset.table(nft::Family::Bridge, names::guest_table(static_cast<int>(vmid % static_cast<uint32_t>(options.shards))));
    TableBuilder b(t, options, config, warnings);
    b.track(&touched);
    build_guest(b, guest, options, config.host && config.host->options.nf_conntrack_allow_invalid);
    std::vector<std::string> chains = {out_chain, in_chain};
    for (const auto& ref : touched)
      if (!ref.is_set && ref.table == key) chains.push_back(ref.name);
    detail::intern_value_sets(t, chains, &touched);
    // The guest's elements were appended: restore the order of every set it touched.
    for (const auto& ref : touched)
      if (ref.is_set && ref.table == key)
        if (auto m = t.sets.find(ref.name); m != t.sets.end())
          std::sort(m->second.elements.begin(), m->second.elements.end());
    for (auto& [name, set] : t.sets) {
      if (set.key.empty() || set.key[0] != Field::Iifname || !std::is_sorted(set.elements.begin(), set.elements.end())) {
        if (!set.key.empty() && set.key[0] == Field::Iifname) {
          std::sort(set.elements.begin(), set.elements.end());
          touched.push_back({key, true, name});
        }
      }
    }
    if (fresh) {
      for (const auto& [name, _] : t.chains) touched.push_back({key, false, name});
      for (const auto& [name, _] : t.sets) touched.push_back({key, true, name});
    }
    // A bridge new to the node joins the host table's set of bridged pairs.
    std::string host_key = nft::table_key(nft::Family::Inet, names::kHostTable);
    auto h = ruleset.tables.find(host_key);
    if (h != ruleset.tables.end() && h->second.sets.contains(names::kBridgedPairs)) {
      auto& pairs = h->second.sets.at(names::kBridgedPairs);
      for (const auto& [_, nic] : guest.nics) {
        if (nic.bridge.empty()) continue;
        auto k = nft::ifname_bytes(nic.bridge);
        nft::SetElement e{{nft::single(k), nft::single(k)}, {}, 0};
        if (std::binary_search(pairs.elements.begin(), pairs.elements.end(), e)) continue;
        pairs.elements.insert(std::lower_bound(pairs.elements.begin(), pairs.elements.end(), e), e);
        touched.push_back({host_key, true, names::kBridgedPairs});
      }
    }
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  return touched;
}

}  // namespace moat::firewall
