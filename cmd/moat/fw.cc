// `moat fw ...`: compile, check, plan, apply, status and simulate the firewall of one node.
#include <cstdio>

#include "commands.h"
#include "moat/base/log.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/ir_json.h"
#include "moat/firewall/nft_text.h"
#include "moat/firewall/parser.h"

namespace moat::cli {

namespace {

struct FwArgs {
  std::string config_root = "/etc/pve";
  std::string node;
  int shards = 8;
  std::string strategy = "auto";
};

void add_common(CLI::App* cmd, FwArgs& args) {
  cmd->add_option("--config-root", args.config_root, "configuration tree shaped like /etc/pve")
      ->capture_default_str();
  cmd->add_option("--node", args.node, "node name (nodes/<node>/...)")->required();
  cmd->add_option("--shards", args.shards, "bridge tables guests are spread over")->capture_default_str();
}

// Exit codes: 0 ok, 1 runtime failure (kernel, I/O), 2 invalid configuration or arguments.
int exit_code_for(const Error& e) {
  return e.code() == ErrorCode::InvalidConfig || e.code() == ErrorCode::InvalidArgument ? 2 : 1;
}

int report(const Error& e) {
  std::fprintf(stderr, "%s\n", e.to_string().c_str());
  return exit_code_for(e);
}

Result<firewall::CompileResult> load_and_compile(const FwArgs& args, firewall::GuestStrategy strategy) {
  auto loaded = MOAT_TRY(firewall::load_config(args.config_root, args.node));
  for (const auto& w : loaded.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  firewall::CompileOptions options{.strategy = strategy, .shards = args.shards, .now = std::time(nullptr)};
  auto result = MOAT_TRY(firewall::compile(loaded.config, options));
  for (const auto& w : result.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  return result;
}

}  // namespace

void register_fw(CLI::App& app, int& exit_code) {
  auto* fw = app.add_subcommand("fw", "firewall: compile Proxmox rule files to nftables and apply them");
  fw->require_subcommand(1);

  static FwArgs compile_args;
  static std::string format = "nft";
  static std::string compile_strategy = "br_netfilter";
  auto* compile = fw->add_subcommand("compile", "print the ruleset exactly as it would be applied");
  add_common(compile, compile_args);
  compile->add_option("--format", format, "nft|json")->check(CLI::IsMember({"nft", "json"}))->capture_default_str();
  compile->add_option("--strategy", compile_strategy, "br_netfilter|bridge-conntrack")
      ->check(CLI::IsMember({"br_netfilter", "bridge-conntrack"}))
      ->capture_default_str();
  compile->callback([&app, &exit_code] {
    init_logging(app);
    auto strategy = compile_strategy == "br_netfilter" ? firewall::GuestStrategy::BrNetfilter
                                                       : firewall::GuestStrategy::BridgeConntrack;
    auto result = load_and_compile(compile_args, strategy);
    if (!result) {
      exit_code = report(result.error());
      return;
    }
    std::string out = format == "json" ? firewall::nft::to_json(result->ruleset, true)
                                       : firewall::nft::to_nft_text(result->ruleset);
    std::fwrite(out.data(), 1, out.size(), stdout);
  });

  static FwArgs check_args;
  auto* check = fw->add_subcommand("check", "validate the configuration and warn about rules that cannot apply");
  add_common(check, check_args);
  check->callback([&app, &exit_code] {
    init_logging(app);
    auto result = load_and_compile(check_args, firewall::GuestStrategy::BrNetfilter);
    if (!result) {
      exit_code = report(result.error());
      return;
    }
    std::printf("configuration is valid (%zu warnings)\n", result->warnings.size());
  });
}

}  // namespace moat::cli
