#pragma once
/// Exponential backoff with full jitter, for reconnects and retries: the n-th delay is a random
/// duration in [initial/2, min(max, initial * 2^n)], drawn from `seed` (Clock::seed(): a
/// simulation replays it). Not thread safe; one per retry loop.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace sluice {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, uint64_t seed)
      : initial_(initial), max_(max), rng_(seed) {}

  std::chrono::milliseconds next() {
    const auto ceiling =
        std::min<int64_t>(max_.count(), initial_.count() << std::min(attempt_, 20));
    ++attempt_;
    std::uniform_int_distribution<int64_t> dist(std::max<int64_t>(1, initial_.count() / 2),
                                                std::max<int64_t>(1, ceiling));
    return std::chrono::milliseconds(dist(rng_));
  }
  void reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace sluice
