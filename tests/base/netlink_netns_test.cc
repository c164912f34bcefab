// NetlinkSocket::receive_dump and receive_until against replies a second netlink socket sends
// to it (unicast between user sockets needs CAP_NET_ADMIN, hence a netns-labelled test).
#include "moat/base/netlink.h"

#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <vector>

namespace moat {
namespace {

// A raw NETLINK_ROUTE socket that plays the kernel for `to`.
class FakeKernel {
 public:
  explicit FakeKernel(uint32_t to) : to_(to) {
    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    sockaddr_nl self{};
    self.nl_family = AF_NETLINK;
    if (fd_ >= 0) bind(fd_, reinterpret_cast<sockaddr*>(&self), sizeof(self));
  }
  ~FakeKernel() {
    if (fd_ >= 0) close(fd_);
  }
  FakeKernel(const FakeKernel&) = delete;
  FakeKernel& operator=(const FakeKernel&) = delete;

  // One datagram holding one message of `type` with `seq` and `flags` (and a zeroed ifinfomsg).
  bool send(uint16_t type, uint32_t seq, uint16_t flags) {
    std::vector<uint8_t> buf(NLMSG_SPACE(sizeof(ifinfomsg)));
    auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
    nlh->nlmsg_len = static_cast<uint32_t>(buf.size());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = flags;
    nlh->nlmsg_seq = seq;
    sockaddr_nl dst{};
    dst.nl_family = AF_NETLINK;
    dst.nl_pid = to_;
    return sendto(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) ==
           static_cast<ssize_t>(buf.size());
  }

 private:
  uint32_t to_;
  int fd_ = -1;
};

class ReceiveDump : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (CAP_NET_ADMIN) for user-to-user netlink";
    Result<NetlinkSocket> s = NetlinkSocket::open(NETLINK_ROUTE, "");
    ASSERT_TRUE(s.has_value()) << s.error().to_string();
    sock_.emplace(std::move(*s));
    kernel_.emplace(sock_->port_id());
  }
  Status receive(uint32_t seq) {
    return sock_->receive_dump(seq, [&](const nlmsghdr*) -> Status {
      ++messages_;
      return {};
    });
  }
  std::optional<NetlinkSocket> sock_;
  std::optional<FakeKernel> kernel_;
  int messages_ = 0;
};

TEST_F(ReceiveDump, AnInterruptedDumpIsAConflictEvenWhenItsDoneIsNotFlagged) {
  // The kernel flags only the reply where it saw the table change.
  ASSERT_TRUE(kernel_->send(RTM_NEWLINK, 7, NLM_F_MULTI | NLM_F_DUMP_INTR));
  ASSERT_TRUE(kernel_->send(RTM_NEWLINK, 7, NLM_F_MULTI));
  ASSERT_TRUE(kernel_->send(NLMSG_DONE, 7, NLM_F_MULTI));
  Status s = receive(7);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::Conflict) << s.error().to_string();
}

TEST_F(ReceiveDump, RepliesToOtherRequestsDoNotEndOrFeedTheDump) {
  ASSERT_TRUE(kernel_->send(RTM_NEWLINK, 3, NLM_F_MULTI));
  ASSERT_TRUE(kernel_->send(NLMSG_DONE, 3, NLM_F_MULTI));
  ASSERT_TRUE(kernel_->send(RTM_NEWLINK, 8, NLM_F_MULTI));
  ASSERT_TRUE(kernel_->send(RTM_NEWLINK, 8, NLM_F_MULTI));
  ASSERT_TRUE(kernel_->send(NLMSG_DONE, 8, NLM_F_MULTI));
  Status s = receive(8);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(messages_, 2);
}

TEST_F(ReceiveDump, ReceiveUntilSkipsTheDoneOfAnAbandonedEarlierDump) {
  // A DONE of dump 3 (its reader gave up early) must not end the wait for dump 9.
  ASSERT_TRUE(kernel_->send(NLMSG_DONE, 3, NLM_F_MULTI));
  ASSERT_TRUE(kernel_->send(RTM_NEWLINK, 9, NLM_F_MULTI));
  ASSERT_TRUE(kernel_->send(NLMSG_DONE, 9, NLM_F_MULTI));
  Status s = sock_->receive_until(9, [&](const nlmsghdr* nlh) -> Status {
    if (nlh->nlmsg_seq == 9) ++messages_;
    return {};
  });
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(messages_, 1);
}

}  // namespace
}  // namespace moat
