#include "moat/firewall/nft_driver.h"

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <libnftnl/table.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "moat/base/netns.h"
#include "nft_encode.h"

namespace moat::firewall::nft {

namespace {

// The text NetlinkSocket puts before the kernel's extended ack; stripped so that the op's
// description and the errno lead the message.
constexpr std::string_view kRejectedPrefix = "kernel rejected the request";

std::string extack_of(const Error& e) {
  std::string_view text = e.message();
  if (text.starts_with(kRejectedPrefix)) text.remove_prefix(kRejectedPrefix.size());
  if (text.starts_with(": ")) text.remove_prefix(2);
  return std::string(text);
}

// Above this many edited chains in one table, their rule handles come from one listing of the
// table's rules instead of one per chain.
constexpr size_t kChainListings = 8;

// Batches refused because another process committed first, before giving up.
constexpr int kAttempts = 3;

struct KernelFailure {
  uint32_t seq = 0;
  int err = 0;
  std::string extack;
};

}  // namespace

NftDriver::NftDriver(NetlinkSocket socket, std::string netns)
    : socket_(std::move(socket)),
      netns_(std::move(netns)),
      // Distinct from the numbers of an earlier driver in this process, so that a leftover
      // reply can never be taken for one of ours.
      next_seq_(static_cast<uint32_t>(std::time(nullptr))) {}

Result<NftDriver> NftDriver::open(const std::string& netns) {
  NetlinkSocket socket = MOAT_TRY(NetlinkSocket::open(NETLINK_NETFILTER, netns));
  return NftDriver(std::move(socket), netns);
}

Result<size_t> NftDriver::apply(const Plan& plan, std::optional<uint32_t> planned_at) {
  return send_plan(plan, planned_at, Mode::Commit);
}

Status NftDriver::check(const Plan& plan) {
  MOAT_RETURN_IF_ERROR(send_plan(plan, std::nullopt, Mode::Check));
  return {};
}

Result<size_t> NftDriver::send_plan(const Plan& plan, std::optional<uint32_t> planned_at,
                                    Mode mode) {
  if (plan.empty()) return 0;
  for (int attempt = 1;; ++attempt) {
    auto sent = send_once(plan, planned_at, mode);
    if (sent || sent.error().sys_errno() != ERESTART) return sent;
    if (planned_at)
      return fail(std::move(sent).error().add_context(
          "nftables changed since the plan was made at generation " + std::to_string(*planned_at)));
    if (attempt == kAttempts) return sent;
  }
}

Result<size_t> NftDriver::send_once(const Plan& plan, std::optional<uint32_t> planned_at,
                                    Mode mode) {
  detail::KernelRefs refs;
  if (auto devices = detail::fwd_devices(plan); !devices.empty()) {
    auto scope = MOAT_TRY(NetnsScope::enter(netns_));
    for (const auto& name : devices)
      if (unsigned index = if_nametoindex(name.c_str()); index != 0) refs.ifindexes[name] = index;
  }
  // The generation read before any listing: a commit after it fails the batch, not the edit.
  refs.genid = planned_at ? *planned_at : genid_ ? *genid_ : MOAT_TRY(generation());
  // What this driver knows describes the generation its last commit made, and no other.
  bool known = genid_ && *genid_ == refs.genid;
  for (const auto& [where, chains] : detail::positioned_chains(plan)) {
    const auto& [family, table] = where;
    std::vector<std::string> requests;
    for (const auto& chain : chains) {
      std::string ref = detail::chain_ref(family, table, chain);
      if (auto it = known_.find(ref); known && it != known_.end())
        refs.rule_handles[ref] = it->second;
      else
        requests.push_back(chain);
    }
    // One listing of the chain while a few are edited; of the whole table beyond that.
    if (requests.size() > kChainListings) requests = {""};
    for (const auto& chain : requests)
      for (auto& [name, handles] : MOAT_TRY(rule_handles(family, table, chain)))
        refs.rule_handles[detail::chain_ref(family, table, name)] = std::move(handles);
  }
  detail::EncodedBatch batch = MOAT_TRY(detail::encode_plan(
      plan, next_seq_, refs,
      mode == Mode::Commit ? detail::BatchEnd::Commit : detail::BatchEnd::Abort));
  if (batch.messages() == 0) return 0;
  next_seq_ += static_cast<uint32_t>(batch.messages());
  MOAT_RETURN_IF_ERROR(socket_.reserve_send_buffer(batch.bytes.size()));
  MOAT_RETURN_IF_ERROR(socket_.send(batch.bytes.span()));

  // nfnetlink handles the whole batch inside sendmsg, then queues, in message order, an error
  // for every failing message and the ack of the last command (NLM_F_ACK). A failed commit
  // adds an error for BATCH_BEGIN first. So reading until the last command's ack or error
  // sees every reply of this batch; anything else is left over from an earlier request.
  auto in_batch = [&](uint32_t seq) { return seq - batch.first_seq < batch.messages(); };
  std::vector<KernelFailure> failures;
  // The handles of the echoed rules (EncodedBatch::echoed_seqs), by sequence: the kernel
  // sends them once the batch committed, before the acks.
  std::map<uint32_t, uint64_t> echoed;
  auto on_echo = [&](const nlmsghdr* nlh) -> Status {
    if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWRULE || !in_batch(nlh->nlmsg_seq)) return {};
    const nlattr* handle = netlink_attrs(nlh, sizeof(nfgenmsg))[NFTA_RULE_HANDLE];
    if (handle && mnl_attr_get_payload_len(handle) == sizeof(uint64_t))
      echoed[nlh->nlmsg_seq] = be64toh(mnl_attr_get_u64(handle));
    return {};
  };
  for (;;) {
    uint32_t error_seq = 0;
    int error_code = 0;
    Status st = socket_.receive_until(batch.ack_seq, on_echo, [&](uint32_t seq, int err) {
      error_seq = seq;
      error_code = err;
    });
    if (st) break;
    if (error_code == 0) {
      // The socket itself failed (ENOBUFS when thousands of errors overflowed the receive
      // buffer). The batch has errors, so the kernel rolled it back.
      forget();
      return fail(std::move(st).error().add_context("applying " + std::to_string(plan.size()) +
                                                    " nftables ops (nothing was applied)"));
    }
    if (!in_batch(error_seq)) continue;
    failures.push_back({error_seq, error_code, extack_of(st.error())});
    if (error_seq == batch.ack_seq) break;
    // The kernel sends this one error for BATCH_BEGIN and nothing after it when the batch's
    // generation is no longer the ruleset's (ERESTART: nothing was processed) or when it ran
    // out of memory queueing errors.
    if (error_seq == batch.first_seq && (error_code == ERESTART || error_code == ENOMEM)) break;
  }
  if (failures.empty()) {
    if (mode == Mode::Check) return batch.messages();
    // Generation 0 is "any" to the kernel: such a batch was not checked, so nothing is known.
    if (refs.genid != 0)
      remember(plan, batch, refs, known, echoed);
    else
      forget();
    return batch.messages();
  }
  forget();

