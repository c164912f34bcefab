// B6: create, enslave and delete N veth pairs on a bridge through our rtnetlink reconciler
// (plan from an interfaces file, apply) against `ip -batch` doing the same, each in a fresh
// network namespace. Usage: bench_links [--pairs 1000]
#include <unistd.h>

#include <chrono>
#include <cstdio>

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

// Our path: the interfaces text -> specs -> plan against the kernel -> apply.
double moat_apply(const std::string& ns, const std::string& text, size_t* ops) {
  auto start = Clock::now();
  auto file = bridges::parse_interfaces(text, "bench.interfaces");
  auto specs = file ? bridges::compile_links(*file) : std::unexpected(file.error());
  auto observed = bridges::observe(ns);
  if (!specs || !observed) {
    std::fprintf(stderr, "compile/observe failed\n");
    std::exit(1);
  }
  auto plan = bridges::plan_links(*observed, *specs);
  *ops = plan.size();
  auto applied = bridges::apply_links({.netns = ns, .plan = plan, .file = "bench.interfaces"});
  if (!applied) {
    std::fprintf(stderr, "apply: %s\n", applied.error().to_string().c_str());
    std::exit(1);
  }
  return ms(Clock::now() - start);
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
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--pairs") pairs = static_cast<int>(*parse_uint(argv[i + 1]));

  std::string with = "auto vmbr0\niface vmbr0 inet manual\n\tbridge-stp off\n\tbridge-ports";
  std::string stanzas, create, enslave, del;
  for (int i = 0; i < pairs; ++i) {
    std::string v = "bv" + std::to_string(i);
    with += " " + v;
    stanzas += "\nauto " + v + "\niface " + v +
               " inet manual\n\tlink-type veth\n\tveth-peer-name " + v + "p\n";
    create += "link add " + v + " type veth peer name " + v + "p\n";
    enslave += "link set " + v + " master vmbr0 up\nlink set " + v + "p up\n";
    del += "link del " + v + "\n";
  }
  std::string full = with + "\n" + stanzas;

  std::string a = netns("a"), b = netns("b");
  size_t ops = 0;
  double ours_create = moat_apply(a, full, &ops);
  size_t create_ops = ops;
  size_t again_ops = 0;
  double ours_noop = moat_apply(a, full, &again_ops);
  double ours_delete = moat_apply(a, "", &ops);

  ip_batch(b, "link add vmbr0 type bridge\nlink set vmbr0 up\n");
  double ip_create = ip_batch(b, create) + ip_batch(b, enslave);
  double ip_delete = ip_batch(b, del);

  std::printf(
      "B6 %d veth pairs on a bridge: create+enslave+up moat %.0f ms (%zu ops) vs ip -batch %.0f ms "
      "(%.2fx); no-op re-apply %.1f ms (%zu ops); delete moat %.0f ms vs ip -batch %.0f ms "
      "(%.2fx)\n",
      pairs, ours_create, create_ops, ip_create, ip_create / ours_create, ours_noop, again_ops,
      ours_delete, ip_delete, ip_delete / ours_delete);
  return 0;
}
