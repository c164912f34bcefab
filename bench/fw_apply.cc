// Firewall benchmarks (root; each run in fresh network namespaces), ratios against the peer
// measured in the same run (docs/performance.md):
//   B1 full apply of N guests x 10 rules + per-guest ipsets: our one netlink batch vs `nft -f`
//      of the same ruleset text (to_nft_text of the very IR we apply);
//   B2 one guest's rules changed at N guests: incremental compile + diff + commit, p50/p99;
//   B3 nothing changed: the plan is empty and no netlink message is sent;
//   B5 an ipset of 12,000 entries: load, then add one entry; vs nft -f / nft add element;
//   peak memory of the compile.
// Usage: bench_fw_apply [--guests 1000,5000] [--reps 50] [--shards 8] [--layout bridge|netdev]
//                       [--full-runs 5] (B1: runs per size, medians reported)
//                       [--spacing-ms 0] (B2: idle time before each change; 0: back to back)
//                       [--same-guest 0] (B2: 1 changes one guest again and again, as an
//                       operator working on its rules; 0 a different guest each time)
//                       [--firewall-bridges 0] (1: every guest plugged as Proxmox's iptables
//                       firewall does it, on its own fwbr<vmid>i0 in front of vmbr0)
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "bench_netns.h"
#include "bench_stats.h"
#include "fw_synthetic.h"
#include "moat/base/file.h"
#include "moat/base/strings.h"
#include "moat/base/subprocess.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/diff.h"
#include "moat/firewall/nft_driver.h"
#include "moat/firewall/nft_text.h"
#include "moat/firewall/nic_bridges.h"
#include "moat/firewall/reject_ports.h"

using namespace moat;
using Clock = std::chrono::steady_clock;
using bench::median;
using bench::percentile;

namespace {

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

using Netns = bench::ScopedNamespace;

bool firewall_bridges = false;  // --firewall-bridges

// The synthetic datacenter (VMIDs from `first_vmid`), its guests on their firewall bridges with
// --firewall-bridges 1.
firewall::FirewallConfig datacenter(int guests, uint32_t first_vmid = 1000) {
  auto config = bench::synthetic_config(guests, first_vmid);
  if (!firewall_bridges) return config;
  firewall::BridgeKinds kinds;
  for (const auto& [vmid, _] : config.guests)
    kinds.firewall_bridged.insert("tap" + std::to_string(vmid) + "i0");
  firewall::plug_nics(config, kinds);
  return config;
}

template <class T>
T must(Result<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "%s: %s\n", what, r.error().to_string().c_str());
    std::exit(1);
  }
  return std::move(*r);
}

double nft_file(const std::string& netns, const std::string& text) {
  std::string path = "/tmp/moat-bench-" + std::to_string(getpid()) + ".nft";
  (void)write_file_atomic(path, text);
  auto start = Clock::now();
  auto r = run({.argv = {"ip", "netns", "exec", netns, "nft", "-f", path},
                .timeout = std::chrono::minutes(5)});
  double t = ms(Clock::now() - start);
  std::remove(path.c_str());
  if (!r || r->exit_code != 0) {
    std::fprintf(stderr, "nft -f failed: %s\n", r ? r->err.substr(0, 500).c_str() : "spawn");
    std::exit(1);
  }
  return t;
}

long peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

struct FullResult {
  double compile_ms, moat_ms, nft_ms;  // medians over the runs
  double min_ratio, max_ratio;         // nft/moat of single runs
  size_t rules;
};

// The reject ports the netdev layout's rules `fwd to` must exist before the rules.
void prepare(const std::string& netns, const firewall::CompileResult& compiled) {
  if (auto st = firewall::sync_reject_ports(netns, compiled.reject_port_bridges); !st) {
    std::fprintf(stderr, "reject ports: %s\n", st.error().to_string().c_str());
    std::exit(1);
  }
}

