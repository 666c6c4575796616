#include "ingest/partition_cursor.h"

#include <algorithm>

#include "common/assert.h"
#include "common/enum_names.h"

namespace sluice::ingest {

const char* partition_mode_name(PartitionMode mode) {
  static constexpr EnumNames<PartitionMode, PartitionMode::kOrphan, 7> kNames{
      {"direct", "refill", "draining", "waiting", "halted", "spooling", "orphan"}};
  return kNames(mode);
}

PartitionCursor::PartitionCursor(std::string topic, int32_t partition, BatchLimits limits,
                                 const Clock& clock, storage::TableRowsPool* pool)
    : topic_(topic),
      partition_(partition),
      batcher_(std::move(topic), partition, limits, clock, pool) {}

// --- Life cycle --------------------------------------------------------------------------------

void PartitionCursor::start(const StartPlan& plan,
                            const std::optional<storage::SpoolPartition>& spool, bool gate_open) {
  floor_ = plan.floor;
  database_known_ = plan.database_known;
  // The assignment itself positions the consumer here: no seek is needed. From "the earliest
  // offset" (not known yet), Kafka delivers from the log's start, wherever that is: nothing
  // this assignment sees can then tell of a rewound log.
  fetch_next_ = plan.fetch;
  origin_ = plan.source == StartSource::kEarliest ? plan.fetch : -1;
  fresh_ = plan.source == StartSource::kEarliest;
  lowest_fetch_ = plan.fetch >= 0 ? plan.fetch : 0;
  wants_seek_ = false;
  verifying_jump_from_ = -1;
  waiting_from_ = waiting_to_ = -1;
  if (spool) {
    spool_first_ = spool->first_offset;
    spool_end_ = spool_synced_ = spool->last_offset + 1;
  } else {
    spool_first_ = spool_end_ = spool_synced_ = plan.fetch;
  }
  if (gate_open) {
    plan_open();
  } else {
    mode_ = PartitionMode::kSpooling;
    if (floor_ >= 0 && spool_end_ <= floor_) {
      spool_first_ = spool_end_ = spool_synced_ = floor_;  // a stale spool: appends start here
    }
    restart_batches(floor_);
  }
}

void PartitionCursor::become_orphan() {
  mode_ = PartitionMode::kOrphan;
  wants_seek_ = false;
  waiting_from_ = waiting_to_ = -1;
  drain_next_ = database_known_ ? std::max(floor_, spool_first_) : spool_first_;
  at_hole_ = false;
  restart_batches(drain_next_);
}

// --- The gate ----------------------------------------------------------------------------------

void PartitionCursor::gate_closing() {
  switch (mode_) {
    case PartitionMode::kDirect:
    case PartitionMode::kRefill:
    case PartitionMode::kWaiting:
      mode_ = PartitionMode::kHalted;
      break;
    case PartitionMode::kDraining:
      // Kafka already appends behind the spool: it goes on doing so; the drain stops.
      mode_ = PartitionMode::kSpooling;
      break;
    case PartitionMode::kHalted:
    case PartitionMode::kSpooling:
    case PartitionMode::kOrphan:
      break;
  }
}

void PartitionCursor::spool_holds(int64_t first, int64_t end, int64_t synced) {
  if (first < 0 || end <= first) return;
  const bool counted = spool_first_ >= 0 && spool_end_ > spool_first_;
  if (counted && spool_first_ <= first && spool_end_ >= end) return;
  spool_synced_ = counted ? std::min(spool_synced_, synced) : synced;
  spool_first_ = counted ? std::min(spool_first_, first) : first;
  spool_end_ = counted ? std::max(spool_end_, end) : end;
}

void PartitionCursor::gate_closed() {
  if (mode_ == PartitionMode::kHalted) {
    mode_ = PartitionMode::kSpooling;
    if (floor_ >= 0) {
      if (spool_first_ >= 0 && spool_end_ > std::max(floor_, spool_first_)) {
        // The spool still holds what MariaDB may lack (a drain that had just caught up, whose
        // last batches were dropped; or a refill still pending below it): keep it, and read
        // Kafka from after it, so no offset is spooled twice.
        fetch_from(spool_end_);
      } else {
        // Everything MariaDB lacks is read again from Kafka — into the spool this time.
        spool_first_ = spool_end_ = spool_synced_ = floor_;
        fetch_from(floor_);
      }
    }
  }
  if (mode_ == PartitionMode::kSpooling && spool_end_ < 0) {
    spool_first_ = spool_end_ = spool_synced_ = fetch_next_;
  }
  restart_batches(mode_ == PartitionMode::kOrphan ? drain_next_ : floor_);
}

void PartitionCursor::gate_opened() {
  if (mode_ == PartitionMode::kOrphan) {
    become_orphan();
    return;
  }
  if (mode_ == PartitionMode::kSpooling || mode_ == PartitionMode::kHalted) plan_open();
}

void PartitionCursor::plan_open() {
  waiting_from_ = waiting_to_ = -1;
  const bool spooled = spool_first_ >= 0 && spool_end_ > spool_first_;
  if (!spooled || (floor_ >= 0 && floor_ >= spool_end_)) {
    // Nothing spooled that MariaDB lacks: straight from Kafka, from the floor.
    mode_ = PartitionMode::kDirect;
    if (floor_ >= 0) {
      // What the spool still holds below the floor is MariaDB's already: released.
      if (spool_end_ <= floor_) spool_first_ = spool_end_ = spool_synced_ = floor_;
      fetch_from(floor_);
    }
    restart_batches(floor_ >= 0 ? floor_ : fetch_next_);
    return;
  }
  if (floor_ < 0) floor_ = spool_first_;  // not known yet: the first write will tell
  if (floor_ >= spool_first_) {
    mode_ = PartitionMode::kDraining;
    drain_next_ = floor_;
    restart_batches(floor_);
    fetch_from(spool_end_);
    return;
  }
  // MariaDB lags behind the spool (a failover to a server that lags, a restore from a backup):
  // what lies between comes again from Kafka first, then the spool drains.
  mode_ = PartitionMode::kRefill;
  refill_end_ = spool_first_;
  restart_batches(floor_);
  fetch_from(floor_);
}

void PartitionCursor::fetch_from(int64_t offset) {
  if (offset < 0 || offset == fetch_next_) return;
  fetch_next_ = offset;
  lowest_fetch_ = lowest_fetch_ < 0 ? offset : std::min(lowest_fetch_, offset);
  wants_seek_ = true;
  verifying_jump_from_ = -1;
}

void PartitionCursor::restart_batches(int64_t offset) {
  ++generation_;
  batcher_.reset(offset, generation_);
  held_until_.reset();
  held_for_.clear();
}

void PartitionCursor::hold(int64_t offset, Clock::time_point until, std::string why) {
  held_until_ = until;
  held_for_ = std::move(why);
  if (mode_ == PartitionMode::kDirect || mode_ == PartitionMode::kRefill) {
    // Taken from Kafka, not batched: read it again once the hold ends.
    SLUICE_ASSERT(offset < fetch_next_, "{}/{}: held at {} but fetched only to {}", topic_,
                  partition_, offset, fetch_next_);
    fetch_next_ = offset;
    wants_seek_ = true;
    verifying_jump_from_ = verifying_jump_to_ = -1;
  }
  // Draining: drain_next still stands at the event (it was not drained).
}

bool PartitionCursor::release_hold(Clock::time_point now, bool news) {
  if (!held_until_ || (!news && now < *held_until_)) return false;
  held_until_.reset();
  return true;
}

// --- Kafka -------------------------------------------------------------------------------------

Take PartitionCursor::take(int64_t offset, bool spool_full, bool fetch_paused) {
  if (fetch_next_ >= 0 && offset < fetch_next_) return Take::kStale;
  auto drop = [&] {
    // With the start unknown, the offset of a dropped message says nothing about what lies
    // before it: read again from the beginning of the log.
    wants_seek_ = true;
    return Take::kDrop;
  };
  if (wants_seek_ || fetch_paused) return drop();
  // The start is unknown (the broker could not say where the log begins): not even the first
  // message is taken on trust.
  if (fetch_next_ < 0 && mode_ != PartitionMode::kHalted && mode_ != PartitionMode::kWaiting &&
      mode_ != PartitionMode::kOrphan) {
    return Take::kJump;
  }
  // A jump is believed only when Kafka delivers the very same one again after a seek back.
  const bool jump = fetch_next_ >= 0 && offset > fetch_next_ &&
                    !(verifying_jump_from_ == fetch_next_ && verifying_jump_to_ == offset);
  switch (mode_) {
    case PartitionMode::kHalted:
    case PartitionMode::kWaiting:
    case PartitionMode::kOrphan:
      return drop();
    case PartitionMode::kSpooling:
    case PartitionMode::kDraining:
      if (spool_full) return drop();
      if (jump) return Take::kJump;
      break;
    case PartitionMode::kRefill:
      // A jump across the refill's end seen twice: Kafka holds no records up to it.
      if (!jump && offset >= refill_end_) fetch_next_ = std::max(fetch_next_, refill_end_);
      if (fetch_next_ >= refill_end_) {
        // The refill has reached what the spool holds: the spool drains from here.
        (void)advance_refill();
        return Take::kDrop;
      }
      if (jump) return Take::kJump;
      break;
    case PartitionMode::kDirect:
      if (jump) return Take::kJump;
      break;
  }
  fetch_next_ = offset + 1;
  verifying_jump_from_ = -1;
  if (floor_ < 0) floor_ = offset;
  return mode_ == PartitionMode::kSpooling || mode_ == PartitionMode::kDraining ? Take::kSpool
                                                                                : Take::kBatch;
}

std::pair<int64_t, int64_t> PartitionCursor::jump_range(int64_t offset) const {
  const int64_t to = mode_ == PartitionMode::kRefill ? std::min(offset, refill_end_) : offset;
  return {fetch_next_, to};
}

PartitionCursor::JumpOutcome PartitionCursor::resolve_jump(
    int64_t offset, int64_t log_start, std::optional<int64_t> first_claimed) {
  JumpOutcome out;
  if (log_start < 0) {
    // The broker could not be asked: never guess. Read again from where we are (or from the
    // beginning, when even that is unknown), later.
    wants_seek_ = true;
    return out;
  }
  if (fetch_next_ < 0) {
    // The first message of a partition whose start was unknown: the log begins at log_start.
    fetch_next_ = log_start;
    if (lowest_fetch_ < 0 || log_start < lowest_fetch_) lowest_fetch_ = log_start;
    if (floor_ < 0) floor_ = log_start;
    if (batcher_.next_offset() < 0) batcher_.reset(log_start, generation_);
    if (offset == log_start) {
      fetch_next_ = offset + 1;
      verifying_jump_from_ = -1;
      out.take = mode_ == PartitionMode::kSpooling || mode_ == PartitionMode::kDraining
                     ? Take::kSpool
                     : Take::kBatch;
      return out;
    }
  }
  const auto [from, to] = jump_range(offset);
  if (log_start <= from) {
    // Kafka still has `from` yet delivered a later offset: offsets holding no records
    // (transaction markers, compaction) — or a fetch gone wrong. Look once more before
    // believing it: the same jump after a seek back is real.
    verifying_jump_from_ = from;
    verifying_jump_to_ = offset;
    wants_seek_ = true;
    return out;
  }
  const int64_t expired_to = std::min(log_start, to);
  const bool spooling = mode_ == PartitionMode::kSpooling || mode_ == PartitionMode::kDraining;
  if (spooling) {
    // The spool keeps the hole; the drain records it (asking the broker again then).
    if (offset <= log_start) {
      fetch_next_ = offset + 1;
      verifying_jump_from_ = -1;
      out.take = Take::kSpool;
      return out;
    }
    fetch_from(log_start);  // [log_start, offset) is still in Kafka: look again from there
    return out;
  }
  if (first_claimed && *first_claimed < expired_to) {
    // Another instance's spool may hold some of what Kafka lost: that part is not declared
    // lost; the partition waits until MariaDB has passed it (that instance drains it) or the
    // claim goes away. What lies below the claim no spool holds: it is lost, and recorded now
    // — else the other spool would wait for MariaDB to reach its first offset, and this
    // partition for the other spool.
    wait_for_claim(from, std::max(from, *first_claimed), expired_to, out);
    return out;
  }
  if (!begin_after(from, expired_to)) {
    out.expired_from = from;
    out.expired_to = expired_to;
  }
  fetch_next_ = expired_to;
  verifying_jump_from_ = -1;
  if (mode_ == PartitionMode::kRefill && fetch_next_ >= refill_end_) {
    (void)advance_refill();
    out.take = Take::kDrop;  // the rest comes from the spool
    return out;
  }
  if (offset == fetch_next_) {
    fetch_next_ = offset + 1;
    out.take = Take::kBatch;
    return out;
  }
  // [expired_to, offset) is still in Kafka: look again from there.
  wants_seek_ = true;
  return out;
}

bool PartitionCursor::begin_after(int64_t from, int64_t to) {
  // Nothing was ever known of this partition — no sluice_offsets row, no group offset, no
  // spool, and (the caller asked) no claim: what expired before Sluice first read it was never
  // Sluice's. The partition begins after it, and its first batch may create its row there.
  if (!fresh_ || from != origin_) return false;
  origin_ = to;
  if (floor_ <= from) floor_ = to;
  restart_batches(to);
  return true;
}

void PartitionCursor::wait_for_claim(int64_t from, int64_t claimed, int64_t expired_to,
                                     JumpOutcome& out) {
  out.expired_from = from;
  out.expired_to = claimed;  // empty when the claim starts at `from`
  mode_ = PartitionMode::kWaiting;
  waiting_from_ = claimed;
  waiting_to_ = expired_to;
  fetch_next_ = claimed;
  wants_seek_ = true;
}

void PartitionCursor::sought() {
  wants_seek_ = false;
  ++seeks_;
}

// --- The spool ---------------------------------------------------------------------------------

void PartitionCursor::spooled(int64_t offset, int64_t timestamp_ms) {
  // Invariant 2: no offset is spooled twice (the spool refuses it too; this names the cursor).
  SLUICE_ASSERT(spool_first_ < 0 || spool_first_ >= spool_end_ || offset >= spool_end_,
                "{}/{}: offset {} spooled again (the spool holds [{}, {}))", topic_, partition_,
                offset, spool_first_, spool_end_);
  if (spool_first_ < 0 || spool_first_ >= spool_end_) spool_first_ = offset;
  spool_end_ = offset + 1;
  spool_newest_ms_ = timestamp_ms;
}

void PartitionCursor::drained(int64_t offset) {
  // The drain reads forward (invariant 3: in offset order, each spooled event once).
  SLUICE_ASSERT(offset >= drain_next_, "{}/{}: offset {} drained after offset {}", topic_,
                partition_, offset, drain_next_ - 1);
  drain_next_ = offset + 1;
  at_hole_ = false;
}

bool PartitionCursor::orphan_done() const {
  return mode_ == PartitionMode::kOrphan && database_known_ && floor_ >= spool_end_ &&
         batcher_.empty();
}

bool PartitionCursor::orphan_stuck() const {
  return mode_ == PartitionMode::kOrphan && spool_holds_events() &&
         (!database_known_ || floor_ < spool_first_ || waits_for_owner()) && batcher_.empty();
}

bool PartitionCursor::drains_now() const {
  const bool orphan = mode_ == PartitionMode::kOrphan;
  if (mode_ != PartitionMode::kDraining && !orphan) return false;
  if (held()) return false;
  if (orphan && (!database_known_ || floor_ < spool_first_)) return false;
  return drain_next_ < spool_end_;
}

PartitionCursor::JumpOutcome PartitionCursor::resolve_spool_hole(
    int64_t next, int64_t log_start, std::optional<int64_t> first_claimed) {
  JumpOutcome out;
  const int64_t from = drain_next_;
  if (log_start < 0) return out;  // cannot tell now: try again later
  const bool orphan = mode_ == PartitionMode::kOrphan;
  if (log_start > from) {
    const int64_t expired_to = std::min(log_start, next);
    if (first_claimed && *first_claimed < expired_to) {
      // Another spool may hold some of what Kafka lost: wait until MariaDB has passed that
      // (an orphan looks again later); what lies below the claim is recorded lost now.
      const int64_t claimed = std::max(from, *first_claimed);
      if (orphan) {
        out.expired_from = from;
        out.expired_to = claimed;
        drain_next_ = claimed;
      } else {
        wait_for_claim(from, claimed, expired_to, out);
      }
      return out;
    }
    if (begin_after(from, std::min(log_start, next))) {
      drain_next_ = std::min(log_start, next);
    } else {
      out.expired_from = from;
      out.expired_to = std::min(log_start, next);
      drain_next_ = out.expired_to;
    }
    if (drain_next_ == next) {
      out.take = Take::kBatch;
      return out;
    }
  }
  // Kafka still has [drain_next, next) but the spool does not: released while MariaDB held
  // them (it has lost them since — a restore, a server that lags), or offsets holding no
  // records. Read them again from Kafka before the spool goes on. An orphan cannot: the
  // partition's owner writes them, and the orphan looks again later.
  if (!orphan) {
    mode_ = PartitionMode::kRefill;
    refill_end_ = next;
    fetch_from(drain_next_);
  } else {
    at_hole_ = true;
  }
  return out;
}

bool PartitionCursor::advance_refill() {
  if (mode_ != PartitionMode::kRefill || fetch_next_ < refill_end_) return false;
  mode_ = PartitionMode::kDraining;
  drain_next_ = refill_end_;
  fetch_from(spool_end_);
  return true;
}

bool PartitionCursor::advance() {
  switch (mode_) {
    case PartitionMode::kOrphan:
      // MariaDB passed where the orphan's drain stands (a batch of its own, reported after
      // it became an orphan, or another owner's): go on from there. The spool no longer holds
      // what lies below, so reading from the old position would find a hole there for ever.
      if (database_known_ && batcher_.empty() && floor_ > drain_next_ && drain_next_ >= 0) {
        become_orphan();
        return true;
      }
      return false;
    case PartitionMode::kRefill:
      if (advance_refill()) return true;
      break;
    case PartitionMode::kDraining:
      if (drain_next_ >= spool_end_ && spool_synced_ >= spool_end_) {
        // Everything spooled is batched and durable: live events flow directly from here.
        mode_ = PartitionMode::kDirect;
        if (fetch_next_ > spool_end_) {
          // Kafka was sought past an expired range the spool never got an event after: the
          // next message must explain the jump from here (and the range be recorded).
          fetch_next_ = spool_end_;
          verifying_jump_from_ = -1;
        }
        return true;
      }
      break;
    default:
      return false;
  }
  if (database_known_ && batcher_.empty() && floor_ > batcher_.next_offset() &&
      batcher_.next_offset() >= 0) {
    // MariaDB is ahead of what we are batching (another owner wrote it): skip to where it is.
    plan_open();
    return true;
  }
  return false;
}

// --- MariaDB -----------------------------------------------------------------------------------

void PartitionCursor::written(int64_t end, int64_t db_next) {
  // A floor not known from MariaDB (the log's start, the group's offset, the spool's first) is
  // an assumption: what MariaDB says replaces it — even below it, when a batch of an earlier
  // assignment, still in a writer, commits after the partition was assigned again.
  const int64_t said = std::max(end, db_next);
  floor_ = database_known_ ? std::max(floor_, said) : said;
  database_known_ = true;
  row_missing_ = false;
  fresh_ = false;
}

bool PartitionCursor::behind(int64_t db_next, uint64_t generation) {
  if (generation != generation_) return false;
  floor_ = db_next;
  database_known_ = true;
  row_missing_ = false;
  fresh_ = false;
  replan();
  return true;
}

void PartitionCursor::learned_missing_row() {
  const bool fresh = fresh_;
  learned_database(origin_ >= 0 ? origin_ : 0);
  fresh_ = fresh;
  row_missing_ = true;
}

void PartitionCursor::learned_database(int64_t db_next) {
  database_known_ = true;
  row_missing_ = false;
  fresh_ = false;
  if (db_next == floor_) return;
  floor_ = db_next;
  replan();
}

void PartitionCursor::replan() {
  switch (mode_) {
    case PartitionMode::kDirect:
    case PartitionMode::kRefill:
    case PartitionMode::kDraining:
    case PartitionMode::kWaiting:
      plan_open();
      break;
    case PartitionMode::kOrphan:
      become_orphan();
      break;
    case PartitionMode::kHalted:
    case PartitionMode::kSpooling:
      break;  // the rewind and the next opening start from the floor
  }
}

}  // namespace sluice::ingest
