// Subprocess: runs a program for the few tools that have no library (qemu-img, dnsmasq, FRR,
// and tests that observe with nft/ip). argv is passed as-is, never through a shell. Each call
// is independent and thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "moat/base/result.h"

namespace moat {

struct RunRequest {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH
  std::string input;              // written to the child's stdin, then closed
  std::chrono::milliseconds timeout{30000};
};

struct RunResult {
  int exit_code = -1;  // -signal when killed by a signal
  std::string out;
  std::string err;
  bool timed_out = false;
};

// Runs the program to completion (or until the timeout, when it is killed). Fails only when
// the program cannot be started; a non-zero exit is reported in RunResult.
Result<RunResult> run(const RunRequest& request);

}  // namespace moat