  std::string message = "nftables rejected the batch of " + std::to_string(plan.size()) +
                        " ops (nothing was applied): ";
  std::vector<std::string> seen;
  for (const KernelFailure& f : failures) {
    size_t op = batch.op_index[f.seq - batch.first_seq];
    std::string what = op == detail::kNoOp ? "commit" : detail::describe(plan[op]);
    if (!f.extack.empty()) what += ": " + f.extack;
    // The first errno is the Error's own (printed by Error::to_string); name the others.
    if (f.err != failures.front().err) what += " (" + std::string(std::strerror(f.err)) + ")";
    if (std::find(seen.begin(), seen.end(), what) != seen.end()) continue;
    if (!seen.empty()) message += "; ";
    message += what;
    seen.push_back(std::move(what));
  }
  return fail_errno(failures.front().err, std::move(message));
}

void NftDriver::remember(const Plan& plan, detail::EncodedBatch& batch,
                         const detail::KernelRefs& refs, bool known,
                         const std::map<uint32_t, uint64_t>& echoed) {
  genid_ = refs.genid + 1 == 0 ? 1 : refs.genid + 1;  // the kernel's counter skips 0 on wrap
  // Built for a generation that is not the one known_ describes (someone else committed in
  // between): none of it holds any more.
  if (!known) known_.clear();
  std::set<std::pair<Family, std::string>> created;
  for (const Op& op : plan) {
    if (op.kind == Op::Kind::AddTable) created.insert({op.family, op.table});
    if (op.kind == Op::Kind::DeleteTable) {
      std::string prefix = table_key(op.family, op.table) + " ";
      auto it = known_.lower_bound(prefix);
      while (it != known_.end() && it->first.starts_with(prefix)) it = known_.erase(it);
    }
  }
  // The chains edited in tables that existed: their handles now are those they had (listed
  // for this batch, or known) less the deleted rules, plus the echoed handles of the added
  // ones in their places. Without all of those, the chain is listed next time.
  struct Edit {
    std::optional<std::vector<uint64_t>> before;    // the chain's handles before the batch
    std::set<int> deleted;                          // indices into `before`
    std::map<int, std::vector<uint64_t>> inserted;  // before the rule at this index
    std::vector<uint64_t> appended;
    bool complete = true;
    bool gone = false;
  };
  std::map<std::string, Edit> edits;
  std::vector<uint32_t> rule_seq(plan.size(), 0);  // an AddRule op's own message
  for (size_t i = 0; i < batch.messages(); ++i)
    if (size_t op = batch.op_index[i]; op != detail::kNoOp)
      rule_seq[op] = batch.first_seq + static_cast<uint32_t>(i);
  const std::string* table = nullptr;
  Family family = Family::Inet;
  bool in_created = false;
  for (size_t k = 0; k < plan.size(); ++k) {
    const Op& op = plan[k];
    bool chain_op = op.kind == Op::Kind::AddChain || op.kind == Op::Kind::DeleteChain ||
                    op.kind == Op::Kind::FlushChain || op.kind == Op::Kind::AddRule ||
                    op.kind == Op::Kind::DeleteRule;
    if (!chain_op) continue;
    if (table == nullptr || *table != op.table || family != op.family) {
      table = &op.table;
      family = op.family;
      in_created = created.contains({family, *table});
    }
    if (in_created) continue;
    std::string ref = detail::chain_ref(op.family, op.table, op.name);
    auto [it, fresh] = edits.try_emplace(ref);
    Edit& e = it->second;
    if (fresh) {
      if (auto listed = refs.rule_handles.find(ref); listed != refs.rule_handles.end())
        e.before = listed->second;
      else if (auto had = known_.find(ref); had != known_.end())  // cleared unless `known`
        e.before = had->second;
    }
    switch (op.kind) {
      case Op::Kind::AddChain:
      case Op::Kind::FlushChain:
        e.before = std::vector<uint64_t>{};
        break;
      case Op::Kind::DeleteChain:
        e.gone = true;
        break;
      case Op::Kind::DeleteRule:
        e.deleted.insert(op.index);
        break;
      case Op::Kind::AddRule: {
        auto handle = echoed.find(rule_seq[k]);
        if (handle == echoed.end())
          e.complete = false;
        else if (op.index >= 0)
          e.inserted[op.index].push_back(handle->second);
        else
          e.appended.push_back(handle->second);
        break;
      }
      default:
        break;
    }
  }
  for (auto& [ref, e] : edits) {
    known_.erase(ref);
    if (e.gone || !e.complete || !e.before) continue;
    std::vector<uint64_t>& now = known_[ref];
    for (size_t i = 0; i < e.before->size(); ++i) {
      if (auto in = e.inserted.find(static_cast<int>(i)); in != e.inserted.end())
        now.insert(now.end(), in->second.begin(), in->second.end());
      if (!e.deleted.contains(static_cast<int>(i))) now.push_back((*e.before)[i]);
    }
    now.insert(now.end(), e.appended.begin(), e.appended.end());
  }
  for (auto& [chain, handles] : batch.new_rule_handles) known_[chain] = std::move(handles);
}

