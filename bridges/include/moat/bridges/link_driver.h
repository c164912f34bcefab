// The rtnetlink side of links.h, through libnl-route-3: observe() takes one snapshot of a
// network namespace, apply_links() runs a plan there. Each call opens its own netlink socket
// inside the namespace (NetnsScope on the calling thread) and closes it before returning.
// Blocking; call from a worker thread. Thread-safe (no shared state).
#pragma once

#include <string>
#include <vector>

#include "moat/base/result.h"
#include "moat/bridges/links.h"

namespace moat::bridges {

// One RTM_GETLINK dump and one RTM_GETADDR dump of namespace `netns` (empty: the caller's):
// every link with its kind, master, mtu, IFF_UP, ifalias, VXLAN parameters and addresses.
// NotFound when the namespace does not exist; Kernel for netlink failures.
Result<Observed> observe(const std::string& netns);

struct ApplyReport {
  size_t applied = 0;  // operations that ran
};

struct ApplyRequest {
  std::string netns;         // empty: the caller's namespace
  std::vector<LinkOp> plan;  // from plan_links()
  std::string file;          // interfaces file name, for error locations
};

// Runs the operations in order and stops at the first failure, returning its Error with the
// operation in the context and, when the op has a line, `file:line` as its location. Earlier
// operations stay applied (plans are idempotent: re-planning continues from there). A veth
// peer is brought up in a second request after the create (IFF_UP on the peer at creation is
// ENOTCONN). Unavailable, before anything is sent for that op, for what this driver cannot
// express through libnl-route 3.7: bridge STP, VLAN filtering, bond mode/miimon, and VXLAN
// with more than one remote.
Result<ApplyReport> apply_links(const ApplyRequest& request);

}  // namespace moat::bridges
