// Checks across the interfaces of one `/etc/network/interfaces` document: what a single stanza
// cannot show (a port used twice, a child with a larger mtu than its parent, an OVS port its
// bridge does not list, ...). The parser (interfaces.h) has already checked each value; these
// rules follow Proxmox's and ifupdown2's. Pure; thread-safe on a const document.
#pragma once

#include <vector>

#include "moat/base/result.h"
#include "moat/bridges/interfaces.h"

namespace moat::bridges {

// Every finding, as InvalidConfig errors located at file:line:column of the offending token and
// sorted by position; empty when the document is consistent. Each message names both
// interfaces and the line of the other one. The rules:
//  - ports: a name is enslaved at most once. Enslavements are the words of bridge-ports,
//    bond-slaves, ovs_bonds, and ovs_ports except OVSIntPorts (an internal port lives in its
//    OVS bridge and may also join one Linux bridge, as Proxmox SDN does with ln_<vnet>).
//  - bond slaves: each is a NIC or a bond; a slave without a stanza must have a NIC name
//    (is_physical_nic_name) or a bond<N> name.
//  - mtu: where both sides have an explicit mtu (or ovs_mtu), a VLAN's must not exceed its raw
//    device's, and a bridge port's or bond slave's must not be below its bridge's or bond's
//    (ifupdown2: a port's mtu must be >= the bridge's). An interface without an mtu line is
//    not compared: its mtu is whatever the host has.
//  - addresses: a bridge port, bond slave, OVS bond member or OVS bridge port (except an
//    OVSIntPort in its OVS bridge) must have no address line.
//  - VLAN ids: a VLAN must have an id (vlan-id, <dev>.<id> or vlan<id> with vlan-raw-device)
//    and a raw device; VLAN ids, bridge-vids entries and ovs_options tag= are within 1-4094.
//  - OVS: an OVSBond, OVSIntPort or OVSPort names an existing OVSBridge in ovs_bridge, and that
//    bridge lists it in ovs_ports; a name in an OVSBridge's ovs_ports that is an OVS port of
//    another bridge is an error.
//  - a Linux bridge's ports are not OVSPorts, OVSBonds or OVSBridges.
std::vector<Error> validate(const InterfacesFile& file);

}  // namespace moat::bridges
