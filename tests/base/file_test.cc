#include "moat/base/file.h"

#include <gtest/gtest.h>

#include "moat/base/clock.h"
#include "moat/base/subprocess.h"

namespace moat {
namespace {

TEST(FileTest, AtomicWriteReplacesContentAndCreatesParents) {
  auto dir =
      std::filesystem::temp_directory_path() / ("moat-file-test-" + std::to_string(::getpid()));
  auto path = dir / "sub" / "state.json";
  ASSERT_TRUE(write_file_atomic(path, "one"));
  ASSERT_TRUE(write_file_atomic(path, "two"));
  EXPECT_EQ(read_file(path).value(), "two");
  // No temporary file is left beside it.
  int entries = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(path.parent_path()))
    ++entries;
  EXPECT_EQ(entries, 1);
  std::filesystem::remove_all(dir);
}

TEST(FileTest, ReadMissingFileIsNotFound) {
  auto r = read_file("/nonexistent/moat/file");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::NotFound);
}

TEST(SubprocessTest, CapturesOutputExitCodeAndInput) {
  auto r = run({.argv = {"sh", "-c", "cat; echo err >&2; exit 3"}, .input = "hello"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "hello");
  EXPECT_EQ(r->err, "err\n");
}

TEST(SubprocessTest, KillsOnTimeout) {
  auto r = run({.argv = {"sleep", "5"}, .timeout = std::chrono::milliseconds(100)});
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_NE(r->exit_code, 0);
}

TEST(SubprocessTest, MissingProgramFails) { EXPECT_FALSE(run({.argv = {"/nonexistent/program"}})); }

TEST(ClockTest, FakeClockAdvancesBothClocks) {
  FakeClock clock;
  auto w = clock.now();
  auto m = clock.monotonic();
  clock.advance(std::chrono::seconds(5));
  EXPECT_EQ(clock.now() - w, std::chrono::seconds(5));
  EXPECT_EQ(clock.monotonic() - m, std::chrono::seconds(5));
}

}  // namespace
}  // namespace moat
