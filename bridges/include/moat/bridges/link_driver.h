// The rtnetlink side of links.h, as raw rtnetlink messages over libmnl (base/netlink.h):
// observe() takes one snapshot of a network namespace, apply_links() runs a plan there,
// pipelined. Each call opens its own netlink socket inside the namespace and closes it before
// returning. Blocking; call from a worker thread. Thread-safe (no shared state).
#pragma once

#include <string>
#include <vector>

#include "moat/base/result.h"
#include "moat/bridges/links.h"

namespace moat::bridges {

// One RTM_GETLINK dump, one RTM_GETADDR dump and one RTM_GETROUTE dump (main table) of
// namespace `netns` (empty: the caller's), plus one bridge FDB dump per VXLAN link: every link
// with its kind, master, mtu, IFF_UP, ifalias, bridge/bond/VLAN/VXLAN parameters, VXLAN
// remotes and permanent addresses (not those with a lifetime: SLAAC, DHCP leases), and the
// main table's default routes and Moat's routes. A dump the
// kernel flags interrupted (NLM_F_DUMP_INTR: links changed meanwhile) is redone, a few times,
// then Conflict. NotFound when the namespace does not exist; Kernel for netlink failures.
Result<Observed> observe(const std::string& netns);

struct ApplyReport {
  size_t applied = 0;   // operations that ran
  size_t messages = 0;  // rtnetlink requests sent (an operation may take several)
  size_t batches = 0;   // sendmsg calls; each is followed by reading its acks
};

struct ApplyRequest {
  std::string netns;         // empty: the caller's namespace
  std::vector<LinkOp> plan;  // from plan_links()
  std::string file;          // interfaces file name, for error locations
};

// Runs the plan as pipelined rtnetlink requests: many requests per sendmsg, each with
// NLM_F_ACK, then their acks. Requests name links by IFLA_IFNAME; where the kernel needs an
// ifindex (a master, an underlay, a VLAN parent, an address, a route, an FDB entry) and the
// link was made in this apply, what is queued is sent first and the indexes are read back with
// one RTM_GETLINK dump, so a plan takes as many round trips as it has such dependency waves
// (typically: deletes and creates, then everything else). A SetMaster directly followed by
// the SetUp of the same link is one request (`ip link set X master Y up`), both ops named in an
// error by the first. Deletes move the links into kDeleteGroup (a master with ports is taken
// down first) and then delete the group with one RTM_DELLINK. A link already gone counts as
// deleted (the other end of a deleted veth).
//
// Stops at the first failure and returns its Error with the operation in the context and,
// when the op has a line, `file:line` as its location. The kernel runs every request of a
// sendmsg, so requests batched behind the failing one (at most one batch) may have been
// applied too; later batches are not sent. The deletes never ride behind an unacked request:
// what precedes them in the plan (ClearGroup, routes) is acked before the first is queued. Plans
// are idempotent: re-planning continues from whatever state that left. A veth peer is brought up in
// a second request after the create (IFF_UP on the peer at creation is ENOTCONN); the ownership
// alias is a second request too (RTM_NEWLINK ignores IFLA_IFALIAS on create).
Result<ApplyReport> apply_links(const ApplyRequest& request);

}  // namespace moat::bridges
