#pragma once
/// MariaDB for unit tests: FakeDatabase and its FakeSession sinks, which implement the
/// sluice_offsets compare-and-set as MariaDbSink does and inject the faults the pipeline must
/// survive (an outage, a read-only server, transient errors, a transaction held open, a
/// lagging server); FakeEventTables and FakeReplaySession for a replay's sinks. Shared by the
/// writers: guarded.

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/write_lease.h"
#include "storage/batch_sink.h"

namespace sluice::testing {

using PartitionKey = std::pair<std::string, int32_t>;

// --- MariaDB --------------------------------------------------------------------------------

/// The database: sluice_offsets, the rows (as Kafka offsets) and dead letters per partition,
/// in commit order, and switches for faults. Thread safe.
class FakeDatabase {
 public:
  enum class Mode { kUp, kDown, kReadOnly, kAccessDenied };
  void set_mode(Mode mode);
  /// Its @@server_uid (each FakeDatabase has its own; a copy keeps its own).
  void set_identity(std::string identity);
  std::string identity() const;
  /// While held, a write blocks after starting its transaction, until released (or the
  /// server goes down or read-only). A simulation, whose writers must not block, asks
  /// holds_writes() and runs no statement meanwhile.
  void hold_writes(bool hold);
  bool holds_writes() const;
  /// The next `n` writes fail with a deadlock (a transient error).
  void fail_next_writes_transiently(int n);
  /// Becomes a copy of `other` (a replica, or a dump restored elsewhere).
  void copy_from(const FakeDatabase& other);
  /// Loses everything of a partition from `next_offset` on (a restore from an older backup):
  /// the rows and dead letters at or past it, and sluice_offsets moves back to it.
  void truncate(const std::string& topic, int32_t partition, int64_t next_offset);
  /// Loses everything of a partition, its sluice_offsets row included (a restore from a
  /// backup taken before Sluice first wrote it).
  void forget_partition(const std::string& topic, int32_t partition);

  /// Offsets stored for a partition (rows and dead letters), in commit order.
  std::vector<int64_t> stored(const std::string& topic, int32_t partition) const;
  int64_t next_offset(const std::string& topic, int32_t partition) const;  ///< -1 when no row
  /// The highest next_offset this server ever committed or was copied with (a restore does not
  /// lower it): read under the same lock as the write, so no commit escapes an observer that
  /// only looks between steps.
  int64_t highest_next_offset(const std::string& topic, int32_t partition) const;
  size_t dead_letters() const { return locked(dead_letters_); }
  /// A partition's dead letters: offset → reason.
  std::map<int64_t, std::string> dead_letter_reasons(const std::string& topic,
                                                     int32_t partition) const;
  int connections() const { return locked(connections_); }
  int open_transactions() const { return locked(open_transactions_); }
  /// Sessions have a transaction open and are blocked by hold_writes.
  bool writes_waiting() const { return locked(held_) > 0; }
  int writes_attempted() const { return locked(writes_); }
  int probes() const { return locked(probes_); }

 private:
  friend class FakeSession;
  /// A counter read under the lock the sessions write it under.
  template <class T>
  T locked(const T& counter) const {
    std::lock_guard lock(mu_);
    return counter;
  }
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Mode mode_ = Mode::kUp;
  std::string identity_ = "fake-" + std::to_string(reinterpret_cast<uintptr_t>(this));
  bool hold_ = false;
  int transient_failures_ = 0;
  int connections_ = 0;
  int open_transactions_ = 0;
  int held_ = 0;
  int writes_ = 0;
  int probes_ = 0;
  size_t dead_letters_ = 0;
  std::map<PartitionKey, int64_t> next_offset_;
  std::map<PartitionKey, int64_t> highest_next_offset_;
  std::map<PartitionKey, std::vector<int64_t>> stored_;
  std::map<PartitionKey, std::map<int64_t, std::string>> reasons_;
};

/// One session (connection) to FakeDatabase, as MariaDbSink would behave.
class FakeSession final : public storage::BatchSink {
 public:
  /// `lease`: as MariaDbSink, a transaction is rolled back instead of committed once it has
  /// run out (storage::kFenced).
  explicit FakeSession(FakeDatabase& db, const WriteLease* lease = nullptr)
      : db_(db), lease_(lease) {}
  const FakeDatabase& database() const { return db_; }
  ~FakeSession() override { disconnect(); }

  storage::WriteResult write(storage::Batch& batch) override;
  storage::DbStatus probe() override;
  storage::DbStatus read_offsets(const std::string& topic,
                                 std::map<int32_t, int64_t>& out) override;
  void disconnect() override;
  std::string server_identity() const override { return identity_; }

 private:
  std::string identity_;  ///< as the last probe saw it
  /// Connects if needed; the error when the server is down. Called with db_.mu_ held.
  storage::DbStatus connect_locked();

  FakeDatabase& db_;
  const WriteLease* lease_;
  bool connected_ = false;
};

/// Event tables and sluice_dead_letter as a replay sees them (MariaDbSink in
/// SinkMode::kReplay / kReplayDryRun): per table the uuids stored, each at most once, in
/// insertion order; dead letters at most once per (topic, partition, offset); no
/// sluice_offsets at all. Thread safe.
class FakeEventTables {
 public:
  /// The uuids of a table, in the order they were stored.
  std::vector<std::string> uuids(const std::string& table) const;
  /// Dead letters: "topic/partition@offset" → reason.
  std::map<std::string, std::string> dead_letters() const;
  /// Stores rows directly (what the service wrote before).
  void store(const std::string& table, const std::string& uuid);
  /// The next `n` writes fail with a fatal error (access denied).
  void fail_next_writes(int n);
  int writes() const;

 private:
  friend class FakeReplaySession;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<std::string>> order_;
  std::map<std::string, std::set<std::string>> stored_;
  std::map<std::string, std::string> dead_letters_;
  int failures_ = 0;
  int writes_ = 0;
};

/// A session of a replay on FakeEventTables, as MariaDbSink behaves in the replay modes: rows
/// whose uuid is stored (or repeats one earlier in the batch) are present, the rest written;
/// dead letters already recorded are present, the rest written with kReplayMark; a dry run
/// counts the same and writes nothing.
class FakeReplaySession final : public storage::BatchSink {
 public:
  FakeReplaySession(FakeEventTables& tables, bool dry_run) : tables_(tables), dry_run_(dry_run) {}
  storage::WriteResult write(storage::Batch& batch) override;
  storage::DbStatus probe() override { return {}; }
  storage::DbStatus read_offsets(const std::string&, std::map<int32_t, int64_t>& out) override {
    out.clear();
    return {};
  }
  void disconnect() override {}

 private:
  FakeEventTables& tables_;
  bool dry_run_;
};

}  // namespace sluice::testing
