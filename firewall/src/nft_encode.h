// Private to the nftables driver: turns a Plan into the bytes of one nfnetlink batch,
// following what `nft` itself generates (registers, byte order, set userdata) so
// that `nft list ruleset` prints what was sent. Pure: no sockets, no global state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "moat/base/result.h"
#include "moat/firewall/diff.h"

namespace moat::firewall::nft::detail {

// op_index value of BATCH_BEGIN and BATCH_END, which belong to no op.
inline constexpr size_t kNoOp = static_cast<size_t>(-1);

// Rules added to existing tables whose handles a batch asks back, at most (about 500 bytes
// each in the receive buffer).
inline constexpr size_t kEchoedRules = 64;

// Bytes that grow without being zeroed first: a 5,000-guest batch is 37 MB, and a vector
// zero-filled every page it grew into before the encoder wrote it.
class BatchBytes {
 public:
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }
  std::span<const uint8_t> span() const { return {data_.get(), size_}; }
  // Makes room for `n` more bytes after the first `size()`.
  void reserve_more(size_t n);
  void grow(size_t n) { size_ += n; }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t size_ = 0, capacity_ = 0;
};

struct EncodedBatch {
  BatchBytes bytes;
  // Message i has sequence number first_seq + i and was produced by plan[op_index[i]].
  std::vector<size_t> op_index;
  uint32_t first_seq = 0;
  // The one message sent with NLM_F_ACK: the last command (before BATCH_END, if any).
  uint32_t ack_seq = 0;
  // chain_ref() -> the handles the kernel gives the rules this batch adds to the chains of
  // the tables it creates, in chain order (see BatchWriter::created()).
  std::map<std::string, std::vector<uint64_t>> new_rule_handles;
  // The rule messages, to tables the batch does not create, sent with NLM_F_ECHO: once the
  // batch commits the kernel sends each back with the handle it gave the rule. At most
  // kEchoedRules, so that the echoes fit the socket's receive buffer.
  std::vector<uint32_t> echoed_seqs;
  size_t messages() const { return op_index.size(); }
};

// What a plan names that only the target namespace's kernel knows; the driver looks it up
// before encoding.
struct KernelRefs {
  std::map<std::string, uint32_t> ifindexes;  // the devices of `fwd to` statements
  // chain_ref() -> the handles of the chain's rules, in chain order (ops with an index).
  std::map<std::string, std::vector<uint64_t>> rule_handles;
  // The ruleset generation the batch is for (0: any); see BatchWriter::begin_batch().
  uint32_t genid = 0;
};

// "inet moat input": the key of KernelRefs::rule_handles.
std::string chain_ref(Family family, const std::string& table, const std::string& chain);

// How a batch ends: BATCH_END commits it; without, the kernel validates it and aborts.
enum class BatchEnd { Commit, Abort };

// Encodes BATCH_BEGIN, the messages of every op in order, then BATCH_END (unless `end` is
// Abort), numbered from `first_seq`. An op producing no message (AddElements with no elements) is
// skipped. Fails with InvalidArgument, naming the op, when an op cannot be encoded (value of the
// wrong size, a range in a non-interval set, an unknown limit unit, a too long concatenation). An
// empty plan (or one whose ops all produce nothing) gives an empty batch. A device or rule handle
// missing from `refs` fails the op.
Result<EncodedBatch> encode_plan(const Plan& plan, uint32_t first_seq, const KernelRefs& refs = {},
                                 BatchEnd end = BatchEnd::Commit);

// The devices the `fwd to` statements of the plan's rules name.
std::set<std::string> fwd_devices(const Plan& plan);
// The tables (family, name) of the plan's positioned ops and, in each, the chains they edit.
std::map<std::pair<Family, std::string>, std::set<std::string>> positioned_chains(const Plan& plan);

// "AddRule inet moat input (rule cluster.fw:12)": the op's kind, family, table, chain or set,
// and for rules the origin. Used in error messages.
std::string describe(const Op& op);

}  // namespace moat::firewall::nft::detail
