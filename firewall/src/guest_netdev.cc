// The netdev guest layout (GuestLayout::Netdev, docs/firewall-netdev.md): per guest, an OUT
// chain at the netdev ingress of its ports that records its verdict in the mark, and an IN
// chain at their netdev egress; the inet stash chain applies the recorded OUT verdicts after
// conntrack, and `bridge moat-verdicts`, only when some OUT rule logs, evaluates those rules
// again for the new traffic they log; `netdev moat-reject` answers the IN REJECTs sent to
// each bridge's reject port.
#include <algorithm>
#include <cstring>
#include <tuple>

#include "compile_internal.h"
#include "moat/firewall/names.h"

namespace moat::firewall::detail {

using namespace build;
using nft::VerdictCode;

namespace {

constexpr uint32_t kOutBits = names::kMarkOutVerdict | names::kMarkOutDefer;

std::string reject_set(const std::string& bridge) { return names::kRejectSetPrefix + bridge; }

Match arp() { return eq(Field::Protocol, nft::be16(0x0806)); }

// The chains every netdev guest table has: the OUT verdict recorders and do-reject. Only
// untagged IP frames meet conntrack and the stash that applies recorded verdicts: any other
// frame (ARP, VLAN-tagged, ...) gets its verdict here at once, stateless, and the logging of
// a deferring rule is skipped for it (its verdict rule follows). An accept is recorded in
// the rule itself (finish_netdev_table()): it lets any frame pass, applied or not.
void ensure_netdev_skeleton(nft::Table& t) {
  if (t.chains.contains(names::kDoReject)) return;
  for (auto [v, bits] : {std::pair{std::optional{Verdict::Drop}, names::kMarkOutDrop},
                         {Verdict::Reject, names::kMarkOutReject},
                         {std::nullopt, names::kMarkOutDefer}}) {
    auto& rules = chain(t, record_chain(v)).rules;
    rules.clear();
    for (uint16_t ethertype : {0x0800, 0x86dd}) {
      // The frame's own ethertype: br_netfilter hands VLAN-tagged frames to no inet hook.
      nft::Rule r = rule({eq(Field::EtherType, nft::be16(ethertype))}, accept());
      r.mark = nft::MarkSet{~kOutBits, bits};
      rules.push_back(r);
    }
    rules.push_back(rule({}, v ? drop() : nft::Verdict{VerdictCode::Return, {}}));
  }
  chain(t, names::kDoReject).rules = {rule({}, drop())};
}

// Writes a guest chain whose option rules, alike for every guest with the same options, go to
// chains the table shares (TableBuilder::shared_chain()): each run of them becomes one jump.
class GuestChain {
 public:
  GuestChain(TableBuilder& b, nft::Chain& c, const char* prefix) : b_(b), c_(c), prefix_(prefix) {}
  void shared(nft::Rule r) { run_.push_back(std::move(r)); }
  void own(nft::Rule r) {
    end_run();
    c_.rules.push_back(std::move(r));
  }
  void end_run() {
    if (run_.size() > 1) {
      c_.rules.push_back(rule({}, jump(b_.shared_chain(prefix_, std::move(run_)))));
    } else {
      for (auto& r : run_) c_.rules.push_back(std::move(r));
    }
    run_.clear();
  }

