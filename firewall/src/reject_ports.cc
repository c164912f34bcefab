// sync_reject_ports() as raw rtnetlink over libmnl, plus the IPv6 sysctl of each end.
#include "moat/firewall/reject_ports.h"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <utility>
#include <vector>

#include "moat/base/fd.h"
#include "moat/base/file.h"
#include "moat/base/netlink.h"
#include "moat/base/netns.h"
#include "moat/firewall/names.h"

namespace moat::firewall {
namespace {

constexpr size_t kMessageSize = 512;
// Dumps interrupted by a concurrent change are redone this many times.
constexpr int kDumpAttempts = 5;
// The port end's MAC. A bridge whose MAC was not set takes the lowest MAC of its ports: with a
// random one, adding the reject port could change the bridge's (and the host's) MAC. The
// highest locally administered unicast address never wins while the bridge has another port.
constexpr uint8_t kPortMac[6] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff};

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

using Attrs = NetlinkAttrs;

struct Message {
  std::array<uint8_t, kMessageSize> buf{};
  nlmsghdr* nlh = nullptr;

  ifinfomsg* start(uint16_t type, uint16_t flags, uint8_t family = AF_UNSPEC) {
    buf.fill(0);
    nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifi->ifi_family = family;
    return ifi;
  }
  std::span<const uint8_t> bytes() const { return {buf.data(), nlh->nlmsg_len}; }
};

// A link as the dump shows it; `quiet` when it is a bridge port with learning and every kind
// of flooding off.
struct Link {
  int index = 0;
  std::string name;
  std::string kind;
  int master = 0;
  int peer = 0;  // IFLA_LINK: a veth's other end
  bool up = false;
  bool quiet = false;
};

bool is_reject_link(const std::string& name) {
  return name.starts_with("mrj.") || name.starts_with("mrp.");
}

// One socket and its sequence numbers; requests go one at a time (a node has a few bridges).
class Rtnl {
 public:
  explicit Rtnl(NetlinkSocket sock) : sock_(std::move(sock)) {}

  Result<std::map<std::string, Link>> links() {
    Result<std::map<std::string, Link>> out = dump_links();
    for (int attempt = 1;
         !out && out.error().code() == ErrorCode::Conflict && attempt < kDumpAttempts; ++attempt) {
      out = dump_links();
    }
    if (!out) return fail(std::move(out).error().add_context("listing links"));
    return out;
  }

  // The bridge ports with a static FDB entry for `mac`, by index: one dump of the bridge FDBs
  // for all ports (one per port cost a dump each of the node's links' FDBs).
  Result<std::set<int>> ports_with_static_fdb(const uint8_t (&mac)[6]) {
    Message msg;
    msg.start(RTM_GETNEIGH, NLM_F_DUMP, AF_BRIDGE);
    msg.nlh->nlmsg_seq = seq_++;
    MOAT_RETURN_IF_ERROR(sock_.send(msg.bytes()));
    std::set<int> found;
    MOAT_RETURN_IF_ERROR(sock_.receive_dump(msg.nlh->nlmsg_seq, [&](const nlmsghdr* nlh) -> Status {
      if (nlh->nlmsg_type != RTM_NEWNEIGH) return {};
      const auto* ndm = static_cast<const ndmsg*>(mnl_nlmsg_get_payload(nlh));
      Attrs a = netlink_attrs(nlh, sizeof(ndmsg));
      if ((ndm->ndm_state & NUD_NOARP) && a[NDA_LLADDR] &&
          mnl_attr_get_payload_len(a[NDA_LLADDR]) == sizeof(mac) &&
          std::memcmp(mnl_attr_get_payload(a[NDA_LLADDR]), mac, sizeof(mac)) == 0)
        found.insert(ndm->ndm_ifindex);
      return {};
    }));
    return found;
  }

