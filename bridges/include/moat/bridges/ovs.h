// Open vSwitch rows of a node as desired state (OvsDesired), what OVSDB has (OvsObserved), and
// the ordered operations between them (OvsOp). compile_ovs() maps the OVS stanzas of a parsed
// interfaces file (OVSBridge, OVSPort, OVSIntPort, OVSBond) to bridges, ports and interfaces;
// plan_ovs() diffs an OVSDB snapshot against them. Both are pure and deterministic. The driver
// side (observe_ovs, OvsMonitor, apply_ovs) talks to ovsdb-server through an OvsdbClient.
// Ownership: every row Moat creates or adopts carries external_ids names::kOvsOwnedKey, and
// only such rows are ever deleted. Value types; not synchronized (the driver calls are
// thread-safe as far as OvsdbClient is).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>

#include "moat/base/result.h"
#include "moat/bridges/interfaces.h"

namespace moat::bridges {

class OvsdbClient;

// ---------------------------------------------------------------------------------------------
// Desired state
// ---------------------------------------------------------------------------------------------

enum class OvsDatapath { System, Netdev };
const char* to_string(OvsDatapath datapath);  // "system", "netdev"

struct OvsInterfaceSpec {
  std::string name;
  std::string type;                     // "" (a system device) or "internal"
  std::optional<uint32_t> mtu_request;  // unset: OVS leaves the mtu alone
  friend bool operator==(const OvsInterfaceSpec&, const OvsInterfaceSpec&) = default;
};

// A Port row. Column values are OVSDB's spellings; empty or unset means the column is empty.
struct OvsPortSpec {
  std::string name;
  std::string bridge;
  std::vector<OvsInterfaceSpec> interfaces;  // one, or a bond's members sorted by name
  std::optional<uint32_t> tag;
  std::vector<uint32_t> trunks;  // sorted, unique
  std::string vlan_mode;         // access, trunk, native-tagged, native-untagged, dot1q-tunnel
  std::string bond_mode;         // active-backup, balance-slb, balance-tcp (bonds only)
  std::string lacp;              // active, passive, off
  std::optional<uint32_t> bond_updelay;
  std::optional<uint32_t> bond_downdelay;
  std::map<std::string, std::string> other_config;  // from other_config:KEY=VALUE
  int line = 0;  // the port's iface line; for a bridge's own port, the bridge's
  friend bool operator==(const OvsPortSpec&, const OvsPortSpec&) = default;
};

struct OvsBridgeSpec {
  std::string name;
  OvsDatapath datapath = OvsDatapath::System;
  int line = 0;
  friend bool operator==(const OvsBridgeSpec&, const OvsBridgeSpec&) = default;
};

struct OvsDesired {
  std::vector<OvsBridgeSpec> bridges;  // sorted by name
  // Sorted by name; each bridge's own internal port (named like the bridge) is one of them.
  std::vector<OvsPortSpec> ports;
  bool empty() const { return bridges.empty() && ports.empty(); }
};

struct CompileOvsRequest {
  const InterfacesFile* file = nullptr;
  // Netdev where the openvswitch kernel module is missing (the caller probes the host, e.g.
  // /sys/module/openvswitch; see ovs_kernel_datapath_available()).
  OvsDatapath datapath = OvsDatapath::System;
};

// Maps the OVS stanzas to rows. ovs_options words are Port columns as ovs-vsctl spells them:
// tag=N, trunks=N[,N...], vlan_mode=..., bond_mode=..., lacp=..., bond_updelay=N,
// bond_downdelay=N, other_config:KEY=VALUE. InvalidConfig at the file position for: an unknown
// or malformed ovs_options word, a VLAN id outside 0-4095, bond_mode/lacp on a non-bond, an
// OVSBond with fewer than two ovs_bonds members, a port without ovs_bridge or whose ovs_bridge
// is not an OVSBridge of the file, a name in ovs_ports without an OVS port stanza, an OVS
// interface that is a member of two ports, and ovs_extra (not supported: its ovs-vsctl commands
// cannot be planned).
Result<OvsDesired> compile_ovs(const CompileOvsRequest& request);

// True when the kernel has the openvswitch module (/sys/module/openvswitch exists).
bool ovs_kernel_datapath_available();

// ---------------------------------------------------------------------------------------------
// What OVSDB has
// ---------------------------------------------------------------------------------------------

struct ObservedOvsInterface {
  std::string uuid;
  std::string name;
  std::string type;  // "" for a system device
  std::optional<uint32_t> mtu_request;
  bool owned = false;
  std::string error;              // set by ovs-vswitchd when it could not realize it
  std::optional<int64_t> ofport;  // OpenFlow port number once realized
};

struct ObservedOvsPort {
  std::string uuid;
  std::string name;
  std::string bridge;                   // name of the bridge holding it; empty when none
  std::vector<std::string> interfaces;  // interface uuids
  std::optional<uint32_t> tag;
  std::vector<uint32_t> trunks;  // sorted
  std::string vlan_mode;
  std::string bond_mode;
  std::string lacp;
  std::optional<uint32_t> bond_updelay;
  std::optional<uint32_t> bond_downdelay;
  std::map<std::string, std::string> other_config;
  bool owned = false;
};

struct ObservedOvsBridge {
  std::string uuid;
  std::string name;
  std::string datapath_type;       // "" means system
  std::vector<std::string> ports;  // port uuids
  bool owned = false;
};

struct OvsObserved {
  std::string root_uuid;  // the Open_vSwitch row; empty when the database has none yet
  int64_t next_cfg = 0;
  int64_t cur_cfg = 0;
  std::vector<ObservedOvsBridge> bridges;        // sorted by name
  std::vector<ObservedOvsPort> ports;            // sorted by name
  std::vector<ObservedOvsInterface> interfaces;  // sorted by name

