#pragma once
/// The production spool: a RocksDB database under `spool.path`.
///
/// Keys sort as (topic, partition, offset) (see spool_key), so a partition's events are one
/// contiguous range: drained by one iterator, released by one DeleteRange. Values hold the
/// Kafka timestamp and the raw message. Commits are one WriteBatch with `sync = true`.
///
/// Sizes are accounted per partition in memory and rebuilt by a scan at open. A spool that
/// cannot be opened (corrupt, unreadable, wrong format, a key Sluice did not write) is an error
/// with RocksDB's message; it is never discarded or recreated.
/// Thread safety: as Spool.

#include <memory>
#include <mutex>

#include "storage/spool.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace sluice::storage {

class RocksDbSpool final : public Spool {
 public:
  ~RocksDbSpool() override;
  RocksDbSpool(const RocksDbSpool&) = delete;
  RocksDbSpool& operator=(const RocksDbSpool&) = delete;

  /// Opens (creating if missing) the spool at `path`.
  static Result<std::unique_ptr<Spool>> open(const std::string& path);

  void append(const std::string& topic, int32_t partition, int64_t offset, int64_t timestamp_ms,
              std::string_view payload) override;
  Status commit() override;
  size_t staged() const override { return staged_; }
  Status read(const std::string& topic, int32_t partition, int64_t from, size_t max_events,
              SpoolChunk& out) const override;
  Status release(const std::string& topic, int32_t partition, int64_t below) override;
  std::optional<SpoolPartition> partition(const std::string& topic,
                                          int32_t partition) const override;
  std::map<PartitionKey, SpoolPartition> partitions() const override;
  SpoolTotals totals() const override;
  Status set_pause(const std::optional<PauseRecord>& record) override;
  std::optional<PauseRecord> pause() const override;

 private:
  RocksDbSpool(std::unique_ptr<rocksdb::DB> db, std::string path);
  Status rebuild_accounting();

  std::unique_ptr<rocksdb::DB> db_;
  std::string path_;
  std::unique_ptr<rocksdb::WriteBatch> pending_;
  size_t staged_ = 0;
  std::string key_, value_;  ///< reused encoding buffers
  /// Staged (not yet committed) changes to the accounting, applied on commit.
  std::map<PartitionKey, SpoolPartition> staged_accounting_;
  mutable std::mutex mu_;
  std::map<PartitionKey, SpoolPartition> partitions_;  ///< guarded by mu_
  std::optional<PauseRecord> pause_;                   ///< guarded by mu_
};

/// The key of one event: "e" topic '\0' partition (4 bytes, big-endian, sign bit flipped)
/// offset (8 bytes, big-endian, sign bit flipped) — so byte order is (topic, partition, offset)
/// order.
std::string spool_key(std::string_view topic, int32_t partition, int64_t offset);

}  // namespace sluice::storage
