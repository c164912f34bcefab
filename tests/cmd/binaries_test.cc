// The two binaries as a user meets them: every moat subcommand has --help, invalid input
// exits 2 naming the file and line, and moatd starts, logs and stops cleanly on SIGTERM.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>

#include "moat/base/file.h"
#include "moat/base/subprocess.h"

namespace moat {
namespace {

const std::string kMoat = std::string(MOAT_BUILD_DIR) + "/cmd/moat";
const std::string kMoatd = std::string(MOAT_BUILD_DIR) + "/cmd/moatd";

TEST(MoatCliTest, EverySubcommandHasHelp) {
  for (std::vector<std::string> cmd : {std::vector<std::string>{},
                                       {"fw"},
                                       {"fw", "compile"},
                                       {"fw", "check"},
                                       {"fw", "plan"},
                                       {"fw", "apply"},
                                       {"fw", "status"},
                                       {"fw", "simulate"},
                                       {"version"}}) {
    std::vector<std::string> argv = {kMoat};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    argv.push_back("--help");
    auto r = run({.argv = argv});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->exit_code, 0) << argv.size();
    EXPECT_NE(r->out.find("Usage"), std::string::npos) << r->out;
  }
}

TEST(MoatCliTest, InvalidRuleExitsTwoWithFileLineColumn) {
  auto root = std::filesystem::temp_directory_path() / ("moat-cli-" + std::to_string(getpid()));
  ASSERT_TRUE(
      write_file_atomic(root / "firewall" / "cluster.fw",
                        "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 99999\n"));
  auto r = run({.argv = {kMoat, "fw", "compile", "--config-root", root.string(), "--node", "n1"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_NE(r->err.find("firewall/cluster.fw:5:"), std::string::npos) << r->err;
  EXPECT_NE(r->err.find("99999"), std::string::npos) << r->err;
  std::filesystem::remove_all(root);
}

TEST(MoatdTest, StartsLogsAndStopsOnSigterm) {
  int err_pipe[2];
  ASSERT_EQ(pipe(err_pipe), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(err_pipe[1], 2);
    execl(kMoatd.c_str(), kMoatd.c_str(), "--config-root", "/nonexistent", nullptr);
    _exit(127);
  }
  close(err_pipe[1]);
  // Wait for the start line, then stop it.
  std::string log;
  char buf[512];
  while (log.find("moatd started") == std::string::npos) {
    ssize_t n = read(err_pipe[0], buf, sizeof(buf));
    ASSERT_GT(n, 0) << "moatd exited before logging: " << log;
    log.append(buf, static_cast<size_t>(n));
  }
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  for (ssize_t n; (n = read(err_pipe[0], buf, sizeof(buf))) > 0;)
    log.append(buf, static_cast<size_t>(n));
  close(err_pipe[0]);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(log.find("stopping"), std::string::npos) << log;
  EXPECT_NE(log.find("moatd stopped"), std::string::npos) << log;
}

}  // namespace
}  // namespace moat