  // Sends `msg` with an ack request; `tolerated` is an errno that counts as success. Errors
  // carry `what` (the device and the operation).
  Status call(Message& msg, const std::string& what, int tolerated = 0) {
    msg.nlh->nlmsg_flags |= NLM_F_ACK;
    msg.nlh->nlmsg_seq = seq_++;
    Status sent = sock_.send(msg.bytes());
    if (sent) {
      sent = sock_.receive_until(msg.nlh->nlmsg_seq);
      if (!sent && tolerated != 0 && sent.error().sys_errno() == tolerated) return {};
    }
    if (!sent) return fail(std::move(sent).error().add_context(what));
    return {};
  }

 private:
  Result<std::map<std::string, Link>> dump_links() {
    Message msg;
    msg.start(RTM_GETLINK, NLM_F_DUMP);
    mnl_attr_put_u32(msg.nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    msg.nlh->nlmsg_seq = seq_++;
    MOAT_RETURN_IF_ERROR(sock_.send(msg.bytes()));
    std::map<std::string, Link> out;
    MOAT_RETURN_IF_ERROR(sock_.receive_dump(msg.nlh->nlmsg_seq, [&](const nlmsghdr* nlh) -> Status {
      if (nlh->nlmsg_type != RTM_NEWLINK) return {};
      const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
      Attrs a = netlink_attrs(nlh, sizeof(ifinfomsg));
      if (!a[IFLA_IFNAME]) return {};
      Link l;
      l.index = ifi->ifi_index;
      l.name = mnl_attr_get_str(a[IFLA_IFNAME]);
      l.up = (ifi->ifi_flags & IFF_UP) != 0;
      if (a[IFLA_MASTER]) l.master = static_cast<int>(mnl_attr_get_u32(a[IFLA_MASTER]));
      if (a[IFLA_LINK]) l.peer = static_cast<int>(mnl_attr_get_u32(a[IFLA_LINK]));
      Attrs info = netlink_nested(a[IFLA_LINKINFO]);
      if (info[IFLA_INFO_KIND]) l.kind = mnl_attr_get_str(info[IFLA_INFO_KIND]);
      // A bridge port's flags come in its slave data, like `ip -d link show` prints them.
      if (info[IFLA_INFO_SLAVE_KIND] &&
          std::strcmp(mnl_attr_get_str(info[IFLA_INFO_SLAVE_KIND]), "bridge") == 0) {
        Attrs port = netlink_nested(info[IFLA_INFO_SLAVE_DATA]);
        l.quiet = true;
        for (int flag : {IFLA_BRPORT_LEARNING, IFLA_BRPORT_UNICAST_FLOOD, IFLA_BRPORT_MCAST_FLOOD,
                         IFLA_BRPORT_BCAST_FLOOD}) {
          if (!port[flag] || mnl_attr_get_u8(port[flag]) != 0) l.quiet = false;
        }
      }
      out[l.name] = std::move(l);
      return {};
    }));
    return out;
  }

  NetlinkSocket sock_;
  uint32_t seq_ = 1;
};

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

Status create_pair(Rtnl& rtnl, const std::string& port, const std::string& peer) {
  Message msg;
  msg.start(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  nlmsghdr* nlh = msg.nlh;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, port.c_str());
  mnl_attr_put(nlh, IFLA_ADDRESS, sizeof(kPortMac), kPortMac);
  nlattr* info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  nlattr* peer_info = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  // VETH_INFO_PEER holds an ifinfomsg of its own before the peer's attributes.
  std::memset(mnl_nlmsg_get_payload_tail(nlh), 0, MNL_ALIGN(sizeof(ifinfomsg)));
  nlh->nlmsg_len += MNL_ALIGN(sizeof(ifinfomsg));
  mnl_attr_put_strz(nlh, IFLA_IFNAME, peer.c_str());
  mnl_attr_put(nlh, IFLA_ADDRESS, sizeof(names::kRejectMac), names::kRejectMac);
  mnl_attr_nest_end(nlh, peer_info);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, info);
  return rtnl.call(msg, "creating veth pair " + port + " / " + peer);
}

// Deleting one end of a veth deletes the other: ENODEV is the other end gone already.
Status delete_link(Rtnl& rtnl, const Link& link) {
  Message msg;
  msg.start(RTM_DELLINK, 0)->ifi_index = link.index;
  return rtnl.call(msg, "deleting " + link.name, ENODEV);
}

// Sets the master of `link` (0: none) and takes it down, so that it joins a bridge quietly.
Status set_master_down(Rtnl& rtnl, const Link& link, int master) {
  Message msg;
  ifinfomsg* ifi = msg.start(RTM_NEWLINK, 0);
  ifi->ifi_index = link.index;
  ifi->ifi_change = IFF_UP;
  mnl_attr_put_u32(msg.nlh, IFLA_MASTER, static_cast<uint32_t>(master));
  return rtnl.call(msg, master ? "attaching " + link.name + " to its bridge"
                               : "detaching " + link.name + " from its master");
}

Status set_up(Rtnl& rtnl, const Link& link) {
  Message msg;
  ifinfomsg* ifi = msg.start(RTM_NEWLINK, 0);
  ifi->ifi_index = link.index;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  return rtnl.call(msg, "bringing " + link.name + " up");
}

// The port only receives what is forwarded to it on purpose: no learning (its peer's answers
// must not teach the bridge that guest MACs live here) and no flooding of any kind.
Status quiet_port(Rtnl& rtnl, const Link& link) {
  Message msg;
  msg.start(RTM_SETLINK, 0, AF_BRIDGE)->ifi_index = link.index;
  nlattr* protinfo = mnl_attr_nest_start(msg.nlh, IFLA_PROTINFO);
  protinfo->nla_type |= NLA_F_NESTED;
  for (uint16_t flag : {IFLA_BRPORT_LEARNING, IFLA_BRPORT_UNICAST_FLOOD, IFLA_BRPORT_MCAST_FLOOD,
                        IFLA_BRPORT_BCAST_FLOOD}) {
    mnl_attr_put_u8(msg.nlh, flag, 0);
  }
  mnl_attr_nest_end(msg.nlh, protinfo);
  return rtnl.call(msg, "turning learning and flooding off on " + link.name);
}

// The static FDB entry that sends frames for names::kRejectMac (OUT REJECTs to answer) to the
// port, whatever it learns (nothing: learning is off).
Status add_reject_fdb(Rtnl& rtnl, const Link& port) {
  Message msg;
  msg.buf.fill(0);
  nlmsghdr* nlh = msg.nlh = mnl_nlmsg_put_header(msg.buf.data());
  nlh->nlmsg_type = RTM_NEWNEIGH;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
  auto* ndm = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ndmsg)));
  ndm->ndm_family = AF_BRIDGE;
  ndm->ndm_ifindex = port.index;
  ndm->ndm_state = NUD_NOARP;  // `bridge fdb add ... master static`
  ndm->ndm_flags = NTF_MASTER;
  mnl_attr_put(nlh, NDA_LLADDR, sizeof(names::kRejectMac), names::kRejectMac);
  return rtnl.call(msg, "adding the reject FDB entry of " + port.name);
}

