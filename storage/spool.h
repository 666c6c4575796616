#pragma once
/// The durable spool: a RocksDB database under `spool.path` holding raw Kafka messages while
/// MariaDB is paused or away, ordered by (topic, partition, offset).
///
/// Durability: `append` stages events in memory; `commit` writes them in one WriteBatch with the
/// WAL synced (group commit: one fsync per batch of events, not per event). Only after
/// `commit` returns ok may the events' Kafka offsets be committed. `release` deletes a
/// partition's events below an offset once MariaDB has committed them (unsynced: if the delete
/// is lost in a crash, the events are drained again and the sluice_offsets compare-and-set
/// skips them).
///
/// Sizes are accounted per partition in memory and rebuilt by a scan at open. A spool that
/// cannot be opened (corrupt, unreadable, wrong format) is an error with RocksDB's message;
/// it is never discarded or recreated.
///
/// Also keeps the operator's pause record, so a paused service restarts paused.
/// Thread safety: one thread (the ingest thread) calls append/commit/read/release; the
/// read-only accessors (`totals`, `partitions`) may be called from any thread.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace sluice::storage {

struct SpooledEvent {
  int64_t offset = 0;
  int64_t timestamp_ms = -1;  ///< the Kafka message timestamp
  std::string payload;
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
};

class Spool {
 public:
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  /// Opens (creating if missing) the spool at `path`.
  static Result<std::unique_ptr<Spool>> open(const std::string& path);

  /// Stages one event; durable only after commit(). Precondition: the offset is not already
  /// spooled (the accounting counts every append).
  void append(const std::string& topic, int32_t partition, int64_t offset, int64_t timestamp_ms,
              std::string_view payload);
  /// Writes every staged event with the WAL synced.
  Status commit();
  size_t staged() const { return staged_; }

  /// Up to `max_events` events of a partition with offset >= `from`, in offset order.
  Status read(const std::string& topic, int32_t partition, int64_t from, size_t max_events,
              std::vector<SpooledEvent>& out) const;
  /// Deletes the partition's events with offset < `below`.
  Status release(const std::string& topic, int32_t partition, int64_t below);

  /// The partition's spooled range, or nullopt when it holds nothing.
  std::optional<SpoolPartition> partition(const std::string& topic, int32_t partition) const;
  std::map<std::pair<std::string, int32_t>, SpoolPartition> partitions() const;
  SpoolTotals totals() const;

  Status set_pause(const std::optional<PauseRecord>& record);
  std::optional<PauseRecord> pause() const;

 private:
  Spool(std::unique_ptr<rocksdb::DB> db, std::string path);
  Status rebuild_accounting();

  std::unique_ptr<rocksdb::DB> db_;
  std::string path_;
  std::unique_ptr<rocksdb::WriteBatch> pending_;
  size_t staged_ = 0;
  /// Staged (not yet committed) changes to the accounting, applied on commit.
  std::map<std::pair<std::string, int32_t>, SpoolPartition> staged_accounting_;
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int32_t>, SpoolPartition> partitions_;  ///< guarded by mu_
  std::optional<PauseRecord> pause_;                                      ///< guarded by mu_
};

/// The key of one event: "e" topic '\0' partition (4 bytes, big-endian) offset (8 bytes,
/// big-endian, sign bit flipped) — so byte order is (topic, partition, offset) order.
std::string spool_key(std::string_view topic, int32_t partition, int64_t offset);

}  // namespace sluice::storage
