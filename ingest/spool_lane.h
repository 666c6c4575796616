#pragma once
/// The spool as the pipeline uses it, and its health (DESIGN.md invariants 2 and 3): events
/// staged while a partition spools, one group commit per loop round, the limit
/// (`spool.max_bytes`, and kMaxStagedBytes of what waits in memory for the disk), a disk that
/// cannot write, blocks that cannot be read, and the drain's reads — the events it returns are
/// the pipeline's to batch; what to do with a partition's positions stays with its
/// PartitionCursor.
///
///   handle_message ── stage() ──▶ staged ── commit() (once per round) ──▶ durable
///   drain ── drain_order() / read() ──▶ events to batch, in offset order per partition
///
/// Nothing here talks to Kafka or MariaDB. Thread safety: the ingest thread only.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/logging.h"
#include "common/status.h"
#include "ingest/flow_control.h"
#include "ingest/partition_cursor.h"
#include "storage/spool.h"

namespace sluice::ingest {

class SpoolLane {
 public:
  /// What may wait in memory for the spool, by raw size, whatever spool.max_bytes allows (a
  /// spool that compresses 10:1 would otherwise let tens of GiB pile up when it cannot sync).
  static constexpr uint64_t kMaxStagedBytes = 64ULL << 20;
  /// How often a spool that cannot write is tried again.
  static constexpr std::chrono::seconds kRetry{1};

  SpoolLane(storage::Spool& spool, uint64_t max_bytes, const Clock& clock);

  storage::Spool& spool() { return spool_; }
  const storage::Spool& spool() const { return spool_; }

  /// Stages one event of a spooling partition (durable at the next commit()). The spool takes
  /// nothing more this round once it reaches its limit.
  void stage(PartitionCursor& c, int64_t offset, int64_t timestamp_ms, std::string_view payload);
  /// Whether the spool takes more events, decided once per round: not at its limit, writing,
  /// and `lease_valid` — without the write lease nothing new is spooled either (what a spool
  /// holds counts for the fleet only once its record says so). Logs when the limit is reached
  /// or left.
  bool update_full(bool lease_valid);
  /// As last decided (and set by stage() once the limit is reached within a round).
  bool full() const { return full_; }
  /// At spool.max_bytes (or the staging bound): what status shows as full.
  bool at_limit() const { return at_limit_; }
  /// Past DrainGovernor::kPressure of spool.max_bytes: the drain must not be held back.
  bool past(double share) const;

  /// Makes what is staged durable (group commit). A failed write is kept (error()) and tried
  /// again every kRetry; `cursors` learn that what they staged is durable.
  /// Returns the number of failed writes (for the counter).
  uint64_t commit(Cursors& cursors);
  const Status& error() const { return error_; }
  int64_t error_since_ms() const { return error_since_ms_; }

  /// The partitions in this round's drain order: each round starts one further, so a limited
  /// allowance is shared by all.
  const std::vector<Cursors::value_type*>& drain_order(Cursors& cursors);
  /// Up to `max` events of `c` from its drain position; nullptr when its spool cannot be read
  /// (said once per partition and kept: a corrupt block does not heal by itself). `changed`:
  /// a partition's read error appeared or went (status should say so at once).
  const storage::SpoolChunk* read(const PartitionKey& key, const PartitionCursor& c, size_t max,
                                  bool& changed);
  /// The partitions whose spooled events cannot be read, and why.
  const std::map<PartitionKey, std::string>& read_errors() const { return read_errors_; }

  /// Gives back the space of what MariaDB holds below `c`'s floor.
  void release_below_floor(const PartitionCursor& c);

  /// The offsets [first, last] of a partition staged and not yet durable: the spool takes them
  /// at the next commit whatever becomes of the cursor that staged them (revoked, or past
  /// them), so a partition assigned again starts after them, and keeps its orphan until then.
  std::optional<std::pair<int64_t, int64_t>> staged(const PartitionKey& key) const;
  /// Tells `c` what the spool holds of its partition, durable and staged
  /// (PartitionCursor::spool_holds).
  void tell(PartitionCursor& c) const;

 private:
  storage::Spool& spool_;
  const uint64_t max_bytes_;
  const Clock& clock_;
  uint64_t committed_bytes_ = 0;  ///< the spool's size at the last commit
  bool full_ = false;
  bool at_limit_ = false;
  bool full_logged_ = false;  ///< the state last logged
  Status error_;              ///< the last commit failed (and why): events stay staged
  int64_t error_since_ms_ = 0;
  Clock::time_point next_try_{};
  std::map<PartitionKey, std::string> read_errors_;
  /// Per partition, [first, last] staged until the next commit, and the entry last staged to.
  std::map<PartitionKey, std::pair<int64_t, int64_t>> staged_;
  decltype(staged_)::iterator last_staged_ = staged_.end();
  size_t drain_turn_ = 0;
  std::vector<Cursors::value_type*> drain_order_;  ///< kept for its capacity
  storage::SpoolChunk chunk_;
  RateLimiter error_log_{std::chrono::seconds(10)};
};

}  // namespace sluice::ingest
