#pragma once
/// One Kafka partition's state machine: where its events come from (Kafka or the spool), where
/// they go (batches for MariaDB, or the spool), and the positions that make this exact. It owns
/// the partition's Batcher. It does no I/O: the pipeline performs what it asks for (seeks, spool
/// reads and releases, watermark queries) and reports back.
///
/// Positions (offsets; -1 when unknown):
///   floor        the lowest offset MariaDB is not known to hold — where writing goes on from;
///                it follows committed batches up, and goes down only when MariaDB says so (a
///                "behind" answer after a failover to a server that lags, a restore)
///   fetch_next   the next offset wanted from Kafka; older messages are stale (after a seek),
///                a later one is a jump to explain (expired, or offsets holding no records)
///   spool [first, end)  what the spool holds of the partition (committed and staged); `synced`
///                is how far it is durable
///   drain_next   the next spooled offset to batch, while draining
///
/// Modes (the gate decides between the open and the closed ones):
///   kDirect    gate open: Kafka → batches
///   kRefill    gate open: MariaDB lags behind the spool: Kafka [floor, refill_end) → batches,
///              then the spool drains (DESIGN.md invariant 4)
///   kDraining  gate open: spool → batches, in offset order; Kafka → the spool behind them
///              (invariant 3), until the drain has caught up: then kDirect
///   kWaiting   gate open: an expired range that another instance's spool may still hold lies
///              ahead: nothing is taken until MariaDB has passed it (invariant 9)
///   kHalted    the gate is closing: nothing is taken from Kafka until the writers are quiet and
///              the partition is rewound to its floor
///   kSpooling  gate closed: Kafka → the spool
///   kOrphan    no longer assigned here, but the spool holds some of it: drained under the
///              compare-and-set when the gate is open, released once MariaDB has passed it
///
/// A dropped message (the cursor said kDrop) is never a hole: the cursor then wants a seek to
/// fetch_next and takes nothing until `sought()` confirms it.
///
/// Thread safety: the ingest thread only.

#include <cstdint>
#include <optional>
#include <string>

#include "common/clock.h"
#include "ingest/batcher.h"
#include "ingest/start_offset.h"
#include "storage/spool.h"

namespace sluice::ingest {

enum class PartitionMode { kDirect, kRefill, kDraining, kWaiting, kHalted, kSpooling, kOrphan };

const char* partition_mode_name(PartitionMode mode);

/// What to do with a message Kafka delivered.
enum class Take {
  kStale,  ///< older than wanted (delivered once more after a seek): ignore it
  kDrop,   ///< not now: ignore it; the cursor will want a seek back before taking more
  kBatch,  ///< decode it into the open batch
  kSpool,  ///< append it to the spool
  kJump,   ///< later than wanted: call `resolve_jump` with the broker's log start, then again
};

class PartitionCursor {
 public:
  PartitionCursor(std::string topic, int32_t partition, BatchLimits limits, const Clock& clock,
                  storage::TableRowsPool* pool);

  const std::string& topic() const { return topic_; }
  int32_t partition() const { return partition_; }
  PartitionMode mode() const { return mode_; }
  /// Bumped whenever the batch stream restarts from another offset: reports of batches of an
  /// earlier generation say nothing about where the partition stands now.
  uint64_t generation() const { return generation_; }
  Batcher& batcher() { return batcher_; }
  const Batcher& batcher() const { return batcher_; }

  int64_t floor() const { return floor_; }
  bool database_known() const { return database_known_; }
  int64_t fetch_next() const { return fetch_next_; }
  int64_t drain_next() const { return drain_next_; }
  int64_t refill_end() const { return refill_end_; }
  /// Where the partition began for Sluice when nothing was known of it (storage::Batch::origin);
  /// -1 when it began from something known.
  int64_t origin() const { return origin_; }
  int64_t spool_first() const { return spool_first_; }
  int64_t spool_end() const { return spool_end_; }
  int64_t spool_synced() const { return spool_synced_; }
  /// The spool holds events of the partition that MariaDB may lack ([spool_first, spool_end)).
  /// Events below the floor may still be on disk until the pipeline releases them.
  bool spool_holds_events() const { return spool_first_ >= 0 && spool_first_ < spool_end_; }
  /// An expired range [waiting_from, waiting_to) that some spool may hold (kWaiting).
  int64_t waiting_from() const { return waiting_from_; }
  int64_t waiting_to() const { return waiting_to_; }

  // --- Life cycle ---------------------------------------------------------------------------

  /// Assigned with this plan (decide_start); `spool` is what the spool holds of the partition.
  void start(const StartPlan& plan, const std::optional<storage::SpoolPartition>& spool,
             bool gate_open);
  /// Revoked, but the spool still holds events: only drains (when the gate is open) or waits.
  /// An orphan that is assigned again simply starts anew (`start`).
  void become_orphan();

