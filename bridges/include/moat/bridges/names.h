// Names Moat makes visible to the kernel and to Open vSwitch for node networking. Every
// external_ids key Moat writes into OVSDB, and the values it compares them with, come from here,
// so that another tool (or an operator with ovs-vsctl) can tell Moat's rows from its own.
// Constants only; thread-safe.
#pragma once

#include <string_view>

namespace moat::bridges::names {

// external_ids key and value on every Bridge, Port and Interface row Moat creates (or adopts
// because the interfaces file declares it). Only rows carrying it are ever deleted by a plan;
// ports others added (guest tap/veth ports, ovs-vsctl add-port) are never touched.
inline constexpr std::string_view kOvsOwnedKey = "moat-owned";
inline constexpr std::string_view kOvsOwnedValue = "true";

// OVSDB database, and the datapath types Moat picks for bridges: "netdev" (userspace) where
// the openvswitch kernel module is missing, "system" (the kernel datapath) where it is loaded.
inline constexpr std::string_view kOvsDatabase = "Open_vSwitch";
inline constexpr std::string_view kOvsDatapathSystem = "system";
inline constexpr std::string_view kOvsDatapathNetdev = "netdev";

// The master link the kernel datapath enslaves every OVS port and internal interface to.
inline constexpr std::string_view kOvsKernelMaster = "ovs-system";

}  // namespace moat::bridges::names
