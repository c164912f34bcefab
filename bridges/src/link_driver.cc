// observe() and apply_links() as raw rtnetlink over libmnl.
#include "moat/bridges/link_driver.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <unordered_map>

#include "moat/base/netlink.h"

namespace moat::bridges {
namespace {

// Enough for any single request this driver builds (the largest is a VXLAN create).
constexpr size_t kMessageSize = 1024;
// Requests per sendmsg: their acks (about 1 KiB of receive buffer each) must fit the socket's
// receive buffer, or the kernel drops them.
constexpr size_t kWindow = 256;
constexpr int kReceiveBuffer = 4 << 20;

// ---------------------------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------------------------

using Attrs = NetlinkAttrs;

std::optional<IpAddress> attr_ip(const nlattr* a) {
  if (!a) return std::nullopt;
  uint16_t len = mnl_attr_get_payload_len(a);
  if (len != 4 && len != 16) return std::nullopt;
  IpAddress ip;
  ip.family = len == 4 ? 4 : 6;
  std::memcpy(ip.bytes.data(), mnl_attr_get_payload(a), len);
  return ip;
}

uint32_t attr_u32(const nlattr* a, uint32_t otherwise = 0) {
  return a ? mnl_attr_get_u32(a) : otherwise;
}
uint8_t attr_u8(const nlattr* a) { return a ? mnl_attr_get_u8(a) : 0; }
std::string attr_str(const nlattr* a) { return a ? mnl_attr_get_str(a) : std::string(); }

void put_ip(nlmsghdr* nlh, uint16_t type, const IpAddress& ip) {
  mnl_attr_put(nlh, type, ip.size(), ip.bytes.data());
}

// Appends a zeroed struct of `size` bytes as a raw part of the message (the ifinfomsg inside
// VETH_INFO_PEER).
void* put_raw(nlmsghdr* nlh, size_t size) {
  void* p = mnl_nlmsg_get_payload_tail(nlh);
  std::memset(p, 0, MNL_ALIGN(size));
  nlh->nlmsg_len += MNL_ALIGN(size);
  return p;
}

// IFLA_LINKINFO { IFLA_INFO_KIND kind, IFLA_INFO_DATA { ... } }: open for the kind's
// attributes while it lives.
class KindData {
 public:
  KindData(nlmsghdr* nlh, const char* kind) : nlh_(nlh) {
    info_ = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, kind);
    data_ = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  }
  ~KindData() {
    mnl_attr_nest_end(nlh_, data_);
    mnl_attr_nest_end(nlh_, info_);
  }
  KindData(const KindData&) = delete;
  KindData& operator=(const KindData&) = delete;

