#pragma once
/// The seam between the pipeline and the database: writes one batch as one exactly-once
/// transaction. The real adapter is MariaDbSink; unit tests use fakes.

#include <cstdint>

#include "storage/batch.h"
#include "storage/db_error.h"

namespace sluice::storage {

enum class WriteOutcome {
  kCommitted,       ///< rows, dead letters and the offset advance are committed
  kAlreadyApplied,  ///< the offset row is already at or past the batch end: nothing written
  kBehind,          ///< the offset row is below the batch base: the source must reposition
  kFailed,          ///< nothing committed; `error` says why and its class says what to do
};

struct [[nodiscard]] WriteResult {
  WriteOutcome outcome = WriteOutcome::kFailed;
  DbStatus error;               ///< for kFailed
  int64_t db_next_offset = -1;  ///< for kAlreadyApplied and kBehind
  size_t rows = 0;              ///< rows inserted
  size_t dead_letters = 0;      ///< dead letters inserted (including duplicate uuids)
  size_t duplicates = 0;        ///< rows refused because their uuid is already stored
};

/// Thread safety: an instance belongs to one writer thread.
class BatchSink {
 public:
  virtual ~BatchSink() = default;
  /// Writes the batch in one transaction guarded by the compare-and-set on sluice_offsets.
  /// May trim the batch when part of it was applied already.
  virtual WriteResult write(Batch& batch) = 0;
  /// Closes any connection (pause, shutdown, after an outage).
  virtual void disconnect() = 0;
};

}  // namespace sluice::storage