 private:
  TableBuilder& b_;
  nft::Chain& c_;
  const char* prefix_;
  std::vector<nft::Rule> run_;
};

// DHCP from (OUT) or to (IN) the guest: allowed or dropped by the `dhcp` option.
void add_dhcp(TableBuilder& b, GuestChain& c, bool on, bool is_out) {
  uint16_t c4 = is_out ? 68 : 67, s4 = is_out ? 67 : 68, c6 = is_out ? 546 : 547,
           s6 = is_out ? 547 : 546;
  Direction dir = is_out ? Direction::Out : Direction::In;
  nft::Verdict v = b.verdict(on ? Verdict::Accept : Verdict::Drop, dir);
  for (auto [family, sport, dport] : {std::tuple{4, c4, s4}, {6, c6, s6}})
    c.shared(rule({b.family_match(family), l4(17), eq(Field::Sport, nft::be16(sport)),
                   eq(Field::Dport, nft::be16(dport))},
                  v, "dhcp"));
}

// Neighbour discovery (and, OUT, router advertisements) by the ndp and radv options; `port`
// pins the rules to one NIC of a multi-NIC guest.
void add_ndp(TableBuilder& b, GuestChain& c, const GuestOptions& o, bool is_out,
             std::optional<Match> port) {
  Direction dir = is_out ? Direction::Out : Direction::In;
  auto add = [&](std::vector<uint8_t> types, bool on, const char* origin) {
    std::vector<Match> m;
    if (port) m.push_back(*port);
    m.insert(m.end(), {b.family_match(6), l4(58), icmp6_types(std::move(types))});
    nft::Rule r = rule(m, b.verdict(on ? Verdict::Accept : Verdict::Drop, dir), origin);
    port ? c.own(std::move(r)) : c.shared(std::move(r));
  };
  add(is_out ? std::vector<uint8_t>{133, 135, 136} : std::vector<uint8_t>{134, 135, 136}, o.ndp,
      "ndp");
  if (is_out) add({134}, o.radv, "radv");
}

}  // namespace

void build_guest_netdev(TableBuilder& b, const FirewallConfig& config, const Guest& guest,
                        bool allow_invalid) {
  nft::Table& t = b.table();
  ensure_netdev_skeleton(t);
  const GuestFw& fw = *guest.fw;
  const GuestOptions& o = fw.options;
  Scope scope{&guest};
  std::vector<std::string> devices;
  for (const auto& [index, nic] : guest.nics)
    if (nic.firewall) devices.push_back(names::guest_device(guest, index));
  bool multi = devices.size() > 1;
  nft::Chain& out = chain(t, names::guest_chain(guest.vmid, Direction::Out),
                          nft::BaseChain{nft::Hook::Ingress, 0, false, devices});
  nft::Chain& in = chain(t, names::guest_chain(guest.vmid, Direction::In),
                         nft::BaseChain{nft::Hook::Egress, 0, false, devices});

  // IN: the conntrack state the inet stash chains left in the mark decides first; the
  // established shortcut stays in the guest's chain, most packets end there.
  GuestChain in_w(b, in, "options-in-"), out_w(b, out, "options-out-");
  in_w.own(rule({bits_any(Field::Mark, names::kMarkEstablished)}, accept()));
  if (!allow_invalid)
    in_w.shared(rule({bits_any(Field::Mark, names::kMarkInvalid)}, drop(), "conntrack invalid"));
  in_w.shared(rule({arp()}, accept()));
  for (auto& r : blacklist_rules(b, config)) in_w.shared(std::move(r));
  add_dhcp(b, in_w, o.dhcp, false);
  add_ndp(b, in_w, o, false, std::nullopt);
  in_w.end_run();

  // OUT: the MAC filter drops at once; DHCP before anti-spoofing (a client has no address).
  for (const auto& [index, nic] : guest.nics) {
    if (!nic.firewall) continue;
    std::string dev = names::guest_device(guest, index);
    if (answered_at_reject_port(config, nic)) {
      // A frame to this NIC that IN rejects is answered by its bridge's reject port.
      std::string name = reject_set(reject_bridge(config, nic));
      nft::Set& s = t.sets[name];
      s.name = name;
      s.key = {Field::Oifname, Field::EtherDaddr};
      s.elements.push_back(
          {{nft::single(nft::ifname_bytes(dev)), nft::single(mac_bytes(nic.mac))}, {}, 0});
    }
    if (!o.macfilter || nic.mac.empty()) continue;
    std::vector<Match> from;
    if (multi) from.push_back(b.iface_match(dev, false));
    auto with = [&](std::vector<Match> m) {
      m.insert(m.begin(), from.begin(), from.end());
      return m;
    };
    nft::Bytes mac = mac_bytes(nic.mac);
    out_w.own(rule(with({neq(Field::EtherSaddr, mac)}), drop(), "macfilter"));
    out_w.own(rule(with({arp(), neq(Field::ArpSha, mac)}), drop(), "macfilter"));
  }
  add_dhcp(b, out_w, o.dhcp, true);
  for (const auto& [index, nic] : guest.nics) {
    if (!nic.firewall) continue;
    std::string dev = names::guest_device(guest, index);
    std::optional<Match> port;
    if (multi) port = b.iface_match(dev, false);
    // Anti-spoofing, NDP included; dropped at once.
    if (auto sets = ipfilter_sets(b, guest, index, nic)) {
      std::string origin = "ipfilter net" + std::to_string(index);
      for (auto [family, name] : *sets) {
        Field f = family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr;
        std::vector<Match> m;
        if (port) m.push_back(*port);
        m.push_back(b.family_match(family));
        m.push_back(Match{{f}, Match::Op::NotIn, {}, name, 0});
        out_w.own(rule(m, drop(), origin));
        if (family != 4) continue;
        m.resize(m.size() - 2);
        m.push_back(arp());
        m.push_back(Match{{Field::ArpSip}, Match::Op::NotIn, {}, name, 0});
        out_w.own(rule(m, drop(), origin));
      }
    }
    add_ndp(b, out_w, o, true, port);
  }
  out_w.shared(rule({arp()}, b.verdict(Verdict::Accept, Direction::Out)));
  out_w.end_run();

  b.add_rules(out, fw.rules, Direction::Out, scope);
  b.add_rules(in, fw.rules, Direction::In, scope);
  add_policy(b, out, guest.vmid, o.policy_out, o.log_level_out, Direction::Out);
  add_policy(b, in, guest.vmid, o.policy_in, o.log_level_in, Direction::In);
}

void finish_netdev_table(nft::Table& t) {
  // Recorded accepts: the mark set in the deciding rule, no jump (every packet of a guest
  // walks its OUT chain, established ones too; most end in an accept).
  nft::Verdict recorder{VerdictCode::Jump, record_chain(Verdict::Accept)};
  for (auto& [_, c] : t.chains)
    for (auto& r : c.rules)
      if (r.verdict == recorder) {
        r.verdict = accept();
        r.mark = nft::MarkSet{~kOutBits, names::kMarkOutAccept};
      }
  // do-reject: a frame for a guest's own MAC goes to its bridge's reject port, marked to be
  // answered; anything else (flooded frames) is dropped, never answered for another guest.
  std::erase_if(t.sets, [](const auto& s) {
    return s.first.starts_with(names::kRejectSetPrefix) && s.second.elements.empty();
  });
  std::vector<nft::Rule> rules;
  for (const auto& [name, set] : t.sets) {
    if (!name.starts_with(names::kRejectSetPrefix) || set.elements.empty()) continue;
    nft::Rule r =
        rule({Match{{Field::Oifname, Field::EtherDaddr}, Match::Op::In, {}, name, 0}}, {});
    r.mark = nft::MarkSet{~names::kMarkRejectIn, names::kMarkRejectIn};
    r.fwd = names::reject_port(name.substr(std::strlen(names::kRejectSetPrefix)));
    rules.push_back(std::move(r));
  }
  rules.push_back(rule({}, drop()));
  if (auto it = t.chains.find(names::kDoReject); it != t.chains.end())
    it->second.rules = std::move(rules);
}

bool defers(const nft::Table& t, const std::string& chain_name, int depth) {
  auto it = t.chains.find(chain_name);
  if (it == t.chains.end() || depth > 16) return false;
  for (const auto& r : it->second.rules) {
    if (r.verdict.chain == record_chain(std::nullopt)) return true;
    if (!r.verdict.chain.empty() && r.verdict.chain.starts_with("group-") &&
        defers(t, r.verdict.chain, depth + 1))
      return true;
  }
  return false;
}

void build_verdicts(nft::Table& t, const FirewallConfig& config) {
  if (t.chains.contains("out")) return;
  nft::Set& deferred = t.sets[names::kOutDeferred];
  deferred.name = names::kOutDeferred;
  deferred.kind = nft::Set::Kind::Vmap;
  deferred.key = {Field::Iifname};
  nft::Chain& out =
      chain(t, "out", nft::BaseChain{nft::Hook::Prerouting, names::kGuestOutPriority, false});
  // New (or, with nf_conntrack_allow_invalid, invalid) traffic a logging rule deferred: its
  // guest's OUT rules again, with their logging. The stash applied every other verdict.
  nft::Rule later = rule(
      {mask_eq(Field::Mark, names::kMarkEstablished | names::kMarkOutDefer, names::kMarkOutDefer)},
      {});
  later.vmap_fields = {Field::Iifname};
  later.vmap = names::kOutDeferred;
  out.rules.push_back(later);
  // The deferred OUT chains' REJECT: answered as the stash answers recorded ones.
  auto& reject = chain(t, names::kDoReject).rules;
  reject.clear();
  if (!config.vlan_aware_bridges.empty()) {
    nft::Set& ports = t.sets[names::kVlanAwarePorts];
    ports.name = names::kVlanAwarePorts;
    ports.key = {Field::Iifname};
    reject.push_back(
        no_answer_rule({Match{{Field::Iifname}, Match::Op::In, {}, names::kVlanAwarePorts, 0}}));
  }
  reject.push_back(out_reject_rule(
      {in_values(Field::Protocol, {nft::be16(0x0800), nft::be16(0x86dd)})}, accept()));
  reject.push_back(rule({}, drop()));
}

void build_deferred_out(TableBuilder& v, const FirewallConfig& config, const Guest& guest) {
  nft::Table& t = v.table();
  std::string name = names::guest_chain(guest.vmid, Direction::Out);
  nft::Chain& c = chain(t, name);
  v.add_rules(c, guest.fw->rules, Direction::Out, Scope{&guest});
  add_policy(v, c, guest.vmid, guest.fw->options.policy_out, guest.fw->options.log_level_out,
             Direction::Out);
  for (const auto& [index, nic] : guest.nics) {
    if (!nic.firewall) continue;
    auto port = nft::single(nft::ifname_bytes(names::guest_device(guest, index)));
    t.sets[names::kOutDeferred].elements.push_back({{port}, go(name), 0});
    if (config.vlan_aware_bridges.contains(nic.bridge))
      t.sets[names::kVlanAwarePorts].elements.push_back({{port}, {}, 0});
  }
}

void build_reject_answers(nft::Table& t, const std::set<std::string>& bridges,
                          const std::map<std::string, nft::Bytes>& before_ovs) {
  for (const auto& bridge : bridges) {
    nft::Chain& c =
        chain(t, names::kAnswerChainPrefix + bridge,
              nft::BaseChain{nft::Hook::Ingress, 0, true, {names::reject_peer(bridge)}});
    Match asked = bits_any(Field::Mark, names::kMarkRejectIn);
    c.rules = {rule({asked, l4(6)}, {VerdictCode::RejectTcpReset, {}}),
               rule({asked}, {VerdictCode::RejectPortUnreach, {}})};
    nft::BaseChain at_port{nft::Hook::Ingress, 0, false, {names::reject_port(bridge)}};
    if (auto ovs = before_ovs.find(bridge); ovs != before_ovs.end()) {
      // A firewall bridge's answers to others than its own guest (its IN REJECTs) leave
      // through OVS, to meet conntrack again on the sender's side (its firewall bridge, or the
      // host): seen here first, a TCP reset would close the connection it answers, and be
      // invalid there.
      nft::Rule untrack = rule({neq(Field::EtherDaddr, ovs->second)}, {});
      untrack.notrack = true;
      chain(t, names::kUntrackChainPrefix + bridge, at_port).rules = {untrack};
      continue;
    }
    // Through a Linux bridge and the firewall bridges joining it, the mark survives the veth
    // pairs to the sender: the stash keeps the state conntrack gives the answer here, whatever
    // it says on the next bridges (a TCP reset it saw is invalid there).
    nft::Rule mark;
    mark.mark = nft::MarkSet{~(names::kMarkAnswer | names::kMarkEstablished), names::kMarkAnswer};
    chain(t, names::kMarkChainPrefix + bridge, at_port).rules = {mark};
  }
}

}  // namespace moat::firewall::detail
