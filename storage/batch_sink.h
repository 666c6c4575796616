#pragma once
/// The seam between the pipeline and the database: one session that writes one batch as one
/// exactly-once transaction, answers where each partition stands, and tells whether the server
/// takes writes. The real adapter is MariaDbSink; unit tests use fakes.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

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
  std::string failed_table{};   ///< for kFailed: the table whose statement failed, when one did
  /// Replay modes only (MariaDbSink's SinkMode): per table of the batch, in the order of
  /// Batch::tables, the rows not written because their uuid is already stored there. Empty
  /// otherwise.
  std::vector<size_t> present_per_table{};
  /// Replay modes only: offsets of the batch's dead letters not written because
  /// sluice_dead_letter already holds one for the same topic, partition and offset.
  std::vector<int64_t> dead_letters_present{};
};

/// Thread safety: an instance belongs to one thread (a writer, or the ingest thread for the
/// control session). Every method but disconnect() connects on demand.
class BatchSink {
 public:
  virtual ~BatchSink() = default;
  /// Writes the batch in one transaction guarded by the compare-and-set on sluice_offsets.
  /// May trim the batch when part of it was applied already, and may turn the rows of a table
  /// whose layout does not match into dead letters (reason "table_mismatch: ...").
  virtual WriteResult write(Batch& batch) = 0;
  /// Whether the server takes writes now: connects, makes sure the bookkeeping tables exist and
  /// checks that the server is not read-only (ER_OPTION_PREVENTS_STATEMENT when it is).
  virtual DbStatus probe() = 0;
  /// next_offset per partition of `topic` for this consumer group (sluice_offsets).
  virtual DbStatus read_offsets(const std::string& topic, std::map<int32_t, int64_t>& out) = 0;
  /// Closes any connection (pause, shutdown, after an outage).
  virtual void disconnect() = 0;
  /// Aborts the statement a `write` on another thread is running, if any: its connection is
  /// shut down, the server rolls the transaction back, and the write fails. Safe from any
  /// thread; a no-op by default.
  virtual void cancel() {}
  /// The server's innodb_autoinc_lock_mode as the last successful probe read it; -1 unknown.
  /// Below 2, InnoDB holds a table's AUTO-INC lock for a whole LOAD DATA: writers loading into
  /// one table take turns.
  virtual int autoinc_lock_mode() const { return -1; }
  /// Which server the last successful probe reached, whatever its endpoint is called here
  /// (@@server_uid); "" unknown.
  virtual std::string server_identity() const { return ""; }
};

}  // namespace sluice::storage