  // --- The gate -----------------------------------------------------------------------------

  /// The gate starts closing: Kafka messages of direct partitions are dropped from now on
  /// (they are rewound once the writers are quiet); draining ones keep spooling.
  void gate_closing();
  /// The writers are quiet: every partition spools, from its floor or after what its spool
  /// holds.
  void gate_closed();
  /// The gate opened: drain, refill or flow directly, from the floor.
  void gate_opened();

  // --- Kafka --------------------------------------------------------------------------------

  /// Decides what happens to a message at `offset`. `spool_full` is the spool at its size
  /// limit (spooling modes drop then, and read again later); `fetch_paused` is flow control
  /// holding every partition (all drop). Advances fetch_next for kBatch and kSpool.
  Take take(int64_t offset, bool spool_full, bool fetch_paused);
  /// The broker's log start for a kJump at `offset` (-1 when it could not be asked), and the
  /// lowest of the offsets Kafka no longer has that some other spool may hold (nullopt: none
  /// does). Returns what to do with the message now (kBatch / kSpool when it may be taken,
  /// kDrop otherwise); when it returns an expired range, the caller dead-letters it before
  /// batching. Only what no spool claims is ever returned as expired: up to a claim the range
  /// is recorded lost, and the partition waits (kWaiting) for MariaDB to pass the claimed rest.
  struct JumpOutcome {
    Take take = Take::kDrop;
    int64_t expired_from = -1, expired_to = -1;  ///< lost upstream; empty when from == to
  };
  JumpOutcome resolve_jump(int64_t offset, int64_t log_start,
                           std::optional<int64_t> first_claimed);
  /// The offsets [from, to) this jump would cross (for the claims check), by mode.
  std::pair<int64_t, int64_t> jump_range(int64_t offset) const;
  /// Whether `offset` repeats the jump being verified: Kafka delivered it again after a seek
  /// back, which take() believes (offsets holding no records) — unless the caller, having
  /// asked where the log starts now, finds the offsets jumped over expired meanwhile, and
  /// forgets the verification (forget_jump()): take() then reports a jump again, and
  /// resolve_jump records the gap.
  bool repeats_jump(int64_t offset) const {
    return fetch_next_ >= 0 && offset > fetch_next_ && verifying_jump_from_ == fetch_next_ &&
           verifying_jump_to_ == offset;
  }
  void forget_jump() { verifying_jump_from_ = verifying_jump_to_ = -1; }
  /// True while the cursor may not take messages until a seek to fetch_next succeeded — to the
  /// beginning of the log when fetch_next is still unknown (-1).
  bool wants_seek() const { return wants_seek_; }
  /// The seek to fetch_next took effect: older messages may still come once (stale).
  void sought();
  /// Asks for a seek to where the partition stands (a fetch that stopped making progress).
  void seek_again() { wants_seek_ = true; }
  /// How many seeks took effect since the cursor was made.
  uint64_t seeks() const { return seeks_; }
  /// A stale message below every position this assignment ever fetched from: not a message
  /// delivered once more after a seek or a resume (librdkafka before 2.4 may restart a resumed
  /// fetch from the assignment's position), but a log rewound under us — a recreated topic.
  bool rewound(int64_t offset) const { return lowest_fetch_ >= 0 && offset < lowest_fetch_; }

  // --- The spool ----------------------------------------------------------------------------

  /// A message appended (staged) to the spool.
  void spooled(int64_t offset, int64_t timestamp_ms);
  /// Everything appended so far is synced.
  void spool_synced_all() { spool_synced_ = spool_end_; }
  /// The spool holds offsets [first, end) of this partition — synced below `synced` — whatever
  /// this cursor counted: events it let go once MariaDB had passed them may still be there
  /// (staged when let go, or MariaDB since moved back by a restore). Told before the gate
  /// closes, so that spooling goes on after them and nothing is appended twice.
  void spool_holds(int64_t first, int64_t end, int64_t synced);
  /// An orphan whose spooled events MariaDB all holds now: it can go.
  bool orphan_done() const;
  /// An orphan whose drain stopped at a hole in its spool that Kafka still has: only the
  /// partition's owner can fill it, so the orphan goes on once MariaDB is seen past it.
  bool waits_for_owner() const { return mode_ == PartitionMode::kOrphan && at_hole_; }
  /// An orphan that cannot drain until MariaDB is seen again: where it stands is not known,
  /// lies below what the spool holds, or the drain waits for the owner — and nothing of it is
  /// batched that would tell.
  bool orphan_stuck() const;
  /// Whether the drain may read this partition's spool now: draining (or an orphan, once
  /// MariaDB stands inside its spool), not held for a schema, and not all read.
  bool drains_now() const;
  /// A spooled event was batched while draining.
  void drained(int64_t offset);
  /// Draining found a hole in the spool at [drain_next, next). What expired from Kafka is
  /// returned to dead-letter (up to what another spool may hold: then the partition waits);
  /// what Kafka still has is read again from it (kRefill up to `next`), since the spool may
  /// have released it while MariaDB held it. Returns kBatch when the event at `next` may be
  /// batched now.
  JumpOutcome resolve_spool_hole(int64_t next, int64_t log_start,
                                 std::optional<int64_t> first_claimed);
  int64_t spool_newest_timestamp_ms() const { return spool_newest_ms_; }

