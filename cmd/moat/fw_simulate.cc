// `moat fw simulate`: what the compiled ruleset of a node does to the first packet of a new
// connection between two zones, and which rule decided. Loads and compiles exactly as
// `moat fw compile` does (br_netfilter strategy), then runs firewall::sim::simulate().
#include <cstdio>
#include <ctime>

#include "commands.h"
#include "fw_common.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/nft_text.h"
#include "moat/firewall/parser.h"
#include "moat/firewall/simulator.h"

namespace moat::cli {

namespace {

struct SimulateArgs {
  FwArgs config;
  std::string from, to, protocol;
  std::string source, dest, icmp_type;
  std::optional<uint16_t> sport, dport;
  bool trace = false;
};

// "(group dbserver via firewall/101.fw:10)" when a security group decided.
std::string context(const firewall::sim::Outcome& o) {
  if (!o.chain.starts_with("group-")) return "";
  std::string group = o.chain.substr(6);
  for (const char* suffix : {"-in", "-out", "-fwd"})
    if (group.ends_with(suffix)) {
      group.resize(group.size() - std::string(suffix).size());
      break;
    }
  return " (group " + group + (o.via.empty() ? "" : " via " + o.via) + ")";
}

Result<firewall::sim::Outcome> run(const SimulateArgs& args) {
  firewall::sim::Packet packet;
  packet.from = args.from;
  packet.to = args.to;
  packet.protocol = args.protocol;
  for (auto [text, out, what] : {std::tuple{&args.source, &packet.source, "--source"},
                                 std::tuple{&args.dest, &packet.dest, "--dest"}}) {
    if (text->empty()) continue;
    *out = parse_ip(*text);
    if (!*out)
      return fail(ErrorCode::InvalidArgument,
                  std::string(what) + ": not an IP address: '" + *text + "'");
  }
  packet.sport = args.sport;
  packet.dport = args.dport;
  if (!args.icmp_type.empty()) packet.icmp_type = args.icmp_type;

  auto node = MOAT_TRY(load_and_compile(args.config, firewall::GuestStrategy::BrNetfilter));
  return firewall::sim::simulate(node.compiled.ruleset, node.config, packet);
}

}  // namespace

void register_fw_simulate(CLI::App* fw, CLI::App& app, int& exit_code) {
  static SimulateArgs args;
  auto* cmd = fw->add_subcommand("simulate", "evaluate the compiled ruleset for one packet");
  add_config_options(cmd, args.config);
  const char* zones = "host, outside, vm<vmid>[/net<N>], ct<vmid>[/net<N>] or <bridge>/<port>";
  cmd->add_option("--from", args.from, std::string("sending zone: ") + zones)->required();
  cmd->add_option("--to", args.to, std::string("receiving zone: ") + zones)->required();
  cmd->add_option("--protocol", args.protocol, "tcp, udp, icmp, icmpv6 or a protocol name/number")
      ->required();
  cmd->add_option("--source", args.source, "source address (default: from the zone's config)");
  cmd->add_option("--dest", args.dest, "destination address (default: from the zone's config)");
  cmd->add_option("--dport", args.dport, "destination port");
  cmd->add_option("--sport", args.sport, "source port (default 40000)");
  cmd->add_option("--icmp-type", args.icmp_type,
                  "icmp/icmpv6 type name or number (default echo-request)");
  cmd->add_flag("--trace", args.trace, "print every rule that matched, hook by hook");
  cmd->callback([&app, &exit_code] {
    init_logging(app);
    auto outcome = run(args);
    if (!outcome) {
      exit_code = report_error(outcome.error());
      return;
    }
    std::printf("%s by %s%s\n", firewall::sim::to_string(outcome->verdict),
                outcome->decided_by.c_str(), context(*outcome).c_str());
    if (!args.trace) return;
    for (const auto& step : outcome->trace)
      std::printf("  [%s] %s %s: %s\n", step.hook.c_str(), step.table.c_str(), step.chain.c_str(),
                  step.rule_text.c_str());
  });
}

}  // namespace moat::cli
