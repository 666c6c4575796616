#pragma once
/// A writer: one thread, one database session (BatchSink), a FIFO of batches. Batches of one
/// partition always go to the same writer, so they commit in offset order.
///
/// Every batch pushed is reported exactly once through the report callback: written (committed,
/// already applied, behind) or given up (dropped by quiesce or stop, or handed back as an
/// outage). Retries: a failed write is retried with backoff — quick for transient errors
/// (deadlock, lock wait), up to 5 s for refused privileges (each attempt on a new session), up
/// to 30 s otherwise — logging one line when a failure streak starts,
/// a summary every 30 s, and one line when it ends. An outage-class or read-only failure that
/// survives `kOutageAttempts` quick attempts is not retried: it is reported with its error, and
/// the pipeline switches to spooling.
///
/// A batch never blocks forever on its own content. When the database refuses it for what it
/// holds (DbErrorClass::kBadRow: a value, a constraint, the table's layout) — or a statement
/// carrying it exceeds max_statement_time, or meets a duplicate primary key, `kRepeatsBeforeSplit`
/// times in a row — the batch is split by offset into two contiguous halves, each written as its
/// own exactly-once transaction with the sluice_offsets compare-and-set, in offset order, and so
/// on down to single events. A
/// single event the database still refuses becomes a dead letter with the server's error
/// ("db_refused: <table>: MariaDB error ..."), written in its own transaction; everything else
/// is written. The report then covers the whole batch (rows and dead letters of every part); a
/// crash between parts is safe, since the next attempt's compare-and-set skips what was
/// committed.
///
/// A writer whose failures last `kFailingAfter` attempts is `failing` (state()), with the
/// partition, the table and the last error, until a write succeeds.
///
/// Writing needs the write lease (common/write_lease.h): it is checked before each attempt (and
/// by the sink again before COMMIT); while it has run out batches are dropped unwritten and an
/// idle writer closes its session.
///
/// Execution: on a thread of its own (the service), or inline (a simulation): then nothing
/// runs until run_once() is called, which does the next piece of work that is due — one
/// statement, one disconnect, one batch reported dropped — on the caller's thread, and a retry
/// is due when the injected clock reaches it instead of after a wait. Both run the same steps,
/// so a simulation with the seed choosing which writer runs when replays exactly.
///
/// Threading: push/quiesce/quiet/unquiesce/idle/stop are called by the ingest thread; the sink
/// is used only by the writer's own thread (inline: by whoever calls run_once()), which also
/// calls the report callback. state() and cancel() are safe from any thread.

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/logging.h"
#include "common/write_lease.h"
#include "ingest/writer_state.h"
#include "storage/batch_sink.h"

namespace sluice::ingest {

/// How one batch ended, as the ingest thread needs to know it.
struct WriteReport {
  struct Table {
    std::string name;
    uint64_t rows = 0;           ///< rows of the batch for this table, less those already present
    int64_t max_timestamp = -1;  ///< epoch seconds
    /// Replay modes: rows not written because their uuid is already stored (0 otherwise).
    uint64_t already_present = 0;
  };
  std::string topic;
  int32_t partition = 0;
  uint64_t generation = 0;
  /// kFailed: not written — dropped (quiesce/stop; `error` is ok) or an outage (`error` says).
  storage::WriteOutcome outcome = storage::WriteOutcome::kFailed;
  int64_t base_offset = 0;
  int64_t end_offset = 0;
  int64_t db_next_offset = -1;
  size_t bytes = 0;  ///< the batch's in-flight accounting, to give back
  size_t rows = 0;
  size_t dead_letters = 0;
  double seconds = 0;           ///< time spent in the database for this batch, retries included
  std::vector<Table> tables{};  ///< for kCommitted: rows and newest timestamp per table
  /// For kCommitted: dead letters per reason class ("wrong_type", "duplicate_uuid", ...).
  std::vector<std::pair<std::string, uint64_t>> dead_letter_classes{};
  /// For kCommitted, replay modes: offsets whose dead letter was already recorded, so not
  /// written again.
  std::vector<int64_t> dead_letters_present{};
  /// For kCommitted: events whose row was dead-lettered on the database side (a table of another
  /// layout, a row MariaDB refused in a split), per table; in replay modes those whose dead
  /// letter was already recorded count as already present instead.
  struct TableDeadLetters {
    std::string name;
    uint64_t dead_lettered = 0;
    uint64_t already_present = 0;
  };
  std::vector<TableDeadLetters> table_dead_letters{};
  storage::DbStatus error{};
  /// The batch's row buffers, done with: the ingest thread reuses their memory.
  std::vector<storage::TableRows> spent{};
};

/// How long a writer keeps trying one batch. The service never gives a batch up (outages
/// aside: those are handed back); a command that must end and say what happened, such as
/// `sluice replay`, does.
struct RetryLimit {
  /// 0: retry until written. Otherwise give the batch up (reported kFailed with its error —
  /// and every batch after it, reported dropped: the writer writes nothing more)
  /// after this many failed attempts that were not transient (a deadlock or a lock wait is
  /// always retried: it passes; one that repeats for the batch's own sake — a statement timeout,
  /// a duplicate primary key — splits it instead), and at the first fatal error (access denied,
  /// an unknown database), which no retry fixes.
  int attempts = 0;
};

/// Where a writer's work runs (Writer, WriterPool).
enum class Execution { kThread, kInline };

class Writer {
 public:
  /// A connection error or read-only refusal that survives this many quick attempts is an
  /// outage, handed back to the pipeline.
  static constexpr int kOutageAttempts = 3;
  /// A writer whose attempts have failed this many times in a row is `failing`.
  static constexpr int kFailingAfter = 3;
  /// A batch whose statement exceeds max_statement_time, or meets a duplicate primary key, this
  /// many times in a row is split (storage::repeated_means_bad_batch).
  static constexpr int kRepeatsBeforeSplit = 2;
  using Report = std::function<void(WriteReport&&)>;