 private:
  nlmsghdr* nlh_;
  nlattr* info_;
  nlattr* data_;
};

// ---------------------------------------------------------------------------------------------
// Dumps
// ---------------------------------------------------------------------------------------------

struct Request {
  std::array<uint8_t, kMessageSize> buf{};
  nlmsghdr* nlh = nullptr;
  template <class Header>
  Header* start(uint16_t type, uint16_t flags) {
    buf.fill(0);
    nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    return static_cast<Header*>(mnl_nlmsg_put_extra_header(nlh, sizeof(Header)));
  }
  std::span<const uint8_t> bytes() const { return {buf.data(), nlh->nlmsg_len}; }
};

// Sends a dump request built in `req` and hands every reply message to `on_message`.
Status dump(NetlinkSocket& sock, Request& req, uint32_t seq,
            const std::function<void(const nlmsghdr*)>& on_message) {
  req.nlh->nlmsg_seq = seq;
  MOAT_RETURN_IF_ERROR(sock.send(req.bytes()));
  return sock.receive_dump(seq, [&](const nlmsghdr* nlh) -> Status {
    on_message(nlh);
    return {};
  });
}

// Dumps interrupted by a concurrent change (Conflict from receive_dump) are redone from
// scratch this many times before the Conflict is returned.
constexpr int kDumpAttempts = 5;

Result<NetlinkSocket> open_route_socket(const std::string& netns) {
  NetlinkSocket sock = MOAT_TRY(NetlinkSocket::open(NETLINK_ROUTE, netns));
  int one = 1;
  // Strict checking makes the kernel honour the filters in dump requests (FDB by port).
  setsockopt(sock.fd(), SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
  int size = kReceiveBuffer;
  if (setsockopt(sock.fd(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0) {
    setsockopt(sock.fd(), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  return sock;
}

// An RTM_GETLINK dump request without statistics (they are most of a link's message).
void link_dump_request(Request& req) {
  auto* ifi = req.start<ifinfomsg>(RTM_GETLINK, NLM_F_DUMP);
  ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_u32(req.nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
}

void parse_kind_data(const std::string& kind, const nlattr* data_attr, ObservedLink& o,
                     std::vector<std::pair<ObservedLink*, int>>& primaries) {
  Attrs data = netlink_nested(data_attr);
  if (kind == "bridge") {
    BridgeSpec b;
    b.stp = attr_u32(data[IFLA_BR_STP_STATE]) != 0;
    if (data[IFLA_BR_FORWARD_DELAY]) b.forward_delay = attr_u32(data[IFLA_BR_FORWARD_DELAY]) / 100;
    b.vlan_filtering = attr_u8(data[IFLA_BR_VLAN_FILTERING]) != 0;
    o.bridge = b;
  } else if (kind == "bond") {
    BondSpec b;
    if (data[IFLA_BOND_MODE]) b.mode = static_cast<BondMode>(attr_u8(data[IFLA_BOND_MODE]));
    if (data[IFLA_BOND_MIIMON]) b.miimon = attr_u32(data[IFLA_BOND_MIIMON]);
    if (data[IFLA_BOND_XMIT_HASH_POLICY]) {
      b.xmit_hash_policy = static_cast<XmitHashPolicy>(attr_u8(data[IFLA_BOND_XMIT_HASH_POLICY]));
    }
    if (data[IFLA_BOND_PRIMARY]) {
      primaries.emplace_back(&o, static_cast<int>(attr_u32(data[IFLA_BOND_PRIMARY])));
    }
    o.bond = b;
  } else if (kind == "vlan") {
    VlanSpec v;
    if (data[IFLA_VLAN_ID]) v.id = mnl_attr_get_u16(data[IFLA_VLAN_ID]);
    if (data[IFLA_VLAN_PROTOCOL] && ntohs(mnl_attr_get_u16(data[IFLA_VLAN_PROTOCOL])) == 0x88a8) {
      v.protocol = VlanProtocol::Dot1AD;
    }
    o.vlan = v;  // parent: from IFLA_LINK, resolved with the masters
  } else if (kind == "vxlan") {
    VxlanSpec v;
    v.id = attr_u32(data[IFLA_VXLAN_ID]);
    v.local = attr_ip(data[IFLA_VXLAN_LOCAL]);
    if (!v.local) v.local = attr_ip(data[IFLA_VXLAN_LOCAL6]);
    std::optional<IpAddress> group = attr_ip(data[IFLA_VXLAN_GROUP]);
    if (!group) group = attr_ip(data[IFLA_VXLAN_GROUP6]);
    if (group) v.remotes.push_back(*group);
    if (data[IFLA_VXLAN_PORT]) v.dstport = ntohs(mnl_attr_get_u16(data[IFLA_VXLAN_PORT]));
    o.vxlan = std::move(v);
  }
}

// The zero-MAC FDB entries (NTF_SELF) of link `index`: a VXLAN's default destinations.
Status dump_fdb_remotes(NetlinkSocket& sock, int index, uint32_t seq, std::vector<IpAddress>& out) {
  Request req;
  auto* ndm = req.start<ndmsg>(RTM_GETNEIGH, NLM_F_DUMP);
  ndm->ndm_family = AF_BRIDGE;
  ndm->ndm_ifindex = index;
  MOAT_RETURN_IF_ERROR(dump(sock, req, seq, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWNEIGH) return;
    const auto* m = static_cast<const ndmsg*>(mnl_nlmsg_get_payload(nlh));
    if (m->ndm_ifindex != index || !(m->ndm_flags & NTF_SELF)) return;
    Attrs a = netlink_attrs(nlh, sizeof(ndmsg));
    if (!a[NDA_LLADDR] || mnl_attr_get_payload_len(a[NDA_LLADDR]) != 6) return;
    static constexpr uint8_t kZero[6] = {};
    if (std::memcmp(mnl_attr_get_payload(a[NDA_LLADDR]), kZero, 6) != 0) return;
    if (auto ip = attr_ip(a[NDA_DST])) out.push_back(*ip);
  }));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return {};
}

Error with_where(Error e, const std::string& netns) {
  e.add_context(netns.empty() ? "observing this namespace" : "observing netns " + netns);
  return e;
}

Result<Observed> observe_with(NetlinkSocket& sock) {
  uint32_t seq = 1;
  std::unordered_map<int, ObservedLink> by_index;
  std::unordered_map<int, int> master_of, link_of, vxlan_dev_of;
  std::vector<std::pair<ObservedLink*, int>> primaries;
  by_index.reserve(1024);

  Request req;
  link_dump_request(req);
  MOAT_RETURN_IF_ERROR(dump(sock, req, seq++, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWLINK) return;
    const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    Attrs a = netlink_attrs(nlh, sizeof(ifinfomsg));
    // Nodes of an unordered_map stay put: `primaries` may point into them.
    ObservedLink& o = by_index[ifi->ifi_index];
    o.index = ifi->ifi_index;
    o.name = attr_str(a[IFLA_IFNAME]);
    o.mtu = attr_u32(a[IFLA_MTU]);
    o.up = (ifi->ifi_flags & IFF_UP) != 0;
    o.alias = attr_str(a[IFLA_IFALIAS]);
    o.group = attr_u32(a[IFLA_GROUP]);
    if (int m = static_cast<int>(attr_u32(a[IFLA_MASTER])); m > 0) master_of[o.index] = m;
    if (int l = static_cast<int>(attr_u32(a[IFLA_LINK])); l > 0 && l != o.index) {
      link_of[o.index] = l;
    }
    Attrs info = netlink_nested(a[IFLA_LINKINFO]);
    o.kind = attr_str(info[IFLA_INFO_KIND]);
    if (info[IFLA_INFO_DATA]) parse_kind_data(o.kind, info[IFLA_INFO_DATA], o, primaries);
    if (o.vxlan) {
      // The underlay: the kernel deletes the VXLAN with it.
      Attrs data = netlink_nested(info[IFLA_INFO_DATA]);
      if (int l = static_cast<int>(attr_u32(data[IFLA_VXLAN_LINK])); l > 0)
        vxlan_dev_of[o.index] = l;
    }
  }));
  auto name_of = [&](int index) {
    auto it = by_index.find(index);
    return it == by_index.end() ? std::string() : it->second.name;
  };
  for (auto [index, master] : master_of) by_index[index].master = name_of(master);
  for (auto [link, primary] : primaries) link->bond->primary = name_of(primary);
  for (auto [index, parent] : link_of) {
    ObservedLink& o = by_index[index];
    if (o.vlan) o.vlan->parent = name_of(parent);
  }
  for (auto [index, dev] : vxlan_dev_of) by_index[index].vxlan->dev = name_of(dev);

  Request addr_req;
  addr_req.start<ifaddrmsg>(RTM_GETADDR, NLM_F_DUMP)->ifa_family = AF_UNSPEC;
  MOAT_RETURN_IF_ERROR(dump(sock, addr_req, seq++, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWADDR) return;
    const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
    auto it = by_index.find(static_cast<int>(ifa->ifa_index));
    if (it == by_index.end()) return;
    Attrs a = netlink_attrs(nlh, sizeof(ifaddrmsg));
    // Addresses with a lifetime (SLAAC from router advertisements, a DHCP lease) are the
    // kernel's or a daemon's, not configuration: planning against them would delete them on
    // every pass while they keep coming back.
    uint32_t flags = a[IFA_FLAGS] ? attr_u32(a[IFA_FLAGS]) : ifa->ifa_flags;
    if (!(flags & IFA_F_PERMANENT)) return;
    std::optional<IpAddress> ip = attr_ip(a[IFA_LOCAL]);
    if (!ip) ip = attr_ip(a[IFA_ADDRESS]);
    if (ip) it->second.addresses.push_back({*ip, ifa->ifa_prefixlen});
  }));

  Observed out;
  Request route_req;
  auto* rtm = route_req.start<rtmsg>(RTM_GETROUTE, NLM_F_DUMP);
  rtm->rtm_family = AF_UNSPEC;
  rtm->rtm_table = RT_TABLE_MAIN;
  MOAT_RETURN_IF_ERROR(dump(sock, route_req, seq++, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWROUTE) return;
    const auto* r = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
    Attrs a = netlink_attrs(nlh, sizeof(rtmsg));
    uint32_t table = a[RTA_TABLE] ? attr_u32(a[RTA_TABLE]) : r->rtm_table;
    if (table != RT_TABLE_MAIN || r->rtm_type != RTN_UNICAST) return;
    if (r->rtm_dst_len != 0 && r->rtm_protocol != kRouteProtocol) return;
    ObservedRoute route;
    if (std::optional<IpAddress> dst = attr_ip(a[RTA_DST])) {
      route.dst = {*dst, r->rtm_dst_len};
    } else {
      route.dst.ip.family = r->rtm_family == AF_INET6 ? 6 : 4;
      route.dst.prefix = r->rtm_dst_len;
    }
    route.gateway = attr_ip(a[RTA_GATEWAY]);
    route.link = name_of(static_cast<int>(attr_u32(a[RTA_OIF])));
    route.protocol = r->rtm_protocol;
    route.priority = attr_u32(a[RTA_PRIORITY]);
    out.routes.push_back(std::move(route));
  }));

  for (auto& [index, o] : by_index) {
    if (o.kind == "vxlan") {
      MOAT_RETURN_IF_ERROR(dump_fdb_remotes(sock, index, seq++, o.fdb_remotes));
    }
    std::sort(o.addresses.begin(), o.addresses.end());
    out.links.push_back(std::move(o));
  }
  std::sort(out.links.begin(), out.links.end(),
            [](const ObservedLink& a, const ObservedLink& b) { return a.name < b.name; });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Apply