  // --- Schemas ------------------------------------------------------------------------------

  /// The event at `offset` was taken but its schema revision is still being fetched (`why`):
  /// the partition holds there until `until` — Kafka is read again from it (kDirect, kRefill:
  /// paused in Kafka meanwhile) or the drain goes on from it (kDraining, kOrphan: live events
  /// keep spooling). Any restart of the batch stream ends the hold.
  void hold(int64_t offset, Clock::time_point until, std::string why);
  bool held() const { return held_until_.has_value(); }
  /// Ends the hold once its time has come, or at once with `news` (an answer may have come):
  /// the event is read again and asks again. True when it ended.
  bool release_hold(Clock::time_point now, bool news = false);
  /// What the partition waits for, from its hold until an event is batched again ("" when
  /// it does not wait).
  const std::string& held_for() const { return held_for_; }
  /// An event was batched (a row or a dead letter): whatever held the partition is past.
  void batched() {
    if (!held_for_.empty()) held_for_.clear();
  }

  /// Moves on when a refill reached the spool (→ draining) or a drain caught up (→ direct).
  /// Returns true when the mode changed.
  bool advance();

  // --- MariaDB ------------------------------------------------------------------------------

  /// A batch up to `end` is in MariaDB (committed now, or found applied already, with
  /// `db_next` its next_offset then; -1 when not known).
  void written(int64_t end, int64_t db_next);
  /// MariaDB's next_offset is `db_next`, below the batch of `generation` (a server that lags).
  /// Returns false when the report is of an earlier generation (already handled).
  bool behind(int64_t db_next, uint64_t generation);
  /// sluice_offsets read directly: where MariaDB stands now. A waiting partition looks again
  /// at what held it.
  void learned_database(int64_t db_next);
  /// sluice_offsets has no row for the partition: MariaDB holds nothing of it — writing starts
  /// from where it began for Sluice (origin), or from 0. The floor is then no position MariaDB
  /// holds: nothing is committed to the group from it (row_missing) until a write makes one.
  void learned_missing_row();
  bool row_missing() const { return row_missing_; }
  /// With the gate open: starts again from the floor, choosing the mode anew.
  void replan();

  /// Kafka acknowledged the group offset.
  void kafka_committed(int64_t offset) { kafka_committed_ = offset; }
  int64_t kafka_committed() const { return kafka_committed_; }

 private:
  /// Chooses the open-gate mode from floor and spool, restarting the batch stream there.
  void plan_open();
  void fetch_from(int64_t offset);
  void restart_batches(int64_t offset);
  /// A partition nothing was ever known of, jumping from its origin over [from, to) that no
  /// spool claims: it begins at `to` (no loss recorded); false otherwise.
  bool begin_after(int64_t from, int64_t to);
  /// Waits for a claimed range [claimed, expired_to); [from, claimed) is returned as lost.
  void wait_for_claim(int64_t from, int64_t claimed, int64_t expired_to, JumpOutcome& out);
  /// A refill that reached the spool's start turns into a drain; false when not there yet.
  bool advance_refill();

  std::string topic_;
  int32_t partition_;
  Batcher batcher_;
  PartitionMode mode_ = PartitionMode::kSpooling;
  uint64_t generation_ = 0;

  int64_t floor_ = -1;
  bool database_known_ = false;
  int64_t fetch_next_ = -1;
  bool wants_seek_ = false;
  /// The lowest position fetched from since the assignment (the assignment's own, seeks).
  int64_t lowest_fetch_ = -1;
  uint64_t seeks_ = 0;
  /// A jump [from, to) was sent back for a second look; the very same jump again is real.
  int64_t verifying_jump_from_ = -1, verifying_jump_to_ = -1;

  int64_t spool_first_ = -1;
  int64_t spool_end_ = -1;
  int64_t spool_synced_ = -1;
  int64_t spool_newest_ms_ = -1;
  int64_t drain_next_ = -1;
  bool at_hole_ = false;  ///< see waits_for_owner
  std::optional<Clock::time_point> held_until_;  ///< see hold
  std::string held_for_;
  int64_t refill_end_ = -1;
  int64_t waiting_from_ = -1, waiting_to_ = -1;
  int64_t kafka_committed_ = -1;
  int64_t origin_ = -1;
  bool row_missing_ = false;
  /// Started with nothing known of it (kEarliest), and nothing learnt or written since.
  bool fresh_ = false;
};

}  // namespace sluice::ingest
