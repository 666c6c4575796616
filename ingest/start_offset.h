#pragma once
/// Where a partition starts when it is assigned (DESIGN.md invariant 4), as a pure function of
/// what is known at that moment: this instance's spool, MariaDB's sluice_offsets (when it could
/// be asked), and the consumer group's committed offset.
///
/// The answer has two parts, because the spool and Kafka are read at once: `fetch` is where
/// Kafka is read from next, `floor` the lowest offset MariaDB is not known to hold — where the
/// partition's events are written from. Between the two lies what the spool holds (drained
/// first, invariant 3) and, when MariaDB lags behind the spool (a failover to a server that
/// lags, a restore from a backup), a range read again from Kafka before the spool drains.
/// Thread safety: pure.

#include <cstdint>
#include <optional>

namespace sluice::ingest {

/// Where the start offset was taken from (for the log and status).
enum class StartSource {
  kSpool,     ///< this instance's spool holds the partition: Kafka goes on after it
  kDatabase,  ///< sluice_offsets: what MariaDB holds
  kGroup,     ///< the consumer group's committed offset (never ahead of MariaDB)
  kEarliest,  ///< nothing known: the oldest event Kafka has
};

const char* start_source_name(StartSource source);

struct StartFacts {
  /// What this instance's spool holds of the partition: [first, last], or nothing.
  struct Spooled {
    int64_t first = -1;
    int64_t last = -1;
  };
  std::optional<Spooled> spool;
  /// sluice_offsets' next_offset, when MariaDB was asked and has a row; nullopt otherwise.
  std::optional<int64_t> database;
  /// The group's committed offset, or a negative value when it has none or it is unknown.
  int64_t group = -1;
  /// Where the partition's log starts now (asked only when nothing above is known), or -1.
  int64_t log_start = -1;
};

struct StartPlan {
  /// Next offset to read from Kafka, or -1 for "the earliest it has" when even that could not
  /// be asked (the first event Kafka delivers then sets it).
  int64_t fetch = -1;
  /// Lowest offset MariaDB is not known to hold, or -1 when unknown until the first event.
  int64_t floor = -1;
  /// True when MariaDB's own position is known (`floor` is sluice_offsets).
  bool database_known = false;
  /// The spool's events below this offset are in MariaDB already and can be released.
  int64_t release_below = -1;
  StartSource source = StartSource::kEarliest;
};

/// Invariant 4. With a spool: Kafka continues after the spool's last event, and the partition is
/// written from MariaDB's position when known (it may lie inside the spool, below it — then that
/// range comes again from Kafka first — or past it, when another owner wrote further: the spool
/// is then stale and Kafka continues from MariaDB). Without a spool: sluice_offsets, else the
/// group's committed offset, else the earliest offset — named, when the broker said where the
/// log starts, so that even the first event is checked against it.
StartPlan decide_start(const StartFacts& facts);

}  // namespace sluice::ingest
