// B4: packet rate between two guest namespaces on one bridge, with the compiled rules of N
// guests loaded, against the same path with an empty ruleset (br_netfilter on in both),
// measured in the same run with our own sendmmsg UDP blaster. Two flows: "established" (the
// receiver answered once, as in real traffic, so conntrack short-cuts the guest rules) and
// "new" (never answered: every packet walks both guests' chains, the worst case).
// Method (the machine is shared, and its speed drifts between runs by up to 20%):
//  - each ruleset has its own node namespace, loaded once: measured windows never follow a
//    ruleset change (the kernel frees a replaced ruleset in the background);
//  - the sender is pinned to CPU 0, where the bridge path runs (veth hands each packet to
//    the same CPU's backlog), and the receiver busy-polls on CPU 1: a receiver that sleeps
//    makes every packet pay a cross-CPU wakeup (on this VM a third of the sender's CPU),
//    more often the slower the path, which blurs the ratio;
//  - loaded and empty runs alternate `--repeat` times; each ratio is a run against the mean
//    of the empty runs around it, and the median of those is reported.
// A third namespace holds conntrack alone (one inet chain: ct state established accept): the
// kernel's own share of stateful filtering, the ceiling any stateful ruleset stays under.
// With --firewall-bridges 1 the two guests are plugged as Proxmox's iptables firewall does it
// (each port on its own fwbr<vmid>i0, joined to vmbr0 by a veth pair: three bridge passes) in
// every namespace, and a fourth namespace with the direct plugging and no ruleset tells what
// that plumbing costs by itself.
// Usage: bench_fw_pps [--guests 100,1000,10000] [--shards 8] [--layout bridge|netdev]
//                     [--seconds 1] [--repeat 7] [--firewall-bridges 0|1] [--dump FILE]
//                     [--nft-file FILE]...
// --dump writes the ruleset of the first size as nft text (and stops), to edit into variants
// that --nft-file then measures against the same empty path (exploration).
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <tuple>
#include <vector>

#include "bench_netns.h"
#include "bench_stats.h"
#include "fw_synthetic.h"
#include "moat/base/file.h"
#include "moat/base/netns.h"
#include "moat/base/strings.h"
#include "moat/base/subprocess.h"
#include "moat/firewall/applier.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/names.h"
#include "moat/firewall/nft_driver.h"
#include "moat/firewall/nft_text.h"
#include "moat/firewall/nic_bridges.h"
#include "moat/firewall/reject_ports.h"

using namespace moat;
using bench::median;

namespace {

void sh(std::vector<std::string> argv) {
  auto r = run({.argv = argv});
  if (!r || r->exit_code != 0) {
    std::fprintf(stderr, "failed: %s: %s\n", join(argv, " ").c_str(), r ? r->err.c_str() : "");
    std::exit(1);
  }
}

// The measured guests' ports (VMs 1000 and 1001).
const char* const kPorts[] = {"tap1000i0", "tap1001i0"};
// --firewall-bridges: the ports are on Proxmox's fwbr<vmid>i0 bridges in front of vmbr0.
bool firewall_bridges = false;

// A node namespace with a bridge and two guest namespaces on it, 1000 -> 1001; with `fwbr`,
// each guest's port on its firewall bridge, joined to vmbr0 by a veth pair.
struct Node {
  std::string node, a, b;

