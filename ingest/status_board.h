#pragma once
/// What the pipeline shows of itself, in one place: the status snapshot the admin endpoint and
/// the metrics read from other threads, and the summary line logged every 30 s.
///
///   ingest thread                                   any thread
///   build_status(StatusSources) ── publish() ──▶ snapshot ◀── snapshot()
///   add_gap / add_tables / consumed ──────────────▶ (kept across snapshots)
///
/// `build_status` is a function of what it is given: each unit's state, read through const
/// views on the ingest thread; it decides nothing. The board keeps what is not anyone's state
/// but the record's own — the gaps lately found, the rows per table, the events per topic —
/// and the server notes, which it logs once each time they change.
///
/// Thread safety: snapshot() from any thread; everything else on the ingest thread.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "ingest/drain_governor.h"
#include "ingest/event_source.h"
#include "ingest/flow_control.h"
#include "ingest/gate.h"
#include "ingest/pipeline_status.h"
#include "ingest/schema.h"
#include "ingest/spool_lane.h"
#include "ingest/writer_pool.h"

namespace sluice::ingest {

/// What a status snapshot is built from: the units' own state, as they are this round.
struct StatusSources {
  const Cursors& cursors;
  EventSource* source;  ///< its cached watermarks (nullptr before it exists)
  const SpoolLane& lane;
  const Gate& gate;
  const DrainGovernor& governor;
  const WriterPool& writers;
  const FlowControl& flow;
  const storage::BatchSink* control;  ///< the bookkeeping session (nullptr before start)
  const MariaDbConfig& mariadb;
  const SchemaRegistry& schemas;
  ServiceState state;
  int64_t wall_ms;
};

/// The snapshot of this round, less what the board keeps itself (gaps, tables, consumed per
/// topic, server notes).
PipelineStatus build_status(const StatusSources& in);

/// The pipeline's state as one word: the gate's when closed; draining while any partition
/// still drains or refills (or an orphan's events wait in the spool); running otherwise.
ServiceState service_state(const Gate& gate, const Cursors& cursors);

class StatusBoard {
 public:
  explicit StatusBoard(const Clock& clock) : clock_(clock) {}

  /// The latest snapshot, with the board's own records. Any thread.
  PipelineStatus snapshot() const;
  /// True at most every quarter second (always when forced): time to publish().
  bool due(bool force);
  /// Replaces the snapshot (a stopping pipeline stays stopping).
  void publish(PipelineStatus next);
  /// The pipeline started: the first summary line counts from here.
  void started();
  void set_stopping();

  /// Offsets [from, to) expired from Kafka unread (the most recent kept).
  void add_gap(const std::string& topic, int32_t partition, int64_t from, int64_t to);
  /// Rows a committed batch wrote, per table.
  void add_tables(const std::vector<WriteReport::Table>& tables);
  void consumed(const std::string& topic) { ++consumed_by_topic_[topic]; }

  /// What in the server's settings holds the writers back, for this autoinc lock mode (as the
  /// bookkeeping session last read it; -1 unknown); logged when it changes.
  const std::vector<std::string>& server_notes(int autoinc_lock_mode, const MariaDbConfig& m);

  /// The 30 s summary line (at once when forced).
  void log_summary(const PipelineStats& stats, size_t in_flight_bytes, bool force);

 private:
  static constexpr size_t kGapsKept = 100;
  const Clock& clock_;
  Clock::time_point last_status_{};
  Clock::time_point last_summary_{};
  uint64_t last_summary_consumed_ = 0;
  int server_notes_mode_ = -1;  ///< the innodb_autoinc_lock_mode server_notes_ are for
  std::vector<std::string> server_notes_;
  std::map<std::string, uint64_t> consumed_by_topic_;
  mutable std::mutex mu_;
  PipelineStatus status_;                                ///< guarded by mu_
  std::map<std::string, PipelineStatus::Table> tables_;  ///< guarded by mu_
  std::vector<PipelineStatus::Gap> gaps_;                ///< guarded by mu_
};

}  // namespace sluice::ingest
