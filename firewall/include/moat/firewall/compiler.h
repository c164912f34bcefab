// The compile step: the validated model (model.h) to the nftables IR (ir.h). Pure and
// deterministic: no syscalls, no clock, no files; what it needs of the host (the kernel
// strategy, the time for the anti-lockout enable) comes in CompileOptions. Rules that parse
// but cannot be generated (a dangling ipset, alias or group) are skipped with a warning.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "moat/firewall/diff.h"
#include "moat/firewall/ir.h"
#include "moat/firewall/model.h"

namespace moat::firewall {

// How bridged guest traffic is filtered statefully (probe_strategy() picks one).
enum class GuestStrategy {
  // This kernel: no bridge-family conntrack. br_netfilter runs conntrack from the bridge
  // hooks; inet chains stash `ct state` into meta mark bits for the bridge guest chains, and
  // answer guest REJECTs (no bridge-family reject either).
  BrNetfilter,
  // A full kernel (nf_conntrack_bridge, nft_reject_bridge): bridge chains use ct state and
  // reject directly.
  BridgeConntrack,
};

const char* to_string(GuestStrategy s);

// Where guest rules live (docs/firewall.md, docs/firewall-netdev.md).
enum class GuestLayout {
  // `bridge` tables sharded by VMID with dispatch base chains: every table's base chains cost
  // every bridged packet, and each commit re-validates its table.
  Bridge,
  // `netdev` chains bound to the guest's own ports (OUT at ingress, recording its verdict for
  // the inet stash chain to apply after conntrack; IN at egress), in small tables: a packet
  // runs only the chains of its ports. Needs br_netfilter (the conntrack stash) and a reject
  // port per bridge (Applier::sync_reject_ports) for REJECT on guest IN.
  Netdev,
};

const char* to_string(GuestLayout l);  // "bridge", "netdev"
std::optional<GuestLayout> parse_guest_layout(std::string_view text);

struct CompileOptions {
  GuestStrategy strategy = GuestStrategy::BrNetfilter;
  GuestLayout layout = GuestLayout::Netdev;
  // Guests are spread over this many bridge tables by VMID, so one guest's change commits
  // into a table of about guests/shards chains instead of all of them. Each table's dispatch
  // chains cost every bridged packet a little, so fewer is faster on the data path; 0 picks
  // one table per kGuestsPerShard firewalled guests (see docs/performance.md).
  int shards = 0;
  // Unix time, for cluster `enable: <timestamp>` (the anti-lockout enable, valid 60 s).
  int64_t now = 0;
  // The node's local networks (detect_local_networks(), an Observed input), used as the
  // `local_network` alias when cluster.fw defines none. As in pve-firewall, local_network is
  // always a member of `management` (which exists even when cluster.fw has no such ipset), so
  // enabling the firewall never locks the operator out of the GUI and SSH from the local net.
  std::vector<IpRange> local_networks;
};

inline constexpr int kGuestsPerShard = 500;
// Netdev tables hold fewer guests: their size only costs commits, never packets.
inline constexpr int kGuestsPerNetdevTable = 50;

// The shard count compile() uses: `requested` when positive, else automatic for the layout.
int resolve_shards(const FirewallConfig& config, int requested, GuestLayout layout);

struct CompileResult {
  int shards = 1;  // the shard count used (pass it to recompile_guest)
  nft::Ruleset ruleset;
  // Kernel settings the host options ask for ("net/netfilter/nf_conntrack_max" -> "262144"),
  // relative to /proc/sys, written by the applier in the target namespace.
  std::map<std::string, std::string> sysctls;
  // Bridged traffic must traverse the inet hooks (guests or VNet firewalls on br_netfilter).
  bool needs_bridge_netfilter = false;
  // Bridges whose guests' IN REJECTs are answered through a reject port (netdev layout).
  std::set<std::string> reject_port_bridges;
  std::vector<std::string> warnings;  // "file:line: skipped rule: ..."
};

Result<CompileResult> compile(const FirewallConfig& config, const CompileOptions& options);

// The bridges whose reject ports `ruleset` (netdev layout) forwards REJECTs to, which must exist
// before it is applied (sync_reject_ports()): compile()'s reject_port_bridges, for a ruleset
// that recompile_guest() changed since.
std::set<std::string> reject_port_bridges(const nft::Ruleset& ruleset);

// Incremental compile of one guest (options.shards must be the count compile() used):
// replaces, in `ruleset` (an earlier compile() result of
// the same configuration but for this guest), the guest's chains, its ipsets and its port and
// MAC elements with what `config` now says (removing them when the guest or its firewall is
// gone). Returns every object it touched, for diff(applied, desired, touched). Security-group
// chains and cluster sets the guest newly references are added, ones no guest uses any more
// removed. A bridge that answers the guest's REJECTs and is new to the node (netdev layout)
// gets the chains of its reject port, which the caller must create before applying
// (reject_port_bridges()); a bridge on which the guest was the last to be answered loses them.
// The bridged pair of a bridge the guest was the last to leave stays until the next full
// compile (firewall bridges have none: one wildcard rule passes them all). The cost is that
// of the guest, not of the host (a full compile only for the first guest of the node, or when
// the cluster firewall is off).
Result<std::vector<nft::ObjectRef>> recompile_guest(nft::Ruleset& ruleset,
                                                    const FirewallConfig& config, uint32_t vmid,
                                                    const CompileOptions& options,
                                                    std::vector<std::string>& warnings);

}  // namespace moat::firewall
