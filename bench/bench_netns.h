// Network namespaces for benchmarks: created fresh by name, and removed at exit too, since a
// benchmark exits on its first failure without unwinding. Single-threaded use.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "moat/base/subprocess.h"

namespace moat::bench {

inline std::vector<std::string>& made_namespaces() {
  static std::vector<std::string> names;
  return names;
}

inline void remove_namespace(const std::string& name) {
  run({.argv = {"ip", "netns", "del", name}});
}

// Creates namespace `name` (replacing a stale one); exits when it cannot (root needed).
inline std::string make_namespace(const std::string& name) {
  if (made_namespaces().empty())
    std::atexit([] {
      for (const auto& n : made_namespaces()) remove_namespace(n);
    });
  made_namespaces().push_back(name);
  remove_namespace(name);
  auto r = run({.argv = {"ip", "netns", "add", name}});
  if (!r || r->exit_code != 0) {
    std::fprintf(stderr, "cannot create netns %s (root needed)\n", name.c_str());
    std::exit(1);
  }
  return name;
}

// A namespace for one measurement, removed when it goes out of scope.
struct ScopedNamespace {
  std::string name;
  explicit ScopedNamespace(const std::string& n) : name(make_namespace(n)) {}
  ~ScopedNamespace() { remove_namespace(name); }
};

}  // namespace moat::bench
