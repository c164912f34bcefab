// Linux links of a node as desired state (LinkSpec), what the kernel has (Observed), and the
// ordered operations between them (LinkOp). compile_links() maps a parsed interfaces file to
// specs, plan_links() diffs an Observed snapshot against them; both are pure (no syscalls, no
// clock) and deterministic. The driver that observes and applies lives in link_driver.h.
// Ownership: links Moat creates carry the ifalias kOwnedAlias, and only those are ever deleted.
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
  std::optional<uint32_t> forward_delay;  // seconds (bridge-fd)
  bool vlan_filtering = false;
  friend bool operator==(const BridgeSpec&, const BridgeSpec&) = default;
};

struct VxlanSpec {
  uint32_t id = 0;
  std::optional<IpAddress> local;
  std::vector<IpAddress> remotes;  // unicast peers, file order
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

struct BondSpec {
  std::optional<BondMode> mode;
  std::optional<uint32_t> miimon;
  std::vector<std::string> slaves;
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
  int line = 0;           // the interface's first iface line in the file; 0 when implicit
};

// Maps the Linux interfaces of `file` to specs, sorted by name: bridges, bonds, VLANs, VXLANs,
// veths, and every other named interface (and every bridge port or bond slave without a
// stanza) as Physical. OVS types, `lo`, aliases (`eth0:1`) and dummies are skipped without an
// error. `up` is the interface's `auto`/`allow-*` mark; `master` comes from the bridge-ports /
// bond-slaves that name it. InvalidConfig (at the file line) for a veth without
// `veth-peer-name`, a VXLAN without an id, a VLAN without id or parent, a port claimed by two
// masters, a bad `vxlan-port`, and a port or slave that is itself an OVS interface.
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
  std::vector<LinkAddress> addresses;  // sorted
  std::optional<VxlanSpec> vxlan;      // id, local, remote, dstport when kind is "vxlan"
};

struct Observed {
  std::vector<ObservedLink> links;  // sorted by name
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
  };
  Type type = Type::Create;
  std::string link;
  LinkSpec spec;  // Create: everything; other types: the desired spec when there is one
  uint32_t mtu = 0;
  std::string master;
  LinkAddress address;
  bool up = false;
  int line = 0;  // interfaces-file line of the link's stanza; 0 when unknown
};

// One line: "create bridge vmbr0 stp off", "set vmbr0 mtu 1400", "add address ... to vmbr0".
std::string to_string(const LinkOp& op);

// True for guest ports (tap*, veth*, fwpr*, fwln*): never detached, moved or deleted by a plan.
bool is_guest_port(std::string_view name);

// The operations that turn `observed` into `desired`, in the order they must run: deletes of
// owned links that are not desired (or whose kind or VXLAN parameters changed; ports of a
// deleted master are released first when they are desired elsewhere), then creates in
// dependency order (bridges and bonds before their ports, VXLAN underlays and VLAN parents
// before their children), then per link in the same order mtu, master, address removals and
// additions, and up/down. Never deletes a link without kOwnedAlias, and never touches the master
// of a guest port that has one. Physical links that do not exist are skipped (nothing can
// create them). Applying the plan and planning again against a fresh snapshot gives {}.
std::vector<LinkOp> plan_links(const Observed& observed, const std::vector<LinkSpec>& desired);

// One operation per line, numbered from 1; "(no changes)\n" for an empty plan.
std::string to_string(const std::vector<LinkOp>& plan);

}  // namespace moat::bridges
