#pragma once
/// What an assignment starts from (DESIGN.md invariant 4), gathered for each partition assigned
/// — the facts `decide_start` decides on: what this instance's spool holds of it (appended but
/// not yet synced included: those are spooled all the same), sluice_offsets when MariaDB may be
/// asked, the group's committed offset, and — when none of those knows the partition — where
/// Kafka's log starts, checked against what other instances' spools may hold. The group's
/// offset is never ahead of MariaDB (only MariaDB's position is committed), so falling back to
/// it when MariaDB cannot be asked re-reads events but never skips any.
/// Thread safety: the ingest thread (it asks MariaDB and Kafka through their seams, and waits).

#include <optional>
#include <vector>

#include "ingest/event_source.h"
#include "ingest/fleet_claims.h"
#include "ingest/partition_cursor.h"
#include "ingest/spool_lane.h"
#include "ingest/start_offset.h"
#include "storage/batch_sink.h"

namespace sluice::ingest {

struct AssignmentFacts {
  /// Per assigned partition, in the order given.
  std::vector<StartFacts> facts;
  /// What the spool holds of each, staged events included (the cursor is told).
  std::vector<std::optional<storage::SpoolPartition>> spooled;
  /// sluice_offsets could not be read for an outage: the gate is to hear of it.
  std::optional<storage::DbStatus> outage;
};

/// `ask_database`: MariaDB may be asked (the gate is open); `fleet` may be null (no fleet).
AssignmentFacts gather_start_facts(const std::vector<TopicPartition>& assigned,
                                   bool ask_database, storage::BatchSink& control,
                                   EventSource& source, const SpoolLane& lane,
                                   const FleetClaims* fleet);

/// Reads sluice_offsets for these partitions and tells each cursor where MariaDB stands
/// (learned_database) or that it holds no row of it (learned_missing_row). Not ok when it
/// cannot be read: then no cursor of that topic or later was told.
storage::DbStatus tell_database_positions(storage::BatchSink& control,
                                          const std::vector<PartitionCursor*>& cursors);

}  // namespace sluice::ingest
