// Network-namespace topologies for `netns` tests: "nodes" (a namespace holding Linux bridges,
// as a hypervisor host would) and "guests" (a namespace whose eth0 is a veth into a node's
// bridge), plus traffic probes (TCP connect, UDP, ping) run from inside a namespace.
// A Topology owns everything it creates and removes it by name on destruction, also when a test
// failed or an ASSERT returned early. Namespace names carry a per-Topology prefix
// (`mt<pid:4 hex><counter:2 hex>-`), so parallel tests never collide. Interfaces are only ever
// created inside those namespaces, never in the host's, so they keep the exact names a test
// asks for (`vmbr0`, `tap100i0`). Not thread-safe: one Topology per test thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "moat/base/result.h"
#include "moat/base/subprocess.h"

namespace moat::testing {

struct Node {
  std::string ns;  // real namespace name, e.g. "mt1a2b03-node1"
};

struct BridgeRequest {
  Node node;
  std::string name;  // exact interface name inside the node, <= 15 chars
  std::string ipv4;  // optional CIDR, e.g. "10.0.0.1/24"; guests route through it
  std::string ipv6;  // optional CIDR, e.g. "fd00::1/64"; added without DAD
};

struct Bridge {
  std::string ns;  // the node's namespace
  std::string name;
  std::string ipv4;  // address without prefix length, empty when none
  std::string ipv6;
};

struct GuestRequest {
  Bridge bridge;
  std::string name;           // guest name; its namespace is "<prefix>-<name>"
  std::string port;           // exact node-side veth name (`tap100i0`), <= 15 chars
  std::string ipv4;           // CIDR for the guest's eth0
  std::string ipv6;           // optional CIDR, added without DAD
  std::string mac;            // optional MAC of eth0
  bool default_route = true;  // default routes via the bridge's addresses, when it has them
};

struct Guest {
  std::string ns;
  std::string port;
  std::string ipv4;  // addresses without prefix length
  std::string ipv6;
};

enum class TcpOutcome { Connected, Refused, TimedOut };
enum class UdpOutcome { Delivered, Rejected, Lost };
const char* to_string(TcpOutcome outcome);
const char* to_string(UdpOutcome outcome);
void PrintTo(TcpOutcome outcome, std::ostream* os);
void PrintTo(UdpOutcome outcome, std::ostream* os);

// Empty when this process can create network namespaces (root with CAP_SYS_ADMIN and `ip`
// installed), else why not. Probed once per process.
std::optional<std::string> netns_unavailable_reason();
// True under CI=true, where a missing capability fails a netns test instead of skipping it.
bool netns_required_by_ci();

class Topology {
 public:
  // Picks a prefix no namespace in /run/netns uses yet. Creates nothing.
  Topology();
  // Same as cleanup().
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  // "mt<pid><counter>"; every namespace name of this topology starts with it plus '-'.
  const std::string& prefix() const { return prefix_; }

  // Creates namespace "<prefix>-<name>" with lo up, IPv4 (and IPv6) forwarding on, br_netfilter
  // (modprobe'd when absent) calling ip(6)tables, and ICMP rate limits off so that repeated
  // rejects stay observable.
  Result<Node> add_node(const std::string& name);

  // A Linux bridge (STP off, fixed MAC) inside the node, up, with the optional addresses.
  Result<Bridge> add_bridge(const BridgeRequest& request);

  // Creates the guest namespace and a veth pair whose guest end is eth0 (addresses set, up,
  // lo up) and whose node end is `request.port`, enslaved to the bridge and up. On error the
  // parts already made stay registered and are removed by cleanup().
  Result<Guest> add_guest(const GuestRequest& request);

  // Runs argv inside namespace `ns` (`ip netns exec`). Fails only when it cannot start.
  Result<RunResult> exec(const std::string& ns, const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  // Probes below never throw and never return errors: a problem of the harness itself (no such
  // namespace, bad address) is recorded as a GoogleTest failure, so it cannot pass as "blocked".
  //
  // TCP connect from `from_ns`. Refused: RST or an ICMP error from the network (or the sender's
  // kernel refusing at once, e.g. no route). TimedOut: nothing came back, including the
  // sender's own neighbour-resolution failure (which the kernel reports after ~3 s).
  TcpOutcome tcp_connect(const std::string& from_ns, const std::string& to_ip, uint16_t port,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));
  // Sends one datagram from `from_ns` to to_ip:port, received by a socket the probe binds in
  // `to_ns` for the duration of the call (or, when listen_udp() holds the port there, by that
  // echo server's reply). Rejected: an ICMP error from the network (or no route at the
  // sender). Lost: nothing arrived.
  UdpOutcome udp_probe(const std::string& from_ns, const std::string& to_ns,
                       const std::string& to_ip, uint16_t port,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));
  // One ICMP echo with iputils `ping`; true when answered within the timeout.
  bool ping(const std::string& from_ns, const std::string& to_ip,
            std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

  // Background servers on the wildcard address (IPv4 and IPv6) of `ns`, listening before the
  // call returns and killed by cleanup(). TCP accepts and closes; UDP echoes each datagram.
  Status listen_tcp(const std::string& ns, uint16_t port);
  Status listen_udp(const std::string& ns, uint16_t port);

  // Kills the servers, deletes the guest ports by name, then the namespaces (newest first).
  // Idempotent. Failures to remove are recorded as GoogleTest failures.
  void cleanup();

  // This topology's namespaces (by prefix) still listed by `ip netns list`.
  std::vector<std::string> leftovers() const;

 private:
  struct Port {
    std::string node_ns;
    std::string name;
  };
  Result<std::string> create_namespace(const std::string& name);
  Status start_server(const std::string& ns, uint16_t port, int type);

  std::string prefix_;
  uint32_t id_ = 0;  // pid and counter behind prefix_; seeds the bridges' MACs
  unsigned bridges_made_ = 0;
  std::vector<std::string> namespaces_;  // creation order
  std::vector<Port> ports_;
  std::vector<pid_t> servers_;
};

// Fixture: SetUp skips the test when namespaces cannot be made (fails instead under CI=true);
// TearDown destroys the topology.
class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  Topology& topo() { return *topo_; }

 private:
  std::optional<Topology> topo_;
};

}  // namespace moat::testing

// For tests that build a Topology without the fixture: skip (or fail under CI=true) and return
// when this process cannot create network namespaces.
#define MOAT_REQUIRE_NETNS()                                                           \
  do {                                                                                 \
    if (auto moat_reason_ = ::moat::testing::netns_unavailable_reason()) {             \
      if (::moat::testing::netns_required_by_ci())                                     \
        GTEST_FAIL() << "needs root (network namespaces), CI=true: " << *moat_reason_; \
      GTEST_SKIP() << "needs root (network namespaces): " << *moat_reason_;            \
    }                                                                                  \
  } while (0)
