// `moat net plan|apply|show`: a node's Linux networking from an /etc/network/interfaces file
// (bridges, veth, VXLAN; VLANs and bonds where the kernel has them), reconciled over rtnetlink.
#include <chrono>
#include <cstdio>

#include "commands.h"
#include "fw_common.h"
#include "moat/base/file.h"
#include "moat/bridges/interfaces.h"
#include "moat/bridges/link_driver.h"
#include "moat/bridges/links.h"
#include "moat/bridges/validate.h"

namespace moat::cli {

namespace {

struct NetArgs {
  std::string interfaces = "/etc/network/interfaces";
  std::string netns;
};

// Reads, validates and compiles the interfaces file; validation findings are errors.
Result<std::vector<bridges::LinkSpec>> desired_links(const NetArgs& args) {
  auto text = MOAT_TRY(read_file(args.interfaces));
  auto file = MOAT_TRY(bridges::parse_interfaces(text, args.interfaces));
  auto findings = bridges::validate(file);
  if (!findings.empty()) {
    for (size_t i = 1; i < findings.size(); ++i)
      std::fprintf(stderr, "%s\n", findings[i].to_string().c_str());
    return std::unexpected(findings.front());
  }
  return bridges::compile_links(file);
}

}  // namespace

void register_net(CLI::App& app, int& exit_code) {
  auto* net = app.add_subcommand("net", "node networking: reconcile links with an interfaces file");
  net->require_subcommand(1);
  static NetArgs args[3];
  struct Command {
    const char* name;
    const char* help;
  };
  int index = 0;
  for (auto c : {Command{"plan", "print the link operations apply would run, in order"},
                 Command{"apply", "run them (deletes first, masters before ports)"},
                 Command{"show", "list the links the kernel has"}}) {
    NetArgs& a = args[index++];
    auto* cmd = net->add_subcommand(c.name, c.help);
    std::string name = c.name;
    if (name != "show")
      cmd->add_option("--interfaces", a.interfaces, "interfaces file")->capture_default_str();
    cmd->add_option("--netns", a.netns, "network namespace to act in (default: the current one)");
    cmd->callback([&app, &exit_code, &a, name] {
      init_logging(app);
      auto run = [&]() -> Status {
        auto observed = MOAT_TRY(bridges::observe(a.netns));
        if (name == "show") {
          for (const auto& l : observed.links) {
            std::printf("%-15s %-8s mtu %-5u %-4s%s%s", l.name.c_str(),
                        l.kind.empty() ? "physical" : l.kind.c_str(), l.mtu, l.up ? "up" : "down",
                        l.master.empty() ? "" : (" master " + l.master).c_str(),
                        l.alias == bridges::kOwnedAlias ? " (moat)" : "");
            for (const auto& addr : l.addresses) std::printf(" %s", addr.to_string().c_str());
            std::printf("\n");
          }
          return {};
        }
        auto desired = MOAT_TRY(desired_links(a));
        auto plan = bridges::plan_links(observed, desired);
        if (name == "plan") {
          std::printf("%s", bridges::to_string(plan).c_str());
          return {};
        }
        auto start = std::chrono::steady_clock::now();
        auto report =
            MOAT_TRY(bridges::apply_links({.netns = a.netns, .plan = plan, .file = a.interfaces}));
        double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count();
        if (report.applied == 0)
          std::printf("nothing to do: the links match %s\n", a.interfaces.c_str());
        else
          std::printf("applied %zu operations in %.1f ms\n", report.applied, ms);
        return {};
      };
      if (auto s = run(); !s) exit_code = report_error(s.error());
    });
  }
}

}  // namespace moat::cli
