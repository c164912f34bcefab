// Network namespaces by name (/run/netns/NAME, as iproute2 names them). NetnsScope switches
// the calling thread into a namespace and back; sockets opened inside stay bound to it,
// which is how drivers talk netlink to a sandbox namespace. Not thread-safe per thread.
#pragma once

#include <string>

#include "moat/base/fd.h"
#include "moat/base/result.h"

namespace moat {

// Opens /run/netns/<name> (or an absolute path). NotFound when it does not exist.
Result<Fd> open_netns(const std::string& name);

class NetnsScope {
 public:
  // Enters namespace `name` on this thread; an empty name stays in the current one.
  static Result<NetnsScope> enter(const std::string& name);
  NetnsScope(NetnsScope&& other) noexcept : original_(std::move(other.original_)) {}
  NetnsScope& operator=(NetnsScope&&) = delete;
  // Returns the thread to the namespace it was in.
  ~NetnsScope();

 private:
  explicit NetnsScope(Fd original) : original_(std::move(original)) {}
  Fd original_;
};

}  // namespace moat
