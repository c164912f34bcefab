// Linux links of a node as desired state (LinkSpec), what the kernel has (Observed), and the
// ordered operations between them (LinkOp). compile_links() maps a parsed interfaces file to
// specs, plan_links() diffs an Observed snapshot against them; both are pure (no syscalls, no
// clock) and deterministic. The driver that observes and applies lives in link_driver.h.
// Ownership: links Moat creates carry the ifalias kOwnedAlias, and only those are ever deleted;
// routes Moat adds carry the rtm_protocol kRouteProtocol, and only those are ever removed.
// Value types; not synchronized.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "moat/base/ip.h"
#include "moat/base/result.h"
#include "moat/bridges/interfaces.h"

namespace moat::bridges {

// The ifalias Moat writes on every link it creates; plan_links() deletes only links with it.
inline constexpr std::string_view kOwnedAlias = "moat";
// The link group (IFLA_GROUP) apply_links() moves the links of a plan's deletes into, right
// before it deletes the whole group with one RTM_DELLINK: the kernel then unregisters them all
// behind one RCU grace period instead of one per link (57 s -> well under a second for 2,000
// links). Reserved for Moat: a link someone else puts in this group is deleted with the next
// plan that deletes anything. "moat" in ASCII.
inline constexpr uint32_t kDeleteGroup = 0x6d6f6174;
// The rtm_protocol of the routes Moat adds (not in iproute2's rt_protos list); plan_links()
// removes only routes with it.
inline constexpr uint8_t kRouteProtocol = 77;
// The IANA VXLAN port, used when the file names none (`vxlan-port`).
inline constexpr uint16_t kVxlanPort = 4789;

// Physical: a link Moat never creates or deletes (a NIC, or an interface the file names without
// a kind, such as an underlay made by someone else); its mtu, master, up and addresses are
// still managed.
enum class LinkKind { Physical, Bridge, Veth, Vxlan, Vlan, Bond };
const char* to_string(LinkKind kind);  // "physical", "bridge", "veth", ...

struct LinkAddress {
  IpAddress ip;
  int prefix = 0;
  std::string to_string() const;  // "10.0.0.1/24"
  friend auto operator<=>(const LinkAddress&, const LinkAddress&) = default;
};

struct BridgeSpec {
  bool stp = false;
  // Seconds (bridge-fd), in the kernel's 2-30 when stp is on; unset: left alone.
  std::optional<uint32_t> forward_delay;
  bool vlan_filtering = false;
  // "stp on forward-delay 2 vlan-filtering on", the parts that are set or on.
  std::string to_string() const;
  friend bool operator==(const BridgeSpec&, const BridgeSpec&) = default;
};

struct VxlanSpec {
  uint32_t id = 0;
  std::optional<IpAddress> local;
  // Unicast peers, file order. One remote is the link's own `remote` (IFLA_VXLAN_GROUP); with
  // more, the link has none and each peer is an all-zero-MAC FDB entry (head-end replication).
  std::vector<IpAddress> remotes;
  uint16_t dstport = kVxlanPort;
  std::string dev;  // underlay link (`vxlan-physdev`), empty when none
  friend bool operator==(const VxlanSpec&, const VxlanSpec&) = default;
};

struct VlanSpec {
  uint16_t id = 0;
  std::string parent;
  VlanProtocol protocol = VlanProtocol::Dot1Q;
  friend bool operator==(const VlanSpec&, const VlanSpec&) = default;
};

// The kernel's bond xmit_hash_policy values (IFLA_BOND_XMIT_HASH_POLICY).
enum class XmitHashPolicy { Layer2, Layer34, Layer23, Encap23, Encap34, VlanSrcMac };
const char* to_string(XmitHashPolicy policy);  // "layer2", "layer3+4", "layer2+3", ...

struct BondSpec {
  std::optional<BondMode> mode;
  std::optional<uint32_t> miimon;
  std::optional<XmitHashPolicy> xmit_hash_policy;
  std::string primary;  // a slave's name; empty: none
  std::vector<std::string> slaves;
  // The options that are set, as printed by plans: "mode 802.3ad miimon 100 ...".
  std::string to_string() const;
  friend bool operator==(const BondSpec&, const BondSpec&) = default;
};

struct LinkSpec {
  std::string name;
  LinkKind kind = LinkKind::Physical;
  std::optional<uint32_t> mtu;  // unset: Moat leaves the mtu alone
  bool up = false;
  std::string master;  // bridge or bond this link is a port of; empty: none
  // Addresses Moat keeps on the link, sorted. With manage_addresses false (dhcp/auto methods)
  // Moat neither adds nor removes any.
  std::vector<LinkAddress> addresses;
  bool manage_addresses = true;
  BridgeSpec bridge;
  std::string veth_peer;  // Veth only
  VxlanSpec vxlan;        // Vxlan only
  VlanSpec vlan;          // Vlan only
  BondSpec bond;          // Bond only
  // Default routes through this link (`gateway` of its inet and inet6 stanzas), sorted.
  std::vector<IpAddress> gateways;
  int line = 0;  // the interface's first iface line in the file; 0 when implicit
};

// Maps the Linux interfaces of `file` to specs, sorted by name: bridges, bonds, VLANs, VXLANs,
// veths, and every other named interface (and every bridge port or bond slave without a
// stanza) as Physical, OVSBridge and OVSIntPort stanzas too (OVS creates them, their addresses
// are Linux's). OVSPort/OVSBond, `lo`, aliases (`eth0:1`) and dummies are skipped without an
// error. `up` is the interface's `auto`/`allow-*` mark; `master` comes from the bridge-ports /
// bond-slaves that name it. InvalidConfig (at the file line) for a veth without
// `veth-peer-name`, a VXLAN without an id, a VLAN without id or parent, a port claimed by two
// masters, a bad `vxlan-port` or `bond-xmit-hash-policy`, a port or slave that is itself
// an OVS interface, and a link, port or veth peer name longer than the kernel's 15 characters.
Result<std::vector<LinkSpec>> compile_links(const InterfacesFile& file);

// ---------------------------------------------------------------------------------------------
// What the kernel has
// ---------------------------------------------------------------------------------------------

struct ObservedLink {
  int index = 0;
  std::string name;
  std::string kind;    // IFLA_INFO_KIND: "bridge", "veth", "vxlan", ...; empty for NICs
  std::string master;  // name of the master; empty: none
  uint32_t mtu = 0;
  bool up = false;                     // IFF_UP
  std::string alias;                   // ifalias; kOwnedAlias when Moat created it
  uint32_t group = 0;                  // IFLA_GROUP; kDeleteGroup only inside an apply
  std::vector<LinkAddress> addresses;  // sorted
  std::optional<VxlanSpec> vxlan;      // id, local, remote, dstport, dev when kind is "vxlan"
  std::optional<BridgeSpec> bridge;    // when kind is "bridge"
  std::optional<BondSpec> bond;        // mode, miimon, xmit hash policy, primary; no slaves
  std::optional<VlanSpec> vlan;        // when kind is "vlan"
  // Destinations of the link's all-zero-MAC FDB entries (a VXLAN's default remotes,
  // including the one its `remote` makes), sorted.
  std::vector<IpAddress> fdb_remotes;
};

// A route of the main table: every route with kRouteProtocol, and every default route.
struct ObservedRoute {
  LinkAddress dst;  // 0.0.0.0/0 or ::/0 for a default route
  std::optional<IpAddress> gateway;
  std::string link;  // the output link's name; empty when none (or a multipath route)
  uint8_t protocol = 0;
  uint32_t priority = 0;
  friend bool operator==(const ObservedRoute&, const ObservedRoute&) = default;
};

struct Observed {
  std::vector<ObservedLink> links;  // sorted by name
  std::vector<ObservedRoute> routes;
  const ObservedLink* find(std::string_view name) const;
};

// ---------------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------------

struct LinkOp {
  enum class Type {
    Delete,      // a link Moat owns and no longer wants (or must recreate)
    Create,      // `spec` with its kind attributes; created down, without master or addresses
    SetMtu,      // mtu
    SetMaster,   // master (empty: release from the master)
    DelAddress,  // address
    AddAddress,  // address
    SetUp,       // up
    SetBridge,   // spec.bridge: STP, forward delay, VLAN filtering
    SetBond,     // spec.bond: miimon, xmit hash policy, primary
    AddFdb,      // address.ip: an all-zero-MAC FDB entry (a VXLAN remote)
    DelFdb,      // address.ip
    AddRoute,    // address.ip: a default route via this gateway on `link`, kRouteProtocol
    DelRoute,    // route: a route of Moat's that is no longer wanted
    // Back to the default link group: a link left in kDeleteGroup (by an apply that failed
    // between moving it there and deleting the group) that this plan does not delete.
    ClearGroup,
  };
  Type type = Type::Create;
  std::string link;
  LinkSpec spec;  // Create: everything; other types: the desired spec when there is one
  uint32_t mtu = 0;
  std::string master;
  LinkAddress address;
  bool up = false;
  // Delete: the link has ports. apply_links() takes it down first, so that its ports leave a
  // bridge that no longer runs STP and multicast per port (6.3 s -> 1.5 s for 1,000 ports).
  bool has_ports = false;
  ObservedRoute route;     // DelRoute
  BridgeSpec have_bridge;  // SetBridge: the kernel's options (only what differs is sent)
  // What the kernel has now for what a Set* op changes ("1400", "stp on", "nomaster"): the
  // drift the op repairs, printed as "(kernel has ...)". Empty for ops on links the plan
  // creates.
  std::string observed;
  int line = 0;  // interfaces-file line of the link's stanza; 0 when unknown
};

// One line: "create bridge vmbr0 stp off", "set vmbr0 mtu 1400 (kernel has 1500)",
// "add address ... to vmbr0".
std::string to_string(const LinkOp& op);

// True for guest ports (tap*, veth*, fwpr*, fwln*): never detached, moved or deleted by a plan.
bool is_guest_port(std::string_view name);

// The operations that turn `observed` into `desired`, in the order they must run:
//  1. links this plan keeps are taken out of kDeleteGroup;
//  2. Moat's routes (kRouteProtocol) that are not wanted are deleted;
//  3. owned links that are not desired, or cannot become their spec in place (another kind, a
//     bond's mode, a VLAN's id/parent/protocol, a VXLAN's id/local/remote/port/underlay), are
//     deleted; the VLANs on them and VXLANs over them go with them (the kernel deletes those) and
//     count as missing below;
//  4. missing links are created in dependency order (bridges and bonds before their ports,
//     VXLAN underlays and VLAN parents before their children); a veth's peer comes with the
//     veth (a stanza or port of that name is not created again, and is configured below);
//  5. per link in that order: mtu, bridge options, bond options, master, address removals and
//     additions, up (Moat brings links up, it never takes one down);
//  6. VXLAN FDB remotes are removed and added;
//  7. wanted default routes are added where the main table has no route to that gateway on
//     that link (of any protocol).
// Never deletes a link without kOwnedAlias, nor one with a VLAN or VXLAN on it (at any depth)
// that it may not delete (the kernel would delete that one too), never touches the master of a
// guest port that has one, and never releases a port from ovs-system (Open vSwitch's, see ovs.h).
// Physical links that do not exist are skipped (nothing can create them). Applying the plan and
// planning again against a fresh snapshot gives {}. O(n log n) in links and routes.
std::vector<LinkOp> plan_links(const Observed& observed, const std::vector<LinkSpec>& desired);

// One operation per line, numbered from 1; "(no changes)\n" for an empty plan.
std::string to_string(const std::vector<LinkOp>& plan);

}  // namespace moat::bridges
