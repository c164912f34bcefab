#include "moat/firewall/applier.h"

#include <boost/json.hpp>

#include <fstream>
#include <set>

#include "moat/base/file.h"
#include "moat/base/log.h"
#include "moat/base/netns.h"
#include "moat/base/subprocess.h"
#include "moat/firewall/ir_json.h"
#include "moat/firewall/names.h"
#include "moat/firewall/reject_ports.h"

namespace moat::firewall {

namespace json = boost::json;

namespace {

// Plans made again because someone else committed between a plan and its batch.
constexpr int kPlanAttempts = 3;

}  // namespace

Result<Applier> Applier::open(const ApplierOptions& options, const Clock& clock) {
  auto driver = MOAT_TRY(nft::NftDriver::open(options.netns));
  return Applier(options, std::move(driver), clock);
}

std::filesystem::path Applier::state_file() const {
  std::string ns = options_.netns.empty() ? "host" : options_.netns;
  for (char& c : ns)
    if (c == '/') c = '_';
  return options_.state_dir / ("firewall-" + ns + ".json");
}

Result<std::optional<AppliedState>> Applier::state() const {
  auto text = read_file(state_file());
  if (!text) {
    if (text.error().code() == ErrorCode::NotFound) return std::optional<AppliedState>{};
    return std::unexpected(text.error());
  }
  boost::system::error_code ec;
  json::value root = json::parse(*text, ec);
  if (ec || !root.is_object() || !root.as_object().contains("ruleset"))
    return fail(ErrorCode::InvalidConfig, "corrupt state file " + state_file().string());
  const auto& o = root.as_object();
  AppliedState s;
  s.ruleset = MOAT_TRY(nft::ruleset_from_json(o.at("ruleset")));
  if (auto* v = o.if_contains("applied_at"); v && v->is_int64()) s.applied_at = v->as_int64();
  if (auto* v = o.if_contains("generation"); v && v->is_number())
    s.generation = static_cast<uint32_t>(v->to_number<uint64_t>());
  if (auto* v = o.if_contains("strategy"); v && v->is_string())
    s.strategy = std::string(v->as_string());
  return std::optional<AppliedState>(std::move(s));
}

Result<GuestStrategy> Applier::probe_strategy() {
  nft::Table t;
  t.family = nft::Family::Bridge;
  t.name = "moat-probe";
  nft::Plan plan;
  auto op = [&](nft::Op::Kind kind) {
    nft::Op o;
    o.kind = kind;
    o.family = t.family;
    o.table = t.name;
    o.name = "probe";
    return o;
  };
  plan.push_back(op(nft::Op::Kind::AddTable));
  auto chain = op(nft::Op::Kind::AddChain);
  const nft::BaseChain forward{nft::Hook::Forward, 0, false};
  chain.base = &forward;
  plan.push_back(chain);
  nft::Rule reject;
  reject.matches = {
      nft::Match{{nft::Field::CtState}, nft::Match::Op::BitsAny, {}, {}, nft::kCtNew}};
  reject.verdict = {nft::VerdictCode::RejectPortUnreach, {}};
  auto rule = op(nft::Op::Kind::AddRule);
  rule.rule = &reject;
  plan.push_back(rule);
  // Checked, not committed: a commit would move the generation, and the next apply would
  // take it for someone else's change and replace our tables whole.
  auto checked = driver_.check(plan);
  if (checked) return GuestStrategy::BridgeConntrack;
  log::debug("bridge conntrack probe: {}", checked.error().to_string());
  return GuestStrategy::BrNetfilter;
}

Status Applier::enable_bridge_netfilter() {
  {
    auto scope = MOAT_TRY(NetnsScope::enter(options_.netns));
    std::error_code ec;
    if (!std::filesystem::exists("/proc/sys/net/bridge", ec)) {
      // br_netfilter is a module; loading it is a one-time setup step, not a hot path.
      auto r = run({.argv = {"modprobe", "br_netfilter"}});
      if (!r || r->exit_code != 0 || !std::filesystem::exists("/proc/sys/net/bridge", ec))
        return fail(ErrorCode::Unavailable,
                    "br_netfilter is not available: load the module (modprobe br_netfilter) so "
                    "bridged guest traffic can be filtered statefully");
    }
  }
  return write_sysctls(
      {{"net/bridge/bridge-nf-call-iptables", "1"}, {"net/bridge/bridge-nf-call-ip6tables", "1"}});
}

Status Applier::write_sysctls(const std::map<std::string, std::string>& sysctls) {
  if (sysctls.empty()) return {};
  auto scope = MOAT_TRY(NetnsScope::enter(options_.netns));
  for (const auto& [key, value] : sysctls) {
    std::string path = "/proc/sys/" + key;
    std::ofstream out(path);
    out << value << "\n";
    out.close();
    if (!out) return fail_errno(errno ? errno : EIO, "cannot write " + path + " = " + value);
  }
  return {};
}

Status Applier::prepare(const CompileResult& compiled) {
  if (compiled.needs_bridge_netfilter) MOAT_RETURN_IF_ERROR(enable_bridge_netfilter());
  MOAT_RETURN_IF_ERROR(write_sysctls(compiled.sysctls));
  // Other bridges' reject ports stay until the apply succeeded: the ruleset in place may
  // still forward to them, and it stays in place if the apply fails.
  reject_bridges_ = compiled.reject_port_bridges;
  return sync_reject_ports(options_.netns, compiled.reject_port_bridges, OtherRejectPorts::Keep);
}

Status Applier::remove_unused_reject_ports() {
  if (!reject_bridges_) return {};
  return sync_reject_ports(options_.netns, *std::exchange(reject_bridges_, std::nullopt));
}

Result<uint32_t> Applier::kernel_generation() { return driver_.generation(); }

Result<ApplyReport> Applier::make_plan(const nft::Ruleset& desired) {
  ApplyReport report;
  uint32_t generation = MOAT_TRY(driver_.generation());
  report.generation = generation;
  auto previous = state();
  if (!previous && previous.error().code() != ErrorCode::InvalidConfig)
    return std::unexpected(previous.error());
  if (!previous) {
    // Written by another version of Moat, or damaged: what it says cannot be used, but it
    // must not keep the node from getting its firewall.
    log::warn("{}; replacing every Moat table instead of trusting it",
              previous.error().to_string());
  } else if (*previous && (*previous)->generation == generation) {
    report.applied = std::make_shared<const nft::Ruleset>(std::move((*previous)->ruleset));
    report.plan = nft::diff(*report.applied, desired);
    return report;
  }
  // Unknown kernel state: delete every table of ours that exists and add all, in one batch.
  report.resync = true;
  for (const auto& [family, name] : MOAT_TRY(driver_.tables())) {
    if (!names::owned_table(name)) continue;
    nft::Op del;
    del.kind = nft::Op::Kind::DeleteTable;
    del.family = family;
    del.table = name;
    report.plan.push_back(std::move(del));
  }
  for (auto& op : nft::creation(desired)) report.plan.push_back(std::move(op));
  return report;
}

Result<ApplyReport> Applier::plan(const nft::Ruleset& desired) { return make_plan(desired); }

Result<ApplyReport> Applier::apply(const nft::Ruleset& desired, GuestStrategy strategy) {
  // The plan holds for the generation it was made at; someone else's commit before ours
  // makes the kernel refuse it (Conflict), and the next plan sees that generation and
  // replaces our tables whole.
  ApplyReport report;
  for (int attempt = 1;; ++attempt) {
    report = MOAT_TRY(make_plan(desired));
    if (report.plan.empty()) {
      MOAT_RETURN_IF_ERROR(remove_unused_reject_ports());
      return report;
    }
    auto start = clock_->monotonic();
    auto sent = driver_.apply(report.plan, report.generation);
    report.kernel_time =
        std::chrono::duration_cast<std::chrono::microseconds>(clock_->monotonic() - start);
    if (sent) {
      report.messages = *sent;
      break;
    }
    if (sent.error().code() != ErrorCode::Conflict || attempt == kPlanAttempts)
      return std::unexpected(sent.error());
  }
  // The generation our commit made, as the driver knows it (read back, it could already be
  // someone else's).
  auto committed = driver_.committed_generation();
  uint32_t generation = committed ? *committed : MOAT_TRY(driver_.generation());
  json::object root{
      {"applied_at",
       std::chrono::duration_cast<std::chrono::seconds>(clock_->now().time_since_epoch()).count()},
      {"generation", generation},
      {"strategy", to_string(strategy)},
      {"netns", options_.netns}};
  // The ruleset's JSON is spliced in as text: parsed into the object only to be printed again,
  // it cost 0.3 s at 5,000 guests (21 MB).
  std::string text = json::serialize(root);
  text.pop_back();  // the closing brace
  text += ",\"ruleset\":" + nft::to_json(desired) + "}";
  MOAT_RETURN_IF_ERROR(write_file_atomic(state_file(), text));
  MOAT_RETURN_IF_ERROR(remove_unused_reject_ports());
  return report;
}

}  // namespace moat::firewall
