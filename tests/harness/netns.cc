#include "harness/netns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "moat/base/fd.h"
#include "moat/base/netns.h"
#include "moat/base/strings.h"

namespace moat::testing {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kIpTimeout{10000};

bool valid_ifname(const std::string& name) {
  return !name.empty() && name.size() < IFNAMSIZ &&
         name.find_first_of("/: \t\n") == std::string::npos;
}

// Namespace names become file names in /run/netns and arguments of `ip`.
bool valid_ns_suffix(const std::string& name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::string address_of(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

bool namespace_exists(const std::string& ns) {
  return !ns.empty() && ::access(("/run/netns/" + ns).c_str(), F_OK) == 0;
}

// Runs `ip` (argv[0] included) and turns a non-zero exit into an error carrying its stderr.
Status ip(const std::vector<std::string>& argv, const std::string& input = "") {
  RunResult r = MOAT_TRY(run({.argv = argv, .input = input, .timeout = kIpTimeout}));
  if (r.exit_code == 0) return {};
  std::string message = join(argv, " ") + " failed (exit " + std::to_string(r.exit_code) +
                        "): " + std::string(trim(r.err));
  if (!input.empty()) message += " [input: " + input + "]";
  ErrorCode code =
      r.err.find("File exists") != std::string::npos ? ErrorCode::AlreadyExists : ErrorCode::Kernel;
  return fail(code, message);
}

// Both write in the calling thread's namespace: /proc/sys/net resolves per thread.
Status write_sysctl(const std::string& path, const std::string& value) {
  std::string full = "/proc/sys/" + path;
  Fd fd(::open(full.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return fail_errno(errno, "cannot open " + full);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    return fail_errno(errno, "cannot write " + full);
  return {};
}

Status set_loopback_up() {
  Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return fail_errno(errno, "socket failed");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) return fail_errno(errno, "SIOCGIFFLAGS lo");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0) return fail_errno(errno, "SIOCSIFFLAGS lo");
  return {};
}

// br_netfilter's sysctls are per namespace and appear only once the module is loaded.
Status ensure_br_netfilter() {
  if (::access("/proc/sys/net/bridge", F_OK) == 0) return {};
  auto r = run({.argv = {"modprobe", "br_netfilter"}, .timeout = kIpTimeout});
  if (::access("/proc/sys/net/bridge", F_OK) == 0) return {};
  return fail(ErrorCode::Unavailable,
              "br_netfilter is not loaded and `modprobe br_netfilter` did not load it: " +
                  (r ? std::string(trim(r->err)) : r.error().to_string()));
}

// Loopback up and ICMP rate limits off (a test sends many rejects to one peer in a burst);
// for nodes also forwarding and br_netfilter, as on a hypervisor.
Status prepare_namespace(const std::string& ns, bool node) {
  auto scope = MOAT_TRY(NetnsScope::enter(ns));
  MOAT_RETURN_IF_ERROR(set_loopback_up());
  MOAT_RETURN_IF_ERROR(write_sysctl("net/ipv4/icmp_ratelimit", "0"));
  bool ipv6 = ::access("/proc/sys/net/ipv6", F_OK) == 0;
  if (ipv6) MOAT_RETURN_IF_ERROR(write_sysctl("net/ipv6/icmp/ratelimit", "0"));
  if (!node) return {};
  MOAT_RETURN_IF_ERROR(write_sysctl("net/ipv4/ip_forward", "1"));
  if (ipv6) MOAT_RETURN_IF_ERROR(write_sysctl("net/ipv6/conf/all/forwarding", "1"));
  MOAT_RETURN_IF_ERROR(ensure_br_netfilter());
  MOAT_RETURN_IF_ERROR(write_sysctl("net/bridge/bridge-nf-call-iptables", "1"));
  MOAT_RETURN_IF_ERROR(write_sysctl("net/bridge/bridge-nf-call-ip6tables", "1"));
  return {};
}

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

Result<SockAddr> parse_address(const std::string& ip, uint16_t port) {
  SockAddr a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
  } else {
    return fail(ErrorCode::InvalidArgument, "not an IP address: '" + ip + "'");
  }
  return a;
}

// A socket created inside `ns` stays in it after the thread returns to its own namespace.
Result<Fd> socket_in(const std::string& ns, int family, int type) {
  if (!namespace_exists(ns)) return fail(ErrorCode::NotFound, "no network namespace '" + ns + "'");
  auto scope = MOAT_TRY(NetnsScope::enter(ns));
  Fd fd(::socket(family, type | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fail_errno(errno, "socket failed in " + ns);
  return fd;
}

// Asks the kernel to queue ICMP errors with their sender, so a reject from the network can be
// told from the sender's own neighbour-resolution failure.
void enable_recverr(int fd, int family) {
  int on = 1;
  if (family == AF_INET)
    ::setsockopt(fd, SOL_IP, IP_RECVERR, &on, sizeof(on));
  else
    ::setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &on, sizeof(on));
}

std::optional<SockAddr> icmp_error_sender(int fd) {
  char data[512];
  alignas(cmsghdr) char control[512];
  iovec iov{data, sizeof(data)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  if (::recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return std::nullopt;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    bool v4 = c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR;
    bool v6 = c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR;
    if (!v4 && !v6) continue;
    sock_extended_err ee;
    std::memcpy(&ee, CMSG_DATA(c), sizeof(ee));
    if (ee.ee_origin != SO_EE_ORIGIN_ICMP && ee.ee_origin != SO_EE_ORIGIN_ICMP6) continue;
    SockAddr sender;
    sender.len = v4 ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    std::memcpy(&sender.ss, CMSG_DATA(c) + sizeof(ee), sender.len);  // SO_EE_OFFENDER
    return sender;
  }
  return std::nullopt;
}

// An address is local to `ns` exactly when a socket there can bind it.
bool is_local_address(const std::string& ns, SockAddr a) {
  auto fd = socket_in(ns, a.family(), SOCK_DGRAM);
  if (!fd) return false;
  if (a.family() == AF_INET)
    reinterpret_cast<sockaddr_in*>(&a.ss)->sin_port = 0;
  else
    reinterpret_cast<sockaddr_in6*>(&a.ss)->sin6_port = 0;
  return ::bind(fd->get(), a.get(), a.len) == 0 || errno == EADDRINUSE;
}

// True when an error queued on `fd` came from the network rather than from `ns` itself.
bool error_is_remote(const std::string& ns, int fd) {
  auto sender = icmp_error_sender(fd);
  return !sender || !is_local_address(ns, *sender);
}

// Polls until an event or the deadline; 0 on timeout.
int poll_until(pollfd* fds, nfds_t n, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return 0;
    int ready = ::poll(fds, n, static_cast<int>(left.count()));
    if (ready >= 0 || errno != EINTR) return ready;
  }
}

// A socket bound to the wildcard address of `ns` for IPv4 and IPv6 (listening, for TCP).
Result<Fd> bind_wildcard(const std::string& ns, int type, uint16_t port) {
  if (!namespace_exists(ns)) return fail(ErrorCode::NotFound, "no network namespace '" + ns + "'");
  auto scope = MOAT_TRY(NetnsScope::enter(ns));
  Fd fd(::socket(AF_INET6, type | SOCK_CLOEXEC, 0));
  SockAddr a;
  if (fd.valid()) {
    int off = 0;
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
  } else {
    fd = Fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return fail_errno(errno, "socket failed in " + ns);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
  }
  if (type == SOCK_STREAM) {
    int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  }
  if (::bind(fd.get(), a.get(), a.len) != 0)
    return fail_errno(errno, "cannot bind port " + std::to_string(port) + " in " + ns);
  if (type == SOCK_STREAM && ::listen(fd.get(), 128) != 0)
    return fail_errno(errno, "cannot listen on port " + std::to_string(port) + " in " + ns);
  return fd;
}

// Body of a forked server: only system calls, then death by SIGKILL from cleanup().
[[noreturn]] void serve(int fd, int type) {
  char buf[2048];
  for (;;) {
    if (type == SOCK_STREAM) {
      int c = ::accept(fd, nullptr, nullptr);
      if (c >= 0) ::close(c);
    } else {
      sockaddr_storage from{};
      socklen_t len = sizeof(from);
      ssize_t n = ::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n >= 0)
        ::sendto(fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
}

Result<TcpOutcome> try_tcp_connect(const std::string& from_ns, const std::string& to_ip,
                                   uint16_t port, std::chrono::milliseconds timeout) {
  SockAddr to = MOAT_TRY(parse_address(to_ip, port));
  Fd fd = MOAT_TRY(socket_in(from_ns, to.family(), SOCK_STREAM | SOCK_NONBLOCK));
  enable_recverr(fd.get(), to.family());
  auto deadline = Clock::now() + timeout;
  if (::connect(fd.get(), to.get(), to.len) == 0) return TcpOutcome::Connected;
  // Refused at once by the sender's own kernel (no route, local reject).
  if (errno != EINPROGRESS) return TcpOutcome::Refused;
  pollfd p{fd.get(), POLLOUT, 0};
  int ready = poll_until(&p, 1, deadline);
  if (ready < 0) return fail_errno(errno, "poll failed");
  if (ready == 0) return TcpOutcome::TimedOut;
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    return fail_errno(errno, "getsockopt(SO_ERROR) failed");
  if (err == 0) return TcpOutcome::Connected;
  if (err == ETIMEDOUT || !error_is_remote(from_ns, fd.get())) return TcpOutcome::TimedOut;
  return TcpOutcome::Refused;
}

Result<UdpOutcome> try_udp_probe(const std::string& from_ns, const std::string& to_ns,
                                 const std::string& to_ip, uint16_t port,
                                 std::chrono::milliseconds timeout) {
  static unsigned probes = 0;
  SockAddr to = MOAT_TRY(parse_address(to_ip, port));
  // EADDRINUSE means a listen_udp() echo server holds the port: its reply is the proof then.
  Fd receiver;
  if (auto r = bind_wildcard(to_ns, SOCK_DGRAM, port))
    receiver = std::move(*r);
  else if (r.error().sys_errno() != EADDRINUSE)
    return fail(std::move(r).error());
  Fd sender = MOAT_TRY(socket_in(from_ns, to.family(), SOCK_DGRAM | SOCK_NONBLOCK));
  enable_recverr(sender.get(), to.family());
  auto deadline = Clock::now() + timeout;
  if (::connect(sender.get(), to.get(), to.len) != 0) return UdpOutcome::Rejected;
  std::string token =
      "moat-udp-probe " + std::to_string(::getpid()) + " " + std::to_string(++probes);
  if (::send(sender.get(), token.data(), token.size(), 0) < 0) return UdpOutcome::Rejected;
  char buf[512];
  auto got_token = [&](int fd) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    return n == static_cast<ssize_t>(token.size()) && token.compare(0, token.size(), buf, n) == 0;
  };
  for (;;) {
    pollfd fds[2] = {{sender.get(), POLLIN, 0},
                     {receiver.valid() ? receiver.get() : -1, POLLIN, 0}};
    int ready = poll_until(fds, 2, deadline);
    if (ready < 0) return fail_errno(errno, "poll failed");
    if (ready == 0) return UdpOutcome::Lost;
    if ((fds[1].revents & POLLIN) && got_token(receiver.get())) return UdpOutcome::Delivered;
    if (fds[0].revents & POLLERR) {
      // Not remote: the sender's own neighbour resolution failed, so nothing will come.
      return error_is_remote(from_ns, sender.get()) ? UdpOutcome::Rejected : UdpOutcome::Lost;
    }
    if ((fds[0].revents & POLLIN) && got_token(sender.get())) return UdpOutcome::Delivered;
  }
}

}  // namespace

const char* to_string(TcpOutcome outcome) {
  switch (outcome) {
    case TcpOutcome::Connected:
      return "Connected";
    case TcpOutcome::Refused:
      return "Refused";
    case TcpOutcome::TimedOut:
      return "TimedOut";
  }
  return "?";
}

const char* to_string(UdpOutcome outcome) {
  switch (outcome) {
    case UdpOutcome::Delivered:
      return "Delivered";
    case UdpOutcome::Rejected:
      return "Rejected";
    case UdpOutcome::Lost:
      return "Lost";
  }
  return "?";
}

void PrintTo(TcpOutcome outcome, std::ostream* os) { *os << to_string(outcome); }
void PrintTo(UdpOutcome outcome, std::ostream* os) { *os << to_string(outcome); }

std::optional<std::string> netns_unavailable_reason() {
  static const std::optional<std::string> reason = []() -> std::optional<std::string> {
    if (::geteuid() != 0) return "not running as root (euid " + std::to_string(::geteuid()) + ")";
    pid_t pid = ::fork();
    if (pid < 0) return "fork failed: " + std::string(std::strerror(errno));
    if (pid == 0) ::_exit(::unshare(CLONE_NEWNET) == 0 ? 0 : (errno & 0xff));
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      return "cannot create a network namespace: " +
             std::string(std::strerror(WIFEXITED(status) ? WEXITSTATUS(status) : EINTR));
    auto r = run({.argv = {"ip", "-V"}});
    if (!r || r->exit_code != 0) return "iproute2's `ip` is not usable";
    return std::nullopt;
  }();
  return reason;
}

bool netns_required_by_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

Topology::Topology() {
  static unsigned counter = 0;
  unsigned pid = static_cast<unsigned>(::getpid()) & 0xffff;
  // Skip prefixes a crashed earlier process with a colliding pid left behind.
  for (int attempt = 0; attempt < 256; ++attempt) {
    id_ = (pid << 8) | (counter++ & 0xff);
    char buf[16];
    std::snprintf(buf, sizeof(buf), "mt%06x", id_);
    prefix_ = buf;
    bool in_use = false;
    if (DIR* dir = ::opendir("/run/netns")) {
      while (dirent* e = ::readdir(dir))
        if (std::string(e->d_name).starts_with(prefix_ + "-")) in_use = true;
      ::closedir(dir);
    }
    if (!in_use) break;
  }
}

Topology::~Topology() { cleanup(); }

Result<std::string> Topology::create_namespace(const std::string& name) {
  if (!valid_ns_suffix(name))
    return fail(ErrorCode::InvalidArgument, "bad namespace name '" + name + "'");
  std::string ns = prefix_ + "-" + name;
  MOAT_RETURN_IF_ERROR(ip({"ip", "netns", "add", ns}));
  // Registered only once made: on "File exists" the namespace is not ours to delete.
  namespaces_.push_back(ns);
  return ns;
}

Result<Node> Topology::add_node(const std::string& name) {
  std::string ns = MOAT_TRY(create_namespace(name));
  MOAT_RETURN_IF_ERROR(prepare_namespace(ns, /*node=*/true));
  return Node{ns};
}

Result<Bridge> Topology::add_bridge(const BridgeRequest& request) {
  if (!namespace_exists(request.node.ns))
    return fail(ErrorCode::NotFound, "no node namespace '" + request.node.ns + "'");
  if (!valid_ifname(request.name))
    return fail(ErrorCode::InvalidArgument, "bad bridge name '" + request.name + "'");
  // A fixed MAC: otherwise the bridge takes its lowest port's MAC, changing as ports come.
  unsigned n = bridges_made_++;
  char mac[32];
  std::snprintf(mac, sizeof(mac), "02:%02x:%02x:%02x:%02x:%02x", (id_ >> 16) & 0xff,
                (id_ >> 8) & 0xff, id_ & 0xff, (n >> 8) & 0xff, n & 0xff);
  std::string batch = "link add " + request.name + " address " + mac + " type bridge\n";
  if (!request.ipv4.empty()) batch += "addr add " + request.ipv4 + " dev " + request.name + "\n";
  if (!request.ipv6.empty())
    batch += "addr add " + request.ipv6 + " dev " + request.name + " nodad\n";
  batch += "link set " + request.name + " up\n";
  MOAT_RETURN_IF_ERROR(ip({"ip", "-n", request.node.ns, "-b", "-"}, batch));
  return Bridge{request.node.ns, request.name, address_of(request.ipv4), address_of(request.ipv6)};
}

Result<Guest> Topology::add_guest(const GuestRequest& request) {
  const Bridge& br = request.bridge;
  if (!namespace_exists(br.ns))
    return fail(ErrorCode::NotFound, "no node namespace '" + br.ns + "'");
  if (!valid_ifname(request.port))
    return fail(ErrorCode::InvalidArgument, "bad port name '" + request.port + "'");
  std::string ns = MOAT_TRY(create_namespace(request.name));
  MOAT_RETURN_IF_ERROR(prepare_namespace(ns, /*node=*/false));
  // The veth is born inside the node with its peer inside the guest, so nothing ever appears
  // in the host's namespace. Registered first: a half-made port is still deleted by name.
  ports_.push_back({br.ns, request.port});
  std::string peer = "peer name eth0";
  if (!request.mac.empty()) peer += " address " + request.mac;
  std::string node_batch = "link add " + request.port + " type veth " + peer + " netns " + ns +
                           "\nlink set " + request.port + " master " + br.name + "\nlink set " +
                           request.port + " up\n";
  MOAT_RETURN_IF_ERROR(ip({"ip", "-n", br.ns, "-b", "-"}, node_batch));
  std::string guest_batch;
  if (!request.ipv4.empty()) guest_batch += "addr add " + request.ipv4 + " dev eth0\n";
  if (!request.ipv6.empty()) guest_batch += "addr add " + request.ipv6 + " dev eth0 nodad\n";
  guest_batch += "link set eth0 up\n";
  if (request.default_route && !br.ipv4.empty() && !request.ipv4.empty())
    guest_batch += "route add default via " + br.ipv4 + "\n";
  if (request.default_route && !br.ipv6.empty() && !request.ipv6.empty())
    guest_batch += "route add default via " + br.ipv6 + "\n";
  MOAT_RETURN_IF_ERROR(ip({"ip", "-n", ns, "-b", "-"}, guest_batch));
  return Guest{ns, request.port, address_of(request.ipv4), address_of(request.ipv6)};
}

Result<RunResult> Topology::exec(const std::string& ns, const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout) const {
  if (!namespace_exists(ns)) return fail(ErrorCode::NotFound, "no network namespace '" + ns + "'");
  std::vector<std::string> full = {"ip", "netns", "exec", ns};
  full.insert(full.end(), argv.begin(), argv.end());
  return run({.argv = full, .timeout = timeout});
}

TcpOutcome Topology::tcp_connect(const std::string& from_ns, const std::string& to_ip,
                                 uint16_t port, std::chrono::milliseconds timeout) {
  auto r = try_tcp_connect(from_ns, to_ip, port, timeout);
  if (r) return *r;
  ADD_FAILURE() << "tcp_connect(" << from_ns << " -> " << to_ip << ":" << port
                << "): " << r.error().to_string();
  return TcpOutcome::TimedOut;
}

UdpOutcome Topology::udp_probe(const std::string& from_ns, const std::string& to_ns,
                               const std::string& to_ip, uint16_t port,
                               std::chrono::milliseconds timeout) {
  auto r = try_udp_probe(from_ns, to_ns, to_ip, port, timeout);
  if (r) return *r;
  ADD_FAILURE() << "udp_probe(" << from_ns << " -> " << to_ns << " " << to_ip << ":" << port
                << "): " << r.error().to_string();
  return UdpOutcome::Lost;
}

bool Topology::ping(const std::string& from_ns, const std::string& to_ip,
                    std::chrono::milliseconds timeout) {
  if (auto a = parse_address(to_ip, 0); !a) {
    ADD_FAILURE() << "ping: " << a.error().to_string();
    return false;
  }
  char wait[32];
  std::snprintf(wait, sizeof(wait), "%.3f", static_cast<double>(timeout.count()) / 1000.0);
  auto r = exec(from_ns, {"ping", "-n", "-q", "-c", "1", "-W", wait, to_ip},
                timeout + std::chrono::seconds(2));
  if (!r) {
    ADD_FAILURE() << "ping from " << from_ns << ": " << r.error().to_string();
    return false;
  }
  // Exit 1: no reply; 2: an error such as no route, also "not reachable".
  return r->exit_code == 0;
}

Status Topology::start_server(const std::string& ns, uint16_t port, int type) {
  // Bound before the fork so the port is open when this returns, and errors are ours to report.
  Fd fd = MOAT_TRY(bind_wildcard(ns, type, port));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno(errno, "fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(0);
    serve(fd.get(), type);
  }
  servers_.push_back(pid);
  return {};
}

Status Topology::listen_tcp(const std::string& ns, uint16_t port) {
  return start_server(ns, port, SOCK_STREAM);
}

Status Topology::listen_udp(const std::string& ns, uint16_t port) {
  return start_server(ns, port, SOCK_DGRAM);
}

void Topology::cleanup() {
  for (pid_t pid : servers_) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  servers_.clear();
  // Ports first, by name: deleting a namespace frees its devices only asynchronously.
  std::map<std::string, std::string> batches;
  for (const Port& p : ports_)
    if (namespace_exists(p.node_ns)) batches[p.node_ns] += "link del " + p.name + "\n";
  ports_.clear();
  for (const auto& [ns, batch] : batches) {
    auto r =
        run({.argv = {"ip", "-force", "-n", ns, "-b", "-"}, .input = batch, .timeout = kIpTimeout});
    // A port that was never made (a failed add_guest) is fine; anything else is a leak.
    if (!r || (r->exit_code != 0 && r->err.find("Cannot find device") == std::string::npos))
      ADD_FAILURE() << "cannot delete ports in " << ns << ": "
                    << (r ? r->err : r.error().to_string());
  }
  for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) {
    if (!namespace_exists(*it)) continue;
    if (auto s = ip({"ip", "netns", "del", *it}); !s)
      ADD_FAILURE() << "cannot delete namespace: " << s.error().to_string();
  }
  namespaces_.clear();
}

std::vector<std::string> Topology::leftovers() const {
  auto r = run({.argv = {"ip", "netns", "list"}, .timeout = kIpTimeout});
  // Never an empty list when the listing itself failed: that would read as "all clean".
  if (!r) return {"<ip netns list failed: " + r.error().to_string() + ">"};
  if (r->exit_code != 0) return {"<ip netns list failed: " + r->err + ">"};
  std::vector<std::string> out;
  for (std::string_view line : split(r->out, '\n')) {
    auto fields = split_ws(line);
    if (!fields.empty() && fields[0].starts_with(prefix_ + "-")) out.emplace_back(fields[0]);
  }
  return out;
}

void NetnsTest::SetUp() {
  MOAT_REQUIRE_NETNS();
  topo_.emplace();
}

void NetnsTest::TearDown() { topo_.reset(); }

}  // namespace moat::testing
