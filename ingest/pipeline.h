#pragma once
/// The ingestion pipeline: source → decode/validate → per-partition batches → writers, each
/// owning one database session and writing a batch as one exactly-once transaction — or, while
/// the gate is closed, source → spool, and later spool → batches → writers, in offset order.
///
/// The gate (DESIGN.md invariants 1, 3, 5):
///   open     events flow to MariaDB (a partition with older events in the spool drains them
///            first; its live events queue behind them, in the spool, until it has caught up)
///   closing  a pause or an outage was requested: writers finish or drop what they hold and
///            disconnect; then every partition rewinds to what MariaDB has and spools from there
///   closed   nothing touches MariaDB; events are spooled. Closed by an operator (pause, kept in
///            the spool so a restart stays paused) or by Sluice itself (outage: lost connection,
///            server gone, read-only), which probes with backoff and reopens when writable.
///
/// Kafka offsets are committed only for events durable in MariaDB or synced in the spool.
///
/// Threads: the ingest thread runs `run()` — or `start()`, `step()` and `shutdown()` when a test
/// drives the loop itself — and owns all the state below unless marked otherwise. Writers are
/// their own threads. `status()`, `stats()`, `request_pause()`, `request_resume()`, `pause()`
/// and `resume()` are safe from any thread.
///
/// Memory: bytes in flight (batches queued or being written) are bounded; at the bound the
/// partitions are paused in Kafka and later resumed from exactly where they stopped. A full
/// spool pauses fetching the same way.

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"
#include "ingest/batcher.h"
#include "ingest/decoder.h"
#include "ingest/event_source.h"
#include "ingest/schema.h"
#include "ingest/writer.h"
#include "storage/batch_sink.h"
#include "storage/spool.h"

namespace sluice::ingest {

/// Counters the pipeline keeps; read from any thread.
struct PipelineStats {
  std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> rows_inserted{0};
  std::atomic<uint64_t> dead_letters{0};
  std::atomic<uint64_t> batches_committed{0};
  std::atomic<uint64_t> batches_already_applied{0};
  std::atomic<uint64_t> expired_offsets{0};  ///< offsets lost from Kafka before consumption
  std::atomic<uint64_t> spooled{0};
  std::atomic<uint64_t> drained{0};
};

/// A consistent picture of the pipeline for the admin endpoint. Built by `Pipeline::status`.
struct PipelineStatus {
  struct Partition {
    std::string topic;
    int32_t partition = 0;
    int64_t position = -1;         ///< next offset the pipeline will read
    int64_t committed = -1;        ///< next offset MariaDB has (sluice_offsets), -1 unknown
    int64_t kafka_committed = -1;  ///< last offset committed to the consumer group
    int64_t high_watermark = -1;   ///< Kafka's log end as last fetched, -1 unknown
    int64_t lag = -1;              ///< high_watermark - position, -1 unknown
  };
  struct Gap {
    std::string topic;
    int32_t partition = 0;
    int64_t from = 0, to = 0;  ///< offsets [from, to) expired from Kafka unread
    int64_t lost = 0;
    int64_t detected_at_ms = 0;
  };
  /// What the spool holds for one partition (GET /v1/spool, `sluice spool inspect`).
  struct SpoolPartition {
    std::string topic;
    int32_t partition = 0;
    storage::SpoolPartition range;
    int64_t newest_timestamp_ms = -1;  ///< of the last event; -1 when not known
  };
  struct Table {
    std::string table;
    uint64_t rows_inserted = 0;  ///< since start
    int64_t max_timestamp = -1;  ///< newest inserted `timestamp`, epoch seconds
  };
  /// starting | running | paused | draining | outage | stopping
  std::string state = "starting";
  std::string pause_reason;     ///< when paused
  int64_t paused_since_ms = 0;  ///< when paused
  std::string outage_error;     ///< when in outage: the latest error
  int64_t outage_since_ms = 0;  ///< when in outage
  std::string mariadb;          ///< the endpoint written to (describe_endpoint)
  uint64_t spool_events = 0;
  uint64_t spool_bytes = 0;
  double spool_oldest_age_s = 0;
  bool spool_full = false;    ///< fetching paused: the spool reached spool.max_bytes
  bool fetch_paused = false;  ///< fetching paused: MariaDB is behind, or the spool is full
  uint64_t in_flight_bytes = 0;
  /// 1 once Sluice last reached MariaDB (a commit or a probe); false in an outage.
  bool db_up = false;
  std::map<std::string, uint64_t> consumed_by_topic;  ///< events consumed since start
  std::vector<Partition> partitions;
  std::vector<Gap> gaps;  ///< the most recent, newest last
  std::vector<Table> tables;
  std::vector<SpoolPartition> spool_partitions;
};

/// The pipeline's connections to the world, each behind its seam.
struct PipelineParts {
  /// Builds the consumer once the pipeline can hand it its rebalance handler.
  SourceFactory source;
  /// One database session per writer, plus one on the ingest thread for bookkeeping, for the
  /// endpoint given (the configured one, or a new one after a retarget).
  std::function<std::unique_ptr<storage::BatchSink>(const MariaDbConfig&)> sinks;
  std::unique_ptr<storage::Spool> spool;
  /// Called on the ingest thread with the report of every batch MariaDB committed (metrics).
  std::function<void(const WriteReport&)> on_batch_committed{};
};

class Pipeline {
 public:
  Pipeline(Config config, PipelineParts parts, const Clock& clock = SystemClock::instance());
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  /// Runs until `stop` becomes true: start(), step() until stopped, shutdown(). Returns an error
  /// for start-up failures that retrying cannot fix (bad Kafka settings, access denied, ...).
  Status run(const std::atomic<bool>& stop);

