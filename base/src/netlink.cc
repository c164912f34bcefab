#include "moat/base/netlink.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "moat/base/netns.h"

namespace moat {

namespace {

int store_attr(const nlattr* a, void* data) {
  auto* attrs = static_cast<NetlinkAttrs*>(data);
  uint16_t type = mnl_attr_get_type(a);
  if (type < attrs->size()) (*attrs)[type] = a;
  return MNL_CB_OK;
}

}  // namespace

NetlinkAttrs netlink_attrs(const nlmsghdr* nlh, size_t header) {
  NetlinkAttrs out{};
  mnl_attr_parse(nlh, static_cast<unsigned>(header), store_attr, &out);
  return out;
}

NetlinkAttrs netlink_nested(const nlattr* nest) {
  NetlinkAttrs out{};
  if (nest) mnl_attr_parse_nested(nest, store_attr, &out);
  return out;
}

Result<NetlinkSocket> NetlinkSocket::open(int bus, const std::string& netns) {
  auto scope = MOAT_TRY(NetnsScope::enter(netns));
  mnl_socket* socket = mnl_socket_open2(bus, SOCK_CLOEXEC);
  if (socket == nullptr) return fail_errno(errno, "cannot open netlink socket");
  NetlinkSocket owned(socket);
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0)
    return fail_errno(errno, "cannot bind netlink socket");
  int one = 1;
  mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &one, sizeof(one));
  mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &one, sizeof(one));
  return owned;
}

NetlinkSocket::NetlinkSocket(NetlinkSocket&& other) noexcept
    : socket_(std::exchange(other.socket_, nullptr)) {}

NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&& other) noexcept {
  if (this != &other) {
    if (socket_ != nullptr) mnl_socket_close(socket_);
    socket_ = std::exchange(other.socket_, nullptr);
  }
  return *this;
}

NetlinkSocket::~NetlinkSocket() {
  if (socket_ != nullptr) mnl_socket_close(socket_);
}

uint32_t NetlinkSocket::port_id() const { return mnl_socket_get_portid(socket_); }

int NetlinkSocket::fd() const { return mnl_socket_get_fd(socket_); }

Status NetlinkSocket::reserve_send_buffer(size_t bytes) {
  int size = static_cast<int>(bytes + 65536);
  int fd = mnl_socket_get_fd(socket_);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) != 0 &&
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) != 0)
    return fail_errno(errno, "cannot size the netlink send buffer");
  return {};
}

Status NetlinkSocket::send(std::span<const uint8_t> bytes) {
  ssize_t n = mnl_socket_sendto(socket_, bytes.data(), bytes.size());
  if (n < 0) return fail_errno(errno, "netlink send failed");
  if (static_cast<size_t>(n) != bytes.size())
    return fail(ErrorCode::Kernel, "netlink send was truncated");
  return {};
}

namespace {

// The extended-ack message of an NLMSG_ERROR, if the kernel attached one.
std::string extack_message(const nlmsghdr* nlh) {
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return {};
  size_t offset = sizeof(*err);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
  const auto* base = static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + offset;
  int64_t left = static_cast<int64_t>(nlh->nlmsg_len) - static_cast<int64_t>(MNL_NLMSG_HDRLEN) -
                 static_cast<int64_t>(offset);
  const auto* attr = reinterpret_cast<const nlattr*>(base);
  while (left >= static_cast<int64_t>(sizeof(nlattr)) && attr->nla_len >= sizeof(nlattr) &&
         attr->nla_len <= left) {
    if ((attr->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG)
      return std::string(static_cast<const char*>(mnl_attr_get_payload(attr)));
    int64_t step = NLA_ALIGN(attr->nla_len);
    left -= step;
    attr = reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(attr) + step);
  }
  return {};
}

// One datagram into `buf` (retried on EINTR); its length.
Result<int> receive_some(mnl_socket* socket, std::vector<uint8_t>& buf) {
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(socket, buf.data(), buf.size());
    if (n >= 0) return static_cast<int>(n);
    if (errno != EINTR) return fail_errno(errno, "netlink receive failed");
  }
}

}  // namespace

Status NetlinkSocket::receive_until(uint32_t last_seq, const MessageHandler& on_message,
                                    const std::function<void(uint32_t, int)>& on_error_seq) {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  for (;;) {
    int len = MOAT_TRY(receive_some(socket_, buf));
    auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data());
    while (mnl_nlmsg_ok(nlh, len)) {
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (err->error != 0) {
          if (on_error_seq) on_error_seq(nlh->nlmsg_seq, -err->error);
          std::string detail = extack_message(nlh);
          return fail_errno(-err->error, detail.empty() ? "kernel rejected the request"
                                                        : "kernel rejected the request: " + detail);
        }
        if (nlh->nlmsg_seq == last_seq) return {};
      } else if (nlh->nlmsg_type == NLMSG_DONE) {
        // The end of our dump; one left over from an abandoned earlier dump is skipped.
        if (nlh->nlmsg_seq == last_seq) return {};
      } else if (on_message) {
        MOAT_RETURN_IF_ERROR(on_message(nlh));
      }
      nlh = mnl_nlmsg_next(nlh, &len);
    }
  }
}

Status NetlinkSocket::receive_dump(uint32_t seq, const MessageHandler& on_message) {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  bool interrupted = false;
  for (;;) {
    int len = MOAT_TRY(receive_some(socket_, buf));
    auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data());
    while (mnl_nlmsg_ok(nlh, len)) {
      if (nlh->nlmsg_seq == seq) {
        // The kernel flags only the reply where it noticed the change, not the DONE after it.
        if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
        if (nlh->nlmsg_type == NLMSG_ERROR) {
          const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
          if (err->error != 0) {
            std::string detail = extack_message(nlh);
            return fail_errno(-err->error, detail.empty()
                                               ? "kernel rejected the request"
                                               : "kernel rejected the request: " + detail);
          }
        } else if (nlh->nlmsg_type == NLMSG_DONE) {
          if (interrupted) {
            return fail(ErrorCode::Conflict, "netlink dump was interrupted by a concurrent change");
          }
          return {};
        } else if (on_message) {
          MOAT_RETURN_IF_ERROR(on_message(nlh));
        }
      }
      nlh = mnl_nlmsg_next(nlh, &len);
    }
  }
}

Status NetlinkSocket::receive_acks(uint32_t last_seq, const AckHandler& on_ack) {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  for (;;) {
    int len = MOAT_TRY(receive_some(socket_, buf));
    auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data());
    bool last = false;
    while (mnl_nlmsg_ok(nlh, len)) {
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        on_ack(nlh->nlmsg_seq, -err->error, err->error != 0 ? extack_message(nlh) : std::string());
        last = last || nlh->nlmsg_seq == last_seq;
      }
      nlh = mnl_nlmsg_next(nlh, &len);
    }
    if (last) return {};
  }
}

}  // namespace moat
