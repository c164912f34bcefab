// The incremental path: recompiling one guest into an earlier compile() result gives the same
// ruleset as a full compile (including the security groups, cluster sets and constant sets a
// guest stops using), and the plan restricted to the touched objects is the full plan.
#include <gtest/gtest.h>

#include "config_fixture.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/diff.h"
#include "moat/firewall/names.h"
#include "moat/firewall/nft_text.h"

namespace moat::firewall {
namespace {

class RecompileTest : public testing::ConfigFixture,
                      public ::testing::WithParamInterface<GuestLayout> {
 protected:
  void SetUp() override {
    ConfigFixture::SetUp();
    options_.layout = GetParam();
    vm(100, "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 22\n");
    vm(102, "[OPTIONS]\nenable: 1\nipfilter: 1\n[RULES]\nIN SSH(ACCEPT)\n");
    applied_ = compile(config_, options_)->ruleset;
  }

  // Recompiles `vmid` into the applied ruleset and checks it against a full compile, the
  // reject ports it needs too. Returns what the recompile touched.
  std::vector<nft::ObjectRef> expect_same_as_full(uint32_t vmid) {
    nft::Ruleset desired = applied_;
    std::vector<std::string> warnings;
    auto touched = recompile_guest(desired, config_, vmid, options_, warnings);
    EXPECT_TRUE(touched) << touched.error().to_string();
    auto full = compile(config_, options_);
    EXPECT_TRUE(full);
    if (!touched || !full) return {};
    EXPECT_EQ(nft::to_nft_text(desired), nft::to_nft_text(full->ruleset));
    EXPECT_EQ(reject_port_bridges(desired), full->reject_port_bridges);
    EXPECT_EQ(nft::to_string(nft::diff(applied_, desired, *touched)),
              nft::to_string(nft::diff(applied_, full->ruleset)));
    nft::patch(applied_, desired, *touched);
    EXPECT_EQ(nft::to_nft_text(applied_), nft::to_nft_text(full->ruleset));
    return *touched;
  }

  // Whether a recompile of a guest in shard 1 stayed out of vm100's shard 0 (a full compile
  // touches every object).
  static bool incremental(const std::vector<nft::ObjectRef>& touched) {
    return std::none_of(touched.begin(), touched.end(), [](const nft::ObjectRef& r) {
      return r.name == names::guest_chain(100, Direction::In);
    });
  }

  CompileOptions options_{.shards = 2};
  nft::Ruleset applied_;
};

TEST_P(RecompileTest, NewGuestSortingLastInItsShardIsAdded) {
  // tap998i0 sorts after tap100i0 in every port set of shard 0.
  vm(998, "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p udp -dport 53\n");
  expect_same_as_full(998);
}

TEST_P(RecompileTest, NewGuestSortingFirstInItsShardIsAdded) {
  vm(1000, "[OPTIONS]\nenable: 1\ndhcp: 0\n[RULES]\nIN ACCEPT -p udp -dport 53\n");
  expect_same_as_full(1000);
}

TEST_P(RecompileTest, ChangedRulesAndOptionsOfAGuest) {
  vm(100, "[OPTIONS]\nenable: 1\nndp: 0\nmacfilter: 0\n[RULES]\nIN DROP -p tcp -dport 23\n");
  expect_same_as_full(100);
}

TEST_P(RecompileTest, GuestWhoseFirewallIsTurnedOffLeaves) {
  vm(100, "[OPTIONS]\nenable: 0\n");
  expect_same_as_full(100);
}

TEST_P(RecompileTest, LastGuestOfAShardTakesItsTableAlong) {
  config_.guests.erase(102);  // shard 0 keeps 100; shard 0 also held 102: removed
  expect_same_as_full(102);
  vm(101, "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 80\n");  // opens shard 1
  expect_same_as_full(101);
  config_.guests.erase(101);
  expect_same_as_full(101);
}

TEST_P(RecompileTest, GroupAndClusterSetsAGuestStopsUsingLeaveItsShard) {
  cluster(R"([OPTIONS]
enable: 1

[IPSET admins]
192.0.2.0/28

[group web]
IN ACCEPT -p tcp -dport 443 -source +admins
IN ACCEPT -p udp -dport 8000:8010
)");
  vm(100, "[OPTIONS]\nenable: 1\n[RULES]\nGROUP web\nIN ACCEPT -p tcp -dport 22\n");
  applied_ = compile(config_, options_)->ruleset;
  ASSERT_NE(nft::to_nft_text(applied_).find("admins"), std::string::npos);
  vm(100, "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 22\n");
  expect_same_as_full(100);
  EXPECT_EQ(nft::to_nft_text(applied_).find("admins"), std::string::npos);
}

TEST_P(RecompileTest, GroupStillUsedByAnotherGuestOfTheShardStays) {
  cluster("[OPTIONS]\nenable: 1\n\n[group web]\nIN ACCEPT -p tcp -dport 443\n");
  vm(100, "[OPTIONS]\nenable: 1\n[RULES]\nGROUP web\n");
  vm(102, "[OPTIONS]\nenable: 1\n[RULES]\nGROUP web\n");  // shard 0 as well
  applied_ = compile(config_, options_)->ruleset;
  vm(100, "[OPTIONS]\nenable: 1\npolicy_in: REJECT\n[RULES]\nIN ACCEPT -p tcp -dport 22\n");
  expect_same_as_full(100);
  EXPECT_NE(nft::to_nft_text(applied_).find("web"), std::string::npos);
  vm(100, "[OPTIONS]\nenable: 1\npolicy_in: DROP\n");  // the only REJECT goes
  expect_same_as_full(100);
}

TEST_P(RecompileTest, GuestWhoseOutRulesStartOrStopLogging) {
  // Netdev layout: a logging OUT rule is decided again after conntrack, in moat-verdicts.
  vm(100,
     "[OPTIONS]\nenable: 1\nlog_level_out: info\n[RULES]\nOUT DROP -p tcp -dport 25 -log info\n");
  expect_same_as_full(100);
  vm(100, "[OPTIONS]\nenable: 1\n[RULES]\nOUT DROP -p tcp -dport 25\n");
  expect_same_as_full(100);
}

TEST_P(RecompileTest, GuestsOnAVlanAwareBridgeComeAndGo) {
  // Netdev layout: their REJECTs drop, with no reject port, by the stash's and the verdicts
  // table's guards (vm103's OUT rule logs, so it is decided again in moat-verdicts).
  config_.vlan_aware_bridges = {"vmbr1"};
  vm(104, "[OPTIONS]\nenable: 1\n", "net0: virtio=BC:24:11:00:00:04,bridge=vmbr1,firewall=1\n");
  applied_ = compile(config_, options_)->ruleset;
  vm(103, "[OPTIONS]\nenable: 1\n[RULES]\nOUT REJECT -p udp -dport 514 -log info\n",
     "net0: virtio=BC:24:11:00:00:03,bridge=vmbr1,firewall=1\n");
  expect_same_as_full(103);
  if (GetParam() == GuestLayout::Netdev) {
    EXPECT_NE(nft::to_nft_text(applied_).find("iifname @vlan-aware-ports drop"), std::string::npos);
  }
  config_.guests.erase(103);
  expect_same_as_full(103);
}

TEST_P(RecompileTest, GuestsOnFirewallBridgesInFrontOfALinuxBridgeComeAndGo) {
  // Proxmox's iptables plumbing (plug_nics() with firewall_bridged): a guest on fwbr<vmid>i0
  // brings the bridge its firewall bridge joins into the host's bridged pairs (firewall bridges
  // all pass by one wildcard rule), and in the netdev layout is answered by that bridge's reject
  // port. Nothing of the host's is its own: coming and going, it changes its own tables only.
  auto on_fwbr = [&](uint32_t vmid) {
    GuestNic& nic = config_.guests[vmid].nics[0];
    nic.uplink = nic.bridge;
    nic.bridge = "fwbr" + std::to_string(vmid) + "i0";
  };
  vm(103, "[OPTIONS]\nenable: 1\n[RULES]\nIN REJECT -p tcp -dport 25\n",
     "net0: virtio=BC:24:11:00:00:03,bridge=vmbr1,firewall=1\n");
  on_fwbr(103);
  expect_same_as_full(103);
  vm(104, "[OPTIONS]\nenable: 1\n", "net0: virtio=BC:24:11:00:00:04,bridge=vmbr1,firewall=1\n");
  on_fwbr(104);
  expect_same_as_full(104);
  std::string text = nft::to_nft_text(applied_);
  EXPECT_NE(text.find("\"vmbr1\" . \"vmbr1\""), std::string::npos);
  EXPECT_NE(text.find("iifname \"fwbr*\" oifname \"fwbr*\" accept"), std::string::npos);
  EXPECT_EQ(text.find("\"fwbr104i0\""), std::string::npos);
  EXPECT_EQ(text.find("chain mark-vmbr1") != std::string::npos, GetParam() == GuestLayout::Netdev);
  EXPECT_EQ(text.find("chain answer-fwbr104i0"), std::string::npos);
  // A change of its rules stays within its table.
  vm(104, "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 22\n",
     "net0: virtio=BC:24:11:00:00:04,bridge=vmbr1,firewall=1\n");
  on_fwbr(104);
  expect_same_as_full(104);
  // Back on vmbr1 itself (restarted after `nftables: 1`), on its firewall bridge again, then
  // gone.
  vm(104, "[OPTIONS]\nenable: 1\n", "net0: virtio=BC:24:11:00:00:04,bridge=vmbr1,firewall=1\n");
  expect_same_as_full(104);
  on_fwbr(104);
  expect_same_as_full(104);
  config_.guests.erase(104);
  expect_same_as_full(104);
}

TEST_P(RecompileTest, GuestsOnBridgesNewToTheNodeAreAddedIncrementally) {
  // Netdev layout: a bridge new to the node gets its reject port's chains with the first guest
  // answered there and loses them with the last, within the guest's recompile (no full
  // compile: the recompile stays out of vm100's chains). Guests on firewall bridges are answered
  // at the Linux bridge these join: their own bridges get no reject port.
  bool netdev = GetParam() == GuestLayout::Netdev;
  auto on_fwbr = [&](uint32_t vmid) {
    GuestNic& nic = config_.guests[vmid].nics[0];
    nic.uplink = nic.bridge;
    nic.bridge = "fwbr" + std::to_string(vmid) + "i0";
  };
  auto rejects_on = [&] { return reject_port_bridges(applied_); };
  auto reject_chain = [](const std::string& name) {
    return nft::ObjectRef{nft::table_key(nft::Family::Netdev, names::kRejectTable), false, name};
  };
  auto touches = [](const std::vector<nft::ObjectRef>& touched, const nft::ObjectRef& ref) {
    return std::find(touched.begin(), touched.end(), ref) != touched.end();
  };
  // vm106, whose firewall is off, keeps the bridged pairs of vmbr1 and vmbr2 (the pair of a
  // bridge whose last guest left stays until a full compile).
  vm(106, "[OPTIONS]\nenable: 0\n",
     "net0: virtio=BC:24:11:00:00:06,bridge=vmbr1,firewall=1\n"
     "net1: virtio=BC:24:11:00:01:06,bridge=vmbr2,firewall=1\n");
  applied_ = compile(config_, options_)->ruleset;
  vm(103, "[OPTIONS]\nenable: 1\n[RULES]\nIN REJECT -p tcp -dport 25\n",
     "net0: virtio=BC:24:11:00:00:03,bridge=vmbr1,firewall=1\n");
  auto touched = expect_same_as_full(103);
  EXPECT_TRUE(incremental(touched));
  EXPECT_EQ(touches(touched, reject_chain("mark-vmbr1")), netdev);
  EXPECT_EQ(rejects_on().contains("vmbr1"), netdev);

  vm(104, "[OPTIONS]\nenable: 1\n", "net0: virtio=BC:24:11:00:00:04,bridge=vmbr2,firewall=1\n");
  on_fwbr(104);
  touched = expect_same_as_full(104);
  EXPECT_TRUE(incremental(touched));
  EXPECT_EQ(touches(touched, reject_chain("answer-vmbr2")), netdev);
  vm(105, "[OPTIONS]\nenable: 1\n", "net0: virtio=BC:24:11:00:00:05,bridge=vmbr2,firewall=1\n");
  on_fwbr(105);
  touched = expect_same_as_full(105);
  EXPECT_TRUE(incremental(touched));
  EXPECT_FALSE(touches(touched, reject_chain("answer-vmbr2")));
  if (netdev) {
    EXPECT_EQ(rejects_on(), (std::set<std::string>{"vmbr0", "vmbr1", "vmbr2"}));
  }

  // Leaving: vm103 takes vmbr1's reject port along (its last guest), vm104 none (vm105 is still
  // answered at vmbr2), vm105 vmbr2's.
  config_.guests.erase(103);
  EXPECT_TRUE(incremental(expect_same_as_full(103)));
  config_.guests.erase(104);
  EXPECT_TRUE(incremental(expect_same_as_full(104)));
  if (netdev) {
    EXPECT_EQ(rejects_on(), (std::set<std::string>{"vmbr0", "vmbr2"}));
  }
  config_.guests.erase(105);
  EXPECT_TRUE(incremental(expect_same_as_full(105)));
  if (netdev) {
    EXPECT_EQ(rejects_on(), (std::set<std::string>{"vmbr0"}));
  }
}

TEST_P(RecompileTest, NeedsTheShardCountOfTheFullCompile) {
  std::vector<std::string> warnings;
  EXPECT_FALSE(recompile_guest(applied_, config_, 100, CompileOptions{}, warnings));
}

INSTANTIATE_TEST_SUITE_P(Layouts, RecompileTest,
                         ::testing::Values(GuestLayout::Bridge, GuestLayout::Netdev),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace moat::firewall
