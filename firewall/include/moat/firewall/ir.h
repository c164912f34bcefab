// The nftables intermediate representation: tables, chains, rules, sets and maps, with typed
// matches on a fixed list of packet fields. The compiler produces it; the text/JSON emitters,
// the diff, the netlink applier and the simulator all consume this one object, so what is
// printed, applied and simulated cannot drift apart. Value types, deterministic ordering
// (std::map by name); thread-safe to read.
#pragma once

#include <algorithm>
#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "moat/base/result.h"

namespace moat::firewall::nft {

// NFPROTO_* values.
enum class Family : uint8_t { Inet = 1, Ip = 2, Netdev = 5, Bridge = 7, Ip6 = 10 };
// Ingress and Egress are the netdev family's device-bound hooks.
enum class Hook { Prerouting, Input, Forward, Output, Postrouting, Ingress, Egress };

const char* to_string(Family f);  // "inet", "bridge", ...
const char* to_string(Hook h);    // "prerouting", ...

// The packet fields rules match on. Values are byte strings: network byte order for header
// fields, host order for meta mark and ct state, NUL-padded names for interfaces.
enum class Field : uint8_t {
  Iifname,       // meta iifname (16 bytes)
  Oifname,       // meta oifname (16 bytes)
  L4proto,       // meta l4proto (1)
  Nfproto,       // meta nfproto (1): 2 = ipv4, 10 = ipv6
  Protocol,      // meta protocol, the ethertype (2)
  Mark,          // meta mark (4, host order)
  CtState,       // ct state bitmask (4, host order)
  Ip4Saddr,      // ip saddr (4)
  Ip4Daddr,      // ip daddr (4)
  Ip6Saddr,      // ip6 saddr (16)
  Ip6Daddr,      // ip6 daddr (16)
  Sport,         // th sport (2)
  Dport,         // th dport (2)
  IcmpType,      // icmp type (1)
  IcmpCode,      // icmp code (1)
  Icmp6Type,     // icmpv6 type (1)
  Icmp6Code,     // icmpv6 code (1)
  EtherSaddr,    // ether saddr (6)
  EtherDaddr,    // ether daddr (6)
  EtherType,     // ether type (2): the frame's own, 0x8100 for a VLAN-tagged frame, where
                 // meta protocol says what the tag carries
  ArpOp,         // arp operation (2)
  ArpSha,        // arp saddr ether (6)
  ArpSip,        // arp saddr ip (4)
  ArpTip,        // arp daddr ip (4)
  TcpFlags,      // tcp flags (1)
  FibSaddrType,  // fib saddr type (4, host order): the routing table's type of the source
                 // address (RTN_UNICAST 1, RTN_LOCAL 2, RTN_BROADCAST 3, RTN_MULTICAST 5, ...)
};

// fib ... type values (the kernel's RTN_*).
inline constexpr uint32_t kRtnUnicast = 1;
inline constexpr uint32_t kRtnBroadcast = 3;
inline constexpr uint32_t kRtnMulticast = 5;

size_t field_size(Field f);
// The nft expression text of the field ("meta iifname", "ip saddr", "th dport", ...).
const char* field_expr(Field f);

// A field value: at most 16 bytes, stored inline. Values are compared and copied millions of
// times by compile and diff at thousands of guests; a heap vector per value dominated both.
class Bytes {
 public:
  static constexpr size_t kCapacity = 16;
  Bytes() = default;
  explicit Bytes(size_t n, uint8_t fill = 0) { resize(n, fill); }
  Bytes(std::initializer_list<uint8_t> init) : Bytes(init.begin(), init.end()) {}
  template <class It>
  requires(!std::is_integral_v<It>) Bytes(It first, It last) {
    for (; first != last; ++first) push_back(static_cast<uint8_t>(*first));
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  uint8_t* data() { return data_.data(); }
  const uint8_t* data() const { return data_.data(); }
  uint8_t* begin() { return data_.data(); }
  uint8_t* end() { return data_.data() + size_; }
  const uint8_t* begin() const { return data_.data(); }
  const uint8_t* end() const { return data_.data() + size_; }
  uint8_t& operator[](size_t i) { return data_[i]; }
  uint8_t operator[](size_t i) const { return data_[i]; }
  void push_back(uint8_t b) { data_.at(size_++) = b; }
  void clear() { size_ = 0; }
  void resize(size_t n, uint8_t fill = 0) {
    for (size_t i = size_; i < n; ++i) data_.at(i) = fill;
    size_ = static_cast<uint8_t>(n);
  }

  friend bool operator==(const Bytes& a, const Bytes& b) {
    return a.size_ == b.size_ && std::memcmp(a.data(), b.data(), a.size_) == 0;
  }
  // Lexicographic, as std::vector<uint8_t> compares (big-endian values compare numerically).
  friend std::strong_ordering operator<=>(const Bytes& a, const Bytes& b) {
    int c = std::memcmp(a.data(), b.data(), std::min(a.size_, b.size_));
    if (c != 0) return c < 0 ? std::strong_ordering::less : std::strong_ordering::greater;
    return a.size_ <=> b.size_;
  }

 private:
  std::array<uint8_t, kCapacity> data_{};
  uint8_t size_ = 0;
};

// An inclusive range of values of one field; lo == hi for a single value.
struct Interval {
  Bytes lo;
  Bytes hi;
  friend auto operator<=>(const Interval&, const Interval&) = default;
};

// ct state bits (NF_CT_STATE_BIT / IP_CT_* encoding used by nft).
inline constexpr uint32_t kCtInvalid = 1;
inline constexpr uint32_t kCtEstablished = 2;
inline constexpr uint32_t kCtRelated = 4;
inline constexpr uint32_t kCtNew = 8;
inline constexpr uint32_t kCtUntracked = 64;

struct Match {
  enum class Op {
    Eq,        // field within values[0] (a single value or a range)
    Neq,       // field outside values[0]
    In,        // field (or concatenation of fields) in `set`, or in the anonymous set `values`
    NotIn,     // the negation of In
    BitsAny,   // (field & mask) != 0   (Mark, CtState, TcpFlags)
    BitsNone,  // (field & mask) == 0
    MaskEq,    // (field & mask) == value
  };
  std::vector<Field> fields;  // one field; several only for a concatenated named-set lookup
  Op op = Op::Eq;
  std::vector<Interval> values;  // Eq/Neq: one; In/NotIn anonymous: the elements
  std::string set;               // In/NotIn: named set in the same table
  uint32_t mask = 0;             // BitsAny/BitsNone/MaskEq
  uint32_t value = 0;            // MaskEq
  friend bool operator==(const Match&, const Match&) = default;
};

enum class VerdictCode {
  None,  // no verdict: continue with the next rule
  Accept,
  Drop,
  Return,
  Jump,
  Goto,
  RejectTcpReset,         // reject with tcp reset
  RejectPortUnreach,      // reject with icmpx port-unreachable
  RejectAdminProhibited,  // reject with icmpx admin-prohibited
};

struct Verdict {
  VerdictCode code = VerdictCode::None;
  std::string chain;  // Jump/Goto
  friend bool operator==(const Verdict&, const Verdict&) = default;
};

struct Log {
  std::string prefix;
  uint16_t group = 0;  // NFLOG group
  friend bool operator==(const Log&, const Log&) = default;
};

struct Limit {
  uint64_t rate = 1;
  std::string unit = "second";  // second|minute|hour|day
  uint32_t burst = 5;
  bool over = false;  // `limit rate over`: matches once the rate is exceeded
  friend bool operator==(const Limit&, const Limit&) = default;
};

// update @set { <key> limit ... }: adds the packet's key to a dynamic set (refreshing its
// timeout) with a per-element limit; the rule goes on only while that limit matches.
struct SetUpdate {
  std::string set;
  std::vector<Field> key;
  Limit limit;
  friend bool operator==(const SetUpdate&, const SetUpdate&) = default;
};

// meta mark set (meta mark & and_mask) ^ xor_value
struct MarkSet {
  uint32_t and_mask = 0;
  uint32_t xor_value = 0;
  friend bool operator==(const MarkSet&, const MarkSet&) = default;
};

struct Rule {
  std::vector<Match> matches;
  std::optional<Limit> limit;
  std::optional<SetUpdate> update;
  std::optional<Log> log;
  std::optional<MarkSet> mark;
  bool counter = false;
  // Verdict from a verdict map keyed by these fields (instead of `verdict`).
  std::vector<Field> vmap_fields;
  std::string vmap;
  Verdict verdict;
  // ct helper set "<name>": a CtHelper of the rule's table is attached to the connection.
  std::string ct_helper;
  // fwd to "<device>" (netdev family): the packet is sent out of that device and this path
  // ends (the kernel steals it). The device's ifindex is resolved when the rule is applied.
  std::string fwd;
  // ether daddr set <MAC>: the bridge forwards the frame to that address instead (a frame
  // sent to its bridge's reject port, names::kRejectMac).
  std::optional<Bytes> ether_daddr;
  // notrack: conntrack leaves the packet alone (ct state untracked).
  bool notrack = false;
  // Where the rule came from ("cluster.fw:12"); shown as a comment, used to map errors back.
  std::string origin;
  friend bool operator==(const Rule&, const Rule&) = default;
};

struct BaseChain {
  Hook hook = Hook::Input;
  int priority = 0;
  bool policy_drop = false;
  // Netdev family: the devices the chain is bound to. A packet runs it only when it enters
  // (ingress) or leaves (egress) one of them; the kernel attaches it to a device that appears
  // after the chain was created.
  std::vector<std::string> devices;
  friend bool operator==(const BaseChain&, const BaseChain&) = default;
};

struct Chain {
  std::string name;
  std::optional<BaseChain> base;
  std::vector<Rule> rules;
  friend bool operator==(const Chain&, const Chain&) = default;
};

struct SetElement {
  std::vector<Interval> key;  // one interval per key field
  Verdict verdict;            // verdict maps
  uint32_t data = 0;          // data maps (mark)
  friend bool operator==(const SetElement&, const SetElement&) = default;
  friend auto operator<=>(const SetElement& a, const SetElement& b) { return a.key <=> b.key; }
};

struct Set {
  enum class Kind { Set, Vmap, MarkMap };
  std::string name;
  Kind kind = Kind::Set;
  std::vector<Field> key;  // concatenation when more than one
  bool interval = false;
  // Filled by the packet path (update statements), not by Moat: `flags dynamic,timeout`,
  // elements expire after `timeout_s`, at most `size` of them. Moat never lists elements.
  bool dynamic = false;
  uint32_t timeout_s = 0;
  uint32_t size = 0;
  std::vector<SetElement> elements;  // sorted, non-overlapping
  std::string comment;
  friend bool operator==(const Set&, const Set&) = default;
};

// ct helper NAME { type "TYPE" protocol tcp|udp; l3proto ip|ip6; }: a conntrack helper (ftp,
// sip, ...) that rules attach to connections so that their related flows are recognized.
// One per IP family: an `l3proto inet` helper was never attached to IPv4 connections here.
struct CtHelper {
  std::string name;
  std::string type;      // the kernel helper: "ftp", "tftp", "netbios-ns", ...
  uint8_t protocol = 6;  // IPPROTO_TCP or IPPROTO_UDP
  int family = 4;        // 4 or 6
  friend bool operator==(const CtHelper&, const CtHelper&) = default;
};

struct Table {
  Family family = Family::Inet;
  std::string name;
  std::map<std::string, CtHelper> helpers;
  std::map<std::string, Set> sets;
  std::map<std::string, Chain> chains;
  friend bool operator==(const Table&, const Table&) = default;
};

// Tables are keyed by "family name" (e.g. "inet moat").
struct Ruleset {
  std::map<std::string, Table> tables;
  Table& table(Family family, const std::string& name);
  friend bool operator==(const Ruleset&, const Ruleset&) = default;
};

std::string table_key(Family family, const std::string& name);

// ---- value builders ----
Bytes ifname_bytes(const std::string& name);  // 16 bytes, NUL padded
Bytes be16(uint16_t v);
Bytes u8(uint8_t v);
Bytes host32(uint32_t v);
Interval single(Bytes v);
// Every interface name starting with `prefix` (nft's `iifname "fwbr*"`): the names from the
// prefix padded with NULs to the prefix padded with 0xff. ifname_prefix() gives the prefix
// back for such an interval (what the encoder sends as a cmp of the prefix alone).
Interval ifname_wildcard(const std::string& prefix);
std::optional<std::string> ifname_prefix(const Interval& names);

// Big-endian arithmetic on values: all bits set; v + 1 and v - 1 (v must not be the maximum,
// resp. zero).
bool is_max(const Bytes& v);
Bytes successor(Bytes v);
Bytes predecessor(Bytes v);

// Sorts intervals and merges overlapping or adjacent ones (what nft's auto-merge does).
void merge_intervals(std::vector<Interval>& intervals);

}  // namespace moat::firewall::nft
