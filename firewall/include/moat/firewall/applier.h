// The apply step of the firewall: diff the desired ruleset against what Moat last applied in
// a network namespace and send only the difference as one atomic batch. What was applied is
// remembered in a state file (ruleset, time, nftables generation); when the kernel's
// generation moved since (someone else committed), or there is no state file, or it cannot be
// read (another version's format), Moat replaces every table it owns (names::owned_table())
// in one batch instead of trusting the file. A failed batch changes nothing, and the state
// file is only written after the kernel accepted the batch. One applier per thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "moat/base/clock.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/diff.h"
#include "moat/firewall/ir.h"
#include "moat/firewall/nft_driver.h"

namespace moat::firewall {

struct AppliedState {
  nft::Ruleset ruleset;
  int64_t applied_at = 0;   // unix seconds
  uint32_t generation = 0;  // nftables generation after our commit
  std::string strategy;
};

struct ApplyReport {
  nft::Plan plan;  // its objects point into `applied` (deleted ones) and the desired ruleset
  std::shared_ptr<const nft::Ruleset> applied;  // what the plan was made against, if known
  uint32_t generation = 0;                      // the nftables generation the plan was made at
  bool resync = false;  // the kernel changed behind our back: our tables were replaced whole
  size_t messages = 0;  // netlink messages sent (0 when nothing changed)
  std::chrono::microseconds kernel_time{0};
};

struct ApplierOptions {
  std::string netns;  // "" = the caller's namespace
  std::filesystem::path state_dir = "/run/moat";
};

class Applier {
 public:
  static Result<Applier> open(const ApplierOptions& options,
                              const Clock& clock = SystemClock::instance());

  // Which guest strategy this kernel supports: BridgeConntrack when a bridge-family table may
  // hold `ct state` and `reject` (probed with a batch that the kernel validates and aborts,
  // so nothing is left behind and the generation does not move), else BrNetfilter.
  Result<GuestStrategy> probe_strategy();

  // Makes bridged IP traffic visible to the inet hooks (br_netfilter sysctls in the
  // namespace), which the BrNetfilter strategy needs for stateful guest filtering.
  Status enable_bridge_netfilter();

  // Writes /proc/sys/<key> = value in the namespace (the conntrack settings of host.fw).
  Status write_sysctls(const std::map<std::string, std::string>& sysctls);

  // Readies the namespace for `compiled` before its apply(): br_netfilter when it needs it, its
  // sysctls, and the reject ports of its bridges, which must exist before rules that `fwd to`
  // them are sent. The reject ports of other bridges are removed by the next apply() that
  // succeeds (until then the ruleset in place may use them).
  Status prepare(const CompileResult& compiled);

  // What apply() would send.
  Result<ApplyReport> plan(const nft::Ruleset& desired);
  // Sends the difference and records the new state. When someone else commits between the
  // plan and its batch, the kernel refuses the batch and the plan is made again (a resync).
  Result<ApplyReport> apply(const nft::Ruleset& desired, GuestStrategy strategy);

  // The nftables generation now: equal to state()->generation while nobody committed since.
  Result<uint32_t> kernel_generation();

  // What was last applied here, if anything.
  Result<std::optional<AppliedState>> state() const;
  std::filesystem::path state_file() const;

 private:
  Applier(ApplierOptions options, nft::NftDriver driver, const Clock& clock)
      : options_(std::move(options)), driver_(std::move(driver)), clock_(&clock) {}
  Result<ApplyReport> make_plan(const nft::Ruleset& desired);
  // After a successful apply: the reject ports of bridges the prepared ruleset does not use.
  Status remove_unused_reject_ports();

  ApplierOptions options_;
  nft::NftDriver driver_;
  const Clock* clock_;
  std::optional<std::set<std::string>> reject_bridges_;  // prepare()'s, until apply() used them
};

}  // namespace moat::firewall
