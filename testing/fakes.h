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

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/write_lease.h"
#include "fleet/control_channel.h"
#include "ingest/event_source.h"
#include "ingest/fleet_claims.h"
#include "ingest/writer_pool.h"
#include "storage/batch_sink.h"
#include "storage/spool.h"

namespace sluice::testing {

using PartitionKey = std::pair<std::string, int32_t>;

// --- Kafka ----------------------------------------------------------------------------------

class FakeSource;

/// The broker and the group coordinator: partition logs, one consumer group's committed
/// offsets and its members. Behaves like Kafka where the pipeline depends on it:
///  - the group assigns the subscribed partitions among live members (sticky: a partition stays
///    with its owner when it can), eagerly (everything revoked, then assigned) or cooperatively
///    (only what moves is revoked, and assigned to its new owner only once given up);
///  - static membership: a member that crashes (destroyed without close) keeps its partitions
///    until `expire_session`; a new member with the same instance id takes them over at once;
///  - retention (`expire_below`): a consumer positioned below the log start is moved to it
///    (auto.offset.reset = earliest).
class FakeKafka {
 public:
  enum class Protocol { kEager, kCooperative };
  /// Appends to a partition's log; returns the message's offset.
  int64_t produce(const std::string& topic, int32_t partition, std::string payload,
                  int64_t timestamp_ms = 1'700'000'000'000);
  /// Appends an offset that holds no record (a transaction marker): never delivered.
  int64_t produce_marker(const std::string& topic, int32_t partition);
  /// The next fetch of a partition by any consumer goes wrong once: `n` offsets are skipped
  /// (they are still in the log). The pipeline must notice and read them again. Never the
  /// very same skip twice in a row (see the fetch).
  void lose_next_fetch(const std::string& topic, int32_t partition, int64_t n) {
    lost_fetch_[{topic, partition}] = n;
  }
  /// Deletes the log below `offset` (retention), so those offsets are gone unread.
  void expire_below(const std::string& topic, int32_t partition, int64_t offset);
  /// The partitions the group consumes (its subscription); a change rebalances.
  void set_assignment(std::vector<PartitionKey> partitions);
  void set_protocol(Protocol protocol) { protocol_ = protocol; }
  /// A simulation's consumers: a poll with nothing to deliver returns at once (with writers on
  /// threads it waits a little, as a consumer would, so they get the processor).
  void set_simulated(bool simulated) { simulated_ = simulated; }
  bool simulated() const { return simulated_; }
  /// Forces a rebalance (as a metadata change or a member joining would).
  void rebalance();
  /// The session of a crashed static member times out: its partitions move to the others.
  void expire_session(const std::string& instance_id);
  /// The session of a live static member times out (a broker away for longer than the
  /// session): its partitions move to the others, and its next call is fenced — fatal for
  /// that consumer, as librdkafka reports FENCED_INSTANCE_ID.
  void expire_live_session(const std::string& instance_id);

  /// The group's committed offset, kOffsetInvalid when none.
  int64_t committed(const std::string& topic, int32_t partition) const;
  /// Every commit, in order: the test checks none went ahead of what was durable.
  struct Commit {
    PartitionKey partition;
    int64_t offset;
  };
  const std::vector<Commit>& commits() const { return commits_; }
  /// The member that owns a partition now ("" when none).
  std::string owner(const PartitionKey& partition) const;

  struct Log {
    int64_t start = 0;  ///< log start offset (retention)
    std::vector<std::string> payloads;
    std::vector<int64_t> timestamps;  ///< -2 marks an offset holding no record
    int64_t end() const { return start + static_cast<int64_t>(payloads.size()); }
  };
  const Log& log(const std::string& topic, int32_t partition) { return logs_[{topic, partition}]; }

  /// Seeks that took effect on a partition, by any member.
  uint64_t seeks(const std::string& topic, int32_t partition) const {
    const auto it = seeks_.find({topic, partition});
    return it == seeks_.end() ? 0 : it->second;
  }

