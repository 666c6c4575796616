#pragma once
/// Commits each partition's position to the consumer group — only what MariaDB holds (the
/// partition's floor, once known from sluice_offsets or a committed batch), never what sits
/// only in a spool. Any instance that takes a partition over and trusts the group's offset
/// (its gate closed, so it cannot ask MariaDB) therefore never skips an event that exists only
/// in another instance's spool (DESIGN.md invariant 1); a restart of this instance starts from
/// its own spool first (invariant 4). Progress shows in the group's lag as what MariaDB lacks.
///
/// Asynchronous commits count only once the broker acknowledged them (status shows the
/// acknowledged offset); a refused one is sent again.
///
/// Thread safety: the ingest thread only.

#include <chrono>
#include <map>

#include "common/clock.h"
#include "common/logging.h"
#include "ingest/event_source.h"
#include "ingest/flow_control.h"

namespace sluice::ingest {

class OffsetCommitter {
 public:
  OffsetCommitter(const Clock& clock, std::chrono::milliseconds interval = std::chrono::seconds(1));

  /// Commits what changed, asynchronously, at most once per interval (or now with `force`).
  void maybe_commit(EventSource& source, Cursors& cursors, bool force = false);
  /// Commits these partitions' positions and waits for the answer (a revoke, a shutdown).
  void commit_now(EventSource& source, Cursors& cursors, const std::vector<PartitionKey>& keys);
  /// Every partition's (a shutdown).
  void commit_now(EventSource& source, Cursors& cursors);
  /// The broker's answer to an asynchronous commit.
  void acknowledged(Cursors& cursors, const std::vector<TopicPartition>& offsets,
                    const Status& outcome);
  void forget(const PartitionKey& key) { sent_.erase(key); }

 private:
  /// Adds the partition to `list` when its MariaDB position differs from what was sent.
  void collect(PartitionCursor& c, std::vector<TopicPartition>& list);

  const Clock& clock_;
  std::chrono::milliseconds interval_;
  Clock::time_point last_{};
  std::map<PartitionKey, int64_t> sent_;  ///< last offset sent per partition
  RateLimiter errors_{std::chrono::seconds(30)};
};

}  // namespace sluice::ingest
