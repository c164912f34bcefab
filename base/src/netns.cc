#include "moat/base/netns.h"

#include <fcntl.h>
#include <sched.h>

#include <cerrno>

#include "moat/base/log.h"

namespace moat {

Result<Fd> open_netns(const std::string& name) {
  std::string path = name.starts_with('/') ? name : "/run/netns/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno(errno, "cannot open network namespace " + path);
  return Fd(fd);
}

Result<NetnsScope> NetnsScope::enter(const std::string& name) {
  if (name.empty()) return NetnsScope(Fd());
  Fd original(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!original.valid()) return fail_errno(errno, "cannot open the current network namespace");
  Fd target = MOAT_TRY(open_netns(name));
  if (::setns(target.get(), CLONE_NEWNET) != 0)
    return fail_errno(errno, "cannot enter network namespace " + name);
  return NetnsScope(std::move(original));
}

NetnsScope::~NetnsScope() {
  if (original_.valid() && ::setns(original_.get(), CLONE_NEWNET) != 0)
    log::error("cannot return to the original network namespace: errno {}", errno);
}

}  // namespace moat
