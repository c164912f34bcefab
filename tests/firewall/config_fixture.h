// A test fixture that assembles a FirewallConfig in memory from file texts, through the real
// parsers, for tests of what is compiled from it (simulator, analysis). The cluster firewall
// starts enabled.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <string_view>

#include "moat/firewall/model.h"
#include "moat/firewall/parser.h"

namespace moat::firewall::testing {

class ConfigFixture : public ::testing::Test {
 protected:
  void SetUp() override { cluster("[OPTIONS]\nenable: 1\n"); }

  void cluster(std::string_view text) {
    auto r = parse_cluster_fw(text, "firewall/cluster.fw");
    ASSERT_TRUE(r) << r.error().to_string();
    config_.cluster = *r;
  }
  void host(std::string_view text) {
    auto r = parse_host_fw(text, "nodes/node1/host.fw");
    ASSERT_TRUE(r) << r.error().to_string();
    config_.host = *r;
  }
  // A guest from its config (`netN:` lines) and, when given, its firewall file.
  void guest(uint32_t vmid, Guest::Type type, std::string_view conf, std::string_view fw = {}) {
    std::string id = std::to_string(vmid);
    auto g = parse_guest_config(
        conf, (type == Guest::Type::Vm ? "qemu-server/" : "lxc/") + id + ".conf", vmid, type);
    ASSERT_TRUE(g) << g.error().to_string();
    if (!fw.empty()) {
      auto f = parse_guest_fw(fw, "firewall/" + id + ".fw");
      ASSERT_TRUE(f) << f.error().to_string();
      g->fw = *f;
    }
    config_.guests[vmid] = *g;
  }
  // A VM with the firewall file `fw`; by default one firewalled NIC on vmbr0 with a MAC
  // derived from the VMID.
  void vm(uint32_t vmid, std::string_view fw, std::string_view conf = {}) {
    char def[96];
    std::snprintf(def, sizeof(def), "net0: virtio=BC:24:11:00:00:%02u,bridge=vmbr0,firewall=1\n",
                  vmid % 100);
    guest(vmid, Guest::Type::Vm, conf.empty() ? std::string_view(def) : conf, fw);
  }

  FirewallConfig config_;
};

}  // namespace moat::firewall::testing