  const ObservedOvsBridge* find_bridge(std::string_view name) const;
  const ObservedOvsPort* find_port(std::string_view name) const;
  const ObservedOvsInterface* find_interface(std::string_view name) const;
  const ObservedOvsInterface* interface_by_uuid(std::string_view uuid) const;
};

// ---------------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------------

struct OvsOp {
  enum class Type {
    InitRoot,         // insert the Open_vSwitch row (a fresh database; `ovs-vsctl init`)
    DeleteBridge,     // an owned bridge no longer desired, with its ports
    DeletePort,       // an owned port no longer desired, from `bridge`
    CreateBridge,     // `bridge_spec`, with its own internal port
    CreatePort,       // `port_spec` with its interfaces, added to its bridge
    UpdateBridge,     // `bridge_spec` columns named in `changes`
    UpdatePort,       // `port_spec` columns named in `changes`; may move it between bridges
    UpdateInterface,  // `interface_spec` columns named in `changes`
  };
  Type type = Type::CreatePort;
  std::string name;         // the bridge, port or interface
  std::string bridge;       // ports: the bridge it is (or will be) on
  std::string uuid;         // the existing row of Delete* and Update*
  std::string bridge_uuid;  // DeletePort, UpdatePort moving away: the bridge holding it now
  // UpdatePort: "tag 20 -> 10", "interfaces a,b -> a,c", ...; columns `apply` writes.
  std::vector<std::string> changes;
  // UpdatePort: uuids of member interfaces that stay, by name (new members are inserted).
  std::map<std::string, std::string> kept_interfaces;
  OvsBridgeSpec bridge_spec;
  OvsPortSpec port_spec;
  OvsInterfaceSpec interface_spec;
  int line = 0;  // interfaces-file line; 0 when unknown (deletes)
};

// One line: "create port eth1 on vmbr0 tag 10", "update port eth1: tag 20 -> 10", ...
std::string to_string(const OvsOp& op);
// One operation per line, numbered from 1; "(no changes)\n" for an empty plan.
std::string to_string(const std::vector<OvsOp>& plan);

// The operations that turn `observed` into `desired`, in order: deletes of owned ports and
// bridges that are not desired (a bridge that still holds a port Moat does not own is kept),
// then bridge creates and updates, then port creates and updates (a desired port found on
// another bridge moves; one found without the ownership mark is adopted), then interface
// updates. Never deletes, moves or changes a port Moat does not own unless the file declares
// it, and never a guest port (is_guest_port). plan_ovs(observe after apply, same desired) is {}.
std::vector<OvsOp> plan_ovs(const OvsObserved& observed, const OvsDesired& desired);

// ---------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------

// One transaction of selects on Open_vSwitch, Bridge, Port and Interface.
Result<OvsObserved> observe_ovs(OvsdbClient& client);

// A live copy of the rows observe_ovs() reads, kept by one OVSDB monitor on the client's
// session (renewed with a fresh initial state after a reconnect), so that snapshot() costs no
// round trip: what a daemon plans against. The monitor's updates for a commit arrive on the
// same session before ovs-vswitchd's cur_cfg for it, so after an apply_ovs() that waited, the
// next snapshot includes the commit. Thread-safe; `client` must stay alive while it is used.
class OvsMonitor {
 public:
  // Registers the monitor and returns once its initial rows arrived.
  static Result<std::unique_ptr<OvsMonitor>> start(OvsdbClient& client);
  ~OvsMonitor();
  OvsMonitor(const OvsMonitor&) = delete;
  OvsMonitor& operator=(const OvsMonitor&) = delete;

  // The rows as of the last update received, in observe_ovs()'s form.
  OvsObserved snapshot() const;

 private:
  struct State;
  explicit OvsMonitor(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

// The transaction apply_ovs() sends for `plan`, without the next_cfg bump. Pure.
boost::json::array ovs_transaction(const std::vector<OvsOp>& plan);

struct OvsApplyRequest {
  OvsdbClient* client = nullptr;
  std::vector<OvsOp> plan;
  std::string file;  // interfaces file name, for error locations
  // How long to wait for ovs-vswitchd to realize the change (cur_cfg >= the bumped next_cfg);
  // zero: do not wait (no ovs-vswitchd is running).
  std::chrono::milliseconds wait{30000};
};

struct OvsApplyReport {
  size_t applied = 0;      // plan operations committed
  int64_t next_cfg = 0;    // the bumped next_cfg
  double commit_ms = 0;    // the transaction's round trip
  double realized_ms = 0;  // then until ovs-vswitchd reported cur_cfg >= next_cfg
};

// Runs the whole plan as ONE OVSDB transaction (named-uuids for new rows, mutations of the
// bridges' `ports` and Open_vSwitch's `bridges`), bumping next_cfg in it, then waits for
// ovs-vswitchd. All or nothing: when an operation fails, nothing is committed and the Error
// names the plan operation and, when it has one, `file:line`. An empty plan sends nothing.
Result<OvsApplyReport> apply_ovs(const OvsApplyRequest& request);

}  // namespace moat::bridges
