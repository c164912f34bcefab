// Internal to the compiler: the pieces shared by the host (inet) and guest (bridge) table
// builders. A TableBuilder turns model rules into nft rules inside one table, resolving
// aliases and ipsets by Proxmox's scoping rules and materializing the sets it references.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "moat/firewall/compiler.h"
#include "moat/firewall/diff.h"
#include "moat/firewall/ir.h"
#include "moat/firewall/model.h"

namespace moat::firewall::detail {

// Whose rules are being compiled: the host (vmid 0) or one guest.
struct Scope {
  const Guest* guest = nullptr;  // null for host/cluster rules and security groups
};

// The addresses a -source/-dest resolved to, per IP family (4, 6): a named set or literals.
struct ResolvedAddress {
  struct PerFamily {
    std::string set;                    // named set in the table, or
    std::vector<nft::Interval> values;  // literal values (In anonymous set / Eq)
  };
  std::map<int, PerFamily> families;
};

class TableBuilder {
 public:
  TableBuilder(nft::Table& table, const CompileOptions& options, const FirewallConfig& config,
               std::vector<std::string>& warnings)
      : table_(table), options_(options), config_(config), warnings_(warnings) {}

  nft::Table& table() { return table_; }
  // Records every chain and set this builder creates from now on (for incremental diffs).
  void track(std::vector<nft::ObjectRef>* created) { created_ = created; }
  bool bridge() const { return table_.family == nft::Family::Bridge; }
  bool netdev() const { return table_.family == nft::Family::Netdev; }

  // Appends to `chain` the nft rules of every enabled model rule of direction `dir` (GROUP
  // rules become jumps to the group's chain for `dir`, built on first use).
  void add_rules(nft::Chain& chain, const std::vector<Rule>& rules, Direction dir,
                 const Scope& scope);

  // The verdict for a model verdict in this table for traffic in direction `dir` (REJECT:
  // jump to the do-reject chain; DROP where the kernel cannot reject: bridge-family chains
  // past prerouting under the bridge-conntrack strategy). Netdev OUT chains run before
  // conntrack: they only record the verdict (jump to record_chain()).
  nft::Verdict verdict(Verdict v, Direction dir) const;

  // A rule logging with Proxmox's NFLOG prefix ":<vmid>:<level>:<chain>: <what>: ", rate
  // limited by the cluster's log_ratelimit. In a netdev OUT chain it would log established
  // packets too: there it defers the decision instead (record_chain(nullopt)), and the guest's
  // OUT rules are evaluated again, with their logging, after conntrack.
  nft::Rule log_rule(uint32_t vmid, LogLevel level, const std::string& chain,
                     const std::string& what, Direction dir = Direction::In) const;

  // Materializes ipset `name` from `owner` (cluster or guest file) as one interval set per
  // family with entries (every family when `all_families`: an empty set then means "none");
  // returns the set name per family. nomatch entries are subtracted by
  // specificity, as ipset's hash:net does.
  std::map<int, std::string> materialize_ipset(const IpSet& set, const std::string& scope,
                                               const Scope& owner, std::vector<IpRange> extra = {},
                                               bool all_families = false);

  // Rules many chains of the table have alike (a guest's option rules): one chain named by a
  // prefix and a hash of their content ("options-in-<16 hex>"), made on first use; the
  // callers jump to it. Each guest then costs the kernel one rule where it cost all of them
  // (a full apply parses every expression of every rule) and a recompiled guest re-adds fewer.
  std::string shared_chain(const char* prefix, std::vector<nft::Rule> rules);

  // The interface match for a device name in direction `dir` (IN: oifname for guests,
  // iifname for the host; OUT: the reverse).
  nft::Match iface_match(const std::string& device, bool to_device) const;
  // The match that pins a rule to IP family 4 or 6 in this table's family.
  nft::Match family_match(int family) const;

 private:
  void add_rule(nft::Chain& chain, const Rule& rule, Direction dir, const Scope& scope);
  std::string ensure_group(const std::string& name, Direction dir);
  // An alias by Proxmox's scoping: "dc/" only the cluster's, "guest/" only the guest's, none:
  // the guest's first, then the cluster's.
  const Alias* find_alias(const std::string& scope, const std::string& name,
                          const Scope& owner) const;
  bool resolve(const AddressMatch& addr, const Scope& scope, const Rule& rule,
               ResolvedAddress& out);
  void warn(const Rule& rule, const std::string& message);

