// observe() and apply_links() over libnl-route-3.
#include "moat/bridges/link_driver.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bonding.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vlan.h>
#include <netlink/route/link/vxlan.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

#include "moat/base/netns.h"

namespace moat::bridges {
namespace {

struct SockFree {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct LinkPut {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct AddrPut {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct NlAddrPut {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct CacheFree {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using Sock = std::unique_ptr<nl_sock, SockFree>;
using Link = std::unique_ptr<rtnl_link, LinkPut>;
using Addr = std::unique_ptr<rtnl_addr, AddrPut>;
using NlAddr = std::unique_ptr<nl_addr, NlAddrPut>;
using Cache = std::unique_ptr<nl_cache, CacheFree>;

Error nl_error(int err, std::string what) {
  if (err < 0) err = -err;
  ErrorCode code = ErrorCode::Kernel;
  switch (err) {
    case NLE_EXIST:
      code = ErrorCode::AlreadyExists;
      break;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV:
      code = ErrorCode::NotFound;
      break;
    case NLE_PERM:
      code = ErrorCode::PermissionDenied;
      break;
    case NLE_OPNOTSUPP:
      code = ErrorCode::Unavailable;
      break;
    default:
      break;
  }
  return Error(code, std::move(what) + ": " + nl_geterror(err));
}

// A route socket bound inside `netns`; the thread is back in its namespace on return.
Result<Sock> open_socket(const std::string& netns) {
  NetnsScope scope = MOAT_TRY(NetnsScope::enter(netns));
  Sock sock(nl_socket_alloc());
  if (!sock) return fail(ErrorCode::Internal, "nl_socket_alloc failed");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
    return fail(nl_error(err, "connecting a route netlink socket"));
  }
  return sock;
}

std::optional<IpAddress> to_ip(nl_addr* a) {
  if (!a) return std::nullopt;
  IpAddress ip;
  int family = nl_addr_get_family(a);
  unsigned len = nl_addr_get_len(a);
  if (family == AF_INET && len == 4) {
    ip.family = 4;
  } else if (family == AF_INET6 && len == 16) {
    ip.family = 6;
  } else {
    return std::nullopt;
  }
  std::memcpy(ip.bytes.data(), nl_addr_get_binary_addr(a), len);
  return ip;
}

NlAddr from_ip(const IpAddress& ip, int prefix) {
  NlAddr a(nl_addr_build(ip.family == 4 ? AF_INET : AF_INET6, ip.bytes.data(), ip.size()));
  if (a) nl_addr_set_prefixlen(a.get(), prefix);
  return a;
}

Result<int> ifindex(nl_sock* sock, const std::string& name) {
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sock, 0, name.c_str(), &raw); err < 0) {
    return fail(nl_error(err, "looking up link " + name));
  }
  Link link(raw);
  return rtnl_link_get_ifindex(link.get());
}

// Sends `changes` for the link named `name` (flags, mtu, master, ifalias, ...).
Status change(nl_sock* sock, const std::string& name, rtnl_link* changes) {
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sock, 0, name.c_str(), &raw); err < 0) {
    return fail(nl_error(err, "looking up link " + name));
  }
  Link orig(raw);
  if (int err = rtnl_link_change(sock, orig.get(), changes, 0); err < 0) {
    return fail(nl_error(err, "changing link " + name));
  }
  return {};
}

Status create(nl_sock* sock, const LinkSpec& s) {
  Link link;
  switch (s.kind) {
    case LinkKind::Bridge:
      if (s.bridge.stp || s.bridge.vlan_filtering) {
        return fail(ErrorCode::Unavailable,
                    "bridge STP and VLAN filtering are not supported by this driver yet");
      }
      link.reset(rtnl_link_bridge_alloc());
      break;
    case LinkKind::Veth: {
      link.reset(rtnl_link_veth_alloc());
      if (!link) break;
      rtnl_link* peer = rtnl_link_veth_get_peer(link.get());
      rtnl_link_set_name(peer, s.veth_peer.c_str());
      if (s.mtu) rtnl_link_set_mtu(peer, *s.mtu);
      rtnl_link_put(peer);
      break;
    }
    case LinkKind::Vxlan: {
      if (s.vxlan.remotes.size() > 1) {
        return fail(ErrorCode::Unavailable,
                    "a VXLAN with several remotes (head-end replication through fdb entries) "
                    "is not supported by this driver yet");
      }
      link.reset(rtnl_link_vxlan_alloc());
      if (!link) break;
      rtnl_link_vxlan_set_id(link.get(), s.vxlan.id);
      if (s.vxlan.local) {
        NlAddr a = from_ip(*s.vxlan.local, s.vxlan.local->family == 4 ? 32 : 128);
        rtnl_link_vxlan_set_local(link.get(), a.get());
      }
      if (!s.vxlan.remotes.empty()) {
        const IpAddress& r = s.vxlan.remotes.front();
        NlAddr a = from_ip(r, r.family == 4 ? 32 : 128);
        rtnl_link_vxlan_set_group(link.get(), a.get());
      }
      rtnl_link_vxlan_set_port(link.get(), s.vxlan.dstport);
      if (!s.vxlan.dev.empty()) {
        int dev = MOAT_TRY(ifindex(sock, s.vxlan.dev));
        rtnl_link_vxlan_set_link(link.get(), static_cast<uint32_t>(dev));
      }
      break;
    }
    case LinkKind::Vlan: {
      link.reset(rtnl_link_vlan_alloc());
      if (!link) break;
      rtnl_link_vlan_set_id(link.get(), s.vlan.id);
      rtnl_link_vlan_set_protocol(link.get(),
                                  htons(s.vlan.protocol == VlanProtocol::Dot1AD ? 0x88a8 : 0x8100));
      int parent = MOAT_TRY(ifindex(sock, s.vlan.parent));
      rtnl_link_set_link(link.get(), parent);
      break;
    }
    case LinkKind::Bond:
      if (s.bond.mode || s.bond.miimon) {
        return fail(ErrorCode::Unavailable,
                    "bond mode and miimon are not supported by this driver yet (libnl-route "
                    "3.7 cannot send them)");
      }
      link.reset(rtnl_link_bond_alloc());
      break;
    case LinkKind::Physical:
      return fail(ErrorCode::Internal, "cannot create physical link " + s.name);
  }
  if (!link) return fail(ErrorCode::Internal, "rtnl_link allocation failed");
  rtnl_link_set_name(link.get(), s.name.c_str());
  if (s.mtu) rtnl_link_set_mtu(link.get(), *s.mtu);
  if (int err = rtnl_link_add(sock, link.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0) {
    return fail(nl_error(err, "creating link"));
  }
  // The ownership mark goes in a second request: RTM_NEWLINK ignores IFLA_IFALIAS on create.
  Link mark(rtnl_link_alloc());
  rtnl_link_set_ifalias(mark.get(), std::string(kOwnedAlias).c_str());
  MOAT_RETURN_IF_ERROR(change(sock, s.name, mark.get()));
  if (s.kind == LinkKind::Veth) {
    // IFF_UP on the peer in the create request is ENOTCONN; the peer is not desired state of
    // its own, so it is brought up here, marked as ours like its pair.
    Link peer(rtnl_link_alloc());
    rtnl_link_set_ifalias(peer.get(), std::string(kOwnedAlias).c_str());
    rtnl_link_set_flags(peer.get(), IFF_UP);
    MOAT_RETURN_IF_ERROR(change(sock, s.veth_peer, peer.get()));
  }
  return {};
}

Status address(nl_sock* sock, const std::string& name, const LinkAddress& a, bool add) {
  int index = MOAT_TRY(ifindex(sock, name));
  Addr addr(rtnl_addr_alloc());
  NlAddr local = from_ip(a.ip, a.prefix);
  if (!addr || !local) return fail(ErrorCode::Internal, "rtnl_addr allocation failed");
  rtnl_addr_set_ifindex(addr.get(), index);
  rtnl_addr_set_family(addr.get(), a.ip.family == 4 ? AF_INET : AF_INET6);
  rtnl_addr_set_local(addr.get(), local.get());
  rtnl_addr_set_prefixlen(addr.get(), a.prefix);
  int err = add ? rtnl_addr_add(sock, addr.get(), 0) : rtnl_addr_delete(sock, addr.get(), 0);
  if (err < 0) return fail(nl_error(err, add ? "adding address" : "deleting address"));
  return {};
}

Status run(nl_sock* sock, const LinkOp& op) {
  switch (op.type) {
    case LinkOp::Type::Delete: {
      Link link(rtnl_link_alloc());
      rtnl_link_set_name(link.get(), op.link.c_str());
      // Deleting one end of a veth pair deletes the other: a link already gone is deleted.
      if (int err = rtnl_link_delete(sock, link.get());
          err < 0 && err != -NLE_NODEV && err != -NLE_OBJ_NOTFOUND) {
        return fail(nl_error(err, "deleting link"));
      }
      return {};
    }
    case LinkOp::Type::Create:
      return create(sock, op.spec);
    case LinkOp::Type::SetMtu: {
      Link changes(rtnl_link_alloc());
      rtnl_link_set_mtu(changes.get(), op.mtu);
      return change(sock, op.link, changes.get());
    }
    case LinkOp::Type::SetMaster: {
      int master = 0;
      if (!op.master.empty()) master = MOAT_TRY(ifindex(sock, op.master));
      Link changes(rtnl_link_alloc());
      rtnl_link_set_master(changes.get(), master);
      return change(sock, op.link, changes.get());
    }
    case LinkOp::Type::DelAddress:
      return address(sock, op.link, op.address, false);
    case LinkOp::Type::AddAddress:
      return address(sock, op.link, op.address, true);
    case LinkOp::Type::SetUp: {
      Link changes(rtnl_link_alloc());
      if (op.up) {
        rtnl_link_set_flags(changes.get(), IFF_UP);
      } else {
        rtnl_link_unset_flags(changes.get(), IFF_UP);
      }
      return change(sock, op.link, changes.get());
    }
  }
  return fail(ErrorCode::Internal, "unknown link operation");
}

}  // namespace

Result<Observed> observe(const std::string& netns) {
  Sock sock = MOAT_TRY(open_socket(netns));
  std::string where = netns.empty() ? "this namespace" : "netns " + netns;
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sock.get(), AF_UNSPEC, &raw); err < 0) {
    return fail(nl_error(err, "dumping links of " + where));
  }
  Cache links(raw);
  raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(sock.get(), &raw); err < 0) {
    return fail(nl_error(err, "dumping addresses of " + where));
  }
  Cache addrs(raw);

  std::map<int, ObservedLink> by_index;
  for (nl_object* obj = nl_cache_get_first(links.get()); obj; obj = nl_cache_get_next(obj)) {
    auto* l = reinterpret_cast<rtnl_link*>(obj);
    ObservedLink o;
    o.index = rtnl_link_get_ifindex(l);
    o.name = rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "";
    if (const char* kind = rtnl_link_get_type(l)) o.kind = kind;
    o.mtu = rtnl_link_get_mtu(l);
    o.up = (rtnl_link_get_flags(l) & IFF_UP) != 0;
    if (const char* alias = rtnl_link_get_ifalias(l)) o.alias = alias;
    if (int m = rtnl_link_get_master(l); m > 0) {
      // Resolved below, once every name is known.
      o.master = std::to_string(m);
    }
    if (rtnl_link_is_vxlan(l)) {
      VxlanSpec v;
      uint32_t id = 0;
      if (rtnl_link_vxlan_get_id(l, &id) == 0) v.id = id;
      nl_addr* a = nullptr;
      if (rtnl_link_vxlan_get_local(l, &a) == 0) {
        NlAddr owned(a);
        v.local = to_ip(a);
      }
      a = nullptr;
      if (rtnl_link_vxlan_get_group(l, &a) == 0) {
        NlAddr owned(a);
        if (auto ip = to_ip(a)) v.remotes.push_back(*ip);
      }
      uint32_t port = 0;
      if (rtnl_link_vxlan_get_port(l, &port) == 0) v.dstport = static_cast<uint16_t>(port);
      o.vxlan = std::move(v);
    }
    by_index.emplace(o.index, std::move(o));
  }
  for (auto& [index, o] : by_index) {
    if (o.master.empty()) continue;
    auto m = by_index.find(std::stoi(o.master));
    o.master = m == by_index.end() ? std::string() : m->second.name;
  }
  for (nl_object* obj = nl_cache_get_first(addrs.get()); obj; obj = nl_cache_get_next(obj)) {
    auto* a = reinterpret_cast<rtnl_addr*>(obj);
    auto it = by_index.find(rtnl_addr_get_ifindex(a));
    if (it == by_index.end()) continue;
    if (auto ip = to_ip(rtnl_addr_get_local(a))) {
      it->second.addresses.push_back({*ip, rtnl_addr_get_prefixlen(a)});
    }
  }
  Observed out;
  for (auto& [index, o] : by_index) {
    std::sort(o.addresses.begin(), o.addresses.end());
    out.links.push_back(std::move(o));
  }
  std::sort(out.links.begin(), out.links.end(),
            [](const ObservedLink& a, const ObservedLink& b) { return a.name < b.name; });
  return out;
}

Result<ApplyReport> apply_links(const ApplyRequest& request) {
  ApplyReport report;
  if (request.plan.empty()) return report;
  Sock sock = MOAT_TRY(open_socket(request.netns));
  for (const LinkOp& op : request.plan) {
    Status done = run(sock.get(), op);
    if (!done) {
      Error e = std::move(done).error();
      e.add_context(to_string(op));
      if (op.line > 0) e.at({.file = request.file, .line = op.line});
      return fail(std::move(e));
    }
    ++report.applied;
  }
  return report;
}

}  // namespace moat::bridges