// One run: our batch and `nft -f` of the same text, each into a fresh namespace. `nft_first`
// swaps the order, so that neither side always finds the kernel after the other's work.
std::pair<double, double> apply_both(const firewall::CompileResult& compiled,
                                     const std::string& text, bool nft_first) {
  std::string tag = "mtb" + std::to_string(getpid());
  Netns a(tag + "a"), b(tag + "b");
  prepare(a.name, compiled);
  prepare(b.name, compiled);
  auto driver = must(firewall::nft::NftDriver::open(a.name), "open");
  double nft_ms = nft_first ? nft_file(b.name, text) : 0;
  auto start = Clock::now();
  must(driver.apply(firewall::nft::creation(compiled.ruleset)), "apply");
  double moat_ms = ms(Clock::now() - start);
  if (!nft_first) nft_ms = nft_file(b.name, text);
  return {moat_ms, nft_ms};
}

FullResult full_apply(int guests, const firewall::CompileOptions& options, int runs) {
  auto config = datacenter(guests);
  std::vector<double> compile_ms, moat_ms, nft_ms, ratios;
  firewall::CompileResult compiled;
  for (int i = 0; i < runs; ++i) {
    auto start = Clock::now();
    compiled = must(firewall::compile(config, options), "compile");
    compile_ms.push_back(ms(Clock::now() - start));
    auto [moat, nft] = apply_both(compiled, firewall::nft::to_nft_text(compiled.ruleset), i % 2);
    moat_ms.push_back(moat);
    nft_ms.push_back(nft);
    ratios.push_back(nft / moat);
    // Removing the namespaces frees their rulesets in a kernel worker: let it finish before
    // the next run measures.
    usleep(static_cast<useconds_t>(guests) * 300);
  }
  size_t rules = 0;
  for (const auto& [_, t] : compiled.ruleset.tables)
    for (const auto& [_, c] : t.chains) rules += c.rules.size();
  return {median(compile_ms),
          median(moat_ms),
          median(nft_ms),
          *std::min_element(ratios.begin(), ratios.end()),
          *std::max_element(ratios.begin(), ratios.end()),
          rules};
}

