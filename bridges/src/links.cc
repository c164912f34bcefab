// compile_links(), plan_links() and the plan printer. Pure.
#include "moat/bridges/links.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "moat/bridges/names.h"
#include "plan_text.h"

namespace moat::bridges {
namespace {

// The stanzas of each interface name, in file order: one pass over the file, so that option
// lookups stay O(log n) on files with thousands of interfaces.
using StanzaIndex = std::map<std::string_view, std::vector<const Stanza*>>;

StanzaIndex index_stanzas(const InterfacesFile& file) {
  StanzaIndex out;
  for (const Item& item : file.items()) {
    if (const Stanza* s = std::get_if<Stanza>(&item)) out[s->name].push_back(s);
  }
  return out;
}

// The first option `key` (any spelling) of any stanza of interface `name`.
const Option* find_option(const StanzaIndex& index, std::string_view name, std::string_view key) {
  auto it = index.find(name);
  if (it == index.end()) return nullptr;
  for (const Stanza* s : it->second) {
    if (const Option* o = s->find(key)) return o;
  }
  return nullptr;
}

std::unexpected<Error> config_error(const InterfacesFile& file, Position at, std::string message) {
  return fail(Error(ErrorCode::InvalidConfig, std::move(message))
                  .at({.file = file.file(), .line = at.line, .column = at.column}));
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// The longest name the kernel takes for a link (IFNAMSIZ less the NUL).
constexpr size_t kMaxLinkName = 15;

// InvalidConfig unless `name` can be a kernel link name: the driver copies these names into
// fixed-size netlink requests, so an over-long one must not get that far.
Status check_link_name(const InterfacesFile& file, Position at, std::string_view what,
                       std::string_view name) {
  if (name.size() <= kMaxLinkName) return {};
  return config_error(file, at,
                      std::string(what) + " '" + std::string(name) + "' is longer than " +
                          std::to_string(kMaxLinkName) + " characters (the kernel's limit)");
}

bool is_link_local(const IpAddress& ip) {
  return ip.family == 6 && ip.bytes[0] == 0xfe && (ip.bytes[1] & 0xc0) == 0x80;
}

const char* kernel_kind(LinkKind kind) {
  switch (kind) {
    case LinkKind::Bridge:
      return "bridge";
    case LinkKind::Veth:
      return "veth";
    case LinkKind::Vxlan:
      return "vxlan";
    case LinkKind::Vlan:
      return "vlan";
    case LinkKind::Bond:
      return "bond";
    case LinkKind::Physical:
      break;
  }
  return "";
}

constexpr std::pair<XmitHashPolicy, std::string_view> kXmitHashPolicies[] = {
    {XmitHashPolicy::Layer2, "layer2"},    {XmitHashPolicy::Layer34, "layer3+4"},
    {XmitHashPolicy::Layer23, "layer2+3"}, {XmitHashPolicy::Encap23, "encap2+3"},
    {XmitHashPolicy::Encap34, "encap3+4"}, {XmitHashPolicy::VlanSrcMac, "vlan+srcmac"},
};

std::optional<XmitHashPolicy> parse_xmit_hash_policy(std::string_view text) {
  for (auto [policy, name] : kXmitHashPolicies) {
    if (name == text) return policy;
  }
  return std::nullopt;
}

}  // namespace

const char* to_string(XmitHashPolicy policy) {
  for (auto [p, name] : kXmitHashPolicies) {
    if (p == policy) return name.data();
  }
  return "?";
}

std::string BridgeSpec::to_string() const {
  std::string out = stp ? "stp on" : "stp off";
  if (forward_delay) out += " forward-delay " + std::to_string(*forward_delay);
  if (vlan_filtering) out += " vlan-filtering on";
  return out;
}

std::string BondSpec::to_string() const {
  std::string out;
  auto add = [&](const std::string& part) { out += (out.empty() ? "" : " ") + part; };
  if (mode) add(std::string("mode ") + moat::bridges::to_string(*mode));
  if (miimon) add("miimon " + std::to_string(*miimon));
  if (xmit_hash_policy)
    add(std::string("xmit-hash-policy ") + bridges::to_string(*xmit_hash_policy));
  if (!primary.empty()) add("primary " + primary);
  return out;
}

const char* to_string(LinkKind kind) {
  return kind == LinkKind::Physical ? "physical" : kernel_kind(kind);
}

std::string LinkAddress::to_string() const { return ip.to_string() + "/" + std::to_string(prefix); }

bool is_guest_port(std::string_view name) {
  for (std::string_view p : {"tap", "veth", "fwpr", "fwln"}) {
    if (name.starts_with(p)) return true;
  }
  return false;
}

const ObservedLink* Observed::find(std::string_view name) const {
  for (const ObservedLink& l : links) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// compile_links
// ---------------------------------------------------------------------------------------------

Result<std::vector<LinkSpec>> compile_links(const InterfacesFile& file) {
  StanzaIndex stanzas = index_stanzas(file);
  std::map<std::string, LinkSpec, std::less<>> specs;
  std::set<std::string, std::less<>> ovs;
  for (const Interface& i : file.interfaces()) {
    LinkSpec s;
    s.name = i.name;
    s.line = i.at.line;
    s.mtu = i.mtu;
    s.up = i.autostart;
    bool linux_link = i.kind != InterfaceKind::Loopback && i.kind != InterfaceKind::Alias &&
                      i.kind != InterfaceKind::Dummy && i.kind != InterfaceKind::OvsBond &&
                      i.kind != InterfaceKind::OvsPort;
    if (linux_link) MOAT_RETURN_IF_ERROR(check_link_name(file, i.at, "interface name", i.name));
    switch (i.kind) {
      case InterfaceKind::Loopback:
      case InterfaceKind::Alias:
      case InterfaceKind::Dummy:
        continue;
      case InterfaceKind::OvsBond:
      case InterfaceKind::OvsPort:
        ovs.insert(i.name);
        continue;
      case InterfaceKind::OvsBridge:
      case InterfaceKind::OvsIntPort:
        // Open vSwitch creates these internal interfaces (ovs.h); once it has, their addresses,
        // gateways, mtu and up are managed here like a NIC's.
        ovs.insert(i.name);
        s.kind = LinkKind::Physical;
        break;
      case InterfaceKind::Physical:
      case InterfaceKind::Other:
        s.kind = LinkKind::Physical;
        break;
      case InterfaceKind::Bridge:
        s.kind = LinkKind::Bridge;
        if (i.bridge) {
          s.bridge.stp = i.bridge->stp.value_or(false);
          s.bridge.forward_delay = i.bridge->forward_delay;
          // With STP on the kernel keeps the forward delay in 2-30 s: it raises a smaller one
          // when STP starts and refuses to set one outside that range while STP runs. Planned
          // as given, `bridge-stp on` with Proxmox's `bridge-fd 0` made every apply after the
          // first fail with ERANGE.
          if (s.bridge.stp && s.bridge.forward_delay) {
            s.bridge.forward_delay = std::clamp<uint32_t>(*s.bridge.forward_delay, 2, 30);
          }
          s.bridge.vlan_filtering = i.bridge->vlan_aware;
        }
        break;
      case InterfaceKind::Veth: {
        s.kind = LinkKind::Veth;
        const Option* peer = find_option(stanzas, i.name, "veth-peer-name");
        if (!peer || trim(peer->value).empty()) {
          return config_error(file, i.at, "veth '" + i.name + "' needs veth-peer-name");
        }
        s.veth_peer = trim(peer->value);
        MOAT_RETURN_IF_ERROR(check_link_name(file, {peer->line, peer->value_column()},
                                             "veth-peer-name", s.veth_peer));
        break;
      }
      case InterfaceKind::Vxlan: {
        s.kind = LinkKind::Vxlan;
        if (!i.vxlan || !i.vxlan->id) {
          return config_error(file, i.at, "vxlan '" + i.name + "' needs vxlan-id");
        }
        s.vxlan.id = *i.vxlan->id;
        s.vxlan.local = i.vxlan->local_tunnel_ip;
        s.vxlan.remotes = i.vxlan->remote_ips;
        if (const Option* port = find_option(stanzas, i.name, "vxlan-port")) {
          std::string v = trim(port->value);
          uint32_t n = 0;
          auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
          if (ec != std::errc() || end != v.data() + v.size() || n == 0 || n > 65535) {
            return config_error(file, {port->line, port->value_column()},
                                "vxlan-port '" + v + "' is not a port number (1-65535)");
          }
          s.vxlan.dstport = static_cast<uint16_t>(n);
        }
        if (const Option* dev = find_option(stanzas, i.name, "vxlan-physdev")) {
          s.vxlan.dev = trim(dev->value);
        }
        break;
      }
      case InterfaceKind::Vlan:
        s.kind = LinkKind::Vlan;
        if (!i.vlan || !i.vlan->id || i.vlan->raw_device.text.empty()) {
          return config_error(file, i.at, "vlan '" + i.name + "' needs an id and a raw device");
        }
        if (*i.vlan->id < 1 || *i.vlan->id > 4094) {
          return config_error(file, i.position_of("vlan-id"),
                              "vlan id " + std::to_string(*i.vlan->id) + " is not in 1-4094");
        }
        s.vlan.id = static_cast<uint16_t>(*i.vlan->id);
        s.vlan.parent = i.vlan->raw_device.text;
        s.vlan.protocol = i.vlan->protocol;
        break;
      case InterfaceKind::Bond:
        s.kind = LinkKind::Bond;
        if (i.bond) {
          s.bond.mode = i.bond->mode;
          s.bond.miimon = i.bond->miimon;
          s.bond.primary = i.bond->primary;
          for (const Word& w : i.bond->slaves) s.bond.slaves.push_back(w.text);
          if (!i.bond->xmit_hash_policy.empty()) {
            s.bond.xmit_hash_policy = parse_xmit_hash_policy(i.bond->xmit_hash_policy);
            if (!s.bond.xmit_hash_policy) {
              return config_error(file, i.position_of("bond-xmit-hash-policy"),
                                  "bond-xmit-hash-policy '" + i.bond->xmit_hash_policy +
                                      "' is not one of layer2, layer2+3, layer3+4, encap2+3, "
                                      "encap3+4, vlan+srcmac");
            }
          }
        }
        break;
    }
    s.manage_addresses = i.inet_method != Method::Dhcp && i.inet6_method != Method::Dhcp &&
                         i.inet6_method != Method::Auto;
    for (const Address& a : i.addresses) {
      s.addresses.push_back({a.ip, a.prefix.value_or(a.ip.family == 4 ? 32 : 128)});
    }
    std::sort(s.addresses.begin(), s.addresses.end());
    s.addresses.erase(std::unique(s.addresses.begin(), s.addresses.end()), s.addresses.end());
    if (i.gateway4 && i.inet_method != Method::Dhcp) s.gateways.push_back(*i.gateway4);
    if (i.gateway6 && i.inet6_method != Method::Dhcp && i.inet6_method != Method::Auto) {
      s.gateways.push_back(*i.gateway6);
    }
    std::sort(s.gateways.begin(), s.gateways.end());
    specs.emplace(s.name, std::move(s));
  }

  // Masters from bridge-ports and bond-slaves. A port without a stanza is an existing link.
  std::map<std::string, std::string, std::less<>> master_of;
  for (const Interface& i : file.interfaces()) {
    const std::vector<Word>* ports = nullptr;
    std::vector<Word> slaves;
    if (i.kind == InterfaceKind::Bridge && i.bridge) {
      ports = &i.bridge->ports;
    } else if (i.kind == InterfaceKind::Bond && i.bond) {
      ports = &i.bond->slaves;
    }
    if (!ports) continue;
    auto master = specs.find(i.name);
    if (master == specs.end()) continue;
    for (const Word& w : *ports) {
      if (ovs.contains(w.text)) {
        return config_error(file, w.at,
                            "'" + w.text +
                                "' is an Open vSwitch interface and cannot be a port "
                                "of Linux " +
                                to_string(master->second.kind) + " '" + i.name + "'");
      }
      if (w.text == i.name) {
        return config_error(file, w.at, "'" + i.name + "' cannot be a port of itself");
      }
      auto [it, inserted] = master_of.emplace(w.text, i.name);
      if (!inserted) {
        return config_error(file, w.at,
                            "'" + w.text + "' is already a port of '" + it->second + "'");
      }
      auto port = specs.find(w.text);
      if (port == specs.end()) {
        MOAT_RETURN_IF_ERROR(check_link_name(file, w.at, "port", w.text));
        LinkSpec p;
        p.name = w.text;
        p.kind = LinkKind::Physical;
        p.manage_addresses = false;
        port = specs.emplace(p.name, std::move(p)).first;
      }
      port->second.master = i.name;
      // ifupdown brings a master's ports up with it.
      port->second.up = port->second.up || master->second.up;
    }
  }

  std::vector<LinkSpec> out;
  out.reserve(specs.size());
  for (auto& [name, spec] : specs) out.push_back(std::move(spec));
  return out;
}

// ---------------------------------------------------------------------------------------------
// plan_links
// ---------------------------------------------------------------------------------------------

namespace {

// Desired links in dependency order: a link comes after its master, its VXLAN underlay and its
// VLAN parent (when those are desired too); ties by name. Cycles are cut, not reported (the
// kernel will refuse such a plan and say why).
std::vector<const LinkSpec*> dependency_order(const std::vector<LinkSpec>& desired) {
  std::map<std::string_view, const LinkSpec*> by_name;
  for (const LinkSpec& s : desired) by_name.emplace(s.name, &s);
  std::map<std::string_view, int> depth;
  std::set<std::string_view> visiting;
  std::function<int(const LinkSpec&)> depth_of = [&](const LinkSpec& s) -> int {
    if (auto it = depth.find(s.name); it != depth.end()) return it->second;
    if (!visiting.insert(s.name).second) return 0;
    int d = 0;
    for (std::string_view dep : {std::string_view(s.master),
                                 std::string_view(s.kind == LinkKind::Vxlan ? s.vxlan.dev : ""),
                                 std::string_view(s.kind == LinkKind::Vlan ? s.vlan.parent : "")}) {
      if (dep.empty()) continue;
      if (auto it = by_name.find(dep); it != by_name.end())
        d = std::max(d, depth_of(*it->second) + 1);
    }
    visiting.erase(s.name);
    depth[s.name] = d;
    return d;
  };
  std::vector<const LinkSpec*> order;
  for (const LinkSpec& s : desired) order.push_back(&s);
  std::vector<std::pair<int, const LinkSpec*>> keyed;
  for (const LinkSpec* s : order) keyed.emplace_back(depth_of(*s), s);
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second->name < b.second->name;
  });
  order.clear();
  for (auto& [d, s] : keyed) order.push_back(s);
  return order;
}

// True when the kernel's link cannot become `spec` in place.
bool needs_recreate(const ObservedLink& o, const LinkSpec& spec) {
  if (spec.kind == LinkKind::Physical) return false;
  if (o.kind != kernel_kind(spec.kind)) return true;
  if (spec.kind == LinkKind::Vxlan && o.vxlan) {
    const VxlanSpec& want = spec.vxlan;
    const VxlanSpec& have = *o.vxlan;
    // With several remotes the link has none of its own (they are FDB entries).
    std::optional<IpAddress> want_remote;
    if (want.remotes.size() == 1) want_remote = want.remotes.front();
    std::optional<IpAddress> have_remote;
    if (!have.remotes.empty()) have_remote = have.remotes.front();
    return want.id != have.id || want.local != have.local || want_remote != have_remote ||
           want.dstport != have.dstport || want.dev != have.dev;
  }
  if (spec.kind == LinkKind::Vlan && o.vlan) {
    return spec.vlan.id != o.vlan->id || spec.vlan.parent != o.vlan->parent ||
           spec.vlan.protocol != o.vlan->protocol;
  }
  // The kernel changes a bond's mode only while it is down and has no slaves.
  if (spec.kind == LinkKind::Bond && o.bond && spec.bond.mode) {
    return spec.bond.mode != o.bond->mode;
  }
  return false;
}

// The link the kernel deletes `o` with (a VLAN's parent, a VXLAN's underlay); empty: none.
std::string_view lower_of(const ObservedLink& o) {
  if (o.vlan) return o.vlan->parent;
  if (o.vxlan) return o.vxlan->dev;
  return {};
}

LinkOp make_op(LinkOp::Type type, const LinkSpec& spec) {
  LinkOp op;
  op.type = type;
  op.link = spec.name;
  op.spec = spec;
  op.line = spec.line;
  return op;
}

// The bridge options the kernel has differently from `want` (only what `want` manages).
bool bridge_differs(const BridgeSpec& want, const BridgeSpec& have) {
  return want.stp != have.stp || want.vlan_filtering != have.vlan_filtering ||
         (want.forward_delay && want.forward_delay != have.forward_delay);
}

// The bond options SetBond changes that the kernel has differently, as "miimon 0 ..." text of
// the kernel's values; empty when none differs.
std::string bond_drift(const BondSpec& want, const BondSpec& have) {
  BondSpec drift;
  if (want.miimon && want.miimon != have.miimon) drift.miimon = have.miimon.value_or(0);
  if (want.xmit_hash_policy && want.xmit_hash_policy != have.xmit_hash_policy) {
    drift.xmit_hash_policy = have.xmit_hash_policy.value_or(XmitHashPolicy::Layer2);
  }
  if (!want.primary.empty() && want.primary != have.primary) {
    drift.primary = have.primary.empty() ? "none" : have.primary;
  }
  return drift.to_string();
}

std::string route_text(const std::optional<IpAddress>& gateway, const LinkAddress& dst,
                       const std::string& link) {
  std::string out = dst.prefix == 0 ? std::string("default") : dst.to_string();
  if (gateway) out += " via " + gateway->to_string();
  if (!link.empty()) out += " dev " + link;
  return out;
}

LinkAddress default_dst(const IpAddress& gateway) {
  LinkAddress dst;
  dst.ip.family = gateway.family;
  return dst;
}

}  // namespace

std::vector<LinkOp> plan_links(const Observed& observed, const std::vector<LinkSpec>& desired) {
  std::map<std::string_view, const LinkSpec*> want;
  for (const LinkSpec& s : desired) want.emplace(s.name, &s);
  std::map<std::string_view, const ObservedLink*> have;
  for (const ObservedLink& o : observed.links) have.emplace(o.name, &o);

  // A bridge holding guest ports stays: deleting it would detach them.
  std::set<std::string_view> has_guests, masters;
  for (const ObservedLink& o : observed.links) {
    if (is_guest_port(o.name) && !o.master.empty()) has_guests.insert(o.master);
    if (!o.master.empty()) masters.insert(o.master);
  }
  // The peer of a desired veth lives and dies with it.
  std::set<std::string_view> peers;
  for (const LinkSpec& s : desired) {
    if (s.kind == LinkKind::Veth) peers.insert(s.veth_peer);
  }
  // The kernel deletes a link's VLANs and the VXLANs over it with it: a link under such a link
  // that Moat may not delete (someone else's, or one holding guest ports) stays, and so do the
  // links under it.
  std::set<std::string_view> under_kept_vlan;
  for (bool more = true; more;) {
    more = false;
    for (const ObservedLink& o : observed.links) {
      std::string_view lower = lower_of(o);
      if (lower.empty()) continue;
      bool kept = o.alias != kOwnedAlias || is_guest_port(o.name) || has_guests.contains(o.name) ||
                  under_kept_vlan.contains(o.name);
      if (kept && under_kept_vlan.insert(lower).second) more = true;
    }
  }
  auto deletable = [&](const ObservedLink& o) {
    return o.alias == kOwnedAlias && !is_guest_port(o.name) && !has_guests.contains(o.name) &&
           !peers.contains(o.name) && !under_kept_vlan.contains(o.name);
  };

  std::vector<LinkOp> deletes;
  std::set<std::string_view> gone;  // deleted by this plan (to be created again when desired)
  for (const ObservedLink& o : observed.links) {
    auto w = want.find(o.name);
    bool stale = w == want.end() || needs_recreate(o, *w->second);
    if (!stale || !deletable(o)) continue;
    LinkOp op;
    op.type = LinkOp::Type::Delete;
    op.link = o.name;
    op.has_ports = masters.contains(o.name) && o.up;
    if (w != want.end()) {
      op.spec = *w->second;
      op.line = w->second->line;
    }
    deletes.push_back(std::move(op));
    gone.insert(o.name);
  }
  // The kernel deletes a VLAN with its parent and a VXLAN with its underlay: such a link is
  // gone too (and made again when desired). To a fixpoint, for VLANs on VLANs.
  for (bool more = !gone.empty(); more;) {
    more = false;
    for (const ObservedLink& o : observed.links) {
      std::string_view lower = lower_of(o);
      if (!lower.empty() && gone.contains(lower) && gone.insert(o.name).second) more = true;
    }
  }

  // Nothing that stays may be in the group the deletes below are carried out through.
  std::vector<LinkOp> plan;
  for (const ObservedLink& o : observed.links) {
    if (o.group != kDeleteGroup || gone.contains(o.name)) continue;
    LinkOp op;
    op.type = LinkOp::Type::ClearGroup;
    op.link = o.name;
    char group[16];
    std::snprintf(group, sizeof(group), "0x%x", kDeleteGroup);
    op.observed = std::string("group ") + group;
    if (auto w = want.find(o.name); w != want.end()) {
      op.spec = *w->second;
      op.line = w->second->line;
    }
    plan.push_back(std::move(op));
  }

  // Moat's routes that are not wanted go first (those on deleted links go with them).
  std::set<std::tuple<std::string_view, IpAddress>> wanted_routes;  // (link, gateway)
  for (const LinkSpec& s : desired) {
    for (const IpAddress& g : s.gateways) wanted_routes.emplace(s.name, g);
  }
  std::set<std::tuple<std::string_view, IpAddress>> routes_now;  // default routes that stay
  for (const ObservedRoute& r : observed.routes) {
    if (gone.contains(r.link)) continue;
    bool is_default = r.dst.prefix == 0 && r.gateway;
    if (is_default) routes_now.emplace(r.link, *r.gateway);
    if (r.protocol != kRouteProtocol) continue;
    if (is_default && wanted_routes.contains({r.link, *r.gateway})) continue;
    LinkOp op;
    op.type = LinkOp::Type::DelRoute;
    op.link = r.link;
    op.route = r;
    if (auto w = want.find(r.link); w != want.end()) {
      op.spec = *w->second;
      op.line = w->second->line;
    }
    plan.push_back(std::move(op));
    if (is_default) routes_now.erase({r.link, *r.gateway});
  }
  plan.insert(plan.end(), std::make_move_iterator(deletes.begin()),
              std::make_move_iterator(deletes.end()));

  std::vector<const LinkSpec*> order = dependency_order(desired);
  auto current = [&](const LinkSpec& s) -> const ObservedLink* {
    if (gone.contains(s.name)) return nullptr;
    auto it = have.find(s.name);
    return it == have.end() ? nullptr : it->second;
  };
  // A port of a deleted master was released by the kernel.
  auto master_now = [&](const ObservedLink& o) {
    return gone.contains(o.master) ? std::string() : o.master;
  };

  // The peer of a veth this plan creates comes with it, with the veth's mtu: a stanza or a
  // bridge port of that name is configured like any link the plan makes, and is not made twice.
  std::map<std::string_view, std::optional<uint32_t>> made_as_peer;
  for (const LinkSpec* s : order) {
    if (s->kind == LinkKind::Physical || current(*s) || made_as_peer.contains(s->name)) continue;
    plan.push_back(make_op(LinkOp::Type::Create, *s));
    if (s->kind == LinkKind::Veth) made_as_peer.emplace(s->veth_peer, s->mtu);
  }
  auto will_exist = [&](const LinkSpec& s) {
    return current(s) || s.kind != LinkKind::Physical || made_as_peer.contains(s.name);
  };

  for (const LinkSpec* s : order) {
    const ObservedLink* o = current(*s);
    bool created = !o && will_exist(*s);
    if (!o && !created) continue;  // a missing NIC: nothing can make it

    if (o && s->mtu && *s->mtu != o->mtu) {
      LinkOp op = make_op(LinkOp::Type::SetMtu, *s);
      op.mtu = *s->mtu;
      op.observed = std::to_string(o->mtu);
      plan.push_back(std::move(op));
    } else if (auto peer = made_as_peer.find(s->name);
               !o && s->mtu && peer != made_as_peer.end() && peer->second != s->mtu) {
      LinkOp op = make_op(LinkOp::Type::SetMtu, *s);
      op.mtu = *s->mtu;
      plan.push_back(std::move(op));
    }

    if (o && s->kind == LinkKind::Bridge && o->bridge && bridge_differs(s->bridge, *o->bridge)) {
      LinkOp op = make_op(LinkOp::Type::SetBridge, *s);
      op.observed = o->bridge->to_string();
      op.have_bridge = *o->bridge;
      plan.push_back(std::move(op));
    }
    if (o && s->kind == LinkKind::Bond && o->bond) {
      if (std::string drift = bond_drift(s->bond, *o->bond); !drift.empty()) {
        LinkOp op = make_op(LinkOp::Type::SetBond, *s);
        op.observed = std::move(drift);
        plan.push_back(std::move(op));
      }
    }

    std::string have_master = o ? master_now(*o) : std::string();
    // OVS's kernel datapath enslaves its ports to ovs-system: that master is OVS's business.
    bool pinned =
        (is_guest_port(s->name) || have_master == names::kOvsKernelMaster) && !have_master.empty();
    if (!pinned && s->master != have_master) {
      LinkOp op = make_op(LinkOp::Type::SetMaster, *s);
      op.master = s->master;
      if (o) op.observed = have_master.empty() ? "nomaster" : "master " + have_master;
      plan.push_back(std::move(op));
    }

    if (s->manage_addresses) {
      static const std::vector<LinkAddress> kNone;
      const std::vector<LinkAddress>& now = o ? o->addresses : kNone;
      for (const LinkAddress& a : now) {
        if (is_link_local(a.ip)) continue;
        if (std::binary_search(s->addresses.begin(), s->addresses.end(), a)) continue;
        LinkOp op = make_op(LinkOp::Type::DelAddress, *s);
        op.address = a;
        plan.push_back(std::move(op));
      }
      std::set<LinkAddress> present(now.begin(), now.end());
      for (const LinkAddress& a : s->addresses) {
        if (present.contains(a)) continue;
        LinkOp op = make_op(LinkOp::Type::AddAddress, *s);
        op.address = a;
        plan.push_back(std::move(op));
      }
    }

    // Moat brings links up; it does not take down a link someone brought up.
    if (s->up && !(o && o->up)) {
      LinkOp op = make_op(LinkOp::Type::SetUp, *s);
      op.up = true;
      if (o) op.observed = "down";
      plan.push_back(std::move(op));
    }
  }

  // VXLAN remotes beyond the link's own: all-zero-MAC FDB entries, once the link is up.
  for (const LinkSpec* s : order) {
    if (s->kind != LinkKind::Vxlan) continue;
    const ObservedLink* o = current(*s);
    std::set<IpAddress> want_fdb(s->vxlan.remotes.begin(), s->vxlan.remotes.end());
    std::set<IpAddress> have_fdb;
    if (o) have_fdb.insert(o->fdb_remotes.begin(), o->fdb_remotes.end());
    for (const IpAddress& r : have_fdb) {
      if (want_fdb.contains(r)) continue;
      LinkOp op = make_op(LinkOp::Type::DelFdb, *s);
      op.address = {r, r.family == 4 ? 32 : 128};
      plan.push_back(std::move(op));
    }
    if (want_fdb.size() < 2) continue;  // one remote: the link's own `remote` makes the entry
    for (const IpAddress& r : want_fdb) {
      if (have_fdb.contains(r)) continue;
      LinkOp op = make_op(LinkOp::Type::AddFdb, *s);
      op.address = {r, r.family == 4 ? 32 : 128};
      plan.push_back(std::move(op));
    }
  }

  // Default routes last: their gateways need the links' addresses.
  for (const LinkSpec* s : order) {
    if (s->gateways.empty()) continue;
    if (!will_exist(*s)) continue;
    for (const IpAddress& g : s->gateways) {
      if (routes_now.contains({s->name, g})) continue;
      LinkOp op = make_op(LinkOp::Type::AddRoute, *s);
      op.address = {g, g.family == 4 ? 32 : 128};
      plan.push_back(std::move(op));
    }
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

namespace {

std::string op_text(const LinkOp& op) {
  const LinkSpec& s = op.spec;
  switch (op.type) {
    case LinkOp::Type::Delete:
      return "delete link " + op.link;
    case LinkOp::Type::Create: {
      std::string out = std::string("create ") + to_string(s.kind) + " " + op.link;
      switch (s.kind) {
        case LinkKind::Bridge:
          out += " " + s.bridge.to_string();
          break;
        case LinkKind::Veth:
          out += " peer " + s.veth_peer;
          break;
        case LinkKind::Vxlan:
          out += " id " + std::to_string(s.vxlan.id);
          if (s.vxlan.local) out += " local " + s.vxlan.local->to_string();
          for (const IpAddress& r : s.vxlan.remotes) out += " remote " + r.to_string();
          out += " dstport " + std::to_string(s.vxlan.dstport);
          if (!s.vxlan.dev.empty()) out += " dev " + s.vxlan.dev;
          break;
        case LinkKind::Vlan:
          out += " id " + std::to_string(s.vlan.id) + " parent " + s.vlan.parent;
          out += s.vlan.protocol == VlanProtocol::Dot1AD ? " protocol 802.1ad" : " protocol 802.1Q";
          break;
        case LinkKind::Bond:
          if (std::string o = s.bond.to_string(); !o.empty()) out += " " + o;
          break;
        case LinkKind::Physical:
          break;
      }
      if (s.mtu) out += " mtu " + std::to_string(*s.mtu);
      return out;
    }
    case LinkOp::Type::SetMtu:
      return "set " + op.link + " mtu " + std::to_string(op.mtu);
    case LinkOp::Type::SetBridge:
      return "set " + op.link + " " + s.bridge.to_string();
    case LinkOp::Type::SetBond: {
      BondSpec set = s.bond;
      set.mode.reset();  // a changed mode recreates the bond
      return "set " + op.link + " " + set.to_string();
    }
    case LinkOp::Type::SetMaster:
      return op.master.empty() ? "set " + op.link + " nomaster"
                               : "set " + op.link + " master " + op.master;
    case LinkOp::Type::DelAddress:
      return "delete address " + op.address.to_string() + " from " + op.link;
    case LinkOp::Type::AddAddress:
      return "add address " + op.address.to_string() + " to " + op.link;
    case LinkOp::Type::SetUp:
      return "set " + op.link + (op.up ? " up" : " down");
    case LinkOp::Type::AddFdb:
      return "add fdb 00:00:00:00:00:00 dst " + op.address.ip.to_string() + " to " + op.link;
    case LinkOp::Type::DelFdb:
      return "delete fdb 00:00:00:00:00:00 dst " + op.address.ip.to_string() + " from " + op.link;
    case LinkOp::Type::AddRoute:
      return "add route " + route_text(op.address.ip, default_dst(op.address.ip), op.link);
    case LinkOp::Type::DelRoute:
      return "delete route " + route_text(op.route.gateway, op.route.dst, op.route.link);
    case LinkOp::Type::ClearGroup:
      return "set " + op.link + " group default";
  }
  return "?";
}

}  // namespace

std::string to_string(const LinkOp& op) {
  std::string out = op_text(op);
  if (!op.observed.empty()) out += " (kernel has " + op.observed + ")";
  return out;
}

std::string to_string(const std::vector<LinkOp>& plan) { return numbered_plan(plan); }

}  // namespace moat::bridges
