#pragma once
/// The ingestion pipeline: the short loop that drives the units each of which owns one concern —
///
///   PartitionCursor  one partition's state: where its events come from and go (partition_cursor.h)
///   decide_start     where an assigned partition starts, invariant 4 (start_offset.h)
///   Gate             pause, resume, outage, retarget and their promises (gate.h)
///   FlowControl      bounded memory and spool: holding, pausing, seeking (flow_control.h)
///   OffsetCommitter  the consumer group's offsets: only what MariaDB holds (offset_committer.h)
///   SpoolLane        staging, group commits, limits and health of the spool; the drain's reads
///                    (spool_lane.h)
///   WriterPool       the writers — one MariaDB session each, a batch per transaction — their
///                    routing, bytes in flight and reports (writer_pool.h)
///
/// — and that performs what they decide through the seams: the source (Kafka), the sinks
/// (MariaDB), the spool (RocksDB). Data flows source → decode/validate → per-partition batches →
/// writers; or, while the gate is closed or older events of a partition are spooled, source →
/// spool, and later spool → batches, in offset order.
///
/// One round of the loop, always in this order: gate commands and probes; writer reports;
/// partition transitions and spool releases; the drain; due batches; partitions waiting on
/// MariaDB; flow control (pauses, resumes, seeks); a poll (or a wait for writers when MariaDB is
/// behind); the spool's group commit; the group offsets; status.
///
/// Threads: the ingest thread runs `run()` — or `start()`, `step()` and `shutdown()` when a test
/// drives the loop itself — and owns all the state below unless marked otherwise. Writers are
/// their own threads. `status()`, `stats()`, `request_*`, `pause()`, `resume()` and `retarget()`
/// are safe from any thread.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/write_lease.h"
#include "ingest/drain_governor.h"
#include "ingest/event_intake.h"
#include "ingest/event_source.h"
#include "ingest/fleet_claims.h"
#include "ingest/flow_control.h"
#include "ingest/offset_jumps.h"
#include "ingest/gate.h"
#include "ingest/offset_committer.h"
#include "ingest/partition_cursor.h"
#include "ingest/rejoins.h"
#include "ingest/pipeline_status.h"
#include "ingest/spool_lane.h"
#include "ingest/status_board.h"
#include "ingest/writer.h"
#include "ingest/writer_pool.h"
#include "storage/batch_sink.h"
#include "storage/spool.h"

namespace sluice::ingest {

/// The pipeline's connections to the world, each behind its seam.
struct PipelineParts {
  /// Builds the consumer once the pipeline can hand it its handler.
  SourceFactory source;
  /// One database session per writer, plus one on the ingest thread for bookkeeping, for the
  /// endpoint given (the configured one, or a new one after a retarget).
  std::function<std::unique_ptr<storage::BatchSink>(const MariaDbConfig&)> sinks;
  std::unique_ptr<storage::Spool> spool;
  /// Called on the ingest thread with the report of every batch MariaDB committed (metrics).
  std::function<void(const WriteReport&)> on_batch_committed{};
  /// The fleet: what other spools hold, twins (invariant 9). Unset: only this instance's spool
  /// counts, and every fencing by the group counts.
  const FleetClaims* fleet = nullptr;
  /// The write lease (invariant 5): nothing is written while it has run out, and the gate
  /// closes (state fleet_unreachable) until it is renewed; nothing new is spooled either (its
  /// claim could not be published). Unset: never runs out.
  const WriteLease* lease = nullptr;
  /// The replicas' sluice_offsets as last read (mariadb.replicas): the drain follows their lag
  /// behind this instance's commits. Unset: no replicas.
  std::function<std::vector<CommitHistory::ReplicaPositions>()> replica_positions{};
  /// Start closed and quiet (no MariaDB connection) until a pause or a resume says what next —
  /// an instance of a fleet, until it has read the fleet's target state. A pause recorded in
  /// the spool still starts paused.
  bool start_held = false;
  /// Set: the writers run inline, listed here for a simulation to run (WriterPool); unset:
  /// each on a thread of its own.
  InlineWriters* inline_writers = nullptr;
  /// The schema repository (schemas.repository_url): revisions not under schemas.path are
  /// fetched from it and kept under schemas.cache_path. Unset: schemas.path only.
  std::unique_ptr<SchemaSource> schemas{};
};

class Pipeline final : private GateEffects {
 public:
  Pipeline(Config config, PipelineParts parts, const Clock& clock = SystemClock::instance());
  /// Without shutdown(), like a crash as far as MariaDB and Kafka can tell: nothing more is
  /// written or committed; threads are stopped and joined.
  ~Pipeline() override;
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  /// Runs until `stop` becomes true: start(), step() until stopped, shutdown(). Returns an error
  /// for failures that retrying cannot fix (bad Kafka settings, access denied, a consumer fenced
  /// by another with the same instance id).
  Status run(const std::atomic<bool>& stop);

  /// Connects (or starts paused, or in an outage), starts the writers and joins the group.
  Status start();
  /// One round of the loop (see above); the poll waits at most `max_wait`. After a fatal source
  /// error, `failed()` says why and the loop should stop.
  void step(std::chrono::milliseconds max_wait = std::chrono::milliseconds(100));
  /// Graceful stop: writes open batches (bounded wait), commits offsets, leaves the group.
  void shutdown();
  /// A fatal error seen by step() (the consumer cannot go on), or ok.
  const Status& failed() const { return failed_; }

  const PipelineStats& stats() const { return stats_; }
  /// Thread safe: a snapshot at most a quarter second old.
  PipelineStatus status() const;

