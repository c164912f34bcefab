// `moat fw ...`: compile, check, plan, apply, status and simulate the firewall of one node.
#include <cstdio>

#include <chrono>
#include <ctime>
#include "commands.h"
#include "fw_common.h"

#include "moat/base/log.h"
#include "moat/firewall/analysis.h"
#include "moat/firewall/applier.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/ir_json.h"
#include "moat/firewall/nft_text.h"
#include "moat/firewall/parser.h"

namespace moat::cli {

namespace {

void add_kernel_options(CLI::App* cmd, FwArgs& args) {
  cmd->add_option("--netns", args.netns, "network namespace to act in (default: the current one)");
  cmd->add_option("--state-dir", args.state_dir, "where the applied state is recorded")
      ->capture_default_str();
  cmd->add_option("--strategy", args.strategy, "auto|br_netfilter|bridge-conntrack")
      ->check(CLI::IsMember({"auto", "br_netfilter", "bridge-conntrack"}))
      ->capture_default_str();
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

void register_fw(CLI::App& app, int& exit_code) {
  auto* fw =
      app.add_subcommand("fw", "firewall: compile Proxmox rule files to nftables and apply them");
  fw->require_subcommand(1);

  static FwArgs compile_args;
  static std::string format = "nft";
  static std::string compile_strategy = "br_netfilter";
  auto* compile = fw->add_subcommand("compile", "print the ruleset exactly as it would be applied");
  add_config_options(compile, compile_args);
  compile->add_option("--format", format, "nft|json")
      ->check(CLI::IsMember({"nft", "json"}))
      ->capture_default_str();
  compile->add_option("--strategy", compile_strategy, "br_netfilter|bridge-conntrack")
      ->check(CLI::IsMember({"br_netfilter", "bridge-conntrack"}))
      ->capture_default_str();
  compile->add_option("--netns", compile_args.netns,
                      "network namespace whose links the detections read (local networks, OVS "
                      "and VLAN-aware bridges; default: the current one)");
  compile->callback([&app, &exit_code] {
    init_logging(app);
    auto strategy = compile_strategy == "br_netfilter" ? firewall::GuestStrategy::BrNetfilter
                                                       : firewall::GuestStrategy::BridgeConntrack;
    auto result = load_and_compile(compile_args, strategy);
    if (!result) {
      exit_code = report_error(result.error());
      return;
    }
    const auto& ruleset = result->compiled.ruleset;
    std::string out = format == "json" ? firewall::nft::to_json(ruleset, true)
                                       : firewall::nft::to_nft_text(ruleset);
    std::fwrite(out.data(), 1, out.size(), stdout);
  });

  static FwArgs check_args;
  auto* check = fw->add_subcommand(
      "check", "validate the configuration and warn about rules that cannot apply");
  add_config_options(check, check_args);
  check->callback([&app, &exit_code] {
    init_logging(app);
    auto result = load_and_compile(check_args, firewall::GuestStrategy::BrNetfilter);
    if (!result) {
      exit_code = report_error(result.error());
      return;
    }
    // Shadowed and unreachable rules, found on the compiled IR (macros and groups resolved).
    auto dead = firewall::find_dead_rules(result->compiled.ruleset);
    for (const auto& d : dead) std::printf("warning: %s\n", d.c_str());
    std::printf("configuration is valid (%zu warnings)\n",
                result->compiled.warnings.size() + dead.size());
  });

  // plan and apply share everything up to the last step.
  struct KernelCommand {
    const char* name;
    const char* help;
    bool apply;
  };
  static FwArgs kernel_args[2];
  int index = 0;
  for (auto kc :
       {KernelCommand{"plan", "print what apply would change, as nft operations", false},
        KernelCommand{"apply", "apply the ruleset: the difference, in one atomic batch", true}}) {
    FwArgs& args = kernel_args[index++];
    auto* cmd = fw->add_subcommand(kc.name, kc.help);
    add_config_options(cmd, args);
    add_kernel_options(cmd, args);
    cmd->callback([&app, &exit_code, &args, kc] {
      init_logging(app);
      auto run = [&]() -> Status {
        auto start = std::chrono::steady_clock::now();
        auto applier =
            MOAT_TRY(firewall::Applier::open({.netns = args.netns, .state_dir = args.state_dir}));
        auto strategy = args.strategy == "br_netfilter" ? firewall::GuestStrategy::BrNetfilter
                        : args.strategy == "bridge-conntrack"
                            ? firewall::GuestStrategy::BridgeConntrack
                            : MOAT_TRY(applier.probe_strategy());
        auto compiled = MOAT_TRY(load_and_compile(args, strategy)).compiled;
        double compile_ms = ms_since(start);
        if (!kc.apply) {
          auto report = MOAT_TRY(applier.plan(compiled.ruleset));
          if (report.resync)
            std::printf("# nftables changed since the last apply: our tables are replaced whole\n");
          if (report.plan.empty()) std::printf("no changes\n");
          std::string text = firewall::nft::to_string(report.plan);
          std::fwrite(text.data(), 1, text.size(), stdout);
          return {};
        }
        MOAT_RETURN_IF_ERROR(applier.prepare(compiled));
        auto report = MOAT_TRY(applier.apply(compiled.ruleset, strategy));
        if (report.plan.empty()) {
          std::printf("nothing to do: the applied ruleset is current (compile %.1f ms)\n",
                      compile_ms);
          return {};
        }
        size_t rules = 0;
        for (const auto& op : report.plan) rules += op.kind == firewall::nft::Op::Kind::AddRule;
        std::printf(
            "applied %zu operations (%zu rules) in %zu netlink messages%s, strategy %s%s%s\n",
            report.plan.size(), rules, report.messages, report.resync ? " (full resync)" : "",
            firewall::to_string(strategy), args.netns.empty() ? "" : ", netns ",
            args.netns.c_str());
        std::printf("compile %.1f ms, kernel commit %.2f ms, total %.1f ms\n", compile_ms,
                    report.kernel_time.count() / 1000.0, ms_since(start));
        return {};
      };
      if (auto s = run(); !s) exit_code = report_error(s.error());
    });
  }

  static FwArgs status_args;
  auto* status = fw->add_subcommand("status", "say what is applied, and since when");
  status->add_option("--netns", status_args.netns, "network namespace (default: the current one)");
  status->add_option("--state-dir", status_args.state_dir, "where the applied state is recorded")
      ->capture_default_str();
  status->callback([&app, &exit_code] {
    init_logging(app);
    auto run = [&]() -> Status {
      auto applier = MOAT_TRY(firewall::Applier::open(
          {.netns = status_args.netns, .state_dir = status_args.state_dir}));
      auto state = MOAT_TRY(applier.state());
      if (!state) {
        std::printf("no firewall applied by moat here (%s)\n", applier.state_file().c_str());
        return {};
      }
      std::time_t t = state->applied_at;
      char when[64];
      std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
      std::printf("applied at %s, strategy %s\n", when, state->strategy.c_str());
      for (const auto& [key, table] : state->ruleset.tables) {
        size_t rules = 0, elements = 0;
        for (const auto& [_, c] : table.chains) rules += c.rules.size();
        for (const auto& [_, s] : table.sets) elements += s.elements.size();
        std::printf("  table %s: %zu chains, %zu rules, %zu sets, %zu elements\n", key.c_str(),
                    table.chains.size(), rules, table.sets.size(), elements);
      }
      bool current = MOAT_TRY(applier.kernel_generation()) == state->generation;
      std::printf("%s\n",
                  current ? "in sync: nftables has not changed since"
                          : "nftables changed since (by moat or anyone): the next apply resyncs");
      return {};
    };
    if (auto s = run(); !s) exit_code = report_error(s.error());
  });
  register_fw_simulate(fw, app, exit_code);
}

}  // namespace moat::cli
