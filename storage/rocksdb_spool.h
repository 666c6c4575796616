#pragma once
/// The production spool: a RocksDB database under `spool.path`.
///
/// Layout: one record per partition per commit — a *block* of the events staged for that
/// partition since the last commit, LZ4-compressed (the format: spool_block.h). Keys sort as
/// (topic, partition, first offset of the block) (see spool_block_key), so a partition's blocks are
/// one contiguous key range: drained by one iterator, released by one DeleteRange. A block's value
/// is a small header (format, event count, last offset, oldest timestamp, raw size) and the body,
/// each event as [offset, timestamp, length, payload].
///
/// Why blocks: Debian's RocksDB computes the WAL's CRC32c in software and every byte is copied
/// into the write batch, the WAL and the memtable; JSON events compress about 5x in a block, so
/// compressing once cuts every per-byte cost, and one memtable insert per block replaces one
/// per event. The same spool.max_bytes holds about five times more events.
///
/// Accounting (events, bytes on disk, offsets, oldest timestamp per partition) is kept in
/// memory and rebuilt from the block headers at open. A release that ends inside a block keeps
/// that block on disk until a later release passes its end; its events below the release point
/// no longer count. (After a crash they count again and drain again: the sluice_offsets
/// compare-and-set skips them.)
///
/// A spool that cannot be opened (corrupt, unreadable, wrong format, a key Sluice did not
/// write) is an error with the reason; it is never discarded or recreated.
/// Thread safety: as Spool.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/logging.h"
#include "storage/spool.h"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace sluice::storage {

/// A stored block that does not decode (`sluice spool discard --corrupt`).
struct CorruptBlock {
  std::string topic;
  int32_t partition = 0;
  int64_t first_offset = 0;  ///< from its key
  int64_t next_offset = -1;  ///< the first offset of the partition's next block; -1: none
  uint64_t bytes = 0;
  std::string why;
  std::string key;  ///< the stored key
};

class RocksDbSpool final : public Spool {
 public:
  ~RocksDbSpool() override;
  RocksDbSpool(const RocksDbSpool&) = delete;
  RocksDbSpool& operator=(const RocksDbSpool&) = delete;

  /// Opens (creating if missing) the spool at `path`.
  static Result<std::unique_ptr<Spool>> open(const std::string& path);

  /// Every block of the (stopped service's) spool at `path` that does not decode: a header
  /// or body cut or garbled, events that do not match the header.
  static Result<std::vector<CorruptBlock>> find_corrupt_blocks(const std::string& path);
  /// Copies each block's stored bytes to `<export_dir>/<topic>-<partition>-<first>.block`,
  /// then removes the blocks in one synced write. The offsets they held become a hole, which
  /// the service reads again from Kafka.
  static Status remove_blocks(const std::string& path, const std::vector<CorruptBlock>& blocks,
                              const std::string& export_dir);

  void append(const std::string& topic, int32_t partition, int64_t offset, int64_t timestamp_ms,
              std::string_view payload) override;
  Status commit() override;
  size_t staged() const override { return staged_events_; }
  /// Raw staged bytes scaled by the compression ratio the commits so far have seen.
  uint64_t staged_bytes() const override;
  Status read(const std::string& topic, int32_t partition, int64_t from, size_t max_events,
              SpoolChunk& out) const override;
  Status release(const std::string& topic, int32_t partition, int64_t below) override;
  std::optional<SpoolPartition> partition(const std::string& topic,
                                          int32_t partition) const override;
  std::map<PartitionKey, SpoolPartition> partitions() const override;
  SpoolTotals totals() const override;
  Status set_pause(const std::optional<PauseRecord>& record) override;
  std::optional<PauseRecord> pause() const override;
  /// RocksDB's last background error not yet recovered from ("" none). Thread safe.
  std::string background_error() const;

 private:
  /// A partition's events staged since the last commit: the raw body of its next block.
  struct Staged {
    std::string body;
    uint32_t events = 0;
    int64_t first_offset = -1;
    int64_t last_offset = -1;
    int64_t first_timestamp_ms = -1;
  };

  class ErrorListener;
  RocksDbSpool(std::unique_ptr<rocksdb::DB> db, std::string path,
               std::shared_ptr<ErrorListener> errors);
  Status rebuild_accounting();
  /// Whether the disk has room for a write of `incoming` bytes and for all RocksDB may make of
  /// it: the write-ahead log, the table file of the memtables at their flush, a compaction of
  /// every table file, and a margin.
  Status room_for(uint64_t incoming);
  /// Compacts away what released ranges still hold, when that is most of the table files and
  /// the disk has room for the rest (at most every 10 s); true when table files shrank.
  bool reclaim(uint64_t free, uint64_t tables, uint64_t margin);
  /// room_for, then RocksDB's own state: after a failed write or a background error, Resume().
  Status ready_to_write(uint64_t incoming);
  /// The stored form of a staged block: header, then the body LZ4-compressed (or raw).
  static void encode_block(const Staged& s, std::string& value);

  std::unique_ptr<rocksdb::DB> db_;
  std::string path_;
  std::shared_ptr<ErrorListener> errors_;  ///< shared with RocksDB's options
  bool write_failed_ = false;  ///< the last write failed: Resume() before the next
  std::chrono::steady_clock::time_point next_reclaim_{};  ///< ingest thread only
  std::map<PartitionKey, Staged> staged_;
  Staged* last_staged_ = nullptr;  ///< staged_ entry of the last append
  std::string last_staged_topic_;
  int32_t last_staged_partition_ = 0;
  size_t staged_events_ = 0;
  uint64_t staged_raw_bytes_ = 0;
  uint64_t committed_raw_bytes_ = 0;     ///< since open: raw block bodies
  uint64_t committed_stored_bytes_ = 0;  ///< since open: what they took on disk
  std::vector<std::string> values_;      ///< reused block encoding buffers, one per staged block
  mutable std::string scratch_;          ///< reused decompression buffer (ingest thread only)
  /// One line a minute about offsets appended twice (ingest thread only; this spool's own).
  RateLimiter duplicate_log_{std::chrono::seconds(60)};
  mutable std::mutex mu_;
  std::map<PartitionKey, SpoolPartition> partitions_;  ///< guarded by mu_
  /// Per partition, events of its first block below the last release: on disk, not counted.
  std::map<PartitionKey, uint64_t> hidden_;  ///< guarded by mu_
  std::optional<PauseRecord> pause_;         ///< guarded by mu_
};

/// The key of the block of `partition` that starts at `first_offset`: "b" topic '\0' partition
/// (4 bytes, big-endian, sign bit flipped) first offset (8 bytes, big-endian, sign bit
/// flipped) — so byte order is (topic, partition, offset) order.
std::string spool_block_key(std::string_view topic, int32_t partition, int64_t first_offset);

}  // namespace sluice::storage
