// `moat fw apply` protecting a node, seen from clients on the node's bridge:
// - with no management ipset and no local_network alias, the detected local network may reach
//   SSH and the GUI through a DROP policy (no lockout), other ports stay dropped, and
//   --local-network overrides the detection;
// - protection_synflood limits new SYNs per source: a flooding client is dropped while another
//   client still connects;
// - nf_conntrack_helpers: ftp lets a passive-mode data connection in through a DROP policy as
//   RELATED, which it is not without the helper.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "harness/netns.h"
#include "moat/base/file.h"
#include "moat/base/subprocess.h"

namespace moat {
namespace {

namespace fs = std::filesystem;
using testing::TcpOutcome;
const std::string kMoat = std::string(MOAT_BUILD_DIR) + "/cmd/moat";

// A node with vmbr0 10.77.0.1/24, two clients on it, and a config root for node1.
class FwHostTest : public testing::NetnsTest {
 protected:
  void SetUp() override {
    testing::NetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto n = topo().add_node("node1");
    ASSERT_TRUE(n) << n.error().to_string();
    node_ = *n;
    auto br = topo().add_bridge({.node = node_, .name = "vmbr0", .ipv4 = "10.77.0.1/24"});
    ASSERT_TRUE(br) << br.error().to_string();
    for (auto [name, ip] : {std::pair{"a", "10.77.0.5/24"}, {"b", "10.77.0.6/24"}}) {
      auto g = topo().add_guest({.bridge = *br,
                                 .name = std::string("client-") + name,
                                 .port = std::string("cl-") + name,
                                 .ipv4 = ip});
      ASSERT_TRUE(g) << g.error().to_string();
      clients_.push_back(g->ns);
    }
    root_ = fs::temp_directory_path() / (topo().prefix() + "-root");
    fs::create_directories(root_ / "firewall");
    fs::create_directories(root_ / "nodes/node1");
  }
  void TearDown() override {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
    testing::NetnsTest::TearDown();
  }

