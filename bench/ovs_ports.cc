// OVS ports: add N internal ports to a bridge through Moat's OVS reconciler (an interfaces file
// -> compile -> observe -> plan -> ONE OVSDB transaction over the persistent session, timed
// until ovs-vswitchd reports cur_cfg >= next_cfg) against one `ovs-vsctl add-port` call per
// port (each waits for ovs-vswitchd too, as ovs-vsctl does by default). Each side runs on its
// own fresh ovsdb-server + ovs-vswitchd (userspace datapath) in a fresh network namespace, so
// neither pays for the other's ports. Needs root and openvswitch-switch.
// Usage: bench_ovs_ports [--ports 1000] [--vsctl-ports 100] [--veth 1]
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_netns.h"
#include "moat/base/strings.h"
#include "moat/base/subprocess.h"
#include "moat/bridges/interfaces.h"
#include "moat/bridges/ovs.h"
#include "moat/bridges/ovsdb.h"

using namespace moat;
using Clock = std::chrono::steady_clock;

namespace {

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::exit(1);
}

void must(const std::vector<std::string>& argv) {
  auto r = run({.argv = argv, .timeout = std::chrono::minutes(5)});
  if (!r || r->exit_code != 0) die(argv[0] + ": " + (r ? r->err : r.error().to_string()));
}