// ---------------------------------------------------------------------------------------------

// Queues requests, sends them kWindow at a time, and maps each failed ack back to its op.
class Pipeline {
 public:
  Pipeline(NetlinkSocket& sock, const ApplyRequest& request) : sock_(sock), request_(request) {}

  // A new request for op `op`; `tolerated` is an errno that counts as success.
  template <class Header>
  Header* start(uint16_t type, uint16_t flags, size_t op, int tolerated = 0) {
    current_ = {op, tolerated};
    return req_.start<Header>(type, NLM_F_ACK | flags);
  }
  nlmsghdr* nlh() { return req_.nlh; }
  // Queues the request started last; sends the window when it is full.
  Status queue() {
    req_.nlh->nlmsg_seq = next_seq_;
    sent_.emplace(next_seq_, current_);
    ++next_seq_;
    auto bytes = req_.bytes();
    pending_.insert(pending_.end(), bytes.begin(), bytes.end());
    ++report_.messages;
    if (sent_.size() >= kWindow) return flush();
    return {};
  }
  // Sends what is queued and reads its acks. The first failure (in the order sent) is
  // returned with its op; `failed()` tells such an error from one of building a request.
  Status flush() {
    if (pending_.empty()) return {};
    uint32_t last = next_seq_ - 1;
    MOAT_RETURN_IF_ERROR(sock_.send(pending_));
    ++report_.batches;
    pending_.clear();
    std::optional<std::pair<uint32_t, std::pair<int, std::string>>> first;
    MOAT_RETURN_IF_ERROR(
        sock_.receive_acks(last, [&](uint32_t seq, int err, const std::string& extack) {
          auto it = sent_.find(seq);
          if (err == 0 || it == sent_.end() || err == it->second.tolerated) return;
          if (!first || seq < first->first) first = {seq, {err, extack}};
        }));
    if (first) {
      failed_ = true;
      size_t op = sent_.at(first->first).op;
      sent_.clear();
      auto [err, extack] = first->second;
      Error e = fail_errno(err, extack.empty() ? "kernel rejected the request"
                                               : "kernel rejected the request: " + extack)
                    .error();
      return std::unexpected(with_op(std::move(e), op));
    }
    sent_.clear();
    return {};
  }
  Error with_op(Error e, size_t op) const {
    const LinkOp& o = request_.plan[op];
    e.add_context(to_string(o));
    if (o.line > 0) e.at({.file = request_.file, .line = o.line});
    return e;
  }
  bool failed() const { return failed_; }
  ApplyReport& report() { return report_; }