  void write(const std::string& path, const std::string& text) {
    ASSERT_TRUE(write_file_atomic(root_ / path, text));
  }
  void apply(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {kMoat,
                                     "fw",
                                     "apply",
                                     "--config-root",
                                     root_.string(),
                                     "--node",
                                     "node1",
                                     "--netns",
                                     node_.ns,
                                     "--state-dir",
                                     (root_ / "state").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run({.argv = argv});
    ASSERT_TRUE(r);
    ASSERT_EQ(r->exit_code, 0) << r->err;
  }

  testing::Node node_;
  std::vector<std::string> clients_;
  fs::path root_;
};

// `moat fw compile --netns` plugs NICs as the node's namespace says: a tagged NIC on vmbr0
// (not VLAN-aware) is on vmbr0v10; a NIC whose tap is a port of fwbr100i0 (Proxmox's iptables
// firewall plumbing) is filtered there and on vmbr0; a tap on a bridge the configuration does
// not name gets a warning naming its line and both bridges.
TEST_F(FwHostTest, CompileFollowsTheNodesBridgesAndWarnsOfAPortElsewhere) {
  for (auto [bridge, zone, port] :
       {std::tuple{"fwbr100i0", "vm100", "tap100i0"}, {"vmbr9", "vm102", "tap102i0"}}) {
    auto br = topo().add_bridge({.node = node_, .name = bridge});
    ASSERT_TRUE(br) << br.error().to_string();
    auto g = topo().add_guest({.bridge = *br, .name = zone, .port = port});
    ASSERT_TRUE(g) << g.error().to_string();
  }
  write("firewall/cluster.fw", "[OPTIONS]\nenable: 1\n");
  write("nodes/node1/qemu-server/100.conf",
        "name: vm100\nnet0: virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1\n");
  write("nodes/node1/qemu-server/101.conf",
        "name: vm101\nnet0: virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1,tag=10\n");
  write("nodes/node1/qemu-server/102.conf",
        "name: vm102\nnet0: virtio=BC:24:11:00:01:02,bridge=vmbr0,firewall=1\n");
  write("firewall/100.fw", "[OPTIONS]\nenable: 1\n");
  auto r = run({.argv = {kMoat, "fw", "compile", "--config-root", root_.string(), "--node", "node1",
                         "--netns", node_.ns}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->exit_code, 0) << r->err;
  for (const char* pair : {"\"vmbr0v10\" . \"vmbr0v10\"", "\"vmbr0\" . \"vmbr0\""})
    EXPECT_NE(r->out.find(pair), std::string::npos) << pair << "\n" << r->out;
  EXPECT_NE(r->out.find("iifname \"fwbr*\" oifname \"fwbr*\" accept"), std::string::npos);
  // Its NIC is in vmbr0's reject set (answered where its firewall bridge joins).
  EXPECT_NE(r->out.find("\"tap100i0\" . bc:24:11:00:01:00"), std::string::npos) << r->out;
  EXPECT_EQ(r->out.find("chain answer-fwbr100i0"), std::string::npos) << r->out;
  EXPECT_NE(r->err.find("warning: nodes/node1/qemu-server/102.conf:2:"), std::string::npos)
      << r->err;
  EXPECT_NE(r->err.find("tap102i0 is a port of vmbr9, not of vmbr0"), std::string::npos);
  EXPECT_EQ(r->err.find("100.conf"), std::string::npos) << r->err;  // followed, no warning
  EXPECT_EQ(r->err.find("101.conf"), std::string::npos) << r->err;  // vm101 is not running

  // --firewall-bridged replaces what the namespace says.
  r = run({.argv = {kMoat, "fw", "compile", "--config-root", root_.string(), "--node", "node1",
                    "--netns", node_.ns, "--firewall-bridged", "tap102i0"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->exit_code, 0) << r->err;
  EXPECT_NE(r->err.find("tap100i0 is a port of fwbr100i0, not of vmbr0"), std::string::npos);
  EXPECT_NE(r->err.find("tap102i0 is a port of vmbr9, not of fwbr102i0"), std::string::npos);
}

TEST_F(FwHostTest, DetectedLocalNetworkReachesManagementPortsOnly) {
  write("firewall/cluster.fw", "[OPTIONS]\nenable: 1\n");
  write("nodes/node1/host.fw", "[OPTIONS]\nenable: 1\n");
  ASSERT_TRUE(topo().listen_tcp(node_.ns, 22));
  ASSERT_TRUE(topo().listen_tcp(node_.ns, 23));
  apply();
  EXPECT_EQ(topo().tcp_connect(clients_[0], "10.77.0.1", 22), TcpOutcome::Connected);
  EXPECT_EQ(topo().tcp_connect(clients_[0], "10.77.0.1", 23), TcpOutcome::TimedOut);

  // Another local network given explicitly: the clients' network no longer counts.
  apply({"--local-network", "192.0.2.0/24"});
  EXPECT_EQ(topo().tcp_connect(clients_[0], "10.77.0.1", 22), TcpOutcome::TimedOut);
}

TEST_F(FwHostTest, SynFloodFromOneSourceIsDroppedWhileOthersConnect) {
  write("firewall/cluster.fw", "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 80\n");
  write("nodes/node1/host.fw",
        "[OPTIONS]\nenable: 1\nprotection_synflood: 1\nprotection_synflood_rate: 1\n"
        "protection_synflood_burst: 3\n");
  ASSERT_TRUE(topo().listen_tcp(node_.ns, 80));
  apply();
  // Client a opens connections back to back: the burst passes, then its SYNs are dropped.
  int connected = 0, dropped = 0;
  for (int i = 0; i < 10; ++i) {
    auto outcome = topo().tcp_connect(clients_[0], "10.77.0.1", 80, std::chrono::milliseconds(300));
    (outcome == TcpOutcome::Connected ? connected : dropped) += 1;
    EXPECT_NE(outcome, TcpOutcome::Refused);
  }
  EXPECT_GE(connected, 3);
  EXPECT_GE(dropped, 4) << "a flood of 10 SYNs at rate 1/s, burst 3, must be limited";
  // Client b has its own budget.
  EXPECT_EQ(topo().tcp_connect(clients_[1], "10.77.0.1", 80), TcpOutcome::Connected);
  // The kernel keeps one entry per source in the dynamic set.
  auto listing = topo().exec(node_.ns, {"nft", "list", "set", "inet", "moat", "synflood-v4"});
  ASSERT_TRUE(listing);
  EXPECT_NE(listing->out.find("10.77.0.5"), std::string::npos) << listing->out;
  EXPECT_NE(listing->out.find("10.77.0.6"), std::string::npos) << listing->out;
}

TEST_F(FwHostTest, FtpHelperMakesThePassiveDataConnectionRelated) {
  write("firewall/cluster.fw", "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 21\n");
  write("nodes/node1/host.fw", "[OPTIONS]\nenable: 1\nnf_conntrack_helpers: ftp\n");
  apply({"--local-network", "192.0.2.0/24"});
  // The "FTP server" on the node greets, then announces a passive data port, 39 * 256 + 16 =
  // 10000, on which the node listens; no rule opens it. (The helper parses a direction's data
  // only after its first line, as in a real session.)
  ASSERT_TRUE(topo().listen_tcp(node_.ns, 10000));
  EXPECT_EQ(topo().tcp_connect(clients_[0], "10.77.0.1", 10000), TcpOutcome::TimedOut)
      << "the data port must be closed before the control connection announces it";
  // The lines must reach the client as two segments (started right before the client).
  auto server = topo().exec(
      node_.ns, {"bash", "-c",
                 "{ (printf '220 moat\\r\\n'; sleep 0.5; "
                 "printf '227 Entering Passive Mode (10,77,0,1,39,16).\\r\\n'; sleep 4) "
                 "| timeout 5 nc -l 21; } >/dev/null 2>&1 &"});
  ASSERT_TRUE(server);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // The client keeps its side open (nc shuts down its write side at stdin EOF, and the
  // server's nc then quits) until the announcement has arrived.
  auto control = topo().exec(clients_[0], {"bash", "-c", "sleep 1.5 | timeout 3 nc 10.77.0.1 21"});
  ASSERT_TRUE(control);
  EXPECT_NE(control->out.find("227 Entering Passive Mode"), std::string::npos) << control->out;
  EXPECT_EQ(topo().tcp_connect(clients_[0], "10.77.0.1", 10000), TcpOutcome::Connected)
      << "the ftp helper's expectation makes the data connection RELATED";
}

}  // namespace
}  // namespace moat
