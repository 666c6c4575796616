#pragma once
/// A simulation's writers: inline writers run between loop rounds in an order drawn from the
/// seed.

#include <chrono>
#include <random>
#include <vector>

#include "common/clock.h"
#include "ingest/writer_pool.h"

namespace sluice::testing {

// --- A simulation's writers ------------------------------------------------------------------

/// A simulation's writer threads (writers run inline, over FakeSessions). After each loop
/// round, run(): up to `max_pieces` pieces of work, each by a writer the seed picks; then every
/// writer that has not run for kWake of the clock's time runs what is due — a writer thread
/// never sleeps longer (it wakes to close its session once the write lease has run out, or to
/// retry), so neither may a simulated one. A piece that would be a statement on a database
/// holding its writes (FakeDatabase::hold_writes: the transaction stays open until it lets go)
/// does not run.
class SimWriters {
 public:
  static constexpr std::chrono::milliseconds kWake{200};
  SimWriters(const ingest::InlineWriters& writers, std::mt19937_64& rng, const Clock& clock)
      : writers_(writers), rng_(rng), clock_(clock) {}
  void run(size_t max_pieces);

 private:
  static bool held(ingest::Writer& w);
  const ingest::InlineWriters& writers_;
  std::mt19937_64& rng_;
  const Clock& clock_;
  /// Per writer of writers_ (same order): when it last ran. Started afresh whenever the list
  /// changes (InlineWriters::generation): a new writer counts as just run.
  std::vector<Clock::time_point> last_run_;
  uint64_t generation_ = ~uint64_t{0};
};

}  // namespace sluice::testing
