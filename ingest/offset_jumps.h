#pragma once
/// Offsets out of line, and what they mean (DESIGN.md invariant 4).
///
/// Skipped — Kafka delivered a later offset than the one wanted, or the spool holds a hole:
/// offsets holding no records
/// (a compacted log, transaction markers) are simply passed; offsets that expired from Kafka
/// unread are a gap, recorded once (a `kafka_gap` dead letter in the partition's batch, the
/// log, status and the counter); offsets another instance's spool claims are neither, and the
/// partition waits for MariaDB to pass them (FleetClaims).
///
/// Rewound — Kafka delivered an offset below anything the assignment fetched from: the log was
/// rewound under us (a recreated topic). Those offsets are below what sluice_offsets records
/// as written, so they are not written again; but it is said (counted, logged at a bounded
/// rate), since only a person can tell what happened to the topic. Or MariaDB is behind what
/// was written there: a write found sluice_offsets below its batch (a failover to a replica
/// that lags, a restore from a backup); the partition reads the missing range again.
///
/// The cursor decides (PartitionCursor::resolve_jump, resolve_spool_hole); this unit gathers
/// the facts it decides on — where the broker says the log starts, what the fleet claims — and
/// records what it returns as expired. Ingest thread.

#include <chrono>
#include <cstdint>
#include <optional>

#include "common/logging.h"
#include "ingest/event_source.h"
#include "ingest/fleet_claims.h"
#include "ingest/partition_cursor.h"
#include "ingest/pipeline_status.h"
#include "ingest/status_board.h"

namespace sluice::ingest {

class OffsetJumps {
 public:
  /// `fleet` unset: only this instance's spool counts.
  OffsetJumps(const FleetClaims* fleet, PipelineStats& stats, StatusBoard& board)
      : fleet_(fleet), stats_(stats), board_(board) {}

  /// Before PartitionCursor::take: a message that repeats the jump being verified is believed
  /// (offsets holding no records) only while Kafka still has where it jumped from; retention
  /// may have taken those offsets between the two looks, or the broker cannot say — then the
  /// verification is forgotten and take() reports the jump again.
  void recheck(PartitionCursor& c, int64_t offset, EventSource& source);
  /// take() said Take::kJump for `offset`: resolves it and records what expired. Returns what
  /// to do with the message now.
  Take jump(PartitionCursor& c, int64_t offset, EventSource& source);
  /// The drain met `offset` past the partition's next: resolves the hole and records what
  /// expired. kBatch: batch `offset` now; kDrop: stop draining this partition for now.
  Take spool_hole(PartitionCursor& c, int64_t offset, EventSource& source);
  /// take() said Take::kStale for `offset`: when it lies below anything fetched, the log was
  /// rewound — counted and logged.
  void stale(const PartitionCursor& c, int64_t offset);
  /// A write of batch [base, end) found MariaDB's next offset at `db_next`, behind it: the
  /// cursor reads again from there (PartitionCursor::behind), said at a bounded rate.
  void database_behind(PartitionCursor& c, int64_t db_next, uint64_t generation, int64_t base,
                       int64_t end);
  /// See FleetClaims::first_claimed; nullopt without a fleet, `from` while the fleet's claims
  /// are not known yet (all of it may be another spool's).
  std::optional<int64_t> first_claimed(const PartitionCursor& c, int64_t from, int64_t to) const;

 private:
  /// Where the partition's log starts now, asking the broker; -1 when it cannot be asked.
  int64_t log_start(const PartitionCursor& c, EventSource& source) const;
  void record(PartitionCursor& c, const PartitionCursor::JumpOutcome& out, const char* where);

  const FleetClaims* fleet_;
  PipelineStats& stats_;
  StatusBoard& board_;
  RateLimiter rewound_log_{std::chrono::seconds(30)};
  RateLimiter behind_log_{std::chrono::seconds(10)};
};

}  // namespace sluice::ingest