 private:
  struct Sent {
    size_t op = 0;
    int tolerated = 0;
  };
  NetlinkSocket& sock_;
  const ApplyRequest& request_;
  Request req_;
  Sent current_;
  std::vector<uint8_t> pending_;
  std::unordered_map<uint32_t, Sent> sent_;
  uint32_t next_seq_ = 1;
  bool failed_ = false;
  ApplyReport report_;
};

class Applier {
 public:
  Applier(NetlinkSocket& sock, const ApplyRequest& request)
      : sock_(sock), request_(request), pipe_(sock, request) {}

  Result<ApplyReport> run() {
    const std::vector<LinkOp>& plan = request_.plan;
    for (size_t i = 0; i < plan.size(); ++i) {
      const LinkOp& op = plan[i];
      // The group of deletes goes before the first op that is not one.
      Status s = op.type == LinkOp::Type::Delete ? queue_delete(op, i) : delete_group();
      bool with_up = joins_and_comes_up(i);
      if (s && with_up) {
        s = set_master(op, i, true);
      } else if (s && op.type != LinkOp::Type::Delete) {
        s = queue_op(op, i);
      }
      if (!s) return fail(pipe_.failed() ? s.error() : pipe_.with_op(s.error(), i));
      if (with_up) ++i;  // the SetUp went with it
    }
    if (Status s = delete_group(); !s) return fail(s.error());
    for (const auto& [peer, i] : peers_up_) {
      ifinfomsg* ifi = setlink(peer, i);
      ifi->ifi_flags = IFF_UP;
      ifi->ifi_change = IFF_UP;
      if (Status s = pipe_.queue(); !s) return fail(s.error());
    }
    if (Status s = pipe_.flush(); !s) return fail(s.error());
    pipe_.report().applied = plan.size();
    return pipe_.report();
  }

