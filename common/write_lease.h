#pragma once
/// Until when this instance may write to MariaDB (DESIGN.md invariant 5): the fleet renews it
/// each time it reads one of its own records back from the fleet's control topic, proving that
/// its view of the fleet — a pause included — is fresh; the writers check it before each
/// attempt and again just before COMMIT, and the pipeline closes its gate when it runs out. It
/// is a deadline on this host's monotonic clock, so it runs out by itself: nothing has to
/// happen for an instance cut off from the fleet to stop writing.
///
/// A lease made `unbounded()` never runs out (an instance outside a fleet: tests, tools).
/// Thread safety: every method from any thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>

#include "common/clock.h"

namespace sluice {

class WriteLease {
 public:
  /// Starts run out: nothing may be written until the first renewal.
  explicit WriteLease(const Clock& clock) : clock_(clock) {}
  WriteLease(const WriteLease&) = delete;
  WriteLease& operator=(const WriteLease&) = delete;

  /// A lease that never runs out.
  static WriteLease& unbounded() {
    static WriteLease lease(SystemClock::instance(), kForever);
    return lease;
  }

  /// Valid until `until` (never shortened by a renewal that comes late: `until` only moves
  /// forward).
  void renew(Clock::time_point until) {
    const int64_t t = ticks(until);
    int64_t cur = until_.load();
    while (t > cur && !until_.compare_exchange_weak(cur, t)) {
    }
  }
  /// Ends the lease now (a clean stop, a conflict).
  void revoke() {
    if (until_.load() != kForever) until_.store(kNever);
  }
  bool valid() const { return until_.load() > ticks(clock_.now()); }
  /// How long it has left (negative: run out that long ago); nullopt-like max for unbounded.
  std::chrono::milliseconds remaining() const {
    const int64_t u = until_.load();
    if (u == kForever) return std::chrono::milliseconds::max();
    if (u == kNever) return std::chrono::milliseconds::min();
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::nanoseconds(u - ticks(clock_.now())));
  }
  const Clock& clock() const { return clock_; }

 private:
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
  static constexpr int64_t kForever = std::numeric_limits<int64_t>::max();
  WriteLease(const Clock& clock, int64_t until) : clock_(clock), until_(until) {}
  static int64_t ticks(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }

  const Clock& clock_;
  std::atomic<int64_t> until_{kNever};
};

}  // namespace sluice