  /// `lease`: nothing is written while it has run out — a batch is then dropped (reported
  /// kFailed with an ok error, read again later) and the session closed; nullptr: never runs
  /// out.
  Writer(size_t index, std::unique_ptr<storage::BatchSink> sink, Report report, const Clock& clock,
         RetryLimit limit = {}, const WriteLease* lease = nullptr,
         Execution execution = Execution::kThread);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void push(storage::Batch batch);
  /// True when nothing is queued or being written.
  bool idle();
  /// Asks for quiet: queued batches are dropped (reported as kFailed with an ok error; their
  /// events are read again later), the batch being written finishes or fails without further
  /// retries, then the connection is closed.
  void quiesce();
  /// True once quiesce() has taken effect: nothing in flight, connection closed.
  bool quiet();
  /// Allows writing (and connecting) again after quiesce().
  void unquiesce();
  /// Aborts the statement in progress, if any (the server rolls its transaction back); the
  /// batch is then given up like a dropped one. Safe from any thread.
  void cancel();
  /// Stops the thread: after the queue is written, or at once (dropping it) if `abandon`.
  void stop(bool abandon);
  /// Thread safe: whether the writer is failing, and why.
  WriterState state() const;

  /// What run_once() did.
  enum class Ran {
    kWorked,   ///< a piece of work: a statement, a disconnect, a batch reported dropped
    kWaiting,  ///< nothing due: a batch waits for its next attempt (retry_at())
    kIdle,     ///< nothing to do
    kStopped,  ///< stopped: nothing more will run
  };
  /// Inline execution: does the next piece of work that is due, on this thread.
  Ran run_once();
  /// Inline execution: the next piece of work is a statement on the sink (a simulation holding
  /// the database's writes runs other work first).
  bool next_is_statement();
  const storage::BatchSink& sink() const { return *sink_; }

 private:
  /// How one attempt at a part of a batch ended.
  enum class PartEnd { kWritten, kSplit, kGivenUp, kRetry };
  /// The batch being written: its parts, its report so far, the current part's retries.
  struct Job;

  void loop();
  /// One step of the job: an attempt at its next part, or giving it up for a quiesce or a
  /// stop. True when the job is finished (its report complete).
  bool step_job();
  /// Reports the finished job.
  void finish_job();
  /// One statement for the job's current part. kSplit: the database refuses what it holds
  /// (split it, or dead-letter a single event); kGivenUp: an outage, a fencing or a limit;
  /// kRetry: try again at the job's retry_at.
  PartEnd attempt(Job& job, storage::Batch& part, storage::WriteResult& result);
  /// Handles a part the database refused for what it holds: halves it, or dead-letters it.
  void split(Job& job, const storage::WriteResult& result);
  /// Records a failed attempt (streak, logs, counters).
  void note_failure(const storage::Batch& part, const storage::WriteResult& result);
  void note_success();
  /// Adds a written part's outcome to the batch's report.
  static void add_to_report(const storage::Batch& part, const storage::WriteResult& result,
                            WriteReport& report);
  void report_dropped(storage::Batch& batch);

  size_t index_;
  const Execution execution_;
  std::unique_ptr<storage::BatchSink> sink_;
  Report report_;
  const Clock& clock_;
  RetryLimit limit_;
  const WriteLease* lease_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<storage::Batch> queue_;  // guarded by mu_
  bool busy_ = false;                 // guarded by mu_
  bool stopping_ = false;             // guarded by mu_
  bool abandon_ = false;              // guarded by mu_
  bool quiet_requested_ = false;      // guarded by mu_
  bool disconnected_ = false;         // guarded by mu_
  /// With a RetryLimit, a batch was given up: every later one is reported dropped unwritten
  /// (writer thread only).
  bool given_up_ = false;
  std::unique_ptr<Job> job_;  // writer thread only
  // The current failure streak, across batches (writer thread only).
  int failed_attempts_ = 0;
  Clock::time_point failing_since_{};
  Clock::time_point last_summary_{};
  RateLimiter split_log_{std::chrono::seconds(10)};  // writer thread only
  mutable std::mutex state_mu_;
  WriterState state_;   // guarded by state_mu_
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace sluice::ingest