  /// Connects (or starts paused, or in an outage), starts the writers and joins the group.
  Status start();
  /// One round of the loop: commands, completions, drain, flushes, backpressure, a poll that
  /// waits at most `max_wait`, the spool's group commit, offset commits, status.
  void step(std::chrono::milliseconds max_wait = std::chrono::milliseconds(100));
  /// Graceful stop: writes open batches (bounded wait), commits offsets, leaves the group.
  void shutdown();

  const PipelineStats& stats() const { return stats_; }
  /// Thread safe: a snapshot at most a quarter second old.
  PipelineStatus status() const;

  /// Closes the gate (invariant 5): the future is ready once no transaction is open and every
  /// MariaDB connection is closed; from then on events are spooled. The pause is recorded in
  /// the spool, so a restarted service stays paused. Idempotent.
  std::future<Status> request_pause(std::string reason);
  /// Opens the gate: spooled partitions drain in offset order, then flow directly. Idempotent.
  std::future<Status> request_resume();
  /// Points the pipeline at another MariaDB endpoint (the failover case: pause, retarget to the
  /// new primary, resume). Refused unless an operator paused and the gate is closed: no
  /// transaction may be open on the old server. Sessions are rebuilt for the new endpoint and
  /// connect on resume; the offsets compare-and-set there decides where each partition stands.
  std::future<Status> request_retarget(MariaDbConfig mariadb);
  /// request_pause / request_resume / request_retarget, waiting at most `timeout`.
  Status pause(const std::string& reason, std::chrono::milliseconds timeout);
  Status resume(std::chrono::milliseconds timeout);
  Status retarget(const MariaDbConfig& mariadb, std::chrono::milliseconds timeout);

 private:
  struct Partition {
    Partition(const std::string& t, int32_t p, BatchLimits limits, const Clock& clock,
              storage::TableRowsPool* pool)
        : topic(t), partition(p), batcher(t, p, limits, clock, pool) {}
    std::string topic;
    int32_t partition;
    Batcher batcher;
    uint64_t generation = 0;
    int64_t db_end = -1;           ///< highest end offset MariaDB has committed
    int64_t kafka_committed = -1;  ///< last offset committed to Kafka
    bool paused = false;           ///< paused in Kafka for backpressure
    bool seeking = false;          ///< sought; older messages may still arrive once
    /// A message at or after fetch_next was dropped: take nothing until sought back there.
    bool must_seek = false;
    size_t writer = 0;
    /// Next offset expected from Kafka. Equals the batcher's position when events flow
    /// directly; ahead of it while the partition drains its spool.
    int64_t fetch_next = -1;
    /// Lowest offset not known to be in MariaDB: where to rewind to when the gate closes.
    int64_t floor = -1;
    bool spooling = false;               ///< events go to the spool (gate closed, or draining)
    int64_t spool_end = -1;              ///< one past the last offset appended to the spool
    int64_t spool_durable = -1;          ///< one past the last offset synced in the spool
    int64_t drain_next = -1;             ///< next spooled offset to read while draining
    uint64_t* topic_consumed = nullptr;  ///< into consumed_by_topic_
    int64_t spool_newest_ms = -1;        ///< timestamp of the last event appended to the spool
  };
  using Key = std::pair<std::string, int32_t>;

  enum class Gate { kOpen, kClosing, kClosed };
  struct Command {
    enum Kind { kPause, kResume, kRetarget } kind;
    std::string reason;
    std::promise<Status> done;
    std::optional<MariaDbConfig> mariadb{};  ///< for kRetarget
  };

