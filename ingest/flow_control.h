#pragma once
/// Flow control between Kafka and the rest of the pipeline (DESIGN.md invariant 6): bounded
/// memory, a bounded spool, and the Kafka calls that enforce them — applied so that none can be
/// assumed to have worked.
///
///  - Holding: when batches in flight reach their bound, the loop first stops polling (up to
///    `hold_before_pause`): librdkafka's queue is bounded, nothing is dropped or fetched twice.
///  - Pausing: when MariaDB stays behind longer, every assigned partition is paused in Kafka (so
///    the consumer keeps polling and stays in its group); when the spool is full, every
///    partition that appends to it. Messages that still arrive are dropped, and each partition
///    is sought back to exactly where it stopped before it is resumed. (A partition that writes
///    straight to MariaDB — directly, or refilling what a lagging server lacks — keeps going
///    while the spool is full: that is how the spool empties.)
///  - Reconciling: what each partition should be (paused or fetching) is compared every round
///    with what Kafka was last told successfully. A partition just assigned is "unknown" —
///    after a rebalance librdkafka may still hold it paused — and is told again. A failed
///    pause, resume or seek is retried the next round (logged at a bounded rate).
///  - Watching: a partition that should be fetching, whose log end (as last fetched) lies
///    beyond where it stands, and that has not moved for `stall_after`, is sought again to
///    where it stands — it never stalls silently, whatever the cause.
///
/// Thread safety: the ingest thread only.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/clock.h"
#include "common/logging.h"
#include "ingest/event_source.h"
#include "ingest/partition_cursor.h"

namespace sluice::ingest {

using PartitionKey = std::pair<std::string, int32_t>;
using Cursors = std::map<PartitionKey, std::unique_ptr<PartitionCursor>>;

class FlowControl {
 public:
  FlowControl(size_t max_in_flight_bytes, const Clock& clock,
              std::chrono::milliseconds hold_before_pause = std::chrono::seconds(5),
              std::chrono::milliseconds stall_after = std::chrono::seconds(15));

  /// True while batches in flight are at their bound for less than `hold_before_pause`: the
  /// loop then waits for writers instead of polling.
  bool holding(size_t in_flight_bytes);
  /// Decides what is paused (everything while MariaDB is stuck behind; what spools while the
  /// spool is full), tells Kafka what changed, and seeks the partitions that want it. Failed
  /// calls stay pending.
  void apply(EventSource& source, Cursors& cursors, size_t in_flight_bytes, bool spool_full);
  /// Every partition's fetching is paused (or should be, while Kafka has not confirmed it):
  /// messages that arrive are dropped.
  bool fetch_paused() const { return paused_; }

  /// Newly assigned partitions: their pause state inside Kafka is unknown.
  void assigned(const PartitionKey& key) { told_[key] = Told::kUnknown; }
  void revoked(const PartitionKey& key) {
    told_.erase(key);
    progress_.erase(key);
  }

 private:
  enum class Told { kUnknown, kPaused, kFetching };
  /// Whether this partition should be paused in Kafka now.
  bool should_pause(const PartitionCursor& c) const;
  void seek(EventSource& source, Cursors& cursors);
  void reconcile(EventSource& source, Cursors& cursors);
  void watch(EventSource& source, Cursors& cursors);

  size_t max_in_flight_bytes_;
  const Clock& clock_;
  std::chrono::milliseconds hold_before_pause_;
  std::chrono::milliseconds stall_after_;
  std::optional<Clock::time_point> holding_since_;
  bool paused_ = false;      ///< MariaDB stuck behind: everything paused
  bool spool_full_ = false;  ///< the spool full: what appends to it paused
  std::map<PartitionKey, Told> told_;
  struct Progress {
    int64_t fetch_next = -1;
    Clock::time_point since{};
  };
  std::map<PartitionKey, Progress> progress_;
  RateLimiter stall_log_{std::chrono::seconds(60)};
  RateLimiter seek_errors_{std::chrono::seconds(10)};
  RateLimiter pause_errors_{std::chrono::seconds(10)};
};

}  // namespace sluice::ingest
