#pragma once
/// What every model-based test of a simulation does with its runs: each seed run for a number
/// of steps with its history's hash printed (the same seed prints the same hash), the first
/// failing seed reported with how to replay it and its whole history; and the determinism
/// check (a seed run twice gives one history). A run is any type constructed from a seed (and
/// the test's extra arguments) with `run(steps)`, `history()` and `history_hash()`.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/logging.h"

namespace sluice::testing {

/// The model's own log is off while it runs (thousands of transitions), unless
/// SLUICE_MODEL_LOG is set; back to info afterwards.
class QuietModelLog {
 public:
  QuietModelLog() {
    if (std::getenv("SLUICE_MODEL_LOG") == nullptr) set_log_level("off");
  }
  ~QuietModelLog() { set_log_level("info"); }
  QuietModelLog(const QuietModelLog&) = delete;
  QuietModelLog& operator=(const QuietModelLog&) = delete;
};

/// Runs each seed; `label` goes into the printed line ("seed 7<label>: history …"), `replay`
/// is what a person sets to run the failing seed again (e.g. "SLUICE_MODEL_SEEDS=").
template <typename Run, typename... Args>
void run_seeds(const std::vector<uint64_t>& seeds, int steps, const std::string& label,
               const std::string& replay, const Args&... args) {
  QuietModelLog quiet;
  for (const uint64_t seed : seeds) {
    Run run(seed, args...);
    run.run(steps);
    std::printf("seed %llu%s: history %016llx\n", static_cast<unsigned long long>(seed),
                label.c_str(), static_cast<unsigned long long>(run.history_hash()));
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "seed " << seed << " (replay: " << replay << seed << "); operations:\n"
                    << run.history();
      return;
    }
  }
}

/// Each seed run twice gives the same history, state after state.
template <typename Run>
void expect_one_history(const std::vector<uint64_t>& seeds, int steps) {
  QuietModelLog quiet;
  for (const uint64_t seed : seeds) {
    Run first(seed), second(seed);
    first.run(steps);
    second.run(steps);
    EXPECT_EQ(first.history_hash(), second.history_hash()) << "seed " << seed << " ran twice:\n"
                                                            << first.history() << "\n---\n"
                                                            << second.history();
  }
}

}  // namespace sluice::testing
