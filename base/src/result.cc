#include "moat/base/result.h"

#include <cerrno>
#include <cstring>

namespace moat {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidConfig:
      return "InvalidConfig";
    case ErrorCode::InvalidArgument:
      return "InvalidArgument";
    case ErrorCode::NotFound:
      return "NotFound";
    case ErrorCode::AlreadyExists:
      return "AlreadyExists";
    case ErrorCode::Conflict:
      return "Conflict";
    case ErrorCode::Unavailable:
      return "Unavailable";
    case ErrorCode::PermissionDenied:
      return "PermissionDenied";
    case ErrorCode::Kernel:
      return "Kernel";
    case ErrorCode::Io:
      return "Io";
    case ErrorCode::Internal:
      return "Internal";
  }
  return "Unknown";
}

std::string SourceLocation::to_string() const {
  std::string out = file.empty() ? "<input>" : file;
  if (line > 0) {
    out += ':' + std::to_string(line);
    if (column > 0) out += ':' + std::to_string(column);
  }
  return out;
}

std::string Error::to_string() const {
  std::string out;
  if (where_) out = where_->to_string() + ": ";
  out += message_;
  for (auto it = context_.rbegin(); it != context_.rend(); ++it) out = *it + ": " + out;
  if (errno_ != 0) out += std::string(" (") + std::strerror(errno_) + ")";
  return out;
}

std::unexpected<Error> fail_errno(int err, std::string message) {
  ErrorCode code = ErrorCode::Kernel;
  switch (err) {
    case EPERM:
    case EACCES:
      code = ErrorCode::PermissionDenied;
      break;
    case ENOENT:
      code = ErrorCode::NotFound;
      break;
    case EEXIST:
      code = ErrorCode::AlreadyExists;
      break;
    case ERESTART:  // nf_tables: the batch was built for a generation that is gone
      code = ErrorCode::Conflict;
      break;
    case EAFNOSUPPORT:
    case EPROTONOSUPPORT:
    case EOPNOTSUPP:
      code = ErrorCode::Unavailable;
      break;
    default:
      break;
  }
  return std::unexpected(Error(code, std::move(message)).with_errno(err));
}

}  // namespace moat
