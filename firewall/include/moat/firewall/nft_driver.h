// NftDriver: the effectful end of the firewall. It sends a Plan (diff.h) to the kernel's
// nf_tables as ONE netlink batch in one sendmsg, so the kernel applies all of it or none of
// it, and maps a kernel refusal back to the Op (and the user's rule `origin`) that caused it.
// It speaks netlink directly through libnftnl/libmnl and never runs the `nft` program.
// One driver per thread; not thread-safe (it owns one socket and a sequence counter).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "moat/base/netlink.h"
#include "moat/base/result.h"
#include "moat/firewall/diff.h"
#include "moat/firewall/ir.h"

namespace moat::firewall::nft {

namespace detail {
struct EncodedBatch;
struct KernelRefs;
}  // namespace detail

class NftDriver {
 public:
  // Opens a NETLINK_NETFILTER socket in network namespace `netns` ("" = the caller's). The
  // socket stays bound to that namespace for the driver's lifetime.
  static Result<NftDriver> open(const std::string& netns = "");

  // Sends the whole plan as one batch (BATCH_BEGIN ... BATCH_END) in one sendmsg; the kernel
  // commits all of it or nothing. Only the last message asks for an ack, which tells when the
  // kernel is done; errors come back for every failing message. An empty plan sends nothing.
  // On a refusal the Error (code from the errno, e.g. NotFound for ENOENT) names each failing
  // op: kind, family, table, chain/set, and for AddRule the rule's origin ("cluster.fw:12"),
  // followed by the kernel's extended-ack text. A malformed op (a value of the wrong size, an
  // unknown limit unit) fails with InvalidArgument before anything is sent.
  // Devices named by `fwd to` are resolved to their ifindex in the namespace first (NotFound,
  // nothing sent, when one does not exist). The chains edited rule by rule (ops with an
  // index) need their rules' handles: known from this driver's earlier batches while the
  // ruleset is still at the generation its last commit made (see known_rule_handles()), else
  // listed. Every batch carries
  // the generation it was built for, so a commit by anyone else in between makes the kernel
  // refuse it (ERESTART); it is then built again from a fresh listing, twice at most.
  // `planned_at`, when given, is the generation the caller made the plan against (a diff
  // against what it believes is applied): the batch is built for that generation, and after
  // anyone else's commit it is refused with Conflict and not retried, nothing applied, so
  // that the caller plans again from what the kernel now holds.
  // Returns the number of netlink messages sent, BATCH_BEGIN and BATCH_END included.
  Result<size_t> apply(const Plan& plan, std::optional<uint32_t> planned_at = std::nullopt);

  // Sends the plan like apply() but without BATCH_END, as `nft --check` does: the kernel
  // builds and validates every object, answers each message, and aborts instead of
  // committing, so nothing changes and the generation does not move. The errors are
  // apply()'s.
  Status check(const Plan& plan);

  // The generation this driver's last commit made, as long as no refusal since told it
  // that someone else committed.
  std::optional<uint32_t> committed_generation() const { return genid_; }

  // The ruleset generation id (NFT_MSG_GETGEN); it changes on every commit by anyone.
  Result<uint32_t> generation();

  // Whether table `family name` exists (NFT_MSG_GETTABLE).
  Result<bool> table_exists(Family family, const std::string& name);

  // Every table of the namespace, of every family: one GETTABLE dump.
  Result<std::vector<std::pair<Family, std::string>>> tables();

  // The kernel's handles of the rules of a chain (every chain of the table when `chain` is
  // empty), by chain, in chain order: one GETRULE dump.
  Result<std::map<std::string, std::vector<uint64_t>>> rule_handles(Family family,
                                                                    const std::string& table,
                                                                    const std::string& chain = "");

  // The rule handles this driver knows without listing, by detail::chain_ref() ("netdev
  // moat-guests-0 guest-1000-in"), until anyone else commits: every chain of the tables its
  // batches created, and the chains its batches edited in other tables when it knew their
  // handles before (the kernel echoes the handles of up to kEchoedRules added rules per
  // batch). For tests and diagnostics.
  const std::map<std::string, std::vector<uint64_t>>& known_rule_handles() const { return known_; }

 private:
  NftDriver(NetlinkSocket socket, std::string netns);
  // Sends one non-batch request (built into `bytes`, sequence `seq`) with NLM_F_ACK and reads
  // its replies, skipping anything left over from earlier requests.
  Status request(std::span<const uint8_t> bytes, uint32_t seq,
                 const NetlinkSocket::MessageHandler& on_message);
  enum class Mode { Commit, Check };
  Result<size_t> send_plan(const Plan& plan, std::optional<uint32_t> planned_at, Mode mode);
  Result<size_t> send_once(const Plan& plan, std::optional<uint32_t> planned_at, Mode mode);
  // After a committed batch built for generation `refs.genid`: what the driver knows now.
  // `known`: whether known_ described that generation; `echoed`: the handles the kernel
  // echoed for the batch's rules, by message sequence.
  void remember(const Plan& plan, detail::EncodedBatch& batch, const detail::KernelRefs& refs,
                bool known, const std::map<uint32_t, uint64_t>& echoed);
  void forget();

  NetlinkSocket socket_;
  std::string netns_;  // where `fwd to` device names are resolved
  uint32_t next_seq_;
  // The generation this driver's last commit made, while `known_` describes it.
  std::optional<uint32_t> genid_;
  std::map<std::string, std::vector<uint64_t>> known_;
};

}  // namespace moat::firewall::nft