  Node(const std::string& tag, bool fwbr) : node(tag + "n"), a(tag + "a"), b(tag + "b") {
    for (const auto& ns : {node, a, b}) bench::make_namespace(ns);
    sh({"ip", "-n", node, "link", "add", "vmbr0", "type", "bridge"});
    sh({"ip", "-n", node, "addr", "add", "198.51.100.1/24", "dev", "vmbr0"});
    sh({"ip", "-n", node, "link", "set", "vmbr0", "up"});
    for (auto [ns, vmid, ip, mac] : {std::tuple{a, 1000u, "198.51.100.10", "bc:24:11:00:03:e8"},
                                     {b, 1001u, "198.51.100.11", "bc:24:11:00:03:e9"}}) {
      std::string dev = kPorts[vmid - 1000], bridge = "vmbr0";
      if (fwbr) {
        bridge = firewall::names::firewall_bridge(vmid, 0);
        std::string fwln = firewall::names::firewall_link_port(vmid, 0);
        std::string fwpr = firewall::names::firewall_uplink_port(vmid, 0);
        sh({"ip", "-n", node, "link", "add", bridge, "type", "bridge"});
        sh({"ip", "-n", node, "link", "set", bridge, "up"});
        sh({"ip", "-n", node, "link", "add", fwln, "type", "veth", "peer", "name", fwpr});
        sh({"ip", "-n", node, "link", "set", fwln, "master", bridge, "up"});
        sh({"ip", "-n", node, "link", "set", fwpr, "master", "vmbr0", "up"});
      }
      sh({"ip", "-n", node, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns",
          ns});
      sh({"ip", "-n", ns, "link", "set", "eth0", "address", mac});
      sh({"ip", "-n", ns, "addr", "add", std::string(ip) + "/24", "dev", "eth0"});
      sh({"ip", "-n", ns, "link", "set", "eth0", "up"});
      sh({"ip", "-n", ns, "link", "set", "lo", "up"});
      sh({"ip", "-n", node, "link", "set", dev, "master", bridge, "up"});
    }
    // Static neighbours: no ARP during the blast.
    sh({"ip", "-n", a, "neigh", "add", "198.51.100.11", "lladdr", "bc:24:11:00:03:e9", "dev",
        "eth0"});
    sh({"ip", "-n", b, "neigh", "add", "198.51.100.10", "lladdr", "bc:24:11:00:03:e8", "dev",
        "eth0"});
    auto applier = firewall::Applier::open({.netns = node, .state_dir = "/tmp/" + node});
    if (!applier || !applier->enable_bridge_netfilter()) std::exit(1);
  }

