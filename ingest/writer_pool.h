#pragma once
/// The writers of one process and everything the thread that feeds them owes them: which
/// writer a partition's batches go to, how many bytes are in flight, the queue their reports
/// come back on, and the row buffers they give back. The service (Pipeline), `sluice replay`
/// and `sluice bench` (LoadTest) each feed one, from one thread.
///
///   feeder thread                         writer threads (Writer, one session each)
///   push(batch) ── route(topic, partition) ──▶ queue ──▶ MariaDB
///   take_reports() ◀── report queue ◀──────────────────── WriteReport
///
/// - **Routing**: every batch of a partition goes to the same writer, so a partition's batches
///   are written in the order they were pushed (DESIGN.md invariant 3).
/// - **Accounting**: push() counts a batch's bytes and take_reports() gives them back, so
///   in_flight_bytes() is exactly what is queued or being written; the spent row buffers of a
///   report go back to rows() for the next batches to reuse.
/// - **Quiet**: quiesce()/quiet()/unquiesce()/cancel() apply to every writer (the gate's
///   effects); restart() replaces every writer with one on a fresh sink, quiesced (a retarget).
///
/// - **Execution**: each writer on a thread of its own, or inline (Options::inline_writers): no
///   thread; the writers are listed in an InlineWriters for a simulation to run by hand.
///
/// Thread safety: every method on the feeder thread only, except that reports arrive from the
/// writer threads (guarded inside).

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/write_lease.h"
#include "ingest/writer.h"
#include "storage/batch.h"
#include "storage/batch_sink.h"

namespace sluice::ingest {

/// The writers of the pools that run them inline (Execution::kInline): nothing runs them but
/// whoever holds this list — a simulation, which picks from its seed which one runs next
/// (Writer::run_once). A pool adds its writers as it makes them and removes them as it stops
/// them. One thread.
class InlineWriters {
 public:
  const std::vector<Writer*>& writers() const { return writers_; }
  /// Changes whenever a writer is added or removed (a writer's address says nothing: a new one
  /// may take a stopped one's).
  uint64_t generation() const { return generation_; }

 private:
  friend class WriterPool;
  std::vector<Writer*> writers_;
  uint64_t generation_ = 0;
};

class WriterPool {
 public:
  using SinkFactory = std::function<std::unique_ptr<storage::BatchSink>()>;

  struct Options {
    size_t writers = 2;
    /// Row buffers kept for reuse, each of at most `spare_rows_capacity` bytes.
    size_t spare_rows = 8;
    size_t spare_rows_capacity = 0;
    RetryLimit limit{};
    /// Nothing is written while it has run out (Writer); nullptr: never runs out.
    const WriteLease* lease = nullptr;
    /// Set: the writers run inline, listed here; unset: each on a thread of its own.
    InlineWriters* inline_writers = nullptr;
  };

  /// As the service and a replay size a pool: spare row buffers for every writer's batches in
  /// flight, each at most twice a batch's limit (bounded memory, no growing from scratch).
  static Options for_batches(size_t writers, size_t max_batch_bytes, RetryLimit limit = {},
                             const WriteLease* lease = nullptr,
                             InlineWriters* inline_writers = nullptr) {
    return {.writers = writers,
            .spare_rows = 4 * writers + 4,
            .spare_rows_capacity = 2 * max_batch_bytes,
            .limit = limit,
            .lease = lease,
            .inline_writers = inline_writers};
  }
  /// The bytes in flight the service and a replay allow: every writer with one batch in the
  /// database and one or two waiting, however small the batches are (many partitions read
  /// round-robin make small ones).
  static size_t in_flight_budget(size_t writers, size_t max_batch_bytes) {
    return (2 * writers + 1) * max_batch_bytes;
  }

  /// No writer runs until start().
  WriterPool(Options options, SinkFactory sinks, const Clock& clock);
  /// Stops every writer, dropping what is queued.
  ~WriterPool();
  WriterPool(const WriterPool&) = delete;
  WriterPool& operator=(const WriterPool&) = delete;

  /// Starts the writers, each with a sink of its own from the factory.
  void start();
  /// Stops the writers: after their queues are written, or at once (dropping them) if
  /// `abandon`. Their last reports stay queued for take_reports().
  void stop(bool abandon);
  /// Replaces every writer with one on a fresh sink, quiesced (the endpoint moved).
  void restart();

  /// The writer a partition's batches go to.
  size_t route(std::string_view topic, int32_t partition) const;
  /// Hands a batch to its partition's writer.
  void push(storage::Batch batch);
  /// The reports that came back since the last call, their bytes no longer in flight and
  /// their row buffers back in rows(). The vector is reused by the next call.
  std::vector<WriteReport>& take_reports();
  /// Waits up to `timeout` for a report to come back; true when one is there. Inline: does
  /// not wait (nothing would run meanwhile).
  bool wait_for_report(std::chrono::milliseconds timeout);
  /// Waits up to `timeout` for every writer to be idle; true when they are. Inline: does not
  /// wait.
  bool wait_idle(std::chrono::milliseconds timeout);

  size_t in_flight_bytes() const { return in_flight_bytes_; }
  /// Batches pushed and not yet taken back as reports.
  size_t in_flight() const { return in_flight_; }
  storage::TableRowsPool& rows() { return rows_; }
  size_t size() const { return writers_.size(); }

  void quiesce();
  /// True once every writer is quiet: nothing in flight, connection closed.
  bool quiet();
  void unquiesce();
  /// Aborts every statement in progress (each writer gives its batch up like a dropped one).
  void cancel();
  /// True when nothing is queued or being written.
  bool idle();
  std::vector<WriterState> states() const;

 private:
  std::unique_ptr<Writer> make_writer(size_t index);
  /// Puts a writer on the inline list (when there is one).
  void enlist(Writer& writer);
  /// Stops a writer and takes it off the inline list.
  void retire(Writer& writer, bool abandon);

  const Options options_;
  SinkFactory sinks_;
  const Clock& clock_;
  storage::TableRowsPool rows_;
  std::vector<std::unique_ptr<Writer>> writers_;
  size_t in_flight_bytes_ = 0;
  size_t in_flight_ = 0;
  std::vector<WriteReport> taken_;  ///< handed out by take_reports()
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WriteReport> reports_;  ///< guarded by mu_
};

}  // namespace sluice::ingest
