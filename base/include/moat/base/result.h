// Result<T> and Error: the one error model of Moat (STYLE.md rules 3-4).
//
// Every fallible function returns Result<T> = std::expected<T, Error>. An Error carries a code
// from a small fixed set, a message a person can act on, a stack of context strings (outermost
// last), and, when the error is about a user's file, the file:line:column it points at.
// Value types; no thread-safety concerns. No exceptions cross project code.
#pragma once

#include <cerrno>
#include <expected>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace moat {

enum class ErrorCode {
  InvalidConfig,    // a user's configuration file or argument is wrong
  InvalidArgument,  // a caller passed something invalid (API request, CLI flag)
  NotFound,
  AlreadyExists,
  Conflict,          // concurrent change, lock held, version mismatch
  Unavailable,       // a daemon or kernel feature is not there (missing module, no socket)
  PermissionDenied,  // missing privilege (EPERM/EACCES)
  Kernel,            // the kernel refused (errno + netlink extended ack)
  Io,                // file or socket I/O failed
  Internal,          // a bug in Moat
};

// Human-readable name of a code ("InvalidConfig", ...).
const char* to_string(ErrorCode code);

// A position in a user's file. line and column are 1-based; 0 means unknown.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;

  // "file:line:column", dropping the parts that are unknown.
  std::string to_string() const;
  friend bool operator==(const SourceLocation&, const SourceLocation&) = default;
};

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::optional<SourceLocation>& where() const { return where_; }
  const std::vector<std::string>& context() const { return context_; }
  int sys_errno() const { return errno_; }

  // Builders; return *this so they chain: Error(...).at(loc).with_errno(e).
  Error& at(SourceLocation where) & {
    where_ = std::move(where);
    return *this;
  }
  Error&& at(SourceLocation where) && { return std::move(at(std::move(where))); }
  Error& with_errno(int e) & {
    errno_ = e;
    return *this;
  }
  Error&& with_errno(int e) && { return std::move(with_errno(e)); }
  // Adds what the caller was doing ("applying table inet moat"); printed outermost first.
  Error& add_context(std::string what) & {
    context_.push_back(std::move(what));
    return *this;
  }
  Error&& add_context(std::string what) && { return std::move(add_context(std::move(what))); }

  // "file:line:col: message" (or "message"), then ": context" entries, then errno text.
  std::string to_string() const;

 private:
  ErrorCode code_;
  std::string message_;
  std::optional<SourceLocation> where_;
  std::vector<std::string> context_;
  int errno_ = 0;
};

template <class T>
using Result = std::expected<T, Error>;
using Status = Result<void>;

// Shorthand for `return std::unexpected(Error(...))`.
inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected(Error(code, std::move(message)));
}
inline std::unexpected<Error> fail(Error error) { return std::unexpected(std::move(error)); }
// An error from errno: Kernel/PermissionDenied/NotFound/... chosen from the errno value.
std::unexpected<Error> fail_errno(int err, std::string message);

}  // namespace moat

// Evaluates a Result expression; returns its error from the enclosing function, else yields
// the value. GNU statement expression (GCC and Clang).
#define MOAT_TRY(expr)                                                                  \
  ({                                                                                    \
    auto&& moat_try_result_ = (expr);                                                   \
    if (!moat_try_result_) return std::unexpected(std::move(moat_try_result_).error()); \
    std::move(moat_try_result_).value();                                                \
  })

// Evaluates a Status/Result expression and returns its error from the enclosing function.
#define MOAT_RETURN_IF_ERROR(expr)                                              \
  do {                                                                          \
    auto&& moat_status_ = (expr);                                               \
    if (!moat_status_) return std::unexpected(std::move(moat_status_).error()); \
  } while (0)
