#pragma once
/// Fakes of the pipeline's seams, for unit tests only: a scripted Kafka (FakeKafka and the
/// FakeSource consumer it hands out), a database (FakeDatabase and its FakeSession sinks) that
/// implements the sluice_offsets compare-and-set as MariaDbSink does, and an in-memory spool.
/// Each can inject the faults the pipeline must survive: an outage, a read-only server, transient
/// errors, a transaction held open, a spool that cannot sync, a crash that loses staged events.
///
/// Threading: FakeKafka and FakeSource belong to the test's thread (which is also the pipeline's
/// ingest thread in these tests). FakeDatabase is shared by the writer threads and is guarded.
/// MemorySpool follows the Spool contract.

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "ingest/event_source.h"
#include "storage/batch_sink.h"
#include "storage/spool.h"

namespace sluice::testing {

using PartitionKey = std::pair<std::string, int32_t>;

// --- Kafka ----------------------------------------------------------------------------------

/// The broker side: partition logs, the group's committed offsets, and the assignment handed to
/// the next consumer.
class FakeKafka {
 public:
  /// Appends to a partition's log; returns the message's offset.
  int64_t produce(const std::string& topic, int32_t partition, std::string payload,
                  int64_t timestamp_ms = 1'700'000'000'000);
  /// Deletes the log below `offset` (retention), so those offsets are gone unread.
  void expire_below(const std::string& topic, int32_t partition, int64_t offset);
  /// The partitions the group assigns to the next consumer (on its first poll).
  void set_assignment(std::vector<PartitionKey> partitions) { assignment_ = std::move(partitions); }

  /// The group's committed offset, kOffsetInvalid when none.
  int64_t committed(const std::string& topic, int32_t partition) const;
  /// Every commit, in order: the test checks none went ahead of what was durable.
  struct Commit {
    PartitionKey partition;
    int64_t offset;
  };
  const std::vector<Commit>& commits() const { return commits_; }

  struct Log {
    int64_t start = 0;  ///< log start offset (retention)
    std::vector<std::string> payloads;
    std::vector<int64_t> timestamps;
    int64_t end() const { return start + static_cast<int64_t>(payloads.size()); }
  };
  const Log& log(const std::string& topic, int32_t partition) { return logs_[{topic, partition}]; }

 private:
  friend class FakeSource;
  std::map<PartitionKey, Log> logs_;
  std::map<PartitionKey, int64_t> committed_;
  std::vector<Commit> commits_;
  std::vector<PartitionKey> assignment_;
};

/// A consumer of FakeKafka. On its first poll it is assigned FakeKafka's assignment; start
/// offsets come from the rebalance handler, else the group's committed offset, else the log
/// start (auto.offset.reset = earliest). Partitions are served round-robin.
class FakeSource final : public ingest::EventSource {
 public:
  FakeSource(FakeKafka& kafka, ingest::RebalanceHandler handler);

  void poll(std::chrono::milliseconds timeout, size_t max,
            std::vector<ingest::SourceMessage>& out) override;
  Status committed(std::vector<ingest::TopicPartition>& partitions,
                   std::chrono::milliseconds timeout) override;
  Status commit(const std::vector<ingest::TopicPartition>& partitions, bool async) override;
  Status pause(const std::vector<ingest::TopicPartition>& partitions) override;
  Status resume(const std::vector<ingest::TopicPartition>& partitions) override;
  Status seek(const std::vector<ingest::TopicPartition>& partitions) override;
  Status watermarks(const std::string& topic, int32_t partition, int64_t& low, int64_t& high,
                    std::chrono::milliseconds timeout) override;
  int64_t cached_high_watermark(const std::string& topic, int32_t partition) override;
  void close() override;

  bool fetching(const std::string& topic, int32_t partition) const {
    return !paused_.contains({topic, partition});
  }

 private:
  FakeKafka& kafka_;
  ingest::RebalanceHandler handler_;
  bool assigned_ = false;
  bool closed_ = false;
  std::map<PartitionKey, int64_t> position_;
  std::set<PartitionKey> paused_;
  std::vector<std::string> topics_;  ///< backing the views handed out
};

// --- MariaDB --------------------------------------------------------------------------------

/// The database: sluice_offsets, the rows (as Kafka offsets) and dead letters per partition,
/// in commit order, and switches for faults. Thread safe.
class FakeDatabase {
 public:
  enum class Mode { kUp, kDown, kReadOnly, kAccessDenied };
  void set_mode(Mode mode);
  /// While held, a write blocks after starting its transaction, until released.
  void hold_writes(bool hold);
  /// The next `n` writes fail with a deadlock (a transient error).
  void fail_next_writes_transiently(int n);

  /// Offsets stored for a partition (rows and dead letters), in commit order.
  std::vector<int64_t> stored(const std::string& topic, int32_t partition) const;
  int64_t next_offset(const std::string& topic, int32_t partition) const;  ///< -1 when no row
  size_t dead_letters() const;
  int connections() const;
  int open_transactions() const;
  /// Sessions have a transaction open and are blocked by hold_writes.
  bool writes_waiting() const;
  int writes_attempted() const;
  int probes() const;

 private:
  friend class FakeSession;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Mode mode_ = Mode::kUp;
  bool hold_ = false;
  int transient_failures_ = 0;
  int connections_ = 0;
  int open_transactions_ = 0;
  int held_ = 0;
  int writes_ = 0;
  int probes_ = 0;
  size_t dead_letters_ = 0;
  std::map<PartitionKey, int64_t> next_offset_;
  std::map<PartitionKey, std::vector<int64_t>> stored_;
};

/// One session (connection) to FakeDatabase, as MariaDbSink would behave.
class FakeSession final : public storage::BatchSink {
 public:
  explicit FakeSession(FakeDatabase& db) : db_(db) {}
  ~FakeSession() override { disconnect(); }

  storage::WriteResult write(storage::Batch& batch) override;
  storage::DbStatus probe() override;
  storage::DbStatus read_offsets(const std::string& topic,
                                 std::map<int32_t, int64_t>& out) override;
  void disconnect() override;

 private:
  /// Connects if needed; the error when the server is down. Called with db_.mu_ held.
  storage::DbStatus connect_locked();

  FakeDatabase& db_;
  bool connected_ = false;
};

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
  /// Whether the event is committed (durable) in the spool.
  bool holds(const std::string& topic, int32_t partition, int64_t offset) const;
  int commits() const;
  /// Appends that broke the Spool contract (an offset not above everything the partition
  /// already holds, staged or committed). Tests expect none.
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
  int commits_ = 0;                                          ///< guarded by mu_
  int violations_ = 0;                                       ///< guarded by mu_
};

}  // namespace sluice::testing
