// B4: packet rate between two guest namespaces on one bridge, with the compiled rules of N
// guests loaded, against the same path with an empty ruleset (br_netfilter on in both runs),
// measured in the same run with our own sendmmsg UDP blaster. Two flows: "established" (the
// receiver answered once, as in real traffic, so conntrack short-cuts the guest rules) and
// "new" (never answered: every packet walks both guests' chains, the worst case).
// The machine is shared and noisy: loaded and empty runs alternate `--repeat` times and the
// medians are compared.
// Usage: bench_fw_pps [--guests 100,1000,10000] [--shards 8] [--layout bridge|netdev]
//                     [--seconds 1] [--repeat 5] [--dump FILE] [--nft-file FILE]...
// --dump writes the ruleset of the first size as nft text (and stops), to edit into variants
// that --nft-file then measures against the same empty path (exploration).
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
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
#include "moat/firewall/nft_driver.h"
#include "moat/firewall/nft_text.h"
#include "moat/firewall/reject_ports.h"

using namespace moat;
using bench::median;

namespace {

std::string tag = "mtp" + std::to_string(getpid());
std::string node = tag + "n", ga = tag + "a", gb = tag + "b";

void sh(std::vector<std::string> argv) {
  auto r = run({.argv = argv});
  if (!r || r->exit_code != 0) {
    std::fprintf(stderr, "failed: %s: %s\n", join(argv, " ").c_str(), r ? r->err.c_str() : "");
    std::exit(1);
  }
}

void setup() {
  for (const auto& ns : {node, ga, gb}) bench::make_namespace(ns);
  sh({"ip", "-n", node, "link", "add", "vmbr0", "type", "bridge"});
  sh({"ip", "-n", node, "addr", "add", "198.51.100.1/24", "dev", "vmbr0"});
  sh({"ip", "-n", node, "link", "set", "vmbr0", "up"});
  int i = 0;
  for (auto [ns, dev, ip, mac] : {std::tuple{ga, "tap1000i0", "198.51.100.10", "bc:24:11:00:03:e8"},
                                  {gb, "tap1001i0", "198.51.100.11", "bc:24:11:00:03:e9"}}) {
    sh({"ip", "-n", node, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns});
    sh({"ip", "-n", ns, "link", "set", "eth0", "address", mac});
    sh({"ip", "-n", ns, "addr", "add", std::string(ip) + "/24", "dev", "eth0"});
    sh({"ip", "-n", ns, "link", "set", "eth0", "up"});
    sh({"ip", "-n", ns, "link", "set", "lo", "up"});
    sh({"ip", "-n", node, "link", "set", dev, "master", "vmbr0", "up"});
    ++i;
  }
  // Static neighbours: no ARP during the blast.
  sh({"ip", "-n", ga, "neigh", "add", "198.51.100.11", "lladdr", "bc:24:11:00:03:e9", "dev",
      "eth0"});
  sh({"ip", "-n", gb, "neigh", "add", "198.51.100.10", "lladdr", "bc:24:11:00:03:e8", "dev",
      "eth0"});
}

// Forks a child that enters `ns` and runs `fn`; returns its pid.
template <class Fn>
pid_t in_child(const std::string& ns, Fn fn) {
  pid_t pid = fork();
  if (pid == 0) {
    auto scope = NetnsScope::enter(ns);
    if (!scope) _exit(2);
    _exit(fn());
  }
  return pid;
}

// Received packets per second from a to b for `seconds`. With `established`, b answers the
// first packet so the flow is established in conntrack before the measured window.
double blast(double seconds, bool established = true) {
  int pipefd[2];
  if (pipe(pipefd) != 0) std::exit(1);
  pid_t rx = in_child(gb, [&] {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(9000);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    timeval tv{0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::vector<mmsghdr> msgs(64);
    std::vector<std::array<char, 128>> bufs(64);
    std::vector<iovec> iovs(64);
    for (int i = 0; i < 64; ++i) {
      iovs[i] = {bufs[i].data(), bufs[i].size()};
      msgs[i].msg_hdr = {};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // Count only packets of the measured window (after the warm-up marker of 0.3 s).
    uint64_t count = 0;
    auto start = std::chrono::steady_clock::now();
    auto end = start + std::chrono::duration<double>(seconds + 0.3);
    bool counting = false, answered = !established;
    auto count_from = start + std::chrono::milliseconds(300);
    while (std::chrono::steady_clock::now() < end) {
      sockaddr_in peer{};
      msgs[0].msg_hdr.msg_name = &peer;
      msgs[0].msg_hdr.msg_namelen = sizeof(peer);
      int n = recvmmsg(fd, msgs.data(), 64, 0, nullptr);
      if (n > 0 && !answered) {
        sendto(fd, "ok", 2, 0, reinterpret_cast<sockaddr*>(&peer), sizeof(peer));
        answered = true;
      }
      if (n > 0 && counting) count += static_cast<uint64_t>(n);
      if (!counting && std::chrono::steady_clock::now() >= count_from) counting = true;
    }
    (void)!write(pipefd[1], &count, sizeof(count));
    return 0;
  });
  usleep(100000);
  pid_t tx = in_child(ga, [&] {
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
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds + 0.4);
    while (std::chrono::steady_clock::now() < end) sendmmsg(fd, msgs.data(), 64, 0);
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

// The compiled rules of `guests` guests (compiled once per size).
const firewall::CompileResult& compiled_for(int guests, const firewall::CompileOptions& options) {
  static std::map<int, firewall::CompileResult> cache;
  auto& compiled = cache[guests];
  auto& ruleset = compiled.ruleset;
  if (ruleset.tables.empty()) {
    auto config = bench::synthetic_config(guests);
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

// Applies the compiled rules of `guests` guests.
void load(int guests, const firewall::CompileOptions& options) {
  const auto& compiled = compiled_for(guests, options);
  const auto& ruleset = compiled.ruleset;
  // The netdev layout's reject ports must exist before rules that `fwd to` them.
  if (!firewall::sync_reject_ports(node, compiled.reject_port_bridges)) std::exit(1);
  auto driver = firewall::nft::NftDriver::open(node);
  if (!driver) std::exit(1);
  // Replace whatever is loaded.
  run({.argv = {"ip", "netns", "exec", node, "nft", "flush", "ruleset"}});
  auto sent = driver->apply(firewall::nft::creation(ruleset));
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
  int repeat = 5;
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
    } else if (k == "--dump") {
      auto text = firewall::nft::to_nft_text(compiled_for(sizes.front(), options).ruleset);
      return write_file_atomic(v, text) ? 0 : 1;
    }
  }
  setup();  // its namespaces are removed at exit
  {
    auto applier = firewall::Applier::open({.netns = node, .state_dir = "/tmp/" + tag});
    if (!applier || !applier->enable_bridge_netfilter()) std::exit(1);
  }
  // Exploration: measure hand-written rulesets (nft syntax files) against the same path.
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) != "--nft-file") continue;
    std::vector<double> loaded, empty;
    // Hand-written variants of the netdev layout `fwd to` the bridge's reject port.
    if (!firewall::sync_reject_ports(node, {"vmbr0"})) std::exit(1);
    for (int r = 0; r < repeat; ++r) {
      run({.argv = {"ip", "netns", "exec", node, "nft", "flush", "ruleset"}});
      empty.push_back(blast(seconds));
      sh({"ip", "netns", "exec", node, "nft", "-f", argv[i + 1]});
      loaded.push_back(blast(seconds));
    }
    std::printf("B4 %s: %.1f%% of empty\n", argv[i + 1], 100.0 * median(loaded) / median(empty));
  }
  for (int n : sizes) {
    std::vector<double> est, est_empty, fresh, fresh_empty;
    for (int r = 0; r < repeat; ++r) {
      run({.argv = {"ip", "netns", "exec", node, "nft", "flush", "ruleset"}});
      est_empty.push_back(blast(seconds));
      fresh_empty.push_back(blast(seconds, false));
      load(n, options);
      est.push_back(blast(seconds));
      fresh.push_back(blast(seconds, false));
    }
    run({.argv = {"ip", "netns", "exec", node, "nft", "flush", "ruleset"}});
    std::printf(
        "B4 %d guests (%s layout, %s tables), medians of %d: established flow %.0f pps vs empty "
        "%.0f: %.1f%%; new flow %.0f vs %.0f: %.1f%%\n",
        n, firewall::to_string(options.layout),
        options.shards ? std::to_string(options.shards).c_str() : "auto", repeat, median(est),
        median(est_empty), 100.0 * median(est) / median(est_empty), median(fresh),
        median(fresh_empty), 100.0 * median(fresh) / median(fresh_empty));
  }
  return 0;
}
