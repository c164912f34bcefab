// The reject ports of the netdev guest layout (docs/firewall-netdev.md): a guest's inbound
// REJECT forwards the frame (`fwd to`) to its bridge's reject port, a veth pair whose end
// names::reject_port() is a quiet port of the bridge (no learning, no flooding) and whose end
// names::reject_peer() carries the netdev ingress chain that answers; a guest's OUT REJECT
// sends the frame to names::kRejectMac, the peer's MAC, which a static FDB entry on the port
// leads there. This module keeps those pairs and entries in the kernel over rtnetlink; the
// chains themselves are the nft applier's. Stateless;
// thread-safe (each call opens its own socket and enters the namespace on its own thread).
#pragma once

#include <set>
#include <string>

#include "moat/base/result.h"

namespace moat::firewall {

// What a sync does with the reject ports of bridges it was not given: Remove them, or Keep
// them for now (before an apply that may fail, whose ruleset in place may still use them).
enum class OtherRejectPorts { Remove, Keep };

// Makes the reject port of every bridge in `bridges` exist in namespace `netns` ("" = the
// caller's), and removes the reject ports (links named "mrj.*" / "mrp.*") of bridges not in the
// set unless `others` is Keep. A pair is a veth with IPv6 disabled on both ends (set before they
// first come up, so no NDP, MLD or link-local traffic ever leaves them), both ends up, its port end
// enslaved to the bridge with learning and unicast/multicast/broadcast flooding off and a static
// FDB entry for names::kRejectMac (the peer's MAC on pairs it creates). A bridge that
// does not exist leaves its pair unattached without an error, and a later call attaches it; a port
// enslaved elsewhere is moved. A link of the bridge's name that is not a Linux bridge leaves
// the pair unattached too, and is an error (InvalidArgument). Level-triggered and idempotent: it
// reads the links with one RTM_GETLINK dump (and each attached port's FDB entries with one
// RTM_GETNEIGH dump) and sends only what differs, so a repeated call sends nothing. Per-pair
// failures do not stop the other pairs; the first one is returned, naming the device and the
// operation.
Status sync_reject_ports(const std::string& netns, const std::set<std::string>& bridges,
                         OtherRejectPorts others = OtherRejectPorts::Remove);

}  // namespace moat::firewall
