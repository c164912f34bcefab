// `moat net plan|apply|show`: a node's networking from an /etc/network/interfaces file: Linux
// links (bridges, veth, VXLAN; VLANs and bonds where the kernel has them) reconciled over
// rtnetlink, and with --ovsdb the Open vSwitch rows (bridges, ports, bonds, internal ports)
// reconciled over one OVSDB session.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include "commands.h"
#include "fw_common.h"
#include "moat/base/file.h"
#include "moat/bridges/interfaces.h"
#include "moat/bridges/link_driver.h"
#include "moat/bridges/links.h"
#include "moat/bridges/ovs.h"
#include "moat/bridges/ovsdb.h"
#include "moat/bridges/validate.h"

namespace moat::cli {

namespace {

struct NetArgs {
  std::string interfaces = "/etc/network/interfaces";
  std::string netns;
  std::string ovsdb;  // "unix:PATH"; empty: leave Open vSwitch alone
};

// Reads and validates the interfaces file; validation findings are errors.
Result<bridges::InterfacesFile> read_interfaces(const NetArgs& args) {
  auto text = MOAT_TRY(read_file(args.interfaces));
  auto file = MOAT_TRY(bridges::parse_interfaces(text, args.interfaces));
  auto findings = bridges::validate(file);
  if (!findings.empty()) {
    for (size_t i = 1; i < findings.size(); ++i)
      std::fprintf(stderr, "%s\n", findings[i].to_string().c_str());
    return std::unexpected(findings.front());
  }
  return file;
}

// The OVS side: one session, one snapshot, the plan against the file.
struct OvsState {
  std::unique_ptr<bridges::OvsdbClient> client;
  bridges::OvsObserved observed;
  std::vector<bridges::OvsOp> plan;
};

Result<OvsState> open_ovs(const NetArgs& args, const bridges::InterfacesFile* file) {
  OvsState s{.client = std::make_unique<bridges::OvsdbClient>()};
  MOAT_RETURN_IF_ERROR(s.client->connect(args.ovsdb));
  s.observed = MOAT_TRY(bridges::observe_ovs(*s.client));
  if (!file) return s;
  auto datapath = bridges::ovs_kernel_datapath_available() ? bridges::OvsDatapath::System
                                                           : bridges::OvsDatapath::Netdev;
  auto desired = MOAT_TRY(bridges::compile_ovs({.file = file, .datapath = datapath}));
  s.plan = bridges::plan_ovs(s.observed, desired);
  return s;
}

// Internal interfaces the OVS plan creates, as the (down, address-less) links they will be, so
// that the link plan printed before an apply shows their addresses and up too. Their mtu is
// the one requested from OVS, else the 1500 OVS gives them.
void add_links_ovs_creates(const std::vector<bridges::OvsOp>& plan, bridges::Observed& links) {
  auto add = [&](const std::string& name, std::optional<uint32_t> mtu) {
    if (!links.find(name)) links.links.push_back({.name = name, .mtu = mtu.value_or(1500)});
  };
  for (const bridges::OvsOp& op : plan) {
    if (op.type == bridges::OvsOp::Type::CreateBridge) add(op.name, std::nullopt);
    if (op.type != bridges::OvsOp::Type::CreatePort) continue;
    for (const auto& i : op.port_spec.interfaces) {
      if (i.type == "internal") add(i.name, i.mtu_request);
    }
  }
  std::sort(links.links.begin(), links.links.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
}

void show_links(const bridges::Observed& observed) {
  for (const auto& l : observed.links) {
    std::printf("%-15s %-8s mtu %-5u %-4s%s%s", l.name.c_str(),
                l.kind.empty() ? "physical" : l.kind.c_str(), l.mtu, l.up ? "up" : "down",
                l.master.empty() ? "" : (" master " + l.master).c_str(),
                l.alias == bridges::kOwnedAlias ? " (moat)" : "");
    for (const auto& addr : l.addresses) std::printf(" %s", addr.to_string().c_str());
    std::printf("\n");
  }
}

void show_ovs(const bridges::OvsObserved& o) {
  for (const auto& b : o.bridges) {
    std::printf("ovs bridge %s datapath %s%s\n", b.name.c_str(),
                b.datapath_type.empty() ? "system" : b.datapath_type.c_str(),
                b.owned ? " (moat)" : "");
    for (const auto& p : o.ports) {
      if (p.bridge != b.name) continue;
      std::printf("  port %-15s", p.name.c_str());
      if (p.tag) std::printf(" tag %u", *p.tag);
      if (!p.trunks.empty()) {
        std::string t;
        for (uint32_t v : p.trunks) t += (t.empty() ? "" : ",") + std::to_string(v);
        std::printf(" trunks %s", t.c_str());
      }
      if (!p.vlan_mode.empty()) std::printf(" vlan_mode %s", p.vlan_mode.c_str());
      if (!p.bond_mode.empty()) std::printf(" bond_mode %s", p.bond_mode.c_str());
      std::string members;
      for (const std::string& uuid : p.interfaces) {
        const auto* i = o.interface_by_uuid(uuid);
        if (!i) continue;
        members += " " + i->name + (i->type.empty() ? "" : "(" + i->type + ")");
        if (!i->error.empty()) members += " [error: " + i->error + "]";
      }
      std::printf(" interfaces%s%s\n", members.c_str(), p.owned ? " (moat)" : "");
    }
  }
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

Status run_net(const std::string& verb, const NetArgs& a) {
  if (verb == "show") {
    show_links(MOAT_TRY(bridges::observe(a.netns)));
    if (!a.ovsdb.empty()) show_ovs(MOAT_TRY(open_ovs(a, nullptr)).observed);
    return {};
  }
  auto file = MOAT_TRY(read_interfaces(a));
  std::optional<OvsState> ovs;
  if (!a.ovsdb.empty()) ovs = MOAT_TRY(open_ovs(a, &file));
  auto observed = MOAT_TRY(bridges::observe(a.netns));
  // OVS bridges and internal ports are among them: OVS creates them, their addresses are Linux's.
  auto desired = MOAT_TRY(bridges::compile_links(file));

  if (verb == "plan") {
    if (ovs) add_links_ovs_creates(ovs->plan, observed);
    std::printf("%s", bridges::to_string(bridges::plan_links(observed, desired)).c_str());
    if (ovs) std::printf("ovsdb %s:\n%s", a.ovsdb.c_str(), bridges::to_string(ovs->plan).c_str());
    return {};
  }

  // Links first (a port OVS should attach may be one of them), then the OVS transaction, then
  // the links again for the internal interfaces OVS just made.
  auto start = std::chrono::steady_clock::now();
  auto link_plan = bridges::plan_links(observed, desired);
  size_t links =
      MOAT_TRY(bridges::apply_links({.netns = a.netns, .plan = link_plan, .file = a.interfaces}))
          .applied;
  size_t ovs_ops = 0;
  if (ovs && !ovs->plan.empty()) {
    auto report = MOAT_TRY(
        bridges::apply_ovs({.client = ovs->client.get(), .plan = ovs->plan, .file = a.interfaces}));
    ovs_ops = report.applied;
    std::printf("ovsdb: committed %zu operations in %.1f ms, realized by ovs-vswitchd in %.1f ms\n",
                report.applied, report.commit_ms, report.realized_ms);
    auto again = MOAT_TRY(bridges::observe(a.netns));
    links += MOAT_TRY(bridges::apply_links({.netns = a.netns,
                                            .plan = bridges::plan_links(again, desired),
                                            .file = a.interfaces}))
                 .applied;
  }
  if (links + ovs_ops == 0) {
    std::printf("nothing to do: the links%s match %s\n", ovs ? " and OVS rows" : "",
                a.interfaces.c_str());
  } else {
    std::printf("applied %zu operations (%zu link, %zu OVS) in %.1f ms\n", links + ovs_ops, links,
                ovs_ops, ms_since(start));
  }
  return {};
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
  for (auto c :
       {Command{"plan", "print the link (and OVS) operations apply would run, in order"},
        Command{"apply", "run them (deletes first, masters before ports)"},
        Command{"show", "list the links the kernel has (and the OVS bridges and ports)"}}) {
    NetArgs& a = args[index++];
    auto* cmd = net->add_subcommand(c.name, c.help);
    std::string name = c.name;
    if (name != "show")
      cmd->add_option("--interfaces", a.interfaces, "interfaces file")->capture_default_str();
    cmd->add_option("--netns", a.netns, "network namespace to act in (default: the current one)");
    cmd->add_option("--ovsdb", a.ovsdb,
                    "OVSDB server (unix:PATH) whose Open vSwitch rows to reconcile too; "
                    "ovs-vswitchd is expected in the --netns namespace");
    cmd->callback([&app, &exit_code, &a, name] {
      init_logging(app);
      if (auto s = run_net(name, a); !s) exit_code = report_error(s.error());
    });
  }
}

}  // namespace moat::cli