  /// Faults: the next `n` calls of a kind fail (and do nothing).
  enum class Call { kSeek, kPause, kResume, kCommit, kWatermarks };
  void fail_next(Call call, int n) { failures_[call] = n; }

 private:
  friend class FakeSource;
  struct Member {
    std::string instance_id;
    FakeSource* source = nullptr;  ///< nullptr while crashed (static membership)
    std::set<PartitionKey> owned;  ///< as the coordinator sees it
  };
  bool take_failure(Call call);
  void join(FakeSource* source);
  void leave(FakeSource* source, bool crashed);
  /// Recomputes the assignment and queues revokes and assigns for the members.
  void assign();
  /// Hands partitions nobody holds any longer to the members they are meant for.
  void deliver_pending_assignments();

  std::map<PartitionKey, Log> logs_;
  std::map<PartitionKey, int64_t> committed_;
  std::vector<Commit> commits_;
  std::vector<PartitionKey> subscription_;
  std::vector<Member> members_;
  std::map<PartitionKey, std::string> target_;  ///< the assignment being moved towards
  Protocol protocol_ = Protocol::kCooperative;
  bool simulated_ = false;
  std::map<Call, int> failures_;
  std::map<PartitionKey, int64_t> lost_fetch_;
  /// (from, first record delivered after it) of each partition's last fetch gone wrong.
  std::map<PartitionKey, std::pair<int64_t, int64_t>> last_lost_;
  std::map<PartitionKey, uint64_t> seeks_;
};

/// A consumer of FakeKafka, as librdkafka behaves for the pipeline: it joins the group on its
/// first poll, prefetches a few messages per partition — still delivered after a pause or a
/// seek (stale), and after a resume it goes on from where its fetcher was, not from the last
/// message delivered — except that resuming a partition that was not paused restarts its
/// fetcher where the assignment or the last seek started it, as librdkafka before 2.4 does
/// (Debian 12 ships 2.0) — and runs the handler's callbacks inside poll and close.
class FakeSource final : public ingest::EventSource {
 public:
  FakeSource(FakeKafka& kafka, ingest::SourceHandler handler, std::string instance_id = "sluice-1");
  /// Without close(): a crash. The group keeps the partitions (static membership).
  ~FakeSource() override;

  Status poll(std::chrono::milliseconds timeout, size_t max,
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

  bool fetching(const std::string& topic, int32_t partition) const;
  const std::string& instance_id() const { return instance_id_; }
  /// The next poll returns this fatal error.
  void fail_fatally(std::string why) { fatal_ = std::move(why); }
  /// Messages prefetched per partition (delivered even after a pause or a seek).
  static constexpr size_t kPrefetch = 3;

 private:
  friend class FakeKafka;
  struct Fetch {
    int64_t position = -1;      ///< the fetcher's next offset (-1: from committed / earliest)
    int64_t started_at = -1;    ///< where the assignment or the last seek started it
    std::deque<int64_t> ready;  ///< prefetched offsets, delivered in order
  };
  void start_fetch(const PartitionKey& key, int64_t offset);

  FakeKafka& kafka_;
  ingest::SourceHandler handler_;
  std::string instance_id_;
  bool joined_ = false;
  bool closed_ = false;
  std::string fatal_;
  bool fenced_ = false;
  std::map<PartitionKey, Fetch> fetch_;  ///< assigned partitions
  /// Paused partitions. Like librdkafka's per-partition flag, it outlives a revoke and a new
  /// assignment of the same partition: only resume() clears it.
  std::set<PartitionKey> paused_;
  std::vector<PartitionKey> pending_revoke_;  ///< delivered at the next poll
  std::vector<PartitionKey> pending_assign_;  ///< delivered at the next poll
  std::vector<ingest::TopicPartition> acks_;  ///< async commits to acknowledge
  std::deque<std::string> topics_;            ///< backing the views handed out
};

// --- The fleet's control topic -----------------------------------------------------------------

/// The fleet's control topic: one log of keyed records that several FakeControlChannels read
/// from the beginning and write to; each record's offset is its index. Thread safe (fleets
/// publish from admin threads).
class FakeControlTopic {
 public:
  /// Appends a record; returns its offset.
  int64_t append(fleet::ControlRecord r);
  /// Records from `from` on.
  std::vector<fleet::ControlRecord> read(size_t from) const;
  size_t size() const;
  /// While unreachable, publish and poll fail for every channel (a Kafka outage).
  void set_reachable(bool reachable);
  bool reachable() const;

