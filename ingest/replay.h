#pragma once
/// `sluice replay`'s engine and its pure parts. A replay re-reads a range of a topic (or a file
/// of capsules) and writes what MariaDB lacks through the service's own path — Decoder →
/// one Batcher per partition → Writers, each with a MariaDbSink in a replay mode
/// (storage/mariadb_sink.h: no sluice_offsets, a uuid already stored counts as already
/// present, a dead letter already recorded is not written again) — so any range can be
/// replayed any number of times and each event is stored once.
///
///   resolve_ranges  --from/--to (offsets or times) and what Kafka says → [from, to) per
///                   partition, and what part of the asked range has expired (pure)
///   ReplayInput     the seam the events come from: KafkaRangeReader (kafka_range_reader.h),
///                   JsonLinesInput (replay_file.h), fakes in unit tests
///   ReplayLedger    the accounting: per table and per partition, what was read, written,
///                   already present, dead-lettered, skipped, covered and expired (pure)
///   Replay          the loop: input → decode → batch → writers, bounded in memory
///
/// Threads: Replay::run and the ledger belong to the calling thread; the writers are their own
/// threads and report back through a queue that run() drains.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "ingest/batcher.h"
#include "ingest/drain_governor.h"
#include "ingest/event_source.h"
#include "ingest/schema.h"
#include "ingest/writer.h"
#include "storage/batch_sink.h"

namespace sluice::ingest {

// --- The range ---------------------------------------------------------------------------------

/// One end of the range an operator asks for: an offset, a time, or nothing (the default).
struct ReplayBound {
  enum class Kind { kNone, kOffset, kTime };
  Kind kind = Kind::kNone;
  int64_t value = 0;  ///< an offset, or milliseconds since the epoch

  static ReplayBound offset(int64_t o) { return {Kind::kOffset, o}; }
  static ReplayBound time_ms(int64_t ms) { return {Kind::kTime, ms}; }
};

/// What Kafka says of one partition, asked once before a replay starts.
struct PartitionFacts {
  int32_t partition = 0;
  int64_t low = 0;   ///< the log start: offsets below it have expired
  int64_t high = 0;  ///< the log end: the offset the next event will get
  /// Offsets-for-times answers for a time bound: the first offset whose timestamp is at or
  /// after it, or -1 when no event is.
  int64_t from_time_offset = -1;
  int64_t to_time_offset = -1;
};

/// One partition's part of a replay: offsets [from, to) are read.
struct PartitionRange {
  std::string topic;
  int32_t partition = 0;
  int64_t from = 0;
  int64_t to = 0;
  /// Offsets of the asked range that expired from Kafka before the replay could read them:
  /// [expired_from, expired_to), none when equal.
  int64_t expired_from = 0;
  int64_t expired_to = 0;
  /// A --from-time that Kafka resolved to the start of a log that no longer starts at 0:
  /// events of the time window may have been among the expired offsets below `from`, and no
  /// one can tell now.
  bool may_have_expired = false;