void incremental(int guests, firewall::CompileOptions options, int reps, int spacing_ms,
                 bool same_guest) {
  auto config = datacenter(guests);
  auto compiled = must(firewall::compile(config, options), "compile");
  options.shards = compiled.shards;  // what recompile_guest must use
  std::string tag = "mtb" + std::to_string(getpid());
  Netns a(tag + "i");
  prepare(a.name, compiled);
  auto driver = must(firewall::nft::NftDriver::open(a.name), "open");
  must(driver.apply(firewall::nft::creation(compiled.ruleset)), "apply");
  firewall::nft::Ruleset applied = compiled.ruleset;
  firewall::nft::Ruleset desired = std::move(compiled.ruleset);

  // B3: nothing changed.
  auto start = Clock::now();
  auto again = must(firewall::compile(config, options), "compile");
  auto noop = firewall::nft::diff(applied, again.ruleset);
  double noop_ms = ms(Clock::now() - start);
  std::printf(
      "B3 no change at %d guests: plan has %zu operations, 0 netlink messages sent; full "
      "recompile+diff %.1f ms\n",
      guests, noop.size(), noop_ms);

  // Guest `vmid` recompiled into `desired` and committed, the reject ports its ruleset names
  // made first when `ports` (a guest starting may bring a bridge): milliseconds of each step.
  struct Step {
    double compile, ports, commit;
    size_t ops;
  };
  auto commit_guest = [&](uint32_t vmid, bool ports) {
    std::vector<std::string> warnings;
    auto t0 = Clock::now();
    auto touched =
        must(firewall::recompile_guest(desired, config, vmid, options, warnings), "recompile");
    auto plan = firewall::nft::diff(applied, desired, touched);
    auto t1 = Clock::now();
    if (ports) {
      auto bridges = firewall::reject_port_bridges(desired);
      if (auto st = firewall::sync_reject_ports(a.name, bridges, firewall::OtherRejectPorts::Keep);
          !st) {
        std::fprintf(stderr, "reject ports: %s\n", st.error().to_string().c_str());
        std::exit(1);
      }
    }
    auto t2 = Clock::now();
    must(driver.apply(plan), "apply");
    auto t3 = Clock::now();
    firewall::nft::patch(applied, desired, touched);
    return Step{ms(t1 - t0), ms(t2 - t1), ms(t3 - t2), plan.size()};
  };

  // Change i's guest, after `spacing_ms` of idle time. Back to back, the kernel's walk over
  // every chain of the namespace finds them in cache; an operator's changes come after idle
  // time, when it does not.
  auto pause_then_pick = [&](int i) {
    if (spacing_ms > 0) usleep(static_cast<useconds_t>(spacing_ms) * 1000);
    return 1000 + static_cast<uint32_t>(same_guest ? 0 : (i * 7919) % guests);
  };
  std::vector<double> times, compile_times, commit_times;
  size_t ops = 0;
  for (int i = 0; i < reps; ++i) {
    uint32_t vmid = pause_then_pick(i);
    auto& guest = config.guests[vmid];
    // The guest's own file with one rule's port range and one ipset entry changed.
    guest.fw = *firewall::parse_guest_fw(bench::guest_fw_text(vmid, i + 1),
                                         "firewall/" + std::to_string(vmid) + ".fw");
    Step step = commit_guest(vmid, false);
    times.push_back(step.compile + step.commit);
    compile_times.push_back(step.compile);
    commit_times.push_back(step.commit);
    ops += step.ops;
  }
  std::printf(
      "B2 one guest changed at %d guests (%s layout, %d tables, %d ms between changes%s%s): "
      "compile->commit p50 %.2f ms, p99 %.2f ms (recompile+diff p50 %.2f, p99 %.2f; kernel "
      "commit p50 %.2f ms, p99 %.2f ms), %.1f ops/change\n",
      guests, firewall::to_string(options.layout), options.shards, spacing_ms,
      same_guest ? ", the same guest each time" : "", firewall_bridges ? ", guests on fwbr" : "",
      percentile(times, 0.5), percentile(times, 0.99), percentile(compile_times, 0.5),
      percentile(compile_times, 0.99), percentile(commit_times, 0.5),
      percentile(commit_times, 0.99), static_cast<double>(ops) / reps);

  // The floor under B2's kernel commit: the smallest change any tool can make, one element
  // in or out of one guest's ipset, after the same idle time in the same namespace. Every
  // commit walks every chain of the namespace (two per guest), whatever it changed.
  std::vector<double> floor_times;
  for (int i = 0; i < reps; ++i) {
    std::string set_name = "v4-guest-" + std::to_string(pause_then_pick(i)) + "/allowed";
    firewall::nft::Table* table = nullptr;
    for (auto& [_, t] : desired.tables)
      if (t.sets.contains(set_name)) table = &t;
    if (table == nullptr) break;  // a layout without per-guest sets
    std::vector<firewall::nft::ObjectRef> touched = {
        {firewall::nft::table_key(table->family, table->name), true, set_name}};
    auto& elements = table->sets.at(set_name).elements;
    firewall::nft::SetElement extra{{firewall::nft::single({10, 99, 0, 1})}, {}, 0};
    if (auto it = std::find(elements.begin(), elements.end(), extra); it != elements.end())
      elements.erase(it);
    else
      elements.insert(std::upper_bound(elements.begin(), elements.end(), extra), extra);
    auto plan = firewall::nft::diff(applied, desired, touched);
    auto t0 = Clock::now();
    must(driver.apply(plan), "apply");
    floor_times.push_back(ms(Clock::now() - t0));
    firewall::nft::patch(applied, desired, touched);
  }
  if (!floor_times.empty())
    std::printf(
        "   (floor: one ipset element in or out at %d guests, %d ms between changes: kernel "
        "commit p50 %.2f ms, p99 %.2f ms)\n",
        guests, spacing_ms, percentile(floor_times, 0.5), percentile(floor_times, 0.99));

  // Guests starting: a new guest each time (on its own fwbr with --firewall-bridges 1, as on a
  // default PVE node), its recompile, the reject ports the ruleset names, its commit.
  auto more = datacenter(std::max(1, reps / 4), 1000 + static_cast<uint32_t>(guests));
  std::vector<double> start_compile, start_ports, start_commit;
  for (auto& [vmid, guest] : more.guests) {
    if (spacing_ms > 0) usleep(static_cast<useconds_t>(spacing_ms) * 1000);
    config.guests[vmid] = guest;
    Step step = commit_guest(vmid, true);
    start_compile.push_back(step.compile);
    start_ports.push_back(step.ports);
    start_commit.push_back(step.commit);
  }
  std::printf(
      "   (a guest starting%s, %zu times: recompile+diff p50 %.2f ms, p99 %.2f; reject ports p50 "
      "%.2f ms; kernel commit p50 %.2f ms, p99 %.2f)\n",
      firewall_bridges ? " on its fwbr" : "", start_compile.size(), percentile(start_compile, 0.5),
      percentile(start_compile, 0.99), percentile(start_ports, 0.5), percentile(start_commit, 0.5),
      percentile(start_commit, 0.99));
}

