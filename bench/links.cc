// B6: create, enslave and delete N veth pairs on a bridge through our rtnetlink reconciler
// (plan from an interfaces file, apply) against `ip -batch` doing the same, each in a fresh
// network namespace, and the no-op re-apply of a configuration of --noop interfaces (a bridge
// and veths) with its phases. Usage: bench_links [--pairs 1000] [--noop 500] [--settle 10]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "bench_netns.h"
#include "moat/base/strings.h"
#include "moat/base/subprocess.h"
#include "moat/bridges/interfaces.h"
#include "moat/bridges/link_driver.h"
#include "moat/bridges/links.h"

using namespace moat;
using Clock = std::chrono::steady_clock;

namespace {

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string netns(const std::string& suffix) {
  return bench::make_namespace("mtl" + std::to_string(getpid()) + suffix);
}

struct Timing {
  double total = 0;    // ms, parse to the last ack
  double compile = 0;  // parse + validate-free compile
  double observe = 0;  // entering the namespace and the dumps
  double plan = 0;
  double apply = 0;
  size_t ops = 0;
  size_t messages = 0;
  size_t batches = 0;
};

// Our path: the interfaces text -> specs -> plan against the kernel -> apply.
Timing moat_apply(const std::string& ns, const std::string& text) {
  Timing t;
  auto start = Clock::now();
  auto file = bridges::parse_interfaces(text, "bench.interfaces");
  auto specs = file ? bridges::compile_links(*file) : std::unexpected(file.error());
  auto compiled = Clock::now();
  auto observed = bridges::observe(ns);
  auto seen = Clock::now();
  if (!specs || !observed) {
    std::fprintf(stderr, "compile/observe failed\n");
    std::exit(1);
  }
  auto plan = bridges::plan_links(*observed, *specs);
  auto planned = Clock::now();
  t.ops = plan.size();
  auto applied = bridges::apply_links({.netns = ns, .plan = plan, .file = "bench.interfaces"});
  if (!applied) {
    std::fprintf(stderr, "apply: %s\n", applied.error().to_string().c_str());
    std::exit(1);
  }
  auto end = Clock::now();
  t.messages = applied->messages;
  t.batches = applied->batches;
  t.compile = ms(compiled - start);
  t.observe = ms(seen - compiled);
  t.plan = ms(planned - seen);
  t.apply = ms(end - planned);
  t.total = ms(end - start);
  return t;
}

// An interfaces file: bridge vmbr0 with `veths` veth ports (bv0.., peers bv0p..).
std::string veth_file(int veths) {
  std::string with = "auto vmbr0\niface vmbr0 inet manual\n\tbridge-stp off\n\tbridge-ports";
  std::string stanzas;
  for (int i = 0; i < veths; ++i) {
    std::string v = "bv" + std::to_string(i);
    with += " " + v;
    stanzas += "\nauto " + v + "\niface " + v +
               " inet manual\n\tlink-type veth\n\tveth-peer-name " + v + "p\n";
  }
  return with + "\n" + stanzas;
}

double ip_batch(const std::string& ns, const std::string& batch) {
  auto start = Clock::now();
  auto r = run({.argv = {"ip", "-n", ns, "-batch", "-"},
                .input = batch,
                .timeout = std::chrono::minutes(5)});
  if (!r || r->exit_code != 0) {
    std::fprintf(stderr, "ip -batch failed: %s\n", r ? r->err.substr(0, 300).c_str() : "");
    std::exit(1);
  }
  return ms(Clock::now() - start);
}

}  // namespace

int main(int argc, char** argv) {
  int pairs = 1000;
  int noop = 500;
  unsigned settle = 10;  // seconds
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--pairs") pairs = static_cast<int>(*parse_uint(argv[i + 1]));
    if (std::string(argv[i]) == "--noop") noop = static_cast<int>(*parse_uint(argv[i + 1]));
    if (std::string(argv[i]) == "--settle")
      settle = static_cast<unsigned>(*parse_uint(argv[i + 1]));
  }

  std::string create, enslave, del;
  for (int i = 0; i < pairs; ++i) {
    std::string v = "bv" + std::to_string(i);
    create += "link add " + v + " type veth peer name " + v + "p\n";
    enslave += "link set " + v + " master vmbr0 up\nlink set " + v + "p up\n";
    del += "link del " + v + "\n";
  }
  std::string full = veth_file(pairs);

  std::string a = netns("a"), b = netns("b");
  Timing made = moat_apply(a, full);
  Timing again = moat_apply(a, full);
  Timing gone = moat_apply(a, "");

  // The same number of pairs that are no bridge's ports and not up (only the peers are): what
  // the delete costs without bridge-port removal and with half the IPv6 teardown.
  std::string loose;
  for (int i = 0; i < pairs; ++i) {
    std::string v = "bv" + std::to_string(i);
    loose += "iface " + v + " inet manual\n\tlink-type veth\n\tveth-peer-name " + v + "p\n";
  }
  std::string d = netns("d");
  moat_apply(d, loose);
  Timing loose_gone = moat_apply(d, "");

  ip_batch(b, "link add vmbr0 type bridge\nlink set vmbr0 up\n");
  double ip_create = ip_batch(b, create) + ip_batch(b, enslave);
  double ip_delete = ip_batch(b, del);

  std::printf(
      "B6 %d veth pairs on a bridge: create+enslave+up moat %.0f ms (%zu ops, %zu messages in %zu "
      "batches) vs ip -batch %.0f ms (%.2fx)\n",
      pairs, made.total, made.ops, made.messages, made.batches, ip_create, ip_create / made.total);
  std::printf("B6 no-op re-apply with %d links: %.1f ms (%zu ops)\n", 2 * pairs + 1, again.total,
              again.ops);
  std::printf(
      "B6 delete them: moat %.0f ms (apply %.0f ms, %zu ops, %zu messages) vs ip -batch %.0f ms "
      "(%.2fx)\n",
      gone.total, gone.apply, gone.ops, gone.messages, ip_delete, ip_delete / gone.total);
  std::printf("B6 delete %d pairs that are not bridge ports: moat %.0f ms (apply %.0f ms)\n", pairs,
              loose_gone.total, loose_gone.apply);
  // Last, so that its namespace of links does not weigh on B6: the no-op at --noop interfaces:
  // median of 7 runs, by phase.
  std::string c = netns("c");
  std::string small = veth_file(noop - 1);
  moat_apply(c, small);
  // Freshly up links send IPv6 DAD, router and MLD solicitations for a few seconds, and the
  // kernel's handling of them holds the RTNL lock our dumps need: a no-op re-apply runs on a
  // settled node.
  sleep(settle);
  std::vector<Timing> runs;
  for (int i = 0; i < 7; ++i) runs.push_back(moat_apply(c, small));
  std::sort(runs.begin(), runs.end(),
            [](const Timing& a, const Timing& b) { return a.total < b.total; });
  const Timing& mid = runs[runs.size() / 2];
  std::printf(
      "no-op re-apply of %d interfaces (%d links in the kernel): %.1f ms median (compile %.1f, "
      "observe %.1f, plan %.1f, apply %.1f; %zu ops, %zu messages)\n",
      noop, 2 * noop - 1, mid.total, mid.compile, mid.observe, mid.plan, mid.apply, mid.ops,
      mid.messages);

  return 0;
}
