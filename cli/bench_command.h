#pragma once
/// `sluice bench`: a load test of the configured MariaDB through Sluice's real hot path
/// (ingest/load_test.h), sweeping batch sizes and writer counts. It writes only to scratch
/// tables named `sluice_bench_*` and drops them afterwards unless told to keep them.

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::cli {

struct BenchOptions {
  std::string config_path;
  std::string schema = "NavigationTiming";
  int64_t revision = 0;  ///< 0: the newest revision under schemas.path
  uint64_t events = 100'000;
  std::vector<size_t> batch_rows{1000, 5000};
  std::vector<size_t> writers{1, 2, 4};
  uint64_t backlog = 1'000'000;
  bool keep = false;
  bool json = false;
};

/// Runs the sweep; returns the process exit code (0, 1 when a run failed, 2 for bad config).
int bench_command(const BenchOptions& options);

}  // namespace sluice::cli
