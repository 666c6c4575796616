#pragma once
/// The spool seam: a durable, ordered store of raw Kafka messages that holds events while
/// MariaDB is paused or away, ordered by (topic, partition, offset). The production store is
/// RocksDbSpool (rocksdb_spool.h); unit tests use an in-memory fake with fault injection.
///
/// Durability contract: `append` only stages; `commit` makes every staged event durable (WAL
/// synced) in one write — a group commit, one sync per call, not per event. The pipeline
/// commits an event's Kafka offset only after `commit` returned ok. `release` deletes a
/// partition's events below an offset once MariaDB has committed them; it need not be synced
/// (a lost release means events drain again and the sluice_offsets compare-and-set skips them).
///
/// Also keeps the operator's pause record, so a paused service restarts paused.
///
/// Thread safety: one thread (the ingest thread) calls the mutating methods and `read`; the
/// accessors `partition`, `partitions`, `totals` and `pause` may be called from any thread.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sluice::storage {

/// Events read from the spool, their payloads back to back in one reused buffer.
struct SpoolChunk {
  struct Event {
    int64_t offset = 0;
    int64_t timestamp_ms = -1;  ///< the Kafka message timestamp
    std::string_view payload;   ///< into `bytes`
  };
  std::vector<Event> events;
  std::string bytes;

  void clear() {
    events.clear();
    bytes.clear();
  }
};

struct SpoolPartition {
  int64_t first_offset = -1;
  int64_t last_offset = -1;
  uint64_t events = 0;
  uint64_t bytes = 0;                ///< key and value bytes
  int64_t oldest_timestamp_ms = -1;  ///< of the first (oldest) event
};

struct SpoolTotals {
  uint64_t events = 0;
  uint64_t bytes = 0;
  int64_t oldest_timestamp_ms = -1;
};

struct PauseRecord {
  std::string reason;
  int64_t since_ms = 0;
  /// Paused on this host alone (`sluice pause --local`, the fleet topic out of reach): the
  /// fleet adopts it — writes a paused target — as soon as the topic takes writes again.
  bool local = false;
};

using PartitionKey = std::pair<std::string, int32_t>;

class Spool {
 public:
  virtual ~Spool() = default;

  /// Stages one event; durable only after commit(). Precondition: the offset is above every
  /// offset of the partition already spooled or staged (a partition is appended in order).
  virtual void append(const std::string& topic, int32_t partition, int64_t offset,
                      int64_t timestamp_ms, std::string_view payload) = 0;
  /// Writes every staged event with the WAL synced. On failure the events stay staged.
  virtual Status commit() = 0;
  /// Events staged and not yet committed.
  virtual size_t staged() const = 0;
  /// An estimate of the bytes the staged events will take once committed (so a caller can keep
  /// within a size limit before the commit tells it exactly).
  virtual uint64_t staged_bytes() const = 0;

  /// Up to `max_events` committed events of a partition with offset >= `from`, in offset order.
  virtual Status read(const std::string& topic, int32_t partition, int64_t from, size_t max_events,
                      SpoolChunk& out) const = 0;
  /// Deletes the partition's events with offset < `below`.
  virtual Status release(const std::string& topic, int32_t partition, int64_t below) = 0;

  /// The partition's committed range, or nullopt when it holds nothing.
  virtual std::optional<SpoolPartition> partition(const std::string& topic,
                                                  int32_t partition) const = 0;
  virtual std::map<PartitionKey, SpoolPartition> partitions() const = 0;
  virtual SpoolTotals totals() const = 0;

  /// Records (or, with nullopt, clears) the operator's pause, synced.
  virtual Status set_pause(const std::optional<PauseRecord>& record) = 0;
  virtual std::optional<PauseRecord> pause() const = 0;
};

/// Sums per-partition accounting into totals (shared by implementations).
SpoolTotals sum_totals(const std::map<PartitionKey, SpoolPartition>& partitions);

}  // namespace sluice::storage