  int64_t events() const { return to > from ? to - from : 0; }
};

/// The range of each partition (pure). `from` must be an offset or a time; `to` may be none
/// (the log end as it is now: what is produced later is the service's). An offset past the
/// log end means the log end; a time no event reaches means the log end too. Offsets of the
/// asked range below the log start are reported as expired and not read. Errors: a
/// --to-offset before the --from-offset, a negative offset.
Result<std::vector<PartitionRange>> resolve_ranges(const std::string& topic, ReplayBound from,
                                                   ReplayBound to,
                                                   const std::vector<PartitionFacts>& facts);

// --- The input seam ----------------------------------------------------------------------------

/// Offsets of a partition that expired from Kafka while the replay was reading it.
struct ExpiredRange {
  std::string topic;
  int32_t partition = 0;
  int64_t from = 0;
  int64_t to = 0;
};

/// Where a replay's events come from. Thread safety: one thread (the replay's).
class ReplayInput {
 public:
  virtual ~ReplayInput() = default;
  /// Waits up to `timeout` for the first event, then takes what is ready without waiting, up
  /// to `max` in all, into `out` (cleared first). The views stay valid until the next call. An
  /// error is fatal: the replay stops.
  virtual Status read(std::chrono::milliseconds timeout, size_t max,
                      std::vector<SourceMessage>& out) = 0;
  /// True once every event of the input has been handed out.
  virtual bool done() const = 0;
  /// Moves into `out` the offsets found expired while reading, since the last call.
  virtual void take_expired(std::vector<ExpiredRange>& out) { (void)out; }
};

// --- Accounting --------------------------------------------------------------------------------

/// Label of events whose capsule did not name a schema and revision (malformed JSON, ...).
inline constexpr std::string_view kNoTable = "(no schema)";

/// What a replay did for one table (the table of the event's schema and revision).
struct ReplayTableCounts {
  uint64_t read = 0;     ///< events of this table read
  uint64_t written = 0;  ///< rows written (a dry run: that would be written)
  /// Events MariaDB already held: rows whose uuid is stored, and bad events whose dead letter
  /// is already recorded at the same position.
  uint64_t already_present = 0;
  uint64_t dead_lettered = 0;  ///< dead letters written, marked as from a replay

  uint64_t outcomes() const { return written + already_present + dead_lettered; }
};

/// The accounting of a replay (pure: the engine, and unit tests, feed it). Per table: read,
/// written, already present, dead-lettered. Per partition: its range, how far it was read,
/// how far every event is durable ("covered": read, and written, present, dead-lettered or
/// skipped), what expired.
/// Thread safety: one thread.
class ReplayLedger {
 public:
  struct Partition {
    std::string topic;
    int32_t partition = 0;
    int64_t from = -1;       ///< first offset of the range; -1 until known (files: the first read)
    int64_t to = -1;         ///< one past the last; -1 when not known beforehand (files)
    int64_t read_next = -1;  ///< one past the last offset read; -1 before the first
    uint64_t read = 0;       ///< events read (skipped ones included)
    uint64_t skipped = 0;    ///< events of schemas not selected (--schema)
    /// Events whose outcome is known: written, present, dead-lettered, or skipped.
    uint64_t durable = 0;
    std::vector<std::pair<int64_t, int64_t>> expired;  ///< [from, to) ranges, in order
    bool may_have_expired = false;                     ///< see PartitionRange

    /// Every offset of [from, covered_end()) is read and has its outcome in MariaDB (or was
    /// skipped): a replay stopped early can go on from there.
    int64_t covered_end() const;

   private:
    friend class ReplayLedger;
    struct Letter {
      int64_t offset;
      ReplayTableCounts* table;
    };
    struct InFlight {
      int64_t base;  ///< first offset the batch holds an event of
      int64_t end;
      std::vector<Letter> letters;
    };
    int64_t open_base_ = -1;   ///< first event of the batch being built, -1 when none
    int64_t stopped_at_ = -1;  ///< first offset of a batch not written (stopped early), or -1
    std::vector<Letter> open_letters_;
    std::deque<InFlight> in_flight_;  ///< handed to a writer, not reported yet, in offset order
  };

  /// Declares a partition's range before reading (Kafka ranges).
  Partition& expect(const PartitionRange& range);
  /// The partition's record, created on first use (files).
  Partition& partition(const std::string& topic, int32_t partition);
  /// The table's counts, created on first use. The reference stays valid.
  ReplayTableCounts& table(std::string_view name);

  /// Offsets [from, to) of the partition had expired from Kafka.
  void expired(Partition& p, int64_t from, int64_t to);
  /// An event read at `offset`, bound for `table` (decoded, or a dead letter when `dead`).
  void read(Partition& p, int64_t offset, ReplayTableCounts& table, bool dead);
  /// An event read at `offset` and skipped (a schema not selected).
  void skipped(Partition& p, int64_t offset);
  /// The batch being built for the partition, [.., end), was handed to a writer.
  void dispatched(Partition& p, int64_t end);
  /// The batch being built was dropped unwritten (a replay stopped early).
  void dropped_open(Partition& p);
  /// The input has handed out the whole range: offsets up to its end that held no event
  /// (transaction markers, compaction) are covered too.
  void finished(Partition& p);
  /// A writer's report of one of the partition's batches in flight (found by its end offset).
  /// False when the batch was not written for an error (kept in error()); a batch dropped
  /// unwritten without an error (a replay stopping) only ends what is covered.
  bool reported(const WriteReport& report);