// Stops the daemons whose pid files are in `dir` (SIGTERM, waiting up to 5 s each) and removes
// the directory.
void stop_daemons(const std::string& dir) {
  for (const char* d : {"ovs-vswitchd", "ovsdb-server"}) {
    std::ifstream in(dir + "/" + d + ".pid");
    pid_t pid = 0;
    if (!(in >> pid) || pid <= 1) continue;
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 500 && ::kill(pid, 0) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// Directories of running daemons; die() exits without unwinding, so exit stops them.
std::vector<std::string>& live_dirs() {
  static std::vector<std::string> dirs;
  return dirs;
}

// A private ovsdb-server and ovs-vswitchd (in namespace `ns`) under a temporary directory;
// stopped by pid and removed when it goes out of scope (or at exit).
struct Daemons {
  std::string dir;
  bench::ScopedNamespace ns;

  explicit Daemons(const std::string& netns) : ns(netns) {
    char tmpl[] = "/tmp/moat-bench-ovs-XXXXXX";
    if (!::mkdtemp(tmpl)) die("mkdtemp");
    dir = tmpl;
    if (live_dirs().empty())
      std::atexit([] {
        for (const auto& d : live_dirs()) stop_daemons(d);
      });
    live_dirs().push_back(dir);
    ::setenv("OVS_RUNDIR", dir.c_str(), 1);  // ovs-vsctl and the daemons keep out of /run
    must({"ovsdb-tool", "create", dir + "/conf.db", "/usr/share/openvswitch/vswitch.ovsschema"});
    must({"ovsdb-server", dir + "/conf.db", "--remote=punix:" + dir + "/db.sock",
          "--pidfile=" + dir + "/ovsdb-server.pid", "--log-file=" + dir + "/ovsdb-server.log",
          "--unixctl=" + dir + "/ovsdb-server.ctl", "--detach", "--no-chdir"});
    must({"ip", "netns", "exec", ns.name, "ovs-vswitchd", target(),
          "--pidfile=" + dir + "/ovs-vswitchd.pid", "--log-file=" + dir + "/ovs-vswitchd.log",
          "--unixctl=" + dir + "/ovs-vswitchd.ctl", "--detach", "--no-chdir"});
  }
  ~Daemons() {
    stop_daemons(dir);
    std::erase(live_dirs(), dir);
  }
  std::string target() const { return "unix:" + dir + "/db.sock"; }
};

// br0 with `ports` access ports: internal ones, or system ports on existing veth ends.
std::string bridge_file(int ports, bool veth) {
  std::string names, stanzas;
  for (int i = 0; i < ports; ++i) {
    std::string p = "mp" + std::to_string(i);
    names += " " + p;
    stanzas += "auto " + p + "\niface " + p + " inet manual\n\tovs_type " +
               (veth ? "OVSPort" : "OVSIntPort") + "\n\tovs_bridge br0\n\tovs_options tag=10\n\n";
  }
  return "auto br0\niface br0 inet manual\n\tovs_type OVSBridge\n" +
         (names.empty() ? "" : "\tovs_ports" + names + "\n") + "\n" + stanzas;
}

// `count` veth pairs PREFIX<i> / PREFIX<i>p in namespace `ns`, up (not timed).
void make_veths(const std::string& ns, const std::string& prefix, int count) {
  std::string batch;
  for (int i = 0; i < count; ++i) {
    std::string v = prefix + std::to_string(i);
    batch += "link add " + v + " up type veth peer name " + v + "p\nlink set " + v + "p up\n";
  }
  auto r = run({.argv = {"ip", "-n", ns, "-batch", "-"},
                .input = batch,
                .timeout = std::chrono::minutes(10)});
  if (!r || r->exit_code != 0) die("ip -batch: " + (r ? r->err.substr(0, 300) : ""));
}

struct MoatRun {
  size_t ops = 0;
  double total_ms = 0;    // compile + observe + plan + commit + realized
  double observe_ms = 0;  // the one select transaction
  double plan_ms = 0;     // compile + plan
  double commit_ms = 0;
  double realized_ms = 0;
};

MoatRun moat_apply(bridges::OvsdbClient& client, const std::string& text) {
  auto start = Clock::now();
  auto file = bridges::parse_interfaces(text, "bench.interfaces");
  if (!file) die(file.error().to_string());
  auto desired = bridges::compile_ovs({.file = &*file, .datapath = bridges::OvsDatapath::Netdev});
  if (!desired) die(desired.error().to_string());
  auto observe_start = Clock::now();
  auto observed = bridges::observe_ovs(client);
  if (!observed) die(observed.error().to_string());
  auto plan_start = Clock::now();
  auto plan = bridges::plan_ovs(*observed, *desired);
  auto planned = Clock::now();
  auto report = bridges::apply_ovs({.client = &client,
                                    .plan = plan,
                                    .file = "bench.interfaces",
                                    .wait = std::chrono::minutes(5)});
  if (!report) die(report.error().to_string());
  return {.ops = plan.size(),
          .total_ms = ms(Clock::now() - start),
          .observe_ms = ms(plan_start - observe_start),
          .plan_ms = ms(planned - plan_start) + ms(observe_start - start),
          .commit_ms = report->commit_ms,
          .realized_ms = report->realized_ms};
}

}  // namespace

int main(int argc, char** argv) {
  int ports = 1000, vsctl_ports = 100;
  bool veth = false;
  for (int i = 1; i + 1 < argc; i += 2) {  // --veth 1: veth-backed system ports
    std::string flag = argv[i];
    auto n = parse_uint(argv[i + 1]);
    if (!n) die("bad number " + std::string(argv[i + 1]));
    if (flag == "--ports") ports = static_cast<int>(*n);
    if (flag == "--vsctl-ports") vsctl_ports = static_cast<int>(*n);
    if (flag == "--veth") veth = *n != 0;
  }
  const std::string pid = std::to_string(getpid());

  MoatRun batch, noop;
  double monitored_ms = 0;
  size_t monitored_ops = 0;
  {
    Daemons d("mtov" + pid + "a");
    if (veth) make_veths(d.ns.name, "mp", ports);
    bridges::OvsdbClient client;
    if (auto c = client.connect(d.target()); !c) die(c.error().to_string());
    moat_apply(client, bridge_file(0, veth));
    batch = moat_apply(client, bridge_file(ports, veth));
    noop = moat_apply(client, bridge_file(ports, veth));
    // What a daemon does: plan against its monitor's copy instead of a select.
    auto monitor = bridges::OvsMonitor::start(client);
    if (!monitor) die(monitor.error().to_string());
    auto start = Clock::now();
    auto file = bridges::parse_interfaces(bridge_file(ports, veth), "bench.interfaces");
    auto desired = bridges::compile_ovs({.file = &*file, .datapath = bridges::OvsDatapath::Netdev});
    if (!desired) die(desired.error().to_string());
    monitored_ops = bridges::plan_ovs((*monitor)->snapshot(), *desired).size();
    monitored_ms = ms(Clock::now() - start);
  }

  double vsctl_ms = 0;
  {
    Daemons d("mtov" + pid + "b");
    if (veth) make_veths(d.ns.name, "vp", vsctl_ports);
    must({"ovs-vsctl", "--db=" + d.target(), "--", "add-br", "br0", "--", "set", "Bridge", "br0",
          "datapath_type=netdev"});
    auto start = Clock::now();
    for (int i = 0; i < vsctl_ports; ++i) {
      std::string p = "vp" + std::to_string(i);
      std::vector<std::string> argv = {
          "ovs-vsctl", "--db=" + d.target(), "--", "add-port", "br0", p, "tag=10"};
      if (!veth) argv.insert(argv.end(), {"--", "set", "Interface", p, "type=internal"});
      must(argv);
    }
    vsctl_ms = ms(Clock::now() - start);
  }

  double ours_per_port = batch.total_ms / ports;
  double vsctl_per_port = vsctl_ms / vsctl_ports;
  std::printf(
      "OVS ports: %d %s ports in one transaction: %.0f ms total (%zu plan ops; commit %.0f "
      "ms, then ovs-vswitchd realized it in %.0f ms) = %.3f ms/port; no-op re-apply %.1f ms (%zu "
      "ops; observe %.1f ms, parse+compile+plan %.1f ms)\n",
      ports, veth ? "veth-backed" : "internal", batch.total_ms, batch.ops, batch.commit_ms,
      batch.realized_ms, ours_per_port, noop.total_ms, noop.ops, noop.observe_ms, noop.plan_ms);
  std::printf("no-op re-plan against an OvsMonitor snapshot (no round trip): %.1f ms (%zu ops)\n",
              monitored_ms, monitored_ops);
  std::printf(
      "ovs-vsctl add-port, one call per port: %d ports in %.0f ms = %.2f ms/port "
      "(extrapolated to %d ports: %.0f ms); ratio %.1fx per port in Moat's favour\n",
      vsctl_ports, vsctl_ms, vsctl_per_port, ports, vsctl_per_port * ports,
      vsctl_per_port / ours_per_port);
  std::printf("targets: <= 1 ms/port %s, %d-port batch <= 400 ms %s\n",
              ours_per_port <= 1.0 ? "met" : "MISSED", ports,
              batch.total_ms <= 400 ? "met" : "MISSED");
  return 0;
}
