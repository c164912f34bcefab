// simulate(): zones to devices, the hook path a packet takes on a br_netfilter kernel, and an
// nft evaluator over the IR (chains, jumps, sets, verdict maps, mark statements).
#include "moat/firewall/simulator.h"

#include <algorithm>
#include <bit>
#include <climits>
#include <map>

#include "moat/base/strings.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/names.h"
#include "moat/firewall/nft_text.h"
#include "moat/firewall/protocols.h"

namespace moat::firewall::sim {

int Packet::family() const {
  if (source) return source->family;
  if (dest) return dest->family;
  auto proto = protocol_number(protocol);
  return proto && *proto == 58 ? 6 : 4;
}

const char* to_string(Outcome::Verdict v) {
  switch (v) {
    case Outcome::Verdict::Accept:
      return "ACCEPT";
    case Outcome::Verdict::Drop:
      return "DROP";
    case Outcome::Verdict::Reject:
      return "REJECT";
  }
  return "?";
}

namespace {

using nft::Bytes;
using nft::Field;
using nft::Match;
using nft::VerdictCode;

// Devices and MACs of the parts of the node the configuration does not name.
constexpr const char* kUplink = "uplink0";  // the bridge's port to the outside
constexpr const char* kWan = "eth0";        // the host's routed interface
constexpr const char* kWan2 = "eth1";       // the other routed interface (outside -> outside)
const Bytes kOutsideMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
const Bytes kHostMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
const Bytes kUnknownMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x03};
// nft's jump stack is 16 deep; gotos do not use it, but a loop of gotos must end too.
constexpr size_t kMaxDepth = 64;

Bytes mac_or_unknown(const std::string& mac) {
  if (mac.size() != 17) return kUnknownMac;
  Bytes out;
  for (int i = 0; i < 6; ++i) {
    auto byte = parse_uint("0x" + mac.substr(i * 3, 2));
    if (!byte) return kUnknownMac;
    out.push_back(static_cast<uint8_t>(*byte));
  }
  return out;
}

// One end of the packet's path.
struct Endpoint {
  enum class Kind { Host, Outside, Port };
  Kind kind = Kind::Host;
  std::string bridge;  // Port: the bridge and the port device on it
  std::string port;
  Bytes mac = kUnknownMac;       // Port: the MAC frames from it carry
  const Guest* guest = nullptr;  // Port: the guest NIC behind it, when there is one
  int nic = -1;
  // Port on a guest's firewall bridge: the bridge that joins (also the host's device on it),
  // whether that is OVS (which runs no hooks), the firewall bridge's port into it and, for a
  // Linux bridge, that bridge's port from it (the veth pair's other end).
  std::string uplink;
  bool uplink_ovs = false;
  std::string link_port;
  std::string uplink_port;
};

std::unexpected<Error> bad_zone(const std::string& zone, const std::string& why) {
  return fail(ErrorCode::InvalidArgument, "zone '" + zone + "': " + why);
}

Result<Endpoint> parse_zone(const std::string& zone, const FirewallConfig& config) {
  Endpoint e;
  if (zone == "host") return e;
  if (zone == "outside") {
    e.kind = Endpoint::Kind::Outside;
    return e;
  }
  auto slash = zone.find('/');
  std::string head = zone.substr(0, slash);
  std::optional<std::string> tail;
  if (slash != std::string::npos) tail = zone.substr(slash + 1);
  bool guest_zone =
      head.size() > 2 && (head.starts_with("vm") || head.starts_with("ct")) &&
      std::all_of(head.begin() + 2, head.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (guest_zone) {
    auto vmid = parse_uint(head.substr(2));
    if (!vmid || *vmid > UINT32_MAX) return bad_zone(zone, "invalid VMID");
    auto it = config.guests.find(static_cast<uint32_t>(*vmid));
    if (it == config.guests.end())
      return bad_zone(zone, "no guest with VMID " + std::to_string(*vmid));
    const Guest& g = it->second;
    bool want_ct = head.starts_with("ct");
    if ((g.type == Guest::Type::Ct) != want_ct)
      return bad_zone(zone, "guest " + std::to_string(g.vmid) + " is a " +
                                (g.type == Guest::Type::Ct ? "container; use ct" : "VM; use vm") +
                                std::to_string(g.vmid));
    int index = 0;
    if (!tail) {
      if (g.nics.empty())
        return bad_zone(zone, "guest " + std::to_string(g.vmid) + " has no network interface");
      index = g.nics.begin()->first;
    } else {
      auto n = tail->starts_with("net") ? parse_uint(tail->substr(3)) : std::nullopt;
      if (!n || *n > 1000) return bad_zone(zone, "expected net<N> after '/'");
      index = static_cast<int>(*n);
      if (!g.nics.contains(index))
        return bad_zone(zone, "guest " + std::to_string(g.vmid) + " has no interface net" +
                                  std::to_string(index));
    }
    const GuestNic& nic = g.nics.at(index);
    if (nic.bridge.empty())
      return bad_zone(zone, "net" + std::to_string(index) + " is not on a bridge");
    e.kind = Endpoint::Kind::Port;
    e.bridge = nic.bridge;
    e.port = names::guest_device(g, index);
    e.mac = mac_or_unknown(nic.mac);
    e.guest = &g;
    e.nic = index;
    if (!nic.uplink.empty()) {
      e.uplink = nic.uplink;
      e.uplink_ovs = nic.uplink_ovs;
      e.link_port = nic.uplink_ovs ? names::ovs_link_port(g.vmid, index)
                                   : names::firewall_link_port(g.vmid, index);
      if (!nic.uplink_ovs) e.uplink_port = names::firewall_uplink_port(g.vmid, index);
    }
    return e;
  }
  if (tail && !head.empty() && !tail->empty() && tail->find('/') == std::string::npos) {
    e.kind = Endpoint::Kind::Port;
    e.bridge = head;
    e.port = *tail;
    // A guest's port named directly still sends with the guest's MAC.
    for (const auto& [_, g] : config.guests)
      for (const auto& [index, nic] : g.nics)
        if (names::guest_device(g, index) == e.port) {
          e.guest = &g;
          e.nic = index;
          e.mac = mac_or_unknown(nic.mac);
        }
    return e;
  }
  return bad_zone(
      zone, "expected host, outside, vm<vmid>[/net<N>], ct<vmid>[/net<N>] or <bridge>/<port>");
}

// One traversal of one netfilter hook: the base chains of `family` on `hook` whose priority
// is within [lo, hi], with the devices the kernel passes to that hook.
struct Hop {
  nft::Family family = nft::Family::Inet;
  nft::Hook hook = nft::Hook::Prerouting;
  int lo = INT_MIN;
  int hi = INT_MAX;
  std::string iif, oif;
  std::optional<Bytes> ether_saddr;  // absent: no link-layer header (locally generated)
  // A frame on its way into a bridge: the bridge and the port it came in by.
  std::string bridge, port;
  friend bool operator==(const Hop&, const Hop&) = default;
};

using Path = std::vector<Hop>;
using nft::Family;
using nft::Hook;

void append(Path& p, const Path& more) { p.insert(p.end(), more.begin(), more.end()); }

// A frame entering bridge port `a`: the port's netdev ingress, bridge prerouting up to
// br_netfilter (priority 0), which runs the inet prerouting hook with the bridge as input
// device, then the rest of bridge prerouting. (The IP stack's own prerouting is skipped for
// such packets.)
Path ingress(const Endpoint& a) {
  return {{Family::Netdev, Hook::Ingress, INT_MIN, INT_MAX, a.port, "", a.mac, a.bridge, a.port},
          {Family::Bridge, Hook::Prerouting, INT_MIN, -1, a.port, "", a.mac, a.bridge, a.port},
          {Family::Inet, Hook::Prerouting, INT_MIN, INT_MAX, a.bridge, "", a.mac, a.bridge, a.port},
          {Family::Bridge, Hook::Prerouting, 0, INT_MAX, a.port, "", a.mac, a.bridge, a.port}};
}

// A frame the host sends out of bridge port `b` (routed or local): bridge output and
// postrouting (br_netfilter does not run inet hooks for frames it did not see come in), then
// the port's netdev egress.
Path local_egress(const Endpoint& b) {
  return {{Family::Bridge, Hook::Output, INT_MIN, INT_MAX, "", b.port, kHostMac},
          {Family::Bridge, Hook::Postrouting, INT_MIN, INT_MAX, "", b.port, kHostMac},
          {Family::Netdev, Hook::Egress, INT_MIN, INT_MAX, "", b.port, kHostMac}};
}

// A frame bridged from port `a` to port `b` of the same bridge: br_netfilter runs inet
// forward at bridge forward priority -1, with the bridge as both devices, and inet postrouting
// after the last bridge postrouting chain.
Path bridged(const Endpoint& a, const Endpoint& b) {
  Path p = ingress(a);
  append(p, {{Family::Bridge, Hook::Forward, INT_MIN, -2, a.port, b.port, a.mac},
             {Family::Inet, Hook::Forward, INT_MIN, INT_MAX, a.bridge, b.bridge, a.mac},
             {Family::Bridge, Hook::Forward, -1, INT_MAX, a.port, b.port, a.mac},
             {Family::Bridge, Hook::Postrouting, INT_MIN, INT_MAX, "", b.port, a.mac},
             {Family::Inet, Hook::Postrouting, INT_MIN, INT_MAX, "", b.bridge, std::nullopt},
             {Family::Netdev, Hook::Egress, INT_MIN, INT_MAX, "", b.port, a.mac}});
  return p;
}

// A port of `bridge` that frames from `mac` come in by or leave through.
Endpoint port_of(const std::string& bridge, const std::string& port, const Bytes& mac) {
  Endpoint s;
  s.kind = Endpoint::Kind::Port;
  s.bridge = bridge;
  s.port = port;
  s.mac = mac;
  return s;
}

// The node's uplink port of `bridge`, where the outside comes in.
Endpoint uplink(const std::string& bridge) { return port_of(bridge, kUplink, kOutsideMac); }

// The sides of the link between `e`'s firewall bridge and the bridge it joins.
Endpoint link_side(const Endpoint& e, const Bytes& mac) {
  return port_of(e.bridge, e.link_port, mac);
}
Endpoint uplink_side(const Endpoint& e, const Bytes& mac) {
  return port_of(e.uplink, e.uplink_port, mac);
}

// A frame a rule sent to its bridge's reject port (ether daddr set to names::kRejectMac) at
// hop `at` of its way into the bridge, from `from`: the rest of that way, bridged to the reject
// port, and the chain at the port's peer that answers it. A firewall bridge without one (its
// NIC answered by the Linux bridge it joins) floods the frame over its link into that bridge,
// which switches it to its own reject port.
Result<Path> to_reject_port(const Hop& at, const Endpoint& from, const nft::Ruleset& rs) {
  Endpoint a = port_of(at.bridge, at.port, at.ether_saddr.value_or(kUnknownMac));
  Path in = ingress(a);
  auto it = std::find(in.begin(), in.end(), at);
  if (at.bridge.empty() || it == in.end())
    return fail(ErrorCode::Internal, "a frame sent to a reject port off its way into a bridge");
  Path p(std::next(it), in.end());
  auto to_port = [&](const Endpoint& by) {
    return bridged(by, port_of(by.bridge, names::reject_port(by.bridge), a.mac));
  };
  Path rest;
  std::string answering = a.bridge;
  if (!reject_port_bridges(rs).contains(a.bridge) && a.bridge == from.bridge &&
      !from.uplink.empty() && !from.uplink_ovs) {
    rest = bridged(a, link_side(from, a.mac));
    append(rest, to_port(uplink_side(from, a.mac)));
    answering = from.uplink;
  } else {
    rest = to_port(a);
  }
  p.insert(p.end(), rest.begin() + static_cast<std::ptrdiff_t>(in.size()), rest.end());
  p.push_back(
      {Family::Netdev, Hook::Ingress, INT_MIN, INT_MAX, names::reject_peer(answering), "", a.mac});
  return p;
}

// The bridge a port's frames are switched by to the rest of the node: the one its firewall
// bridge joins, else its own. The host's device toward the port too.
const std::string& switch_of(const Endpoint& e) { return e.uplink.empty() ? e.bridge : e.uplink; }

// A frame from port `a` to port `b` of another bridge, where one or both are firewall bridges
// joined to the other's (or the same) bridge: bridged by each bridge on its way, except OVS.
Path across(const Endpoint& a, const Endpoint& b) {
  Path p;
  Endpoint from = a;
  if (!a.uplink.empty()) {
    p = bridged(a, link_side(a, a.mac));
    from = uplink_side(a, a.mac);
  }
  bool ovs = a.uplink_ovs || b.uplink_ovs;
  if (!ovs) append(p, bridged(from, b.uplink.empty() ? b : uplink_side(b, a.mac)));
  if (!b.uplink.empty()) append(p, bridged(link_side(b, a.mac), b));
  return p;
}

// A frame from port `a` up to the host's IP stack, before its input or forward hook.
Path into_host(const Endpoint& a) {
  Path p;
  Endpoint in = a;
  if (!a.uplink.empty()) {
    p = bridged(a, link_side(a, a.mac));
    if (a.uplink_ovs) {
      p.push_back({Family::Inet, Hook::Prerouting, INT_MIN, INT_MAX, a.uplink, "", a.mac});
      return p;
    }
    in = uplink_side(a, a.mac);
  }
  append(p, ingress(in));
  p.push_back({Family::Bridge, Hook::Input, INT_MIN, INT_MAX, in.port, "", a.mac});
  return p;
}

// A packet the host sends (routed or local) out to port `b`, from inet postrouting on.
Path out_of_host(const Endpoint& b) {
  Path p = {{Family::Inet, Hook::Postrouting, INT_MIN, INT_MAX, "", switch_of(b), std::nullopt}};
  if (b.uplink.empty()) {
    append(p, local_egress(b));
    return p;
  }
  if (!b.uplink_ovs) append(p, local_egress(uplink_side(b, kHostMac)));
  append(p, bridged(link_side(b, kHostMac), b));
  return p;
}

Result<Path> path(Endpoint a, Endpoint b) {
  using K = Endpoint::Kind;
  // The outside comes in by (and leaves through) the bridge the port is switched by.
  if (a.kind == K::Outside && b.kind == K::Port) {
    a = uplink(switch_of(b));
    a.uplink_ovs = b.uplink_ovs;  // OVS: the frame meets no hook before the firewall bridge
  }
  if (b.kind == K::Outside && a.kind == K::Port) {
    b = uplink(switch_of(a));
    b.uplink_ovs = a.uplink_ovs;
  }
  Path p;
  if (a.kind == K::Port && b.kind == K::Port) {
    if (a.bridge == b.bridge && a.port == b.port)
      return fail(ErrorCode::InvalidArgument, "from and to are the same port " + a.port);
    if (a.bridge == b.bridge) return bridged(a, b);
    if (switch_of(a) == switch_of(b)) return across(a, b);
    // Routed between bridges: up to the host on a's bridge, out of b's bridge.
    p = into_host(a);
    p.push_back({Family::Inet, Hook::Forward, INT_MIN, INT_MAX, switch_of(a), switch_of(b), a.mac});
    append(p, out_of_host(b));
    return p;
  }
  if (a.kind == K::Port && b.kind == K::Host) {
    p = into_host(a);
    p.push_back({Family::Inet, Hook::Input, INT_MIN, INT_MAX, switch_of(a), "", a.mac});
    return p;
  }
  if (a.kind == K::Host && b.kind == K::Port) {
    p = {{Family::Inet, Hook::Output, INT_MIN, INT_MAX, "", switch_of(b), std::nullopt}};
    append(p, out_of_host(b));
    return p;
  }
  if (a.kind == K::Outside && b.kind == K::Host)
    return Path{{Family::Inet, Hook::Prerouting, INT_MIN, INT_MAX, kWan, "", kOutsideMac},
                {Family::Inet, Hook::Input, INT_MIN, INT_MAX, kWan, "", kOutsideMac}};
  if (a.kind == K::Host && b.kind == K::Outside)
    return Path{{Family::Inet, Hook::Output, INT_MIN, INT_MAX, "", kWan, std::nullopt},
                {Family::Inet, Hook::Postrouting, INT_MIN, INT_MAX, "", kWan, std::nullopt}};
  if (a.kind == K::Outside && b.kind == K::Outside)
    return Path{{Family::Inet, Hook::Prerouting, INT_MIN, INT_MAX, kWan, "", kOutsideMac},
                {Family::Inet, Hook::Forward, INT_MIN, INT_MAX, kWan, kWan2, kOutsideMac},
                {Family::Inet, Hook::Postrouting, INT_MIN, INT_MAX, "", kWan2, std::nullopt}};
  // host -> host: over the loopback device.
  return Path{{Family::Inet, Hook::Output, INT_MIN, INT_MAX, "", "lo", std::nullopt},
              {Family::Inet, Hook::Postrouting, INT_MIN, INT_MAX, "", "lo", std::nullopt},
              {Family::Inet, Hook::Prerouting, INT_MIN, INT_MAX, "lo", "", std::nullopt},
              {Family::Inet, Hook::Input, INT_MIN, INT_MAX, "lo", "", std::nullopt}};
}

// The address a zone sends from / is reached at when the packet does not say.
IpAddress default_address(const Endpoint& e, int family) {
  IpAddress zero;
  zero.family = family;
  if (!e.guest) return zero;
  const GuestNic& nic = e.guest->nics.at(e.nic);
  const auto& ip = family == 4 ? nic.ip : nic.ip6;
  if (ip) return ip->first;
  if (!e.guest->fw) return zero;
  auto set = e.guest->fw->ipsets.find("ipfilter-net" + std::to_string(e.nic));
  if (set == e.guest->fw->ipsets.end()) return zero;
  std::optional<IpAddress> in_range;
  for (const auto& entry : set->second.entries) {
    if (entry.nomatch || !entry.cidr || entry.cidr->family() != family) continue;
    if (entry.cidr->first == entry.cidr->last) return entry.cidr->first;
    // Of a network, its first host rather than the network address.
    if (!in_range) in_range = next_address(entry.cidr->first);
  }
  return in_range.value_or(zero);
}

Bytes ip_bytes(const IpAddress& a) { return Bytes(a.bytes.begin(), a.bytes.begin() + a.size()); }

// The header fields of the packet (those that do not depend on the hook).
Result<std::map<Field, Bytes>> build_headers(const Packet& p, const Endpoint& from,
                                             const Endpoint& to) {
  auto proto = protocol_number(p.protocol);
  if (!proto) return fail(ErrorCode::InvalidArgument, "unknown protocol '" + p.protocol + "'");
  int family = p.family();
  if (p.source && p.dest && p.source->family != p.dest->family)
    return fail(ErrorCode::InvalidArgument,
                "source and destination addresses are of different families");
  if (*proto == 1 && family == 6)
    return fail(ErrorCode::InvalidArgument, "protocol icmp with IPv6 addresses (use icmpv6)");
  if (*proto == 58 && family == 4)
    return fail(ErrorCode::InvalidArgument, "protocol icmpv6 with IPv4 addresses (use icmp)");
  IpAddress src = p.source ? *p.source : default_address(from, family);
  IpAddress dst = p.dest ? *p.dest : default_address(to, family);
  std::map<Field, Bytes> h;
  h[Field::Protocol] = nft::be16(family == 4 ? 0x0800 : 0x86dd);
  h[Field::L4proto] = nft::u8(*proto);
  h[family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr] = ip_bytes(src);
  h[family == 4 ? Field::Ip4Daddr : Field::Ip6Daddr] = ip_bytes(dst);
  if (protocol_has_ports(*proto)) {
    if (!p.dport)
      return fail(ErrorCode::InvalidArgument,
                  "protocol " + p.protocol + " needs a destination port");
    h[Field::Sport] = nft::be16(p.sport.value_or(40000));
    h[Field::Dport] = nft::be16(*p.dport);
  } else if (p.sport || p.dport) {
    return fail(ErrorCode::InvalidArgument, "protocol " + p.protocol + " has no ports");
  }
  if (*proto == 1 || *proto == 58) {
    std::string name = p.icmp_type.value_or("echo-request");
    auto type = *proto == 1 ? icmp_type(name) : icmpv6_type(name);
    if (!type)
      return fail(
          ErrorCode::InvalidArgument,
          "unknown " + std::string(*proto == 1 ? "icmp" : "icmpv6") + " type '" + name + "'");
    h[*proto == 1 ? Field::IcmpType : Field::Icmp6Type] = nft::u8(type->type);
    h[*proto == 1 ? Field::IcmpCode : Field::Icmp6Code] = nft::u8(type->code.value_or(0));
  } else if (p.icmp_type) {
    return fail(ErrorCode::InvalidArgument, "an icmp type needs protocol icmp or icmpv6");
  }
  if (*proto == 6) h[Field::TcpFlags] = nft::u8(0x02);  // the first packet: SYN
  // The source's address type as the node's routing table would say: the simulator knows the
  // limited broadcast and multicast, not the node's subnet broadcasts.
  uint32_t type = nft::kRtnUnicast;
  if (family == 4) {
    bool all_zero =
        src.bytes[0] == 0 && src.bytes[1] == 0 && src.bytes[2] == 0 && src.bytes[3] == 0;
    bool all_one =
        src.bytes[0] == 255 && src.bytes[1] == 255 && src.bytes[2] == 255 && src.bytes[3] == 255;
    if (all_zero || all_one) type = nft::kRtnBroadcast;
    if ((src.bytes[0] & 0xf0) == 0xe0) type = nft::kRtnMulticast;
  } else if (src.bytes[0] == 0xff) {
    type = nft::kRtnMulticast;
  }
  h[Field::FibSaddrType] = nft::host32(type);
  using K = Endpoint::Kind;
  h[Field::EtherDaddr] = to.kind == K::Port ? to.mac : to.kind == K::Host ? kHostMac : kOutsideMac;
  return h;
}

// ---- the evaluator ----

// Values are compared as big-endian numbers; meta mark and ct state are host order in the IR.
Bytes ordered(Field f, Bytes b) {
  bool host_order = f == Field::Mark || f == Field::CtState || f == Field::FibSaddrType;
  if (host_order && std::endian::native == std::endian::little) std::reverse(b.begin(), b.end());
  return b;
}

bool within(Field f, const Bytes& v, const nft::Interval& iv) {
  if (iv.lo.size() != v.size() || iv.hi.size() != v.size()) return false;
  Bytes x = ordered(f, v);
  return ordered(f, iv.lo) <= x && x <= ordered(f, iv.hi);
}

uint64_t number(Field f, const Bytes& v) {
  uint64_t n = 0;
  for (uint8_t byte : ordered(f, v)) n = (n << 8) | byte;
  return n;
}

struct Decider {
  std::string by, chain, via;
};

struct Frame {
  const nft::Chain* chain;
  const nft::Rule* rule;  // the rule of `chain` that jumped or went to the next chain
};

enum class Flow { Continue, Accept, Drop, Reject };

class Evaluator {
 public:
  Evaluator(const nft::Ruleset& ruleset, std::map<Field, Bytes> headers, int family)
      : ruleset_(ruleset), headers_(std::move(headers)), family_(family) {}

  // Runs every base chain on `hop`, in priority order; Accept when all of them let it pass.
  Result<Flow> run(const Hop& hop);

  // Whether a rule sent the frame to its bridge's reject port since the last call.
  bool take_diverted() { return std::exchange(diverted_, false); }
  const Decider& decision() const { return decision_; }
  const Decider& last_accept() const { return last_accept_; }
  std::vector<Step> take_trace() { return std::move(trace_); }

 private:
  bool table_on_hop(const nft::Table& t, const Hop& hop) const;
  std::optional<Bytes> value(Field f) const;
  Result<bool> matches(const nft::Table& t, const Match& m) const;
  Result<const nft::SetElement*> lookup(const nft::Table& t, const std::string& set,
                                        const std::vector<Field>& fields,
                                        const std::vector<Bytes>& key) const;
  Result<Flow> eval_chain(const nft::Table& t, const nft::Chain& c, std::vector<Frame>& frames);
  Result<Flow> forward(const nft::Rule& rule, const nft::Chain& c,
                       const std::vector<Frame>& frames);
  Decider resolve(const nft::Rule& rule, const nft::Chain& chain, const std::vector<Frame>& frames,
                  bool fallback) const;
  void record(const nft::Table& t, const nft::Chain& c, std::string text) {
    trace_.push_back({hop_name_, nft::table_key(t.family, t.name), c.name, std::move(text)});
  }

  const nft::Ruleset& ruleset_;
  std::map<Field, Bytes> headers_;
  int family_;
  const Hop* hop_ = nullptr;
  std::string hop_name_;
  uint32_t mark_ = 0;
  bool diverted_ = false;
  Decider mark_decider_;  // who last set the mark (for rejects deferred through it)
  Decider decision_;      // who dropped or rejected
  Decider last_accept_;   // the last configured rule that accepted
  std::vector<Step> trace_;
};

// Whether a base chain runs on `hop`: netdev chains only on the devices they are bound to.
bool bound_to(const nft::BaseChain& base, const Hop& hop) {
  if (base.devices.empty()) return true;
  const std::string& device = hop.hook == Hook::Ingress ? hop.iif : hop.oif;
  return std::ranges::find(base.devices, device) != base.devices.end();
}

bool Evaluator::table_on_hop(const nft::Table& t, const Hop& hop) const {
  if (hop.family == Family::Bridge || hop.family == Family::Netdev) return t.family == hop.family;
  return t.family == Family::Inet || (t.family == Family::Ip && family_ == 4) ||
         (t.family == Family::Ip6 && family_ == 6);
}

std::optional<Bytes> Evaluator::value(Field f) const {
  switch (f) {
    case Field::Iifname:
      return nft::ifname_bytes(hop_->iif);  // "" when there is no device
    case Field::Oifname:
      return nft::ifname_bytes(hop_->oif);
    case Field::Nfproto:  // NFPROTO_BRIDGE in bridge chains, NFPROTO_NETDEV in netdev ones
      if (hop_->family == Family::Bridge || hop_->family == Family::Netdev)
        return nft::u8(static_cast<uint8_t>(hop_->family));
      return nft::u8(family_ == 4 ? 2 : 10);
    case Field::Mark:
      return nft::host32(mark_);
    case Field::CtState:
      return nft::host32(nft::kCtNew);  // conntrack has seen the packet
    case Field::EtherSaddr:
      return hop_->ether_saddr;
    case Field::EtherDaddr:  // only where there is a link-layer header
      if (!hop_->ether_saddr) return std::nullopt;
      break;
    case Field::EtherType:  // simulated frames carry no VLAN tag: the ethertype is the protocol
      if (!hop_->ether_saddr) return std::nullopt;
      return value(Field::Protocol);
    default:
      break;
  }
  // A header field the packet does not have ends the rule (NFT_BREAK), as in nft.
  auto it = headers_.find(f);
  if (it == headers_.end()) return std::nullopt;
  return it->second;
}

Result<const nft::SetElement*> Evaluator::lookup(const nft::Table& t, const std::string& set,
                                                 const std::vector<Field>& fields,
                                                 const std::vector<Bytes>& key) const {
  auto it = t.sets.find(set);
  if (it == t.sets.end())
    return fail(ErrorCode::Internal, "table " + t.name + " has no set or map '" + set + "'");
  const nft::Set& s = it->second;
  if (s.key.size() != fields.size())
    return fail(ErrorCode::Internal, "set '" + set + "' has a key of " +
                                         std::to_string(s.key.size()) + " fields, looked up with " +
                                         std::to_string(fields.size()));
  for (size_t i = 0; i < fields.size(); ++i)
    if (nft::field_size(s.key[i]) != nft::field_size(fields[i]))
      return fail(ErrorCode::Internal, "set '" + set + "': key field " + std::to_string(i) +
                                           " is not " + nft::field_expr(fields[i]));
  for (const auto& e : s.elements) {
    if (e.key.size() != key.size()) continue;
    bool all = true;
    for (size_t i = 0; i < key.size() && all; ++i) all = within(fields[i], key[i], e.key[i]);
    if (all) return &e;
  }
  return nullptr;
}

Result<bool> Evaluator::matches(const nft::Table& t, const Match& m) const {
  if (m.fields.empty()) return fail(ErrorCode::Internal, "a match without a field");
  std::vector<Bytes> key;
  for (Field f : m.fields) {
    auto v = value(f);
    if (!v) return false;  // negated or not, the rule does not match
    key.push_back(std::move(*v));
  }
  Field f = m.fields[0];
  switch (m.op) {
    case Match::Op::Eq:
    case Match::Op::Neq: {
      if (key.size() != 1 || m.values.size() != 1)
        return fail(ErrorCode::Internal, "a comparison needs one field and one value");
      return within(f, key[0], m.values[0]) == (m.op == Match::Op::Eq);
    }
    case Match::Op::In:
    case Match::Op::NotIn: {
      bool in = false;
      if (!m.set.empty()) {
        in = MOAT_TRY(lookup(t, m.set, m.fields, key)) != nullptr;
      } else {
        if (key.size() != 1) return fail(ErrorCode::Internal, "an anonymous set of concatenations");
        in = std::any_of(m.values.begin(), m.values.end(),
                         [&](const nft::Interval& iv) { return within(f, key[0], iv); });
      }
      return in == (m.op == Match::Op::In);
    }
    case Match::Op::BitsAny:
    case Match::Op::BitsNone: {
      bool any = (number(f, key[0]) & m.mask) != 0;
      return any == (m.op == Match::Op::BitsAny);
    }
    case Match::Op::MaskEq:
      return (number(f, key[0]) & m.mask) == m.value;
  }
  return false;
}

// Who decided: the innermost rule on the call path with an origin ("policy" names its chain);
// `via` is the next origin further out (the GROUP line that jumped to a group chain). With
// `fallback`, a rule without any origin is credited to whoever set the mark when it tested
// the mark (the deferred reject), else to its own text.
Decider Evaluator::resolve(const nft::Rule& rule, const nft::Chain& chain,
                           const std::vector<Frame>& frames, bool fallback) const {
  std::vector<Frame> path = {{&chain, &rule}};
  path.insert(path.end(), frames.rbegin(), frames.rend());
  Decider d;
  bool uses_mark = false;
  for (const auto& [c, r] : path) {
    for (const auto& m : r->matches)
      uses_mark =
          uses_mark || std::find(m.fields.begin(), m.fields.end(), Field::Mark) != m.fields.end();
    if (r->origin.empty()) continue;
    if (d.by.empty()) {
      d.by = r->origin == "policy" ? "policy of " + c->name : r->origin;
      d.chain = c->name;
    } else if (d.via.empty()) {
      d.via = r->origin;
    }
  }
  if (!d.by.empty() || !fallback) return d;
  if (uses_mark && !mark_decider_.by.empty()) return mark_decider_;
  return {chain.name + ": " + nft::rule_text(rule), chain.name, ""};
}

Result<Flow> Evaluator::eval_chain(const nft::Table& t, const nft::Chain& c,
                                   std::vector<Frame>& frames) {
  if (frames.size() > kMaxDepth)
    return fail(ErrorCode::Internal, "chain " + c.name + ": jumps nest deeper than " +
                                         std::to_string(kMaxDepth) + " (a loop?)");
  for (const auto& rule : c.rules) {
    bool ok = true;
    for (const auto& m : rule.matches) {
      ok = MOAT_TRY(matches(t, m));
      if (!ok) break;
    }
    // A `limit rate over` (plain or per set element) is not exceeded by one packet.
    if ((rule.limit && rule.limit->over) || (rule.update && rule.update->limit.over)) ok = false;
    if (!ok) continue;
    // A verdict map that misses ends as "no match" in the trace: only hits are shown.
    if (rule.vmap.empty()) record(t, c, nft::rule_text(rule));
    // Statements: a limit passes (the first packet), a log writes nothing that matters here,
    // a set update fills a set no rule here reads.
    if (rule.mark) {
      mark_ = (mark_ & rule.mark->and_mask) ^ rule.mark->xor_value;
      // Who set the mark last; rules of no origin (the conntrack stash clearing its bits) do
      // not hide the configured rule whose verdict the mark carries.
      if (Decider d = resolve(rule, c, frames, false); !d.by.empty()) mark_decider_ = std::move(d);
    }
    if (rule.ether_daddr) {
      if (*rule.ether_daddr != names::reject_mac())
        return fail(ErrorCode::Internal,
                    "chain " + c.name + ": ether daddr set to other than the reject port");
      diverted_ = true;
    }
    if (!rule.fwd.empty()) return forward(rule, c, frames);
    nft::Verdict verdict = rule.verdict;
    if (!rule.vmap.empty()) {
      std::vector<Bytes> key;
      for (Field f : rule.vmap_fields)
        if (auto v = value(f)) key.push_back(std::move(*v));
      if (key.size() != rule.vmap_fields.size()) continue;  // NFT_BREAK
      const nft::SetElement* e = MOAT_TRY(lookup(t, rule.vmap, rule.vmap_fields, key));
      if (!e) continue;  // a miss: no verdict
      record(t, c, nft::rule_text(rule));
      verdict = e->verdict;
    }
    switch (verdict.code) {
      case VerdictCode::None:
        continue;
      case VerdictCode::Accept: {
        Decider d = resolve(rule, c, frames, false);
        if (!d.by.empty()) last_accept_ = std::move(d);
        return Flow::Accept;
      }
      case VerdictCode::Drop:
        decision_ = resolve(rule, c, frames, true);
        return Flow::Drop;
      case VerdictCode::RejectTcpReset:
      case VerdictCode::RejectPortUnreach:
      case VerdictCode::RejectAdminProhibited:
        decision_ = resolve(rule, c, frames, true);
        return Flow::Reject;
      case VerdictCode::Return:
        return Flow::Continue;
      case VerdictCode::Jump:
      case VerdictCode::Goto: {
        auto target = t.chains.find(verdict.chain);
        if (target == t.chains.end())
          return fail(ErrorCode::Internal,
                      "table " + t.name + " has no chain '" + verdict.chain + "'");
        frames.push_back({&c, &rule});
        auto flow = eval_chain(t, target->second, frames);
        frames.pop_back();
        if (!flow) return flow;
        // After a goto, the end of the target returns to whoever called this chain.
        if (verdict.code == VerdictCode::Goto || *flow != Flow::Continue) return *flow;
        continue;
      }
    }
  }
  return Flow::Continue;
}

// `fwd to` steals the packet: it leaves through that device. Sent to a reject port, it enters
// the port's peer, whose netdev ingress chain answers it; sent anywhere else it does not reach
// its destination.
Result<Flow> Evaluator::forward(const nft::Rule& rule, const nft::Chain& c,
                                const std::vector<Frame>& frames) {
  auto peer = names::reject_port_peer(rule.fwd);
  if (!peer) {
    decision_ = resolve(rule, c, frames, true);
    return Flow::Drop;
  }
  const Hop* outer = hop_;
  Hop answer{Family::Netdev, Hook::Ingress, INT_MIN, INT_MAX, *peer, "", outer->ether_saddr};
  Flow flow = MOAT_TRY(run(answer));
  hop_ = outer;
  if (flow != Flow::Accept) return flow;
  decision_ = resolve(rule, c, frames, true);  // swallowed by the peer
  return Flow::Drop;
}

Result<Flow> Evaluator::run(const Hop& hop) {
  hop_ = &hop;
  struct Entry {
    int priority;
    const nft::Table* table;
    const nft::Chain* chain;
  };
  std::vector<Entry> entries;
  for (const auto& [_, t] : ruleset_.tables) {
    if (!table_on_hop(t, hop)) continue;
    for (const auto& [_, c] : t.chains)
      if (c.base && c.base->hook == hop.hook && c.base->priority >= hop.lo &&
          c.base->priority <= hop.hi && bound_to(*c.base, hop))
        entries.push_back({c.base->priority, &t, &c});
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.priority < b.priority; });
  for (const auto& e : entries) {
    hop_name_ = std::string(nft::to_string(hop.family == Family::Bridge ? Family::Bridge
                                                                        : e.table->family)) +
                " " + nft::to_string(hop.hook) + " " + std::to_string(e.priority);
    std::vector<Frame> frames;
    Flow flow = MOAT_TRY(eval_chain(*e.table, *e.chain, frames));
    if (flow == Flow::Accept) continue;
    if (flow == Flow::Continue) {
      if (!e.chain->base->policy_drop) continue;
      record(*e.table, *e.chain, "policy drop");
      decision_ = {"policy of " + e.chain->name, e.chain->name, ""};
      return Flow::Drop;
    }
    return flow;
  }
  return Flow::Accept;
}

}  // namespace