 private:
  // The ifindex of `name`: from the last RTM_GETLINK dump, or after sending what is queued
  // (the link may be made by it) and dumping again.
  Result<int> index_of(const std::string& name) {
    if (auto it = index_.find(name); it != index_.end()) return it->second;
    MOAT_RETURN_IF_ERROR(pipe_.flush());
    Status dumped;
    for (int attempt = 0; attempt < kDumpAttempts; ++attempt) {
      index_.clear();
      Request req;
      link_dump_request(req);
      dumped = dump(sock_, req, dump_seq_++, [&](const nlmsghdr* nlh) {
        if (nlh->nlmsg_type != RTM_NEWLINK) return;
        const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
        Attrs a = netlink_attrs(nlh, sizeof(ifinfomsg));
        if (a[IFLA_IFNAME]) index_.emplace(mnl_attr_get_str(a[IFLA_IFNAME]), ifi->ifi_index);
      });
      if (dumped || dumped.error().code() != ErrorCode::Conflict) break;
    }
    if (!dumped) {
      index_.clear();
      return fail(std::move(dumped).error());
    }
    if (auto it = index_.find(name); it != index_.end()) return it->second;
    return fail(ErrorCode::NotFound, "no link named " + name);
  }

  // A link's current index is stale once it is deleted or made again.
  void forget(const std::string& name) { index_.erase(name); }

  // RTM_NEWLINK for the existing link `name` (no create flags); attributes follow.
  ifinfomsg* setlink(const std::string& name, size_t op, int tolerated = 0) {
    auto* ifi = pipe_.start<ifinfomsg>(RTM_NEWLINK, 0, op, tolerated);
    ifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(pipe_.nlh(), IFLA_IFNAME, name.c_str());
    return ifi;
  }

  // Delete: the link joins kDeleteGroup now; the group goes before the next other op.
  Status queue_delete(const LinkOp& op, size_t i) {
    // What goes before the deletes (links taken out of kDeleteGroup, routes) is acked first:
    // the kernel runs every request of a sendmsg, so a failed ClearGroup batched with the group
    // delete would not stop the delete of a link that had to stay.
    if (!group_op_) MOAT_RETURN_IF_ERROR(pipe_.flush());
    if (op.has_ports) {
      ifinfomsg* down = setlink(op.link, i, ENODEV);
      down->ifi_change = IFF_UP;
      MOAT_RETURN_IF_ERROR(pipe_.queue());
    }
    setlink(op.link, i, ENODEV);
    mnl_attr_put_u32(pipe_.nlh(), IFLA_GROUP, kDeleteGroup);
    MOAT_RETURN_IF_ERROR(pipe_.queue());
    forget(op.link);
    if (!group_op_) group_op_ = i;
    return {};
  }

  Status delete_group() {
    if (!group_op_) return {};
    size_t op = *group_op_;
    group_op_.reset();
    auto* ifi = pipe_.start<ifinfomsg>(RTM_DELLINK, 0, op, ENODEV);
    ifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_u32(pipe_.nlh(), IFLA_GROUP, kDeleteGroup);
    MOAT_RETURN_IF_ERROR(pipe_.queue());
    // Indexes of the other ends of deleted veths are stale too.
    index_.clear();
    return {};
  }

  Status put_bridge_data(const BridgeSpec& want, const BridgeSpec* have) {
    nlmsghdr* nlh = pipe_.nlh();
    KindData kind(nlh, "bridge");
    // Forward delay before STP: with STP on the kernel wants 2-30 s.
    if (want.forward_delay && (!have || want.forward_delay != have->forward_delay)) {
      mnl_attr_put_u32(nlh, IFLA_BR_FORWARD_DELAY, *want.forward_delay * 100);
    }
    if (!have || want.stp != have->stp) mnl_attr_put_u32(nlh, IFLA_BR_STP_STATE, want.stp ? 1 : 0);
    // Sent only to change it: a kernel without bridge VLAN filtering refuses even a 0.
    if (have ? want.vlan_filtering != have->vlan_filtering : want.vlan_filtering) {
      mnl_attr_put_u8(nlh, IFLA_BR_VLAN_FILTERING, want.vlan_filtering ? 1 : 0);
    }
    return {};
  }