  // Kafka side.
  void on_assign(std::vector<TopicPartition>& partitions);
  void on_revoke(const std::vector<TopicPartition>& partitions);
  void handle_message(const SourceMessage& msg);
  void check_gap(Partition& p, int64_t offset);
  /// True while MariaDB is behind (in-flight bound reached) for less than a few seconds: the
  /// loop then waits for writers instead of polling.
  bool holding();
  void apply_backpressure();
  /// Drops the partition's open batch and reads it again from `offset`.
  void reposition(Partition& p, int64_t offset);
  void seek_to_fetch_next(Partition& p);
  /// Seeks back the partitions that dropped messages (see handle_message).
  void seek_dropped();
  void commit_offsets(bool async);
  // Batches and writers.
  /// Decodes one event into the partition's open batch (dead-lettering it if bad).
  void batch_event(Partition& p, int64_t offset, int64_t timestamp_ms, std::string_view payload);
  void dispatch(Partition& p);
  void flush_due();
  /// Dispatches the fullest open batches while all of them together exceed max_open_bytes_.
  void dispatch_over_budget();
  void on_report(WriteReport&& report);  ///< writer threads
  void process_reports();
  // The gate.
  void process_commands();
  void close_gate();
  void finish_closing();
  /// MariaDB is down or read-only: close the gate by ourselves and spool (no operator pause).
  void enter_outage(const storage::DbStatus& cause);
  /// In an outage: probe MariaDB with backoff and reopen the gate when it takes writes.
  void probe_outage();
  void open_gate();
  // The spool.
  void commit_spool();
  void drain();
  // Status and logs.
  std::string state_name() const;
  void publish_status(bool force);
  void log_summary(bool force);

  Config config_;
  PipelineParts parts_;
  const Clock& clock_;
  BatchLimits limits_;
  size_t max_in_flight_bytes_;
  size_t max_open_bytes_;
  std::optional<Clock::time_point> holding_since_;  ///< in-flight bound reached at
  SchemaRegistry registry_;
  Decoder decoder_;
  std::unique_ptr<storage::BatchSink> control_;  ///< bookkeeping queries, ingest thread
  std::unique_ptr<EventSource> source_;
  storage::Spool& spool_;
  /// Row buffers of written batches, reused by new ones (declared before the partitions, whose
  /// batchers use it).
  storage::TableRowsPool rows_pool_;
  std::vector<std::unique_ptr<Writer>> writers_;
  std::map<Key, std::unique_ptr<Partition>> partitions_;
  uint64_t next_generation_ = 1;
  size_t in_flight_bytes_ = 0;  ///< batches handed to writers and not yet reported back
  bool backpressure_ = false;
  /// The spool reached spool.max_bytes, counting what is staged this round.
  bool spool_full_ = false;
  bool spool_full_reported_ = false;    ///< the state last logged
  uint64_t spool_committed_bytes_ = 0;  ///< the spool's size at the last commit
  std::string reason_;                  ///< reused dead-letter reason buffer
  std::vector<SourceMessage> messages_;
  storage::SpoolChunk chunk_;
  std::vector<WriteReport> reports_in_;  ///< reused by process_reports

  Gate gate_ = Gate::kOpen;
  std::optional<storage::PauseRecord> pause_;          ///< the operator's pause
  std::vector<std::promise<Status>> closing_waiters_;  ///< pauses waiting for quiet
  bool outage_ = false;  ///< closed by Sluice itself: MariaDB down or read-only
  bool db_up_ = false;   ///< MariaDB took the last write or probe
  std::map<std::string, uint64_t> consumed_by_topic_;
  storage::DbStatus outage_error_;
  int64_t outage_since_ms_ = 0;
  Clock::time_point next_probe_{};
  Clock::time_point last_outage_summary_{};
  std::optional<Backoff> probe_backoff_;

  std::future<Status> submit(Command::Kind kind, std::string reason,
                             std::optional<MariaDbConfig> mariadb = std::nullopt);
  void apply_retarget(Command& c);
  std::unique_ptr<Writer> make_writer(size_t index);

  std::mutex command_mu_;
  std::vector<Command> commands_;  ///< guarded by command_mu_
  bool stopped_ = false;           ///< guarded by command_mu_: commands are refused

  std::mutex reports_mu_;
  std::condition_variable reports_cv_;
  std::vector<WriteReport> reports_;  ///< guarded by reports_mu_

  PipelineStats stats_;
  mutable std::mutex status_mu_;
  PipelineStatus status_;                                ///< guarded by status_mu_
  std::map<std::string, PipelineStatus::Table> tables_;  ///< guarded by status_mu_
  Clock::time_point last_status_{};
  Clock::time_point last_summary_{};
  uint64_t last_summary_consumed_ = 0;
  Clock::time_point last_commit_{};
  bool started_ = false;
};

}  // namespace sluice::ingest