Result<Outcome> simulate(const nft::Ruleset& ruleset, const FirewallConfig& config,
                         const Packet& packet) {
  Endpoint from = MOAT_TRY(parse_zone(packet.from, config));
  Endpoint to = MOAT_TRY(parse_zone(packet.to, config));
  Path hops = MOAT_TRY(path(from, to));
  auto headers = MOAT_TRY(build_headers(packet, from, to));
  Evaluator ev(ruleset, std::move(headers), packet.family());
  Outcome out;
  for (size_t i = 0; i < hops.size(); ++i) {
    Hop hop = hops[i];
    Flow flow = MOAT_TRY(ev.run(hop));
    if (flow == Flow::Accept && ev.take_diverted()) {
      // The rest of the way leads to the reject port, whose peer's chain (policy drop)
      // answers the frame or drops it.
      hops.resize(i + 1);
      append(hops, MOAT_TRY(to_reject_port(hop, from, ruleset)));
      continue;
    }
    if (flow == Flow::Accept) continue;
    out.verdict = flow == Flow::Drop ? Outcome::Verdict::Drop : Outcome::Verdict::Reject;
    out.decided_by = ev.decision().by;
    out.chain = ev.decision().chain;
    out.via = ev.decision().via;
    out.trace = ev.take_trace();
    return out;
  }
  out.verdict = Outcome::Verdict::Accept;
  out.decided_by = ev.last_accept().by.empty() ? "default accept" : ev.last_accept().by;
  out.chain = ev.last_accept().chain;
  out.via = ev.last_accept().via;
  out.trace = ev.take_trace();
  return out;
}

}  // namespace moat::firewall::sim