  Status put_bond_data(const BondSpec& b, bool with_mode) {
    int primary = 0;
    if (!b.primary.empty()) primary = MOAT_TRY(index_of(b.primary));
    nlmsghdr* nlh = pipe_.nlh();
    KindData kind(nlh, "bond");
    if (with_mode && b.mode) mnl_attr_put_u8(nlh, IFLA_BOND_MODE, static_cast<uint8_t>(*b.mode));
    if (b.miimon) mnl_attr_put_u32(nlh, IFLA_BOND_MIIMON, *b.miimon);
    if (b.xmit_hash_policy) {
      mnl_attr_put_u8(nlh, IFLA_BOND_XMIT_HASH_POLICY, static_cast<uint8_t>(*b.xmit_hash_policy));
    }
    if (primary > 0) mnl_attr_put_u32(nlh, IFLA_BOND_PRIMARY, static_cast<uint32_t>(primary));
    return {};
  }

  Status create(const LinkSpec& s, size_t i) {
    // Indexes first: looking one up may send what is queued, and the request is built in
    // place.
    int parent = 0;
    if (s.kind == LinkKind::Vlan) parent = MOAT_TRY(index_of(s.vlan.parent));
    if (s.kind == LinkKind::Vxlan && !s.vxlan.dev.empty()) parent = MOAT_TRY(index_of(s.vxlan.dev));
    if (s.kind == LinkKind::Bond && !s.bond.primary.empty()) MOAT_TRY(index_of(s.bond.primary));

    auto* ifi = pipe_.start<ifinfomsg>(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, i);
    ifi->ifi_family = AF_UNSPEC;
    nlmsghdr* nlh = pipe_.nlh();
    mnl_attr_put_strz(nlh, IFLA_IFNAME, s.name.c_str());
    if (s.mtu) mnl_attr_put_u32(nlh, IFLA_MTU, *s.mtu);
    if (s.kind == LinkKind::Vlan) mnl_attr_put_u32(nlh, IFLA_LINK, static_cast<uint32_t>(parent));
    switch (s.kind) {
      case LinkKind::Bridge:
        MOAT_RETURN_IF_ERROR(put_bridge_data(s.bridge, nullptr));
        break;
      case LinkKind::Bond:
        MOAT_RETURN_IF_ERROR(put_bond_data(s.bond, true));
        break;
      case LinkKind::Veth: {
        KindData kind(nlh, "veth");
        nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
        put_raw(nlh, sizeof(ifinfomsg));
        mnl_attr_put_strz(nlh, IFLA_IFNAME, s.veth_peer.c_str());
        if (s.mtu) mnl_attr_put_u32(nlh, IFLA_MTU, *s.mtu);
        mnl_attr_nest_end(nlh, peer);
        break;
      }
      case LinkKind::Vlan: {
        KindData kind(nlh, "vlan");
        mnl_attr_put_u16(nlh, IFLA_VLAN_ID, s.vlan.id);
        mnl_attr_put_u16(nlh, IFLA_VLAN_PROTOCOL,
                         htons(s.vlan.protocol == VlanProtocol::Dot1AD ? 0x88a8 : 0x8100));
        break;
      }
      case LinkKind::Vxlan: {
        KindData kind(nlh, "vxlan");
        mnl_attr_put_u32(nlh, IFLA_VXLAN_ID, s.vxlan.id);
        if (s.vxlan.local) {
          put_ip(nlh, s.vxlan.local->family == 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6,
                 *s.vxlan.local);
        }
        // Several remotes are FDB entries of their own (plan_links() adds them).
        if (s.vxlan.remotes.size() == 1) {
          const IpAddress& r = s.vxlan.remotes.front();
          put_ip(nlh, r.family == 4 ? IFLA_VXLAN_GROUP : IFLA_VXLAN_GROUP6, r);
        }
        mnl_attr_put_u16(nlh, IFLA_VXLAN_PORT, htons(s.vxlan.dstport));
        if (parent > 0) mnl_attr_put_u32(nlh, IFLA_VXLAN_LINK, static_cast<uint32_t>(parent));
        break;
      }
      case LinkKind::Physical:
        return fail(ErrorCode::Internal, "cannot create physical link " + s.name);
    }
    MOAT_RETURN_IF_ERROR(pipe_.queue());
    forget(s.name);

    setlink(s.name, i);
    mnl_attr_put_strz(pipe_.nlh(), IFLA_IFALIAS, std::string(kOwnedAlias).c_str());
    MOAT_RETURN_IF_ERROR(pipe_.queue());
    if (s.kind == LinkKind::Veth) {
      // The peer is not desired state of its own: marked as ours, and up at the end of the
      // apply (links that come up early send IPv6 DAD and router solicitations whose handling
      // slows every later request down).
      forget(s.veth_peer);
      setlink(s.veth_peer, i);
      mnl_attr_put_strz(pipe_.nlh(), IFLA_IFALIAS, std::string(kOwnedAlias).c_str());
      MOAT_RETURN_IF_ERROR(pipe_.queue());
      peers_up_.emplace_back(s.veth_peer, i);
    }
    return {};
  }

