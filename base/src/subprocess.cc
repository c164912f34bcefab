#include "moat/base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "moat/base/fd.h"

extern char** environ;

namespace moat {

namespace {

Result<std::pair<Fd, Fd>> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail_errno(errno, "pipe failed");
  return std::pair{Fd(fds[0]), Fd(fds[1])};
}

}  // namespace

Result<RunResult> run(const RunRequest& request) {
  if (request.argv.empty()) return fail(ErrorCode::InvalidArgument, "empty command");
  auto [in_r, in_w] = MOAT_TRY(make_pipe());
  auto [out_r, out_w] = MOAT_TRY(make_pipe());
  auto [err_r, err_w] = MOAT_TRY(make_pipe());

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  std::vector<char*> argv;
  for (const auto& a : request.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return fail_errno(rc, "cannot start " + request.argv[0]);
  in_r.reset();
  out_w.reset();
  err_w.reset();

  RunResult result;
  size_t written = 0;
  if (request.input.empty()) in_w.reset();
  auto deadline = std::chrono::steady_clock::now() + request.timeout;
  char buf[65536];
  while (out_r.valid() || err_r.valid()) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_r.valid()) fds[out_i = n++] = {out_r.get(), POLLIN, 0};
    if (err_r.valid()) fds[err_i = n++] = {err_r.get(), POLLIN, 0};
    if (in_w.valid()) fds[in_i = n++] = {in_w.get(), POLLOUT, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    int ready = ::poll(fds, n, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) break;
    auto drain = [&](int i, Fd& fd, std::string& sink) {
      if (i < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t got = ::read(fd.get(), buf, sizeof(buf));
      if (got > 0)
        sink.append(buf, static_cast<size_t>(got));
      else if (got == 0 || errno != EINTR)
        fd.reset();
    };
    drain(out_i, out_r, result.out);
    drain(err_i, err_r, result.err);
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t put =
          ::write(in_w.get(), request.input.data() + written, request.input.size() - written);
      if (put > 0) written += static_cast<size_t>(put);
      if (put < 0 || written == request.input.size()) in_w.reset();
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return result;
}

}  // namespace moat
