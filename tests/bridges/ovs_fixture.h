// A private Open vSwitch for system tests: OvsDaemonTest starts ovsdb-server on a database
// created from Debian's vswitch.ovsschema in a fresh temporary directory, and on request
// ovs-vswitchd (userspace datapath) inside a network namespace. TearDown stops both by pid,
// removes the namespaces and the directory, also after a failed assertion, and prints the
// daemons' logs when the test failed. Missing OVS tools skip the test (fail under CI=true).
// One fixture per test; not thread-safe.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "harness/netns.h"
#include "moat/base/subprocess.h"

namespace moat::bridges::testing {

inline constexpr const char* kOvsSchema = "/usr/share/openvswitch/vswitch.ovsschema";

// True once `pid` has exited (a zombie nobody reaps counts as exited).
inline bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  std::size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] == 'Z';
}

// Polls `pred` every 10 ms until it holds (true) or `timeout` passes (false).
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

class OvsDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MOAT_REQUIRE_NETNS();
    for (const char* tool :
         {"/usr/sbin/ovsdb-server", "/usr/sbin/ovs-vswitchd", "/usr/bin/ovsdb-tool",
          "/usr/bin/ovs-vsctl", "/usr/bin/ovs-appctl", kOvsSchema}) {
      if (!std::filesystem::exists(tool)) {
        if (moat::testing::netns_required_by_ci()) GTEST_FAIL() << tool << " missing, CI=true";
        GTEST_SKIP() << tool << " missing (scripts/install-deps installs openvswitch-switch)";
      }
    }
    char tmpl[] = "/tmp/moat-ovsdb-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // The daemons and any ovs-* tool put their run files here, never in /run/openvswitch.
    ::setenv("OVS_RUNDIR", dir_.c_str(), 1);
    ::setenv("OVS_LOGDIR", dir_.c_str(), 1);
    ::setenv("OVS_DBDIR", dir_.c_str(), 1);
    must_run({"ovsdb-tool", "create", dir_ + "/conf.db", kOvsSchema});
    start_ovsdb_server();
  }

  void TearDown() override {
    if (dir_.empty()) return;
    stop(dir_ + "/ovs-vswitchd.pid");
    stop(dir_ + "/ovsdb-server.pid");
    if (!netns_.empty()) run({.argv = {"ip", "netns", "del", netns_}});
    if (topo_) topo_->cleanup();
    if (HasFailure()) {
      for (const char* log : {"ovsdb-server.log", "ovs-vswitchd.log"}) {
        std::ifstream in(dir_ + "/" + log);
        if (in)
          std::fprintf(stderr, "--- %s ---\n%s\n", log,
                       std::string(std::istreambuf_iterator<char>(in), {}).c_str());
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string db_target() const { return "unix:" + dir_ + "/db.sock"; }

  // Namespaces for guests and nodes, removed by TearDown after the daemons stopped.
  moat::testing::Topology& topo() {
    if (!topo_) topo_.emplace();
    return *topo_;
  }

  void must_run(std::vector<std::string> argv) {
    Result<RunResult> r = run({.argv = argv});
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    ASSERT_EQ(r->exit_code, 0) << argv[0] << ": " << r->err;
  }

  void start_ovsdb_server() {
    must_run({"ovsdb-server", dir_ + "/conf.db", "--remote=punix:" + dir_ + "/db.sock",
              "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
              "--pidfile=" + dir_ + "/ovsdb-server.pid", "--unixctl=" + dir_ + "/ovsdb-server.ctl",
              "--log-file=" + dir_ + "/ovsdb-server.log", "--detach", "--no-chdir"});
  }

  // Starts ovs-vswitchd inside namespace `ns`; with none given, in a private one it creates.
  void start_vswitchd(std::string ns = {}) {
    if (ns.empty()) {
      netns_ = "mto" + std::to_string(::getpid());
      must_run({"ip", "netns", "add", netns_});
      ns = netns_;
    }
    vswitchd_ns_ = ns;
    must_run({"ip", "netns", "exec", ns, "ovs-vswitchd", db_target(),
              "--pidfile=" + dir_ + "/ovs-vswitchd.pid", "--unixctl=" + dir_ + "/ovs-vswitchd.ctl",
              "--log-file=" + dir_ + "/ovs-vswitchd.log", "--detach", "--no-chdir"});
  }

  // SIGTERM, then SIGKILL after 5 s; waits until the process is gone.
  static void stop(const std::string& pidfile) {
    std::ifstream in(pidfile);
    pid_t pid = 0;
    if (!(in >> pid) || pid <= 1) return;
    if (::kill(pid, SIGTERM) != 0) return;
    if (!eventually([&] { return process_gone(pid); }, std::chrono::seconds(5))) {
      ::kill(pid, SIGKILL);
      eventually([&] { return process_gone(pid); }, std::chrono::seconds(5));
    }
    std::error_code ec;
    std::filesystem::remove(pidfile, ec);
  }

  // Runs argv in namespace `ns`; fails the test (non-fatally) unless it exits 0.
  void exec_ok(const std::string& ns, const std::vector<std::string>& argv) {
    auto r = topo().exec(ns, argv);
    EXPECT_TRUE(r && r->exit_code == 0) << argv[0] << " " << (argv.size() > 1 ? argv[1] : "")
                                        << ": " << (r ? r->err : r.error().to_string());
  }

  // A veth pair `a`/`b` inside namespace `ns`, both up (two OVS bridges' ports facing each
  // other).
  void veth(const std::string& ns, const std::string& a, const std::string& b) {
    exec_ok(ns, {"ip", "link", "add", a, "type", "veth", "peer", "name", b});
    exec_ok(ns, {"ip", "link", "set", a, "up"});
    exec_ok(ns, {"ip", "link", "set", b, "up"});
  }

  // A guest namespace `name` whose eth0 (address `cidr`) is the peer of link `port`, which is
  // made up in namespace `ns` for OVS to take as a system port. Returns the guest namespace.
  std::string guest(const std::string& ns, const std::string& name, const std::string& port,
                    const std::string& cidr) {
    auto g = topo().add_node(name);
    EXPECT_TRUE(g) << g.error().to_string();
    if (!g) return {};
    exec_ok(ns,
            {"ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", g->ns});
    exec_ok(ns, {"ip", "link", "set", port, "up"});
    exec_ok(g->ns, {"ip", "addr", "add", cidr, "dev", "eth0"});
    exec_ok(g->ns, {"ip", "link", "set", "eth0", "up"});
    return g->ns;
  }

  // A ping that may need a few tries while ARP and MAC learning settle.
  bool talks(const std::string& from, const std::string& ip) {
    for (int i = 0; i < 5; ++i) {
      if (topo().ping(from, ip, std::chrono::seconds(1))) return true;
    }
    return false;
  }
  // An unanswered ping within three tries (call after a `talks` in the same topology proved
  // the path works). ovs-vswitchd has applied a change when cur_cfg says so, but its datapath
  // may forward on a cached flow of the old configuration until the revalidator catches up
  // (well under a second), so a path that just closed may answer once more.
  bool silent(const std::string& from, const std::string& ip) {
    for (int i = 0; i < 3; ++i) {
      if (!topo().ping(from, ip, std::chrono::seconds(1))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return false;
  }

  // `ovs-vsctl --db=... ARGS` against this database (for hand drift and the peer benchmark).
  Result<RunResult> vsctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"ovs-vsctl", "--db=" + db_target(), "--timeout=30"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run({.argv = argv});
  }

  std::string dir_;
  std::string netns_;        // the private namespace start_vswitchd() made, if any
  std::string vswitchd_ns_;  // where ovs-vswitchd runs
  std::optional<moat::testing::Topology> topo_;
};

}  // namespace moat::bridges::testing