  // An add replaces: an address the plan adds may exist already with a lifetime (a DHCP lease,
  // SLAAC; observe() leaves those out), and the replace makes it permanent.
  Status address(const LinkOp& op, size_t i, bool add) {
    int index = MOAT_TRY(index_of(op.link));
    auto* ifa = pipe_.start<ifaddrmsg>(add ? RTM_NEWADDR : RTM_DELADDR,
                                       add ? NLM_F_CREATE | NLM_F_REPLACE : 0, i);
    const IpAddress& ip = op.address.ip;
    ifa->ifa_family = ip.family == 4 ? AF_INET : AF_INET6;
    ifa->ifa_prefixlen = static_cast<uint8_t>(op.address.prefix);
    ifa->ifa_index = static_cast<uint32_t>(index);
    put_ip(pipe_.nlh(), IFA_LOCAL, ip);
    put_ip(pipe_.nlh(), IFA_ADDRESS, ip);
    return pipe_.queue();
  }

  Status fdb(const LinkOp& op, size_t i, bool add) {
    int index = MOAT_TRY(index_of(op.link));
    auto* ndm = pipe_.start<ndmsg>(add ? RTM_NEWNEIGH : RTM_DELNEIGH,
                                   add ? NLM_F_CREATE | NLM_F_APPEND : 0, i);
    ndm->ndm_family = AF_BRIDGE;
    ndm->ndm_ifindex = index;
    ndm->ndm_state = NUD_NOARP | NUD_PERMANENT;
    ndm->ndm_flags = NTF_SELF;
    static constexpr uint8_t kZero[6] = {};
    mnl_attr_put(pipe_.nlh(), NDA_LLADDR, sizeof(kZero), kZero);
    put_ip(pipe_.nlh(), NDA_DST, op.address.ip);
    return pipe_.queue();
  }

  Status route(const LinkOp& op, size_t i, bool add) {
    const ObservedRoute* r = add ? nullptr : &op.route;
    const std::string& link = add ? op.link : r->link;
    int oif = link.empty() ? 0 : MOAT_TRY(index_of(link));
    auto* rtm = pipe_.start<rtmsg>(add ? RTM_NEWROUTE : RTM_DELROUTE,
                                   add ? NLM_F_CREATE | NLM_F_EXCL : 0, i);
    std::optional<IpAddress> gateway = add ? std::optional(op.address.ip) : r->gateway;
    int family = add ? op.address.ip.family : r->dst.ip.family;
    rtm->rtm_family = family == 4 ? AF_INET : AF_INET6;
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = kRouteProtocol;
    rtm->rtm_scope = add ? RT_SCOPE_UNIVERSE : RT_SCOPE_NOWHERE;
    rtm->rtm_type = add ? RTN_UNICAST : 0;
    nlmsghdr* nlh = pipe_.nlh();
    if (r && r->dst.prefix > 0) {
      rtm->rtm_dst_len = static_cast<uint8_t>(r->dst.prefix);
      put_ip(nlh, RTA_DST, r->dst.ip);
    }
    if (gateway) put_ip(nlh, RTA_GATEWAY, *gateway);
    if (oif > 0) mnl_attr_put_u32(nlh, RTA_OIF, static_cast<uint32_t>(oif));
    if (r && r->priority) mnl_attr_put_u32(nlh, RTA_PRIORITY, r->priority);
    return pipe_.queue();
  }