void NftDriver::forget() {
  genid_.reset();
  known_.clear();
}

Status NftDriver::request(std::span<const uint8_t> bytes, uint32_t seq,
                          const NetlinkSocket::MessageHandler& on_message) {
  MOAT_RETURN_IF_ERROR(socket_.send(bytes));
  auto ours = [&](const nlmsghdr* nlh) -> Status {
    if (nlh->nlmsg_seq != seq || !on_message) return {};
    return on_message(nlh);
  };
  for (;;) {
    uint32_t error_seq = 0;
    int error_code = 0;
    Status st = socket_.receive_until(seq, ours, [&](uint32_t s, int err) {
      error_seq = s;
      error_code = err;
    });
    if (st || error_code == 0 || error_seq == seq) return st;
    // An error left over from an earlier batch: not ours, keep reading.
  }
}

Result<uint32_t> NftDriver::generation() {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  uint32_t seq = next_seq_++;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buf.data()), NFT_MSG_GETGEN,
                                        AF_UNSPEC, NLM_F_ACK, seq);
  std::unique_ptr<nftnl_gen, decltype(&nftnl_gen_free)> gen(nftnl_gen_alloc(), nftnl_gen_free);
  bool found = false;
  MOAT_RETURN_IF_ERROR(
      request(std::span(buf.data(), nlh->nlmsg_len), seq, [&](const nlmsghdr* reply) -> Status {
        if (NFNL_MSG_TYPE(reply->nlmsg_type) != NFT_MSG_NEWGEN) return {};
        if (nftnl_gen_nlmsg_parse(reply, gen.get()) < 0)
          return fail(ErrorCode::Kernel, "malformed NEWGEN reply");
        found = true;
        return {};
      }));
  if (!found) return fail(ErrorCode::Kernel, "no generation in the reply to GETGEN");
  return nftnl_gen_get_u32(gen.get(), NFTNL_GEN_ID);
}

