// The clock seam: code that needs the time takes a Clock&, so tests inject a FakeClock.
// SystemClock is stateless and thread-safe; FakeClock is not synchronized.
#pragma once

#include <chrono>

namespace moat {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, for timestamps shown to people and stored in state files.
  virtual std::chrono::system_clock::time_point now() const = 0;
  // Monotonic time, for measuring durations and timeouts.
  virtual std::chrono::steady_clock::time_point monotonic() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point monotonic() const override {
    return std::chrono::steady_clock::now();
  }
  // A process-wide instance.
  static const SystemClock& instance();
};

class FakeClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override { return wall_; }
  std::chrono::steady_clock::time_point monotonic() const override { return mono_; }
  void advance(std::chrono::nanoseconds d) {
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
    mono_ += d;
  }
  void set_wall(std::chrono::system_clock::time_point t) { wall_ = t; }

 private:
  std::chrono::system_clock::time_point wall_{};
  std::chrono::steady_clock::time_point mono_{};
};

}  // namespace moat