  // Op i sets a master and op i+1 brings the same link up: one request does both, as
  // `ip link set X master Y up` does (the kernel sets the master before the flags).
  bool joins_and_comes_up(size_t i) const {
    const std::vector<LinkOp>& plan = request_.plan;
    return i + 1 < plan.size() && plan[i].type == LinkOp::Type::SetMaster &&
           plan[i + 1].type == LinkOp::Type::SetUp && plan[i + 1].up &&
           plan[i + 1].link == plan[i].link;
  }

  Status set_master(const LinkOp& op, size_t i, bool up) {
    int master = op.master.empty() ? 0 : MOAT_TRY(index_of(op.master));
    ifinfomsg* ifi = setlink(op.link, i);
    if (up) {
      ifi->ifi_flags = IFF_UP;
      ifi->ifi_change = IFF_UP;
    }
    mnl_attr_put_u32(pipe_.nlh(), IFLA_MASTER, static_cast<uint32_t>(master));
    return pipe_.queue();
  }

  Status queue_op(const LinkOp& op, size_t i) {
    switch (op.type) {
      case LinkOp::Type::Delete:
        return queue_delete(op, i);
      case LinkOp::Type::Create:
        return create(op.spec, i);
      case LinkOp::Type::SetMtu:
        setlink(op.link, i);
        mnl_attr_put_u32(pipe_.nlh(), IFLA_MTU, op.mtu);
        return pipe_.queue();
      case LinkOp::Type::SetBridge: {
        // The kernel applies a forward delay before the STP state of the same request, and
        // with STP on it wants 2-30 s: turning STP off goes first, on its own.
        BridgeSpec have = op.have_bridge;
        if (have.stp && !op.spec.bridge.stp) {
          BridgeSpec off = have;
          off.stp = false;
          setlink(op.link, i);
          MOAT_RETURN_IF_ERROR(put_bridge_data(off, &have));
          MOAT_RETURN_IF_ERROR(pipe_.queue());
          have = off;
        }
        setlink(op.link, i);
        MOAT_RETURN_IF_ERROR(put_bridge_data(op.spec.bridge, &have));
        return pipe_.queue();
      }
      case LinkOp::Type::SetBond: {
        if (!op.spec.bond.primary.empty()) MOAT_TRY(index_of(op.spec.bond.primary));
        setlink(op.link, i);
        MOAT_RETURN_IF_ERROR(put_bond_data(op.spec.bond, false));
        return pipe_.queue();
      }
      case LinkOp::Type::SetMaster:
        return set_master(op, i, false);
      case LinkOp::Type::DelAddress:
        return address(op, i, false);
      case LinkOp::Type::AddAddress:
        return address(op, i, true);
      case LinkOp::Type::SetUp: {
        ifinfomsg* ifi = setlink(op.link, i);
        ifi->ifi_flags = op.up ? IFF_UP : 0;
        ifi->ifi_change = IFF_UP;
        return pipe_.queue();
      }
      case LinkOp::Type::AddFdb:
        return fdb(op, i, true);
      case LinkOp::Type::DelFdb:
        return fdb(op, i, false);
      case LinkOp::Type::AddRoute:
        return route(op, i, true);
      case LinkOp::Type::DelRoute:
        return route(op, i, false);
      case LinkOp::Type::ClearGroup:
        setlink(op.link, i, ENODEV);
        mnl_attr_put_u32(pipe_.nlh(), IFLA_GROUP, 0);
        return pipe_.queue();
    }
    return fail(ErrorCode::Internal, "unknown link operation");
  }

  NetlinkSocket& sock_;
  const ApplyRequest& request_;
  Pipeline pipe_;
  std::unordered_map<std::string, int> index_;
  std::optional<size_t> group_op_;  // the first delete of the group not deleted yet
  std::vector<std::pair<std::string, size_t>> peers_up_;  // veth peers made, and their op
  uint32_t dump_seq_ = 1u << 30;  // apart from the pipeline's sequence numbers
};

}  // namespace

Result<Observed> observe(const std::string& netns) {
  NetlinkSocket sock = MOAT_TRY(open_route_socket(netns));
  Result<Observed> out = observe_with(sock);
  for (int attempt = 1;
       !out && out.error().code() == ErrorCode::Conflict && attempt < kDumpAttempts; ++attempt) {
    out = observe_with(sock);
  }
  if (!out) return fail(with_where(std::move(out).error(), netns));
  return out;
}

Result<ApplyReport> apply_links(const ApplyRequest& request) {
  if (request.plan.empty()) return ApplyReport{};
  NetlinkSocket sock = MOAT_TRY(open_route_socket(request.netns));
  return Applier(sock, request).run();
}

}  // namespace moat::bridges
