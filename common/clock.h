#pragma once
/// The clock seam: components that wait or measure age take a `Clock&`, so tests drive time —
/// and the randomness of their waits (a backoff's jitter), so a simulation replays from its
/// seed. Thread safety: implementations must be safe to call from any thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>

namespace sluice {

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  /// Monotonic time, for deadlines and ages.
  virtual time_point now() const = 0;
  /// Wall-clock time in milliseconds since the epoch, for records meant for people.
  virtual int64_t wall_ms() const = 0;
  /// A seed for a random sequence (a backoff's jitter): entropy here, drawn from the test's own
  /// seed in a simulation.
  virtual uint64_t seed() const = 0;
};

class SystemClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
  int64_t wall_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  uint64_t seed() const override {
    std::random_device rd;
    return (uint64_t{rd()} << 32) | rd();
  }
  static SystemClock& instance() {
    static SystemClock clock;
    return clock;
  }
};

/// A clock that moves only when told to, for tests. Safe from any thread (components under
/// test read it from their own threads while the test advances it).
class ManualClock final : public Clock {
 public:
  /// `start`: where the monotonic clock starts (an hour in: time_point{} reads as "never");
  /// `wall_skew`: how far this clock's wall time is off the others' (hosts disagree).
  explicit ManualClock(std::chrono::milliseconds start = std::chrono::hours(1),
                       std::chrono::milliseconds wall_skew = std::chrono::milliseconds(0))
      : elapsed_ms_(start.count()), wall_skew_ms_(wall_skew.count()) {}
  time_point now() const override { return time_point(std::chrono::milliseconds(elapsed_ms_)); }
  int64_t wall_ms() const override { return kWallStartMs + wall_skew_ms_ + elapsed_ms_; }
  /// The n-th seed handed out since set_seed(): the same sequence every run (splitmix64).
  uint64_t seed() const override {
    uint64_t z = (seeds_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  void set_seed(uint64_t seed) { seeds_ = seed; }
  void advance(std::chrono::milliseconds d) { elapsed_ms_ += d.count(); }

 private:
  static constexpr int64_t kWallStartMs = 1'700'000'000'000;
  std::atomic<int64_t> elapsed_ms_;
  const int64_t wall_skew_ms_;
  mutable std::atomic<uint64_t> seeds_{0};
};

}  // namespace sluice
