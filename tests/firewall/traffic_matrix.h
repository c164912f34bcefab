// The probe matrix of the traffic tests: between every pair of endpoints, real TCP, UDP and
// ICMP probes must end as `moat fw simulate` predicts for the same ruleset and configuration
// (connected = ACCEPT, refused = REJECT, timed out = DROP). Listeners on every probed port of
// every endpoint are started first. Not thread-safe (one topology).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "harness/netns.h"
#include "moat/firewall/simulator.h"

namespace moat::testing {

struct ProbeEndpoint {
  std::string zone;  // simulator zone
  std::string ns;
  std::string ip;
};

struct MatrixResult {
  int probes = 0;
  std::map<std::string, int> seen;  // kernel verdicts: "ACCEPT" -> count
  std::string mismatches;           // one line per probe the kernel and simulator disagree on
};

inline MatrixResult run_probe_matrix(Topology& topo, const firewall::nft::Ruleset& ruleset,
                                     const firewall::FirewallConfig& config,
                                     const std::vector<ProbeEndpoint>& endpoints) {
  using Verdict = firewall::sim::Outcome::Verdict;
  namespace sim = firewall::sim;
  const std::vector<uint16_t> tcp_ports = {22,   25,   53,   80,   443,  3128,
                                           3306, 5432, 8006, 8080, 8443, 9100};
  const std::vector<uint16_t> udp_ports = {53, 123, 161, 500, 5000};
  MatrixResult result;
  for (const auto& e : endpoints) {
    for (auto p : tcp_ports) EXPECT_TRUE(topo.listen_tcp(e.ns, p));
    for (auto p : udp_ports) EXPECT_TRUE(topo.listen_udp(e.ns, p));
  }
  auto expect = [&](const ProbeEndpoint& from, const ProbeEndpoint& to, const std::string& proto,
                    std::optional<uint16_t> port) {
    sim::Packet packet{.from = from.zone,
                       .to = to.zone,
                       .protocol = proto,
                       .source = parse_ip(from.ip),
                       .dest = parse_ip(to.ip),
                       .dport = port};
    auto outcome = sim::simulate(ruleset, config, packet);
    EXPECT_TRUE(outcome) << outcome.error().to_string();
    return outcome ? *outcome : sim::Outcome{};
  };
  // Generous for a loaded CI machine: an accepted probe must never look dropped.
  const auto timeout = std::chrono::milliseconds(500);
  for (const auto& from : endpoints) {
    for (const auto& to : endpoints) {
      if (from.zone == to.zone) continue;
      auto check = [&](const std::string& what, Verdict want, Verdict got, const sim::Outcome& o) {
        ++result.probes;
        ++result.seen[sim::to_string(got)];
        if (want != got)
          result.mismatches += from.zone + " -> " + to.zone + " " + what + ": kernel " +
                               sim::to_string(got) + ", simulator " + sim::to_string(want) + " (" +
                               o.decided_by + ")\n";
      };
      for (auto port : tcp_ports) {
        auto o = expect(from, to, "tcp", port);
        auto r = topo.tcp_connect(from.ns, to.ip, port, timeout);
        Verdict got = r == TcpOutcome::Connected ? Verdict::Accept
                      : r == TcpOutcome::Refused ? Verdict::Reject
                                                 : Verdict::Drop;
        check("tcp/" + std::to_string(port), o.verdict, got, o);
      }
      for (auto port : udp_ports) {
        auto o = expect(from, to, "udp", port);
        auto r = topo.udp_probe(from.ns, to.ns, to.ip, port, timeout);
        Verdict got = r == UdpOutcome::Delivered  ? Verdict::Accept
                      : r == UdpOutcome::Rejected ? Verdict::Reject
                                                  : Verdict::Drop;
        check("udp/" + std::to_string(port), o.verdict, got, o);
      }
      // A rejected echo request and a dropped one both go unanswered: compare answered or not.
      bool v6 = to.ip.find(':') != std::string::npos;
      auto o = expect(from, to, v6 ? "icmpv6" : "icmp", std::nullopt);
      bool answered = topo.ping(from.ns, to.ip, timeout);
      Verdict want = o.verdict == Verdict::Accept ? Verdict::Accept : Verdict::Drop;
      check("icmp", want, answered ? Verdict::Accept : Verdict::Drop, o);
    }
  }
  return result;
}

// The assertions every matrix run makes: enough probes, no disagreement, and every verdict
// exercised for real.
inline void expect_matrix_agrees(const MatrixResult& r) {
  EXPECT_GE(r.probes, 200);
  EXPECT_EQ(r.mismatches, "") << "kernel and simulator disagree";
  EXPECT_GT(r.seen.count("ACCEPT") ? r.seen.at("ACCEPT") : 0, 20);
  EXPECT_GT(r.seen.count("DROP") ? r.seen.at("DROP") : 0, 20);
  EXPECT_GT(r.seen.count("REJECT") ? r.seen.at("REJECT") : 0, 10);
}

}  // namespace moat::testing