  /// Closes the gate (invariant 5): the future is ready once no transaction is open and every
  /// MariaDB connection is closed; from then on events are spooled. The pause is recorded in
  /// the spool, so a restarted service stays paused. Idempotent.
  /// `local`: a pause of this host alone, taken while the fleet topic cannot be written; the
  /// fleet adopts it (PauseRecord::local).
  std::future<Status> request_pause(std::string reason, bool local = false);
  /// Opens the gate: spooled partitions drain in offset order, then flow directly. Idempotent.
  /// `expected_server`: the @@server_uid the fleet writes to ("" any): a server that is not it
  /// gets nothing (an outage, error kWrongServer, until the configuration names it).
  std::future<Status> request_resume(std::string expected_server = {});
  /// Lets a start held by `PipelineParts::start_held` go (a pause recorded in the spool stays).
  std::future<Status> request_release();
  /// Points the pipeline at another MariaDB endpoint (the failover case: pause, retarget to the
  /// new primary, resume). Refused unless an operator paused and the gate is closed. Only the
  /// endpoint is taken (host, port, socket, user, password); sessions are rebuilt and connect
  /// on resume, where sluice_offsets decides where each partition stands — one that lags is
  /// filled again from Kafka before the spool drains.
  std::future<Status> request_retarget(MariaDbConfig mariadb);
  /// request_pause / request_resume / request_retarget, waiting at most `timeout`.
  Status pause(const std::string& reason, std::chrono::milliseconds timeout);
  Status resume(std::chrono::milliseconds timeout);
  Status retarget(const MariaDbConfig& mariadb, std::chrono::milliseconds timeout);

 private:
  // GateEffects.
  Status record_pause(const std::optional<storage::PauseRecord>& record) override;
  void quiesce() override;
  bool quiet() override;
  void closed() override;
  void opened() override;
  storage::DbStatus probe() override;
  void cancel_writes() override;
  /// The server reached is the fleet's (expected_server_), or kWrongServer.
  storage::DbStatus check_server();
  void retarget(const MariaDbConfig& mariadb) override;
  void refused(const storage::DbStatus& cause) override;

  // Kafka side.
  SourceHandler source_handler();
  /// The group fenced the consumer: gives up its partitions and joins again with a new one —
  /// unless that keeps happening (Rejoins).
  Status rejoin(const Status& why);
  /// The partition's cursor, made (not started) if it has none.
  PartitionCursor& cursor(const PartitionKey& key);
  void on_assign(std::vector<TopicPartition>& partitions);
  void on_revoke(const std::vector<TopicPartition>& partitions);
  void handle_message(const SourceMessage& msg);
  // Batches and writers.
  /// Decodes one event into the partition's open batch (dead-lettering it if bad).
  /// Decodes the event into its partition's batch (or a dead letter); false when its schema
  /// revision is still being fetched: the partition then holds at it (PartitionCursor::hold).
  bool batch_event(PartitionCursor& c, int64_t offset, int64_t timestamp_ms,
                   std::string_view payload);
  void dispatch(PartitionCursor& c);
  void flush_due();
  /// Dispatches the fullest open batches while all of them together exceed max_open_bytes_.
  void dispatch_over_budget();
  void process_reports();
  // Partitions.
  /// Mode changes (refill → draining → direct), spool releases, orphans done.
  void advance_partitions();
  /// Reads sluice_offsets for these partitions and tells each cursor (false on failure).
  bool learn_database(const std::vector<PartitionCursor*>& cursors);
  /// Every few seconds with the gate open: partitions waiting on MariaDB or on another spool,
  /// and orphans, look again at where MariaDB stands.
  void look_again();
  // The spool.
  void commit_spool();
  void drain();
  /// Hands the governor the replicas' lag behind this instance's commits (once a second).
  void follow_replicas();
  // Status and logs.
  void publish_status(bool force);
  void log_summary(bool force);

  Config config_;
  PipelineParts parts_;
  const Clock& clock_;
  BatchLimits limits_;
  size_t max_in_flight_bytes_;
  size_t max_open_bytes_;
  EventIntake intake_;  ///< decode into batches: the schemas, the decoder, dead-letter lines
  std::unique_ptr<storage::BatchSink> control_;  ///< bookkeeping queries, ingest thread
  std::unique_ptr<EventSource> source_;
  SpoolLane lane_;  ///< the spool's staging, commits, health and the drain's reads
  /// The writers, their reports and the row buffers they give back (declared before the
  /// cursors, whose batchers use those buffers).
  WriterPool writers_;
  Cursors cursors_;
  Gate gate_;
  FlowControl flow_;
  OffsetCommitter committer_;
  DrainGovernor governor_;
  CommitHistory commits_;  ///< when each commit happened: the replicas' lag behind them
  /// An outage found outside a write (reading sluice_offsets), handed to the gate next round.
  std::optional<storage::DbStatus> deferred_outage_;
  Status failed_;
  std::vector<SourceMessage> messages_;
  Clock::time_point last_look_{};
  uint64_t gate_version_ = 0;  ///< the gate's version last published
  PipelineStats stats_;
  StatusBoard board_;  ///< the status snapshot, the summary line
  OffsetJumps jumps_;  ///< offsets out of line: skipped (gaps, holes) or rewound
  Rejoins rejoins_;    ///< joining again after the group fenced us, or giving up
  bool started_ = false;
  /// Set by the destructor: handler callbacks that still come (the source closing) do nothing.
  bool detached_ = false;
};

}  // namespace sluice::ingest