  const std::map<std::string, ReplayTableCounts, std::less<>>& tables() const { return tables_; }
  const std::map<std::pair<std::string, int32_t>, Partition>& partitions() const {
    return partitions_;
  }
  /// Per table summed.
  ReplayTableCounts totals() const;
  uint64_t read() const { return sum(&Partition::read); }
  uint64_t skipped() const { return sum(&Partition::skipped); }
  uint64_t durable() const { return sum(&Partition::durable); }
  /// Events the declared ranges hold in all (0 when no range is known: files).
  uint64_t expected() const;
  bool any_expired() const;
  /// The first batch a writer gave up, or ok.
  const std::string& error() const { return error_; }

 private:
  /// One count summed over the partitions.
  uint64_t sum(uint64_t Partition::*count) const {
    uint64_t n = 0;
    for (const auto& [key, p] : partitions_) n += p.*count;
    return n;
  }

  std::map<std::string, ReplayTableCounts, std::less<>> tables_;
  std::map<std::pair<std::string, int32_t>, Partition> partitions_;
  std::string error_;
};

// --- The engine --------------------------------------------------------------------------------

struct ReplayOptions {
  BatchLimits limits;
  size_t writers = 2;
  /// Only events of these schemas (capsule `schema`); empty: every schema.
  std::set<std::string, std::less<>> schemas;
  /// How often `progress` is called while running.
  std::chrono::milliseconds progress_every{1000};
  /// Failed attempts after which a writer gives a batch up (a fatal error at once).
  int attempts = 5;
  /// The replay is throttled as the drain is (ingest/drain_governor.h), so a replay of
  /// millions of events does not crowd out the live pipeline or the replicas: at most
  /// `max_rate` events read per second (0: no cap), slower while commits take clearly longer,
  /// and slower while a replica lags more than `max_replica_lag_s` (0: not followed).
  double max_rate = 0;
  double max_replica_lag_s = 0;
  /// The worst replica's lag in seconds, nullopt when unknown (ReplicaLagProbe); asked once
  /// per DrainGovernor::kInterval on the calling thread, so it must not block. Unset: none.
  std::function<std::optional<double>()> replica_lag{};
};

enum class ReplayEnd {
  kComplete,     ///< the whole input read and every event's outcome durable
  kInterrupted,  ///< stopped on request; covered ranges say how far it got
  kFailed,       ///< the input or a writer failed; error() says why
};

class Replay {
 public:
  using SinkFactory = std::function<std::unique_ptr<storage::BatchSink>()>;
  /// Called on the calling thread, every `progress_every` and once at the end (`final`).
  using Progress = std::function<void(const ReplayLedger&, bool final)>;

  Replay(SchemaRegistry& registry, SinkFactory sinks, ReplayOptions options,
         const Clock& clock = SystemClock::instance());

  /// Reads `input` to its end (or until `stop`, or a failure), decoding, batching and writing
  /// every event, and accounts for it in `ledger`. Returns how it ended; `error` says why it
  /// failed. Batches in flight are always waited for, so the ledger is exact when it returns.
  ReplayEnd run(ReplayInput& input, ReplayLedger& ledger, const std::atomic<bool>& stop,
                const Progress& progress, std::string& error);

  /// What limits the rate, for `progress` (the calling thread only).
  const DrainGovernor& governor() const { return governor_; }
  /// Seconds of the run spent held back, per what held it (DrainGovernor::limit_name; only
  /// those that did), once run() returned.
  const std::map<std::string, double>& held_back() const { return held_back_; }

 private:
  SchemaRegistry& registry_;
  SinkFactory sinks_;
  ReplayOptions options_;
  const Clock& clock_;
  DrainGovernor governor_;
  std::map<std::string, double> held_back_;
};

}  // namespace sluice::ingest