  void flush() const { sh({"ip", "netns", "exec", node, "nft", "flush", "ruleset"}); }
  void load_text(const std::string& file) const {
    flush();
    sh({"ip", "netns", "exec", node, "nft", "-f", file});
  }
};

void pin(int cpu) {
  if (std::thread::hardware_concurrency() < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

// Forks a child that enters `ns`, pins itself to `cpu` and runs `fn`; returns its pid.
pid_t in_child(const std::string& ns, int cpu, const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) {
    auto scope = NetnsScope::enter(ns);
    if (!scope) _exit(2);
    pin(cpu);
    _exit(fn());
  }
  return pid;
}

// Received packets per second from a to b through `n` for `seconds`. With `established`, b
// answers the first packet so the flow is established in conntrack before the measured window.
double blast(const Node& n, double seconds, bool established = true) {
  using clock = std::chrono::steady_clock;
  int pipefd[2];
  if (pipe(pipefd) != 0) std::exit(1);
  pid_t rx = in_child(n.b, 1, [&] {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(9000);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    std::vector<mmsghdr> msgs(64);
    std::vector<std::array<char, 128>> bufs(64);
    std::vector<iovec> iovs(64);
    for (int i = 0; i < 64; ++i) {
      iovs[i] = {bufs[i].data(), bufs[i].size()};
      msgs[i].msg_hdr = {};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // Count only packets of the measured window (after a warm-up of 0.3 s).
    uint64_t count = 0;
    auto start = clock::now();
    auto count_from = start + std::chrono::milliseconds(300);
    auto end = count_from + std::chrono::duration<double>(seconds);
    bool answered = !established;
    for (auto now = start; now < end; now = clock::now()) {
      sockaddr_in peer{};
      msgs[0].msg_hdr.msg_name = &peer;
      msgs[0].msg_hdr.msg_namelen = sizeof(peer);
      int got = recvmmsg(fd, msgs.data(), 64, MSG_DONTWAIT, nullptr);
      if (got <= 0) continue;
      if (!answered) {
        sendto(fd, "ok", 2, 0, reinterpret_cast<sockaddr*>(&peer), sizeof(peer));
        answered = true;
      }
      if (now >= count_from) count += static_cast<uint64_t>(got);
    }
    (void)!write(pipefd[1], &count, sizeof(count));
    return 0;
  });
  usleep(100000);
  pid_t tx = in_child(n.a, 0, [&] {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9000);
    inet_pton(AF_INET, "198.51.100.11", &to.sin_addr);
    connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    char payload[64] = {};
    std::vector<mmsghdr> msgs(64);
    iovec iov{payload, sizeof(payload)};
    for (auto& m : msgs) {
      m.msg_hdr = {};
      m.msg_hdr.msg_iov = &iov;
      m.msg_hdr.msg_iovlen = 1;
    }
    auto end = clock::now() + std::chrono::duration<double>(seconds + 0.4);
    while (clock::now() < end) sendmmsg(fd, msgs.data(), 64, 0);
    return 0;
  });
  uint64_t count = 0;
  (void)!read(pipefd[0], &count, sizeof(count));
  waitpid(rx, nullptr, 0);
  waitpid(tx, nullptr, 0);
  close(pipefd[0]);
  close(pipefd[1]);
  return static_cast<double>(count) / seconds;
}

// Each loaded run against the mean of the empty runs before and after it (one more empty run
// than loaded ones): the median ratio.
double median_ratio(const std::vector<double>& loaded, const std::vector<double>& empty) {
  std::vector<double> ratios;
  for (size_t i = 0; i < loaded.size(); ++i)
    ratios.push_back(2 * loaded[i] / (empty[i] + empty[i + 1]));
  return median(ratios);
}

// The compiled rules of `guests` guests (compiled once per size).
const firewall::CompileResult& compiled_for(int guests, const firewall::CompileOptions& options) {
  static std::map<int, firewall::CompileResult> cache;
  auto& compiled = cache[guests];
  auto& ruleset = compiled.ruleset;
  if (ruleset.tables.empty()) {
    auto config = bench::synthetic_config(guests);
    if (firewall_bridges)
      firewall::plug_nics(config, {.firewall_bridged = {std::begin(kPorts), std::end(kPorts)}});
    // The measured pair: 1001 accepts the blast.
    auto fw = firewall::parse_guest_fw(
        bench::guest_fw_text(1001, 0) + "IN ACCEPT -p udp -dport 9000\n", "firewall/1001.fw");
    config.guests[1001].fw = *fw;
    auto result = firewall::compile(config, options);
    if (!result) std::exit(1);
    compiled = std::move(*result);
  }
  return compiled;
}

// Applies the compiled rules of `guests` guests in `n`, replacing whatever is loaded there.
void load(const Node& n, int guests, const firewall::CompileOptions& options) {
  const auto& compiled = compiled_for(guests, options);
  // The netdev layout's reject ports must exist before rules that `fwd to` them.
  if (!firewall::sync_reject_ports(n.node, compiled.reject_port_bridges)) std::exit(1);
  auto driver = firewall::nft::NftDriver::open(n.node);
  if (!driver) std::exit(1);
  n.flush();
  auto sent = driver->apply(firewall::nft::creation(compiled.ruleset));
  if (!sent) {
    std::fprintf(stderr, "apply: %s\n", sent.error().to_string().c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes = {100, 1000, 10000};
  firewall::CompileOptions options;  // shards 0: automatic, as the CLI
  double seconds = 1;
  int repeat = 7;
  std::vector<std::string> nft_files;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--guests") {
      sizes.clear();
      for (auto p : split(v, ',')) sizes.push_back(static_cast<int>(*parse_uint(p)));
    } else if (k == "--shards") {
      options.shards = static_cast<int>(*parse_uint(v));
    } else if (k == "--layout" && firewall::parse_guest_layout(v)) {
      options.layout = *firewall::parse_guest_layout(v);
    } else if (k == "--seconds") {
      seconds = std::stod(v);
    } else if (k == "--repeat") {
      repeat = static_cast<int>(*parse_uint(v));
    } else if (k == "--firewall-bridges") {
      firewall_bridges = v == "1";
    } else if (k == "--nft-file") {
      nft_files.push_back(v);
    } else if (k == "--dump") {
      auto text = firewall::nft::to_nft_text(compiled_for(sizes.front(), options).ruleset);
      return write_file_atomic(v, text) ? 0 : 1;
    }
  }
  // Namespaces are removed at exit.
  std::string tag = "mtp" + std::to_string(getpid());
  Node empty(tag + "e", firewall_bridges), loaded(tag + "l", firewall_bridges),
      conntrack(tag + "c", firewall_bridges);
  std::optional<Node> direct;  // the plumbing's own cost
  if (firewall_bridges) direct.emplace(tag + "d", false);
  std::string ct_file = "/tmp/" + tag + "-ct.nft";
  if (!write_file_atomic(ct_file,
                         "table inet t {\n\tchain p {\n\t\ttype filter hook prerouting priority "
                         "-150; policy accept;\n\t\tct state established,related accept\n\t}\n}\n"))
    std::exit(1);
  conntrack.load_text(ct_file);
  std::remove(ct_file.c_str());
  auto settle = [] { usleep(500000); };  // the kernel frees what a load replaced

  // Exploration: hand-written rulesets (nft syntax files) against the same empty path.
  if (!nft_files.empty()) {
    // Hand-written variants of the netdev layout `fwd to` the bridge's reject port.
    if (!firewall::sync_reject_ports(loaded.node, {"vmbr0"})) std::exit(1);
    for (const auto& file : nft_files) {
      loaded.load_text(file);
      settle();
      std::vector<double> l, e{blast(empty, seconds)};
      for (int r = 0; r < repeat; ++r) {
        l.push_back(blast(loaded, seconds));
        e.push_back(blast(empty, seconds));
      }
      std::printf("B4 %s: %.1f%% of empty\n", file.c_str(), 100.0 * median_ratio(l, e));
    }
    return 0;
  }
  for (int n : sizes) {
    load(loaded, n, options);
    settle();
    std::vector<double> est, est_empty{blast(empty, seconds)}, ct, fresh,
        fresh_empty{blast(empty, seconds, false)}, plain;
    for (int r = 0; r < repeat; ++r) {
      est.push_back(blast(loaded, seconds));
      ct.push_back(blast(conntrack, seconds));
      if (direct) plain.push_back(blast(*direct, seconds));
      est_empty.push_back(blast(empty, seconds));
      fresh.push_back(blast(loaded, seconds, false));
      fresh_empty.push_back(blast(empty, seconds, false));
    }
    // conntrack's runs sit between a loaded and an empty run: against the mean of the empty
    // runs around them, like the loaded ones.
    std::printf(
        "B4 %d guests (%s layout, %s tables), medians of %d: established flow %.0f pps vs empty "
        "%.0f: %.1f%% (conntrack alone %.1f%%); new flow %.0f vs %.0f: %.1f%%\n",
        n, firewall::to_string(options.layout),
        options.shards ? std::to_string(options.shards).c_str() : "auto", repeat, median(est),
        median(est_empty), 100.0 * median_ratio(est, est_empty),
        100.0 * median_ratio(ct, est_empty), median(fresh), median(fresh_empty),
        100.0 * median_ratio(fresh, fresh_empty));
    if (direct)
      std::printf(
          "   (guests on fwbr bridges: the empty path is %.1f%% of the direct plugging's %.0f "
          "pps)\n",
          100.0 / median_ratio(plain, est_empty), median(plain));
    std::fflush(stdout);
  }
  return 0;
}
