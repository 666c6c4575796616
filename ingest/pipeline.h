#pragma once
/// The ingestion pipeline: Kafka → decode/validate → per-partition batches → writer threads,
/// each owning one MariaDB connection and writing a batch as one exactly-once transaction.
///
/// Threads: `run()` is the ingest thread (polls Kafka, decodes, batches, commits offsets to
/// Kafka); `mariadb.writers` writer threads each own a BatchSink. A partition always maps to the
/// same writer, so its batches commit in offset order. Writers report back through a completion
/// queue; Kafka offsets are committed only for batches MariaDB has committed.
///
/// Memory: bytes in flight (batches queued or being written) are bounded; at the bound the
/// partitions are paused in Kafka and later resumed from exactly where they stopped.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"
#include "ingest/batcher.h"
#include "ingest/decoder.h"
#include "ingest/kafka_source.h"
#include "ingest/schema.h"
#include "storage/batch_sink.h"
#include "storage/mariadb_sink.h"
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
  };
  struct Gap {
    std::string topic;
    int32_t partition = 0;
    int64_t from = 0, to = 0;  ///< offsets [from, to) expired from Kafka unread
    int64_t lost = 0;
    int64_t detected_at_ms = 0;
  };
  struct Table {
    std::string table;
    uint64_t rows_inserted = 0;  ///< since start
    int64_t max_timestamp = -1;  ///< newest inserted `timestamp`, epoch seconds
  };
  std::string state = "starting";  ///< starting | running | paused | draining | stopping
  std::string pause_reason;        ///< when paused
  std::string outage_error;        ///< when in outage: the latest error
  int64_t outage_since_ms = 0;     ///< when in outage
  int64_t paused_since_ms = 0;     ///< when paused
  uint64_t spool_events = 0;
  uint64_t spool_bytes = 0;
  double spool_oldest_age_s = 0;
  bool spool_full = false;    ///< fetching paused: the spool reached spool.max_bytes
  bool fetch_paused = false;  ///< backpressure: fetching paused while MariaDB catches up
  uint64_t in_flight_bytes = 0;
  std::vector<Partition> partitions;
  std::vector<Gap> gaps;  ///< the most recent, newest last
  std::vector<Table> tables;
};

class Pipeline {
 public:
  using SinkFactory = std::function<std::unique_ptr<storage::BatchSink>()>;

  Pipeline(Config config, SinkFactory sink_factory, const Clock& clock = SystemClock::instance());
  ~Pipeline();

  /// Runs until `stop` becomes true, then shuts down gracefully: flushes open batches, waits
  /// (bounded) for the writers, commits offsets and leaves the group. Returns an error for
  /// start-up failures that retrying cannot fix (bad Kafka settings, access denied, ...).
  Status run(const std::atomic<bool>& stop);

  const PipelineStats& stats() const { return stats_; }
  /// Thread safe: a snapshot at most a quarter second old.
  PipelineStatus status() const;

  /// Closes the gate (DESIGN.md invariant 5): returns once no transaction is open and every
  /// MariaDB connection is closed; from then on events are spooled. The pause is recorded in
  /// the spool, so a restarted service stays paused. Idempotent. Fails after `timeout`.
  /// Thread safe (called by the admin thread).
  Status pause(const std::string& reason, std::chrono::milliseconds timeout);
  /// Opens the gate: spooled partitions drain in offset order, then flow directly. Idempotent.
  Status resume(std::chrono::milliseconds timeout);

 private:
  struct Completion {
    std::string topic;
    int32_t partition = 0;
    uint64_t generation = 0;
    storage::WriteOutcome outcome = storage::WriteOutcome::kFailed;
    int64_t base_offset = 0;
    int64_t end_offset = 0;
    int64_t db_next_offset = -1;
    size_t bytes = 0;
    storage::DbStatus error;  ///< for kFailed: the outage that made the writer give up
  };

  class Writer;

  struct Partition {
    Partition(const std::string& t, int32_t p, BatchLimits limits, const Clock& clock)
        : topic(t), partition(p), batcher(t, p, limits, clock) {}
    std::string topic;
    int32_t partition;
    Batcher batcher;
    uint64_t generation = 0;
    int64_t db_end = -1;           ///< highest end offset MariaDB has committed
    int64_t kafka_committed = -1;  ///< last offset committed to Kafka
    bool paused = false;           ///< paused in Kafka for backpressure
    bool seeking = false;          ///< sought; older messages may still arrive once
    size_t writer = 0;
    /// Next offset expected from Kafka. Equals the batcher's position when events flow
    /// directly; ahead of it while the partition drains its spool.
    int64_t fetch_next = -1;
    /// Lowest offset not known to be in MariaDB: where to rewind to when the gate closes.
    int64_t floor = -1;
    bool spooling = false;       ///< events go to the spool (gate closed, or draining)
    int64_t spool_end = -1;      ///< one past the last offset appended to the spool
    int64_t spool_durable = -1;  ///< one past the last offset synced in the spool
    int64_t drain_next = -1;     ///< next spooled offset to read while draining
  };
  using Key = std::pair<std::string, int32_t>;

