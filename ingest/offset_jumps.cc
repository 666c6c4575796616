#include "ingest/offset_jumps.h"

#include <chrono>

#include "common/logging.h"
#include "storage/batch.h"

namespace sluice::ingest {

void OffsetJumps::recheck(PartitionCursor& c, int64_t offset, EventSource& source) {
  if (!c.repeats_jump(offset)) return;
  const int64_t low = log_start(c, source);
  if (low < 0 || low > c.jump_range(offset).first) c.forget_jump();
}

Take OffsetJumps::jump(PartitionCursor& c, int64_t offset, EventSource& source) {
  const auto [from, to] = c.jump_range(offset);
  const int64_t low = log_start(c, source);
  const auto out =
      c.resolve_jump(offset, low, low > from ? first_claimed(c, from, to) : std::nullopt);
  record(c, out, "");
  return out.take;
}

Take OffsetJumps::spool_hole(PartitionCursor& c, int64_t offset, EventSource& source) {
  const int64_t from = c.drain_next();
  const int64_t low = log_start(c, source);
  const auto out = c.resolve_spool_hole(
      offset, low, low > from ? first_claimed(c, from, offset) : std::nullopt);
  record(c, out, " while spooled");
  return out.take;
}

void OffsetJumps::stale(const PartitionCursor& c, int64_t offset) {
  if (!c.rewound(offset)) return;
  ++stats_.rewound_messages;
  uint64_t suppressed = 0;
  if (rewound_log_.allow(suppressed)) {
    logger("ingest")->error(
        "{}/{}: Kafka delivered offset {} but the partition is at {}; skipping offsets already "
        "read. If the topic was recreated, stop Sluice and delete its sluice_offsets rows for "
        "this topic ({} similar suppressed)",
        c.topic(), c.partition(), offset, c.fetch_next(), suppressed);
  }
}

void OffsetJumps::database_behind(PartitionCursor& c, int64_t db_next, uint64_t generation,
                                  int64_t base, int64_t end) {
  // The missing range is read again from Kafka, then what the spool holds drains.
  if (!c.behind(db_next, generation)) return;
  uint64_t suppressed = 0;
  if (behind_log_.allow(suppressed)) {
    logger("ingest")->warn(
        "{}/{}: MariaDB's sluice_offsets says the next offset is {}, behind the batch [{}, {}); "
        "writing again from there ({}; {} similar suppressed)",
        c.topic(), c.partition(), db_next, base, end, partition_mode_name(c.mode()), suppressed);
  }
}

std::optional<int64_t> OffsetJumps::first_claimed(const PartitionCursor& c, int64_t from,
                                           int64_t to) const {
  if (fleet_ == nullptr) return std::nullopt;
  if (!fleet_->knows_claims()) return from;
  return fleet_->first_claimed(c.topic(), c.partition(), from, to);
}

int64_t OffsetJumps::log_start(const PartitionCursor& c, EventSource& source) const {
  int64_t low = -1, high = -1;
  if (auto st = source.watermarks(c.topic(), c.partition(), low, high, std::chrono::seconds(5));
      !st) {
    logger("kafka")->warn("{}/{}: {}; reading again from where the partition stands", c.topic(),
                          c.partition(), st.message());
    return -1;
  }
  return low;
}

void OffsetJumps::record(PartitionCursor& c, const PartitionCursor::JumpOutcome& out,
                  const char* where) {
  if (out.expired_from >= out.expired_to) return;
  const int64_t from = out.expired_from, to = out.expired_to;
  stats_.expired_offsets += static_cast<uint64_t>(to - from);
  logger("ingest")->error("{}/{}: {}; recorded in sluice_dead_letter", c.topic(), c.partition(),
                          storage::DeadLetter::kafka_gap(from, to, where).reason);
  board_.add_gap(c.topic(), c.partition(), from, to);
  c.batcher().add_gap(from, to, where);
}

}  // namespace sluice::ingest