 private:
  mutable std::mutex mu_;
  std::vector<fleet::ControlRecord> log_;
  bool reachable_ = true;
};

/// One instance's link to the topic. Its link can be cut on its own — reads, writes, or both —
/// as a network partition of that host alone would.
class FakeControlChannel final : public fleet::ControlChannel {
 public:
  explicit FakeControlChannel(FakeControlTopic& topic)
      : topic_(topic), end_at_open_(topic.size()) {}
  Status publish(const std::string& key, const std::optional<std::string>& value) override;
  Status send(const std::string& key, const std::string& value) override;
  Status poll(std::chrono::milliseconds timeout, std::vector<fleet::ControlRecord>& out) override;
  bool caught_up() const override { return next_ >= end_at_open_; }

  /// Cuts (or heals) this channel's reads and writes. Safe from any thread.
  void cut(bool reads, bool writes) {
    cut_reads_ = reads;
    cut_writes_ = writes;
  }

 private:
  FakeControlTopic& topic_;
  size_t end_at_open_;
  size_t next_ = 0;
  std::atomic<bool> cut_reads_{false};
  std::atomic<bool> cut_writes_{false};
};

/// The fleet as a pipeline sees it (ingest::FleetClaims): ranges other spools claim, and
/// whether a later twin runs. Thread safe.
class FakeFleetClaims final : public ingest::FleetClaims {
 public:
  /// Another spool holds offsets [first, last] of the partition.
  void claim(const std::string& topic, int32_t partition, int64_t first, int64_t last);
  void clear();
  void set_later_twin(bool running) { later_twin_ = running; }
  std::optional<int64_t> first_claimed(const std::string& topic, int32_t partition, int64_t from,
                                       int64_t to) const override;
  bool outlives_a_later_twin() const override { return later_twin_; }
  bool knows_claims() const override { return knows_; }
  void set_knows_claims(bool knows) { knows_ = knows; }

 private:
  struct Range {
    PartitionKey key;
    int64_t first, last;
  };
  mutable std::mutex mu_;
  std::vector<Range> ranges_;
  std::atomic<bool> later_twin_{false};
  std::atomic<bool> knows_{true};
};

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
  size_t dead_letters() const;
  /// A partition's dead letters: offset → reason.
  std::map<int64_t, std::string> dead_letter_reasons(const std::string& topic,
                                                     int32_t partition) const;
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

// --- A simulation's writers ------------------------------------------------------------------

/// A simulation's writer threads (writers run inline, over FakeSessions). After each loop
/// round, run(): up to `max_pieces` pieces of work, each by a writer the seed picks; then every
/// writer that has not run for kWake of the clock's time runs what is due — a writer thread
/// never sleeps longer (it wakes to close its session once the write lease has run out, or to
/// retry), so neither may a simulated one. A piece that would be a statement on a database
/// holding its writes (FakeDatabase::hold_writes: the transaction stays open until it lets go)
/// does not run.
class SimWriters {
 public:
  static constexpr std::chrono::milliseconds kWake{200};
  SimWriters(const ingest::InlineWriters& writers, std::mt19937_64& rng, const Clock& clock)
      : writers_(writers), rng_(rng), clock_(clock) {}
  void run(size_t max_pieces);

 private:
  static bool held(ingest::Writer& w);
  const ingest::InlineWriters& writers_;
  std::mt19937_64& rng_;
  const Clock& clock_;
  /// Per writer of writers_ (same order): when it last ran. Started afresh whenever the list
  /// changes (InlineWriters::generation): a new writer counts as just run.
  std::vector<Clock::time_point> last_run_;
  uint64_t generation_ = ~uint64_t{0};
};

}  // namespace sluice::testing
