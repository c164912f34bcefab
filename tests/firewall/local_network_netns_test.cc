// detect_local_networks() over a snapshot of a real namespace: the network of the node's hosts-file
// address, or every network the node has when the hosts file does not name it.
#include <gtest/gtest.h>

#include <filesystem>

#include "harness/netns.h"
#include "moat/base/file.h"
#include "moat/bridges/link_driver.h"
#include "moat/firewall/local_network.h"

namespace moat::firewall {
namespace {

namespace fs = std::filesystem;

class LocalNetworkTest : public testing::NetnsTest {};

TEST_F(LocalNetworkTest, PicksTheNetworkOfTheNodeAddressElseEveryNetwork) {
  auto node = topo().add_node("node1");
  ASSERT_TRUE(node) << node.error().to_string();
  for (auto [name, cidr] : {std::pair{"vmbr0", "10.77.0.1/24"}, {"vmbr1", "10.88.0.1/24"}}) {
    auto br = topo().add_bridge({.node = *node, .name = name, .ipv4 = cidr});
    ASSERT_TRUE(br) << br.error().to_string();
  }
  fs::path hosts = fs::temp_directory_path() / (topo().prefix() + "-hosts");
  ASSERT_TRUE(write_file_atomic(hosts, "127.0.0.1 localhost\n10.88.0.1 node1.example.com node1\n"));
  auto observed = bridges::observe(node->ns);
  ASSERT_TRUE(observed) << observed.error().to_string();
  auto own = detect_local_networks(*observed, "node1", hosts.string());
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own.front().to_string(), "10.88.0.0/24");

  auto all = detect_local_networks(*observed, "node2", hosts.string());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.at(0).to_string(), "10.77.0.0/24");
  EXPECT_EQ(all.at(1).to_string(), "10.88.0.0/24");

  auto no_hosts = detect_local_networks(*observed, "node1", hosts.string() + "-missing");
  EXPECT_EQ(no_hosts.size(), 2u);
  fs::remove(hosts);
}

}  // namespace
}  // namespace moat::firewall
