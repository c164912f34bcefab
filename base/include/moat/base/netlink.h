// NetlinkSocket: RAII over a libmnl socket, optionally opened inside a named network
// namespace. It sends whole batches in one sendmsg and reads back acks and errors, mapping
// NLMSG_ERROR (with the extended-ack message when the kernel gives one) to Error. One socket
// per thread; not thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "moat/base/result.h"

struct mnl_socket;
struct nlmsghdr;
struct nlattr;

namespace moat {

// The attributes of a netlink message after its fixed header of `header` bytes, or of a nest,
// by type (the last one of a type wins; types beyond the array are ignored).
using NetlinkAttrs = std::array<const nlattr*, 128>;
NetlinkAttrs netlink_attrs(const nlmsghdr* nlh, size_t header);
NetlinkAttrs netlink_nested(const nlattr* nest);  // all null for a null nest

class NetlinkSocket {
 public:
  // Opens and binds a socket of `bus` (NETLINK_NETFILTER, NETLINK_ROUTE, ...) inside network
  // namespace `netns` (empty: the caller's). Enables extended acks.
  static Result<NetlinkSocket> open(int bus, const std::string& netns = "");
  NetlinkSocket(NetlinkSocket&& other) noexcept;
  NetlinkSocket& operator=(NetlinkSocket&& other) noexcept;
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;
  ~NetlinkSocket();

  uint32_t port_id() const;
  // The socket's descriptor, for socket options (NETLINK_GET_STRICT_CHK, SO_RCVBUFFORCE).
  int fd() const;
  // Raises the send buffer (SO_SNDBUFFORCE, needs CAP_NET_ADMIN) so a batch of `bytes` fits
  // in one sendmsg.
  Status reserve_send_buffer(size_t bytes);
  // Sends `bytes` (one or more netlink messages) in one sendmsg.
  Status send(std::span<const uint8_t> bytes);

  // Called for every message that is not an error or done. Returning an error stops.
  using MessageHandler = std::function<Status(const nlmsghdr*)>;
  // Reads replies until an ack/error for sequence `last_seq` (or the NLMSG_DONE of dump
  // `last_seq`) arrives.
  // Each NLMSG_ERROR with a non-zero code becomes an Error whose message carries the kernel's
  // extended ack; `on_error_seq` receives the failing message's sequence number first, so a
  // caller can map it back to what it sent.
  Status receive_until(uint32_t last_seq, const MessageHandler& on_message = {},
                       const std::function<void(uint32_t seq, int err)>& on_error_seq = {});

  // Reads the replies of the dump sent with sequence `seq` up to its NLMSG_DONE, handing each
  // to `on_message`. Replies of other sequences (left over from an earlier request) are
  // skipped, so a stale DONE or error does not end or fail this dump. An NLMSG_ERROR for `seq`
  // becomes its Error. Conflict when the kernel flagged any reply NLM_F_DUMP_INTR (the table
  // changed during the dump, so what was handed over may be inconsistent): dump again.
  Status receive_dump(uint32_t seq, const MessageHandler& on_message);

  // Reads the acks of pipelined requests (each sent with NLM_F_ACK) until the one for
  // `last_seq` arrives, calling `on_ack` with each one's sequence number, its errno (0 on
  // success) and the kernel's extended-ack message; unlike receive_until(), an error does not
  // stop the reading, so a caller can map every failure of a batch to what it sent.
  using AckHandler = std::function<void(uint32_t seq, int err, const std::string& extack)>;
  Status receive_acks(uint32_t last_seq, const AckHandler& on_ack);

 private:
  explicit NetlinkSocket(mnl_socket* socket) : socket_(socket) {}
  mnl_socket* socket_ = nullptr;
};

}  // namespace moat