// Sets net.ipv6.conf.<dev>.disable_ipv6 = 1 unless it is already. The caller is in the link's
// namespace (/proc/sys/net resolves by the calling thread's namespace). Nothing to do on a
// kernel without IPv6.
Status disable_ipv6(const std::string& dev) {
  if (::access("/proc/sys/net/ipv6", F_OK) != 0) return {};
  std::string path = "/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6";
  Result<std::string> now = read_file(path);
  if (!now) return fail(std::move(now).error().add_context("disabling IPv6 on " + dev));
  if (now->starts_with("1")) return {};
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid() || ::write(fd.get(), "1", 1) != 1)
    return fail_errno(errno, "cannot write " + path + " (disabling IPv6 on " + dev + ")");
  return {};
}

}  // namespace

Status sync_reject_ports(const std::string& netns, const std::set<std::string>& bridges,
                         OtherRejectPorts others) {
  Rtnl rtnl(MOAT_TRY(NetlinkSocket::open(NETLINK_ROUTE, netns)));
  std::map<std::string, Link> links = MOAT_TRY(rtnl.links());
  // Per-pair failures are kept, not returned, so one broken pair does not leave the others.
  Status first;
  auto keep = [&](Status s) {
    bool ok = s.has_value();
    if (!ok && first) first = std::move(s);
    return ok;
  };

  // Deletes first: pairs of bridges no longer in the set (unless kept), and wanted names held
  // by something other than a veth pair of each other (a leftover half, a foreign link), to be
  // made anew.
  std::map<std::string, std::string> pairs;  // port -> peer
  for (const std::string& bridge : bridges)
    pairs[names::reject_port(bridge)] = names::reject_peer(bridge);
  std::set<std::string> wanted;
  for (const auto& [port, peer] : pairs) {
    wanted.insert(port);
    wanted.insert(peer);
  }
  for (const auto& [name, link] : links)
    if (others == OtherRejectPorts::Remove && is_reject_link(name) && !wanted.contains(name))
      keep(delete_link(rtnl, link));
  bool created = false;
  for (const auto& [port, peer] : pairs) {
    auto p = links.find(port);
    auto q = links.find(peer);
    bool whole = p != links.end() && q != links.end() && p->second.kind == "veth" &&
                 q->second.kind == "veth" && p->second.peer == q->second.index;
    if (whole) continue;
    if (p != links.end() && !keep(delete_link(rtnl, p->second))) continue;
    if (q != links.end() && !keep(delete_link(rtnl, q->second))) continue;
    created = keep(create_pair(rtnl, port, peer)) || created;
  }
  // The new pairs' indexes (the bridge port calls address links by index).
  if (created) links = MOAT_TRY(rtnl.links());

  // IPv6 off before either end first comes up; a pair where that failed stays down.
  std::set<std::string> silent;
  {
    Result<NetnsScope> scope = NetnsScope::enter(netns);
    if (!scope) return fail(std::move(scope).error().add_context("disabling IPv6 on reject ports"));
    for (const auto& [port, peer] : pairs) {
      if (!links.contains(port) || !links.contains(peer)) continue;  // its create failed
      if (keep(disable_ipv6(port)) && keep(disable_ipv6(peer))) silent.insert(port);
    }
  }

  std::optional<std::set<int>> with_fdb;  // listed when first needed
  for (const std::string& bridge : bridges) {
    auto p = links.find(names::reject_port(bridge));
    if (p == links.end() || !silent.contains(p->first)) continue;
    const Link& port = p->second;
    const Link& peer = links.at(names::reject_peer(bridge));
    int master = 0;
    if (auto b = links.find(bridge); b != links.end()) {
      if (b->second.kind == "bridge") {
        master = b->second.index;
      } else {
        keep(fail(ErrorCode::InvalidArgument, bridge + " is not a Linux bridge (kind \"" +
                                                  b->second.kind + "\"): reject port " + port.name +
                                                  " stays unattached"));
      }
    }
    // A port joins down, turns quiet, then comes up: it never floods or learns while up.
    bool joined = port.master != master;
    bool up = port.up && !joined;
    if (joined && !keep(set_master_down(rtnl, port, master))) continue;
    if (master && (joined || !port.quiet) && !keep(quiet_port(rtnl, port))) continue;
    if (peer.master != 0 && !keep(set_master_down(rtnl, peer, 0))) continue;
    if ((!peer.up || peer.master != 0) && !keep(set_up(rtnl, peer))) continue;
    if (!up && !keep(set_up(rtnl, port))) continue;
    if (!master) continue;
    if (!with_fdb) {
      // Unlisted, every port gets its entry again (a replace, harmless).
      Result<std::set<int>> listed = rtnl.ports_with_static_fdb(names::kRejectMac);
      if (!listed) keep(fail(std::move(listed).error().add_context("listing the bridge FDBs")));
      with_fdb = listed ? std::move(*listed) : std::set<int>{};
    }
    if (!with_fdb->contains(port.index)) keep(add_reject_fdb(rtnl, port));
  }
  return first;
}

}  // namespace moat::firewall