  Status prepare_database(const std::atomic<bool>& stop);
  void on_assign(std::vector<TopicPartition>& partitions);
  void on_revoke(const std::vector<TopicPartition>& partitions);
  void handle_message(const rd_kafka_message_t& msg);
  void check_gap(Partition& p, int64_t offset);
  void dispatch(Partition& p);
  void flush_due();
  void apply_backpressure();
  void process_completions();
  void commit_offsets(bool async);
  void log_summary(bool force);
  void shutdown();
  /// Publishes the ingest thread's view for status() (rate-limited).
  void publish_status(bool force);
  /// Drops the partition's open batch and reads it again from `offset`.
  void reposition(Partition& p, int64_t offset);
  /// Decodes one event into the partition's open batch (dead-lettering it if bad).
  void batch_event(Partition& p, int64_t offset, int64_t timestamp_ms, std::string_view payload);
  void process_commands();
  void finish_closing();
  void commit_spool();
  void drain();
  void complete_command(uint64_t id, Status st);
  /// MariaDB is down or read-only: close the gate by ourselves and spool (no operator pause).
  void enter_outage(const storage::DbStatus& cause);
  /// In an outage: probe MariaDB with backoff and reopen the gate when it takes writes.
  void probe_outage();
  /// Starts closing the gate: writers drop their queues and disconnect.
  void close_gate();
  std::string state_name() const;

  enum class Gate { kOpen, kClosing, kClosed };
  struct Command {
    enum Kind { kPause, kResume } kind;
    std::string reason;
    uint64_t id;
  };

  Config config_;
  SinkFactory sink_factory_;
  const Clock& clock_;
  BatchLimits limits_;
  size_t max_in_flight_bytes_;
  SchemaRegistry registry_;
  Decoder decoder_;
  std::unique_ptr<storage::MariaDbSink> control_;  ///< bookkeeping queries on the ingest thread
  std::unique_ptr<KafkaSource> source_;
  std::unique_ptr<storage::Spool> spool_;
  Gate gate_ = Gate::kOpen;                    ///< ingest thread
  std::optional<storage::PauseRecord> pause_;  ///< ingest thread
  std::vector<uint64_t> closing_commands_;     ///< pauses waiting for quiet
  bool spool_full_ = false;                    ///< ingest thread
  /// Closed by Sluice itself because MariaDB is down or read-only (not by an operator).
  bool outage_ = false;                      ///< ingest thread
  storage::DbStatus outage_error_;           ///< ingest thread: the latest cause
  int64_t outage_since_ms_ = 0;              ///< ingest thread
  Clock::time_point next_probe_{};           ///< ingest thread
  Clock::time_point last_outage_summary_{};  ///< ingest thread
  std::unique_ptr<Backoff> probe_backoff_;   ///< ingest thread

  std::mutex command_mu_;
  std::condition_variable command_cv_;
  std::deque<Command> commands_;             ///< guarded by command_mu_
  std::map<uint64_t, Status> command_done_;  ///< guarded by command_mu_
  uint64_t next_command_ = 1;                ///< guarded by command_mu_
  std::vector<std::unique_ptr<Writer>> writers_;
  std::map<Key, std::unique_ptr<Partition>> partitions_;
  uint64_t next_generation_ = 1;
  bool backpressure_ = false;
  std::string reason_;  ///< reused dead-letter reason buffer

  std::mutex completions_mu_;
  std::vector<Completion> completions_;  ///< guarded by completions_mu_
  std::atomic<size_t> in_flight_bytes_{0};

  PipelineStats stats_;

  mutable std::mutex status_mu_;
  PipelineStatus status_;                                ///< guarded by status_mu_
  std::map<std::string, PipelineStatus::Table> tables_;  ///< guarded by status_mu_
  Clock::time_point last_status_{};
  Clock::time_point last_summary_{};
  uint64_t last_summary_consumed_ = 0;
  Clock::time_point last_commit_{};
};

}  // namespace sluice::ingest