  nft::Table& table_;
  const CompileOptions& options_;
  const FirewallConfig& config_;
  std::vector<std::string>& warnings_;
  std::vector<nft::ObjectRef>* created_ = nullptr;
};

// ---- the netdev guest layout (guest_netdev.cc) ----

// Adds one guest to netdev table `b`: its OUT (ingress) and IN (egress) chains over its
// firewalled ports, its ipsets, its MACs in the table's reject sets.
void build_guest_netdev(TableBuilder& b, const FirewallConfig& config, const Guest& guest,
                        bool allow_invalid);
// Rebuilds the table's do-reject chain from its reject sets (after guests were added/removed).
void finish_netdev_table(nft::Table& t);
// Whether chain `name` (or a group chain it jumps to) defers OUT decisions (logging rules).
bool defers(const nft::Table& t, const std::string& name, int depth = 0);
// `bridge moat-verdicts`, made only when some guest's OUT rules log: the chain evaluating
// them again, with their logging, for the new traffic they deferred.
void build_verdicts(nft::Table& t, const FirewallConfig& config);
// The deferred OUT chain of a guest that logs on OUT, in the verdicts table (`v`).
void build_deferred_out(TableBuilder& v, const FirewallConfig& config, const Guest& guest);
// `netdev moat-reject`: per bridge, the chain at the reject port's peer answering with a
// reject, and one at the port for what the answers cross next. `before_ovs`: the firewall
// bridges in front of OVS, with the MAC of their NIC: their answers to others are untracked
// (they meet conntrack again past OVS). The other bridges' answers are marked kMarkAnswer:
// they may cross more Linux bridges after the one whose conntrack saw them first.
void build_reject_answers(nft::Table& t, const std::set<std::string>& bridges,
                          const std::map<std::string, nft::Bytes>& before_ovs);

// Netdev layout: the chain recording an OUT verdict in the mark ("rec-accept", ...), or
// asking for the deferred evaluation ("rec-defer") when `v` is empty.
std::string record_chain(std::optional<Verdict> v);

// Effective ranges of a list of (range, nomatch) entries under longest-prefix-wins semantics.
std::vector<nft::Interval> effective_ranges(std::vector<std::pair<IpRange, bool>> entries,
                                            int family);
nft::Interval to_interval(const IpRange& r);

bool cluster_enabled(const FirewallConfig& config, int64_t now);

// Turns every literal value list of a match (what nft would make an anonymous set) into a
// named constant set of the table, named by a hash of its content ("c-<16 hex>") and shared
// by all rules with the same list. Anonymous sets are bound per rule, and the kernel walks
// the whole transaction for each such bind: a 5,000-guest batch went quadratic (60+ s).
// `chains` limits the pass (empty: every chain); created sets are appended to `created`.
void intern_value_sets(nft::Table& table, const std::vector<std::string>& chains,
                       std::vector<nft::ObjectRef>* created);

// Short builders of IR values, for the table builders.
namespace build {

using nft::Field;
using nft::Match;
using nft::VerdictCode;

inline Match eq(Field f, nft::Bytes v) {
  return Match{{f}, Match::Op::Eq, {nft::single(std::move(v))}, {}, 0};
}
inline Match neq(Field f, nft::Bytes v) {
  return Match{{f}, Match::Op::Neq, {nft::single(std::move(v))}, {}, 0};
}
inline Match in_values(Field f, std::vector<nft::Bytes> values) {
  Match m{{f}, Match::Op::In, {}, {}, 0};
  for (auto& v : values) m.values.push_back(nft::single(std::move(v)));
  return m;
}
// Eq for one value, In for more.
inline Match one_of(Field f, std::vector<nft::Bytes> values) {
  return values.size() == 1 ? eq(f, values[0]) : in_values(f, std::move(values));
}
inline Match bits_any(Field f, uint32_t mask) {
  return Match{{f}, Match::Op::BitsAny, {}, {}, mask};
}
inline Match mask_eq(Field f, uint32_t mask, uint32_t value) {
  return Match{{f}, Match::Op::MaskEq, {}, {}, mask, value};
}
inline Match l4(uint8_t proto) { return eq(Field::L4proto, nft::u8(proto)); }
inline Match icmp6_types(std::vector<uint8_t> types) {
  std::vector<nft::Bytes> v;
  for (auto t : types) v.push_back(nft::u8(t));
  return one_of(Field::Icmp6Type, std::move(v));
}

inline nft::Rule rule(std::vector<Match> matches, nft::Verdict verdict, std::string origin = {}) {
  nft::Rule r;
  r.matches = std::move(matches);
  r.verdict = std::move(verdict);
  r.origin = std::move(origin);
  return r;
}
inline nft::Verdict accept() { return {VerdictCode::Accept, {}}; }
inline nft::Verdict drop() { return {VerdictCode::Drop, {}}; }
inline nft::Verdict jump(std::string chain) { return {VerdictCode::Jump, std::move(chain)}; }
inline nft::Verdict go(std::string chain) { return {VerdictCode::Goto, std::move(chain)}; }

inline nft::Chain& chain(nft::Table& t, const std::string& name,
                         std::optional<nft::BaseChain> base = {}) {
  nft::Chain& c = t.chains[name];
  c.name = name;
  c.base = base;
  return c;
}

}  // namespace build

// The policy verdict at the end of a chain, with its log rule.
void add_policy(TableBuilder& b, nft::Chain& c, uint32_t vmid, Verdict policy, LogLevel level,
                Direction dir);
// Drops of sources in the cluster's `blacklist` ipset (host input and every guest's IN).
std::vector<nft::Rule> blacklist_rules(TableBuilder& b, const FirewallConfig& config);
// EUI-64 link-local address of a MAC (fe80::/64 + flipped U/L bit + ff:fe).
std::optional<IpRange> link_local(const std::string& mac);
nft::Bytes mac_bytes(const std::string& mac);  // "bc:24:11:00:00:01" -> 6 bytes
// A bridge-family do-reject without bridge reject (br_netfilter): IP packets get the reject
// mark and pass, for the inet forward/input chain to answer; anything else is dropped.
std::vector<nft::Rule> deferred_reject_rules();
// The netdev layout's answer to a guest's OUT REJECT, for new traffic `when` matches, then
// `then`: the frame goes to its bridge's reject port (names::kRejectMac) with kMarkRejectIn, to
// be answered there, on the sender's own bridge. Never through the host's routes, which may
// not reach the sender (a bridge the host has no address on; past OVS, the second firewall
// bridge's conntrack would relate the answer to nothing).
nft::Rule out_reject_rule(std::vector<nft::Match> when, nft::Verdict then);
// Whether the REJECTs of traffic to `nic` are answered at its bridge's reject port (netdev
// layout): a firewalled NIC with a MAC on a bridge that is not VLAN-aware. On a VLAN-aware
// bridge the port would answer in the wrong VLAN, and an OUT REJECT sent to names::kRejectMac
// would be flooded in the guest's VLAN: REJECTs of its guests' traffic drop there.
bool answered_at_reject_port(const FirewallConfig& config, const GuestNic& nic);
// The bridge whose reject port answers such a NIC: the Linux bridge its firewall bridge joins
// (fwbr<vmid>i<N> in front of vmbr0: the answer enters vmbr0, which switches it to the sender;
// the rejected frame of an OUT REJECT is flooded to vmbr0 over the firewall bridge's link),
// unless that one is VLAN-aware (it would answer in the wrong VLAN) or OVS; else its own.
const std::string& reject_bridge(const FirewallConfig& config, const GuestNic& nic);
// The rule before out_reject_rule() that drops instead, for traffic `when` matches from the
// guests on VLAN-aware bridges.
nft::Rule no_answer_rule(std::vector<nft::Match> when);
// The anti-spoofing sets of a guest's NIC `index` (family -> set name), materialized in `b`:
// the NIC may only send from its `ipfilter-net<N>` ipset, its EUI-64 link-local address and a
// container's static ip/ip6. None when the NIC has neither `ipfilter: 1` nor that ipset.
std::optional<std::map<int, std::string>> ipfilter_sets(TableBuilder& b, const Guest& guest,
                                                        int index, const GuestNic& nic);

}  // namespace moat::firewall::detail
