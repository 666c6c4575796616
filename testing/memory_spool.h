#pragma once
/// An in-memory spool for unit tests, following the Spool contract (staged until a commit,
/// which can be made to fail; reads that fail for a partition; a crash that loses what was
/// staged).

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "storage/spool.h"

namespace sluice::testing {

using PartitionKey = std::pair<std::string, int32_t>;

// --- Spool ----------------------------------------------------------------------------------

/// An in-memory spool. `crash_copy` builds the spool a restarted process would find: the
/// committed events and pause record, without what was only staged.
class MemorySpool final : public storage::Spool {
 public:
  void append(const std::string& topic, int32_t partition, int64_t offset, int64_t timestamp_ms,
              std::string_view payload) override;
  Status commit() override;
  size_t staged() const override;
  uint64_t staged_bytes() const override;
  Status read(const std::string& topic, int32_t partition, int64_t from, size_t max_events,
              storage::SpoolChunk& out) const override;
  Status release(const std::string& topic, int32_t partition, int64_t below) override;
  std::optional<storage::SpoolPartition> partition(const std::string& topic,
                                                   int32_t partition) const override;
  std::map<storage::PartitionKey, storage::SpoolPartition> partitions() const override;
  storage::SpoolTotals totals() const override;
  Status set_pause(const std::optional<storage::PauseRecord>& record) override;
  std::optional<storage::PauseRecord> pause() const override;

  /// While set, commit() fails (a disk that cannot sync) and keeps the events staged.
  void fail_commits(bool fail);
  /// While set (non-empty), read() of that partition fails with `why` (a corrupt block).
  void fail_reads(const std::string& topic, int32_t partition, std::string why);
  /// Whether the event is committed (durable) in the spool.
  bool holds(const std::string& topic, int32_t partition, int64_t offset) const;
  int commits() const;
  /// Appends that broke the Spool contract (an offset not above everything the partition
  /// already holds, staged or committed): refused, as RocksDbSpool refuses them. Tests expect
  /// none.
  int contract_violations() const;
  std::unique_ptr<MemorySpool> crash_copy() const;

 private:
  struct Event {
    int64_t timestamp_ms;
    std::string payload;
  };
  struct Staged {
    PartitionKey key;
    int64_t offset;
    Event event;
  };
  mutable std::mutex mu_;
  std::map<PartitionKey, std::map<int64_t, Event>> events_;  ///< guarded by mu_
  std::vector<Staged> staged_;                               ///< guarded by mu_
  std::optional<storage::PauseRecord> pause_;                ///< guarded by mu_
  bool fail_commits_ = false;                                ///< guarded by mu_
  std::map<PartitionKey, std::string> failing_reads_;        ///< guarded by mu_
  int commits_ = 0;                                          ///< guarded by mu_
  int violations_ = 0;                                       ///< guarded by mu_
};

}  // namespace sluice::testing