void ipset_bench() {
  std::string text = "[OPTIONS]\nenable: 1\n\n[IPSET big]\n";
  for (int i = 0; i < 12000; ++i)
    text += "10." + std::to_string(100 + i / 32768) + "." + std::to_string((i / 128) % 256) + "." +
            std::to_string((i % 128) * 2) + "\n";
  text += "\n[RULES]\nIN DROP -source +big\n";
  firewall::FirewallConfig config;
  config.cluster = *firewall::parse_cluster_fw(text, "cluster.fw");
  auto compiled_at = Clock::now();
  auto compiled = must(firewall::compile(config, {}), "compile");
  double compile_ms = ms(Clock::now() - compiled_at);
  // Only the table holding the set: the measure is the set load.
  auto& table = compiled.ruleset.tables.begin()->second;
  firewall::nft::Ruleset only_set;
  auto& t = only_set.table(table.family, table.name);
  t.sets["v4-dc/big"] = table.sets.at("v4-dc/big");
  std::string tag = "mtb" + std::to_string(getpid());
  Netns a(tag + "s"), b(tag + "t");
  auto driver = must(firewall::nft::NftDriver::open(a.name), "open");
  auto start = Clock::now();
  must(driver.apply(firewall::nft::creation(only_set)), "apply");
  double load_ms = ms(Clock::now() - start);
  double nft_ms = nft_file(b.name, firewall::nft::to_nft_text(only_set));
  // One more entry, then gone again, kAddRepeats times: the median add and the slowest.
  constexpr int kAddRepeats = 21;
  firewall::nft::Ruleset more = only_set;
  auto& set = more.tables.begin()->second.sets.at("v4-dc/big");
  set.elements.push_back({{firewall::nft::single({192, 0, 2, 99})}, {}, 0});
  std::sort(set.elements.begin(), set.elements.end());
  const std::vector<firewall::nft::ObjectRef> touched = {
      {table_key(t.family, t.name), true, "v4-dc/big"}};
  std::vector<double> add_times, diff_times, kernel_times;
  for (int i = 0; i < kAddRepeats; ++i) {
    start = Clock::now();
    auto plan = firewall::nft::diff(only_set, more, touched);
    auto kstart = Clock::now();
    must(driver.apply(plan), "apply");
    add_times.push_back(ms(Clock::now() - start));
    diff_times.push_back(ms(kstart - start));
    kernel_times.push_back(ms(Clock::now() - kstart));
    must(driver.apply(firewall::nft::diff(more, only_set, touched)), "apply");
  }
  double add_ms = percentile(add_times, 0.5);
  std::printf(
      "   (one-entry add, %d times: diff p50 %.3f ms, kernel p50 %.3f ms; slowest add %.3f ms)\n",
      kAddRepeats, percentile(diff_times, 0.5), percentile(kernel_times, 0.5),
      percentile(add_times, 1.0));
  start = Clock::now();
  auto r = run({.argv = {"ip", "netns", "exec", b.name, "nft", "add", "element", "inet", "moat",
                         "v4-dc/big", "{ 192.0.2.99 }"}});
  double nft_add_ms = ms(Clock::now() - start);
  if (!r || r->exit_code != 0) std::fprintf(stderr, "nft add element failed\n");
  std::printf(
      "B5 ipset of 12000 entries (%zu set elements): compile %.1f ms, load %.1f ms (nft -f %.1f "
      "ms, %.1fx); add one entry p50 %.3f ms (nft add element %.1f ms)\n",
      only_set.tables.begin()->second.sets.begin()->second.elements.size(), compile_ms, load_ms,
      nft_ms, nft_ms / load_ms, add_ms, nft_add_ms);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes = {1000, 5000};
  int reps = 50;
  int spacing_ms = 0;
  firewall::CompileOptions options;  // shards 0: automatic, as the CLI
  bool full_only = false;
  int full_runs = 5;
  bool same_guest = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--guests") {
      sizes.clear();
      for (auto p : split(v, ',')) sizes.push_back(static_cast<int>(*parse_uint(p)));
    } else if (k == "--reps") {
      reps = static_cast<int>(*parse_uint(v));
    } else if (k == "--spacing-ms") {
      spacing_ms = static_cast<int>(*parse_uint(v));
    } else if (k == "--full-runs") {
      full_runs = std::max(1, static_cast<int>(*parse_uint(v)));
    } else if (k == "--same-guest") {
      same_guest = v == "1";
    } else if (k == "--firewall-bridges") {
      firewall_bridges = v == "1";
    } else if (k == "--full-only") {
      full_only = v == "1";
    } else if (k == "--shards") {
      options.shards = static_cast<int>(*parse_uint(v));
    } else if (k == "--layout" && firewall::parse_guest_layout(v)) {
      options.layout = *firewall::parse_guest_layout(v);
    }
  }
  std::vector<FullResult> results;
  for (int n : sizes) {
    auto r = full_apply(n, options, full_runs);
    results.push_back(r);
    std::printf(
        "B1 full apply, %d guests x 10 rules + per-guest ipsets (%zu nft rules), median of %d "
        "runs: compile %.0f ms, moat netlink %.0f ms, nft -f %.0f ms: %.2fx faster (runs "
        "%.2f-%.2fx)\n",
        n, r.rules, full_runs, r.compile_ms, r.moat_ms, r.nft_ms, r.nft_ms / r.moat_ms, r.min_ratio,
        r.max_ratio);
  }
  if (results.size() >= 2)
    std::printf(
        "B1 scaling: time(%d)/time(%d) = %.2f (moat apply), %.2f (compile+apply), %.2f (nft -f, "
        "same run)\n",
        sizes.back(), sizes.front(), results.back().moat_ms / results.front().moat_ms,
        (results.back().moat_ms + results.back().compile_ms) /
            (results.front().moat_ms + results.front().compile_ms),
        results.back().nft_ms / results.front().nft_ms);
  std::printf("peak memory (RSS) so far: %ld MiB\n", peak_rss_mib());
  if (full_only) return 0;
  incremental(sizes.back(), options, reps, spacing_ms, same_guest);
  ipset_bench();
  std::printf("peak memory (RSS): %ld MiB\n", peak_rss_mib());
  return 0;
}