Result<bool> NftDriver::table_exists(Family family, const std::string& name) {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  uint32_t seq = next_seq_++;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buf.data()), NFT_MSG_GETTABLE,
                                        static_cast<uint16_t>(family), NLM_F_ACK, seq);
  std::unique_ptr<nftnl_table, decltype(&nftnl_table_free)> t(nftnl_table_alloc(),
                                                              nftnl_table_free);
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
  nftnl_table_nlmsg_build_payload(nlh, t.get());
  Status st = request(std::span(buf.data(), nlh->nlmsg_len), seq, {});
  if (st) return true;
  if (st.error().sys_errno() == ENOENT) return false;
  return fail(std::move(st).error().add_context("looking up table " + table_key(family, name)));
}

Result<std::vector<std::pair<Family, std::string>>> NftDriver::tables() {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  uint32_t seq = next_seq_++;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buf.data()), NFT_MSG_GETTABLE,
                                        AF_UNSPEC, NLM_F_DUMP, seq);
  std::vector<std::pair<Family, std::string>> out;
  MOAT_RETURN_IF_ERROR(socket_.send(std::span(buf.data(), nlh->nlmsg_len)));
  Status st = socket_.receive_dump(seq, [&](const nlmsghdr* reply) -> Status {
    if (NFNL_MSG_TYPE(reply->nlmsg_type) != NFT_MSG_NEWTABLE) return {};
    const auto* header = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(reply));
    const nlattr* name = netlink_attrs(reply, sizeof(nfgenmsg))[NFTA_TABLE_NAME];
    if (!name) return fail(ErrorCode::Kernel, "a table without a name in the GETTABLE dump");
    out.emplace_back(static_cast<Family>(header->nfgen_family), mnl_attr_get_str(name));
    return {};
  });
  if (!st) return fail(std::move(st).error().add_context("listing the tables"));
  return out;
}

Result<std::map<std::string, std::vector<uint64_t>>> NftDriver::rule_handles(
    Family family, const std::string& table, const std::string& chain) {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  uint32_t seq = next_seq_++;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buf.data()), NFT_MSG_GETRULE,
                                        static_cast<uint16_t>(family), NLM_F_DUMP, seq);
  mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table.c_str());
  if (!chain.empty()) mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain.c_str());
  std::map<std::string, std::vector<uint64_t>> handles;
  MOAT_RETURN_IF_ERROR(socket_.send(std::span(buf.data(), nlh->nlmsg_len)));
  Status st = socket_.receive_dump(seq, [&](const nlmsghdr* reply) -> Status {
    if (NFNL_MSG_TYPE(reply->nlmsg_type) != NFT_MSG_NEWRULE) return {};
    auto attrs = netlink_attrs(reply, sizeof(nfgenmsg));
    const nlattr* handle = attrs[NFTA_RULE_HANDLE];
    const nlattr* in = attrs[NFTA_RULE_CHAIN];
    if (!handle || mnl_attr_get_payload_len(handle) != sizeof(uint64_t) || !in)
      return fail(ErrorCode::Kernel, "a rule without a handle or chain in the GETRULE dump");
    handles[mnl_attr_get_str(in)].push_back(be64toh(mnl_attr_get_u64(handle)));
    return {};
  });
  if (!st)
    return fail(std::move(st).error().add_context(
        "listing the rules of " + (chain.empty()
                                       ? "table " + table_key(family, table)
                                       : "chain " + detail::chain_ref(family, table, chain))));
  return handles;
}

}  // namespace moat::firewall::nft
