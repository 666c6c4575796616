#pragma once
/// The gate between the pipeline and MariaDB (DESIGN.md invariants 5 and 8):
///
///   open     events may be written to MariaDB
///   closing  a pause or an outage was requested: writers finish or drop what they hold and
///            disconnect; the pipeline's partitions take nothing that would need MariaDB
///   closed   nothing touches MariaDB; events are spooled. Closed by an operator (a pause,
///            recorded durably so a restart stays paused) or by Sluice itself (an outage: lost
///            connection, server gone, read-only), which then probes with exponential backoff
///            and jitter and reopens when the server takes writes again.
///
/// Commands (pause, resume, retarget) come from any thread and are answered through futures:
/// a pause once the gate is closed — no open transaction, no connection — a resume once it is
/// open (or, during an outage, once the pause is lifted), a retarget once the new endpoint is in
/// place. A resume waits while a pause is still closing the gate.
///
/// The gate decides; the pipeline acts, through `GateEffects`, so the gate is unit-tested
/// alone (tests/unit/gate_test.cc).
///
/// Thread safety: `submit` and the `pause`/`resume`/`retarget` helpers from any thread; the rest
/// on the ingest thread.

#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"
#include "ingest/service_state.h"
#include "storage/db_error.h"
#include "storage/spool.h"

namespace sluice::ingest {

/// What the gate asks of the pipeline. Called on the ingest thread.
class GateEffects {
 public:
  virtual ~GateEffects() = default;
  /// Records (or clears) the operator's pause durably.
  virtual Status record_pause(const std::optional<storage::PauseRecord>& record) = 0;
  /// Start closing: writers drop queued batches, finish the one in progress, disconnect.
  virtual void quiesce() = 0;
  /// True once nothing is in flight and no connection is open.
  virtual bool quiet() = 0;
  /// The gate is closed: partitions rewind to what MariaDB holds and spool from there.
  virtual void closed() = 0;
  /// The gate is open: writers may connect; partitions drain, refill or flow.
  virtual void opened() = 0;
  /// Whether MariaDB takes writes now (connects, checks read-only), closing what it opened.
  virtual storage::DbStatus probe() = 0;
  /// The write lease ran out a while ago and writers are still busy: abort their statements
  /// (the server rolls the transactions back), so no session outlives the fence's grace.
  virtual void cancel_writes() = 0;
  /// Points the writers at another endpoint; only called while paused and closed.
  virtual void retarget(const MariaDbConfig& mariadb) = 0;
  /// At the first contact after a held start, MariaDB refused this service outright (wrong
  /// password, unknown database, missing privilege, a certificate it rejects): as at any
  /// start-up, a person must act, and the service stops saying why.
  virtual void refused(const storage::DbStatus& cause) = 0;
};

class Gate {
 public:
  enum class State { kOpen, kClosing, kClosed };

  Gate(GateEffects& effects, const Clock& clock);
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  // --- Start-up (ingest thread, before the loop) --------------------------------------------

  /// A pause recorded before a restart: start closed and quiet.
  void start_paused(storage::PauseRecord record);
  /// MariaDB down or read-only at start-up: start closed and probe.
  void start_in_outage(const storage::DbStatus& cause);
  /// Start closed and quiet, touching nothing, until told what to do: a pause keeps it closed
  /// (paused), a resume or a release lets it go (it probes MariaDB, then opens). An instance
  /// of a fleet starts so until it has read the fleet's target state.
  void start_held();

  // --- Commands (any thread) ----------------------------------------------------------------

  /// kRelease lets a held gate go (and does nothing otherwise: a pause stays).
  enum class Command { kPause, kResume, kRetarget, kRelease };
  /// `expected_server` (kResume): the @@server_uid a fleet's resume writes to ("" for any);
  /// kept until the next resume (expected_server()).
  std::future<Status> submit(Command kind, std::string reason = {},
                             std::optional<MariaDbConfig> mariadb = std::nullopt,
                             bool local = false, std::string expected_server = {});
  /// A command's answer, waiting at most `timeout` for it; past that an error saying the
  /// command (`what`) goes on in the background.
  static Status await(std::future<Status> answer, std::chrono::milliseconds timeout,
                      const char* what);
  /// Answers every command still queued or waiting with `why`; later ones are refused.
  void stop(const std::string& why);

  // --- The loop (ingest thread) -------------------------------------------------------------

  /// Commands, the end of a closing, the outage probe.
  void step();
  /// A write failed for an outage-class reason: close by ourselves (no-op when closing or
  /// closed already, except to remember the latest error).
  void outage(const storage::DbStatus& cause);
  /// MariaDB took a write: it is up.
  void database_reached() { db_up_ = true; }
  /// Whether the write lease is valid (called every round). Run out, the gate closes by itself
  /// — state fleet_unreachable — and nothing is probed or written until it is renewed; then it
  /// opens again unless paused (a pause or resume meanwhile is kept).
  void lease(bool valid);

  State state() const { return state_; }
  bool open() const { return state_ == State::kOpen; }
  bool in_outage() const { return outage_; }
  bool fenced() const { return fenced_; }
  const std::optional<storage::PauseRecord>& pause_record() const { return pause_; }
  const storage::DbStatus& outage_error() const { return outage_error_; }
  int64_t outage_since_ms() const { return outage_since_ms_; }
  bool db_up() const { return db_up_; }
  /// The server the last resume was for ("" for any): checked before writers connect.
  const std::string& expected_server() const { return expected_server_; }
  /// What the service is while the gate is not open: paused, starting (held),
  /// fleet_unreachable (fenced) or outage. Only meaningful when not open.
  ServiceState closed_state() const;
  /// Closed, with every writer quiet: no transaction, no connection.
  bool quiet() const { return state_ == State::kClosed; }
  /// Changes whenever the state, the pause or the outage changes (to republish status).
  uint64_t version() const { return version_; }

 private:
  struct Pending {
    Command kind;
    std::string reason;
    std::promise<Status> done;
    std::optional<MariaDbConfig> mariadb;
    bool local = false;           ///< a pause of this host alone (PauseRecord::local)
    std::string expected_server;  ///< kResume: see submit
  };
  /// The outage begins (the state is the caller's): remembered, and probed with backoff.
  void enter_outage(const storage::DbStatus& cause);
  /// Whether MariaDB takes writes is found out from now on: outage state, a fresh backoff, the
  /// first probe due at once.
  void start_probing();
  void pause(Pending& c);
  void resume(Pending& c);
  void release();
  void retarget(Pending& c);
  void close();
  void reopen();
  void finish_closing();
  /// The fence: cancels writers that outlive its first second, reopens once renewed.
  void follow_lease();
  void probe();

  GateEffects& effects_;
  const Clock& clock_;
  State state_ = State::kOpen;
  std::optional<storage::PauseRecord> pause_;  ///< the operator's pause
  std::vector<std::promise<Status>> closing_waiters_;
  bool outage_ = false;         ///< closed by Sluice itself: MariaDB down or read-only
  bool held_ = false;           ///< closed since start-up until a pause or a resume says what next
  bool first_contact_ = false;  ///< let go from held: the next probe is the start-up's
  bool db_up_ = false;
  std::string expected_server_;   ///< ingest thread: set by each resume
  bool fenced_ = false;           ///< the write lease has run out
  bool closed_by_fence_ = false;  ///< closed (or closing) for the fence: reopens when renewed
  bool cancelled_ = false;        ///< the fence's writers were cancelled
  Clock::time_point fenced_since_{};
  storage::DbStatus outage_error_;
  int64_t outage_since_ms_ = 0;
  Clock::time_point next_probe_{};
  Clock::time_point last_outage_summary_{};
  std::optional<Backoff> probe_backoff_;
  uint64_t version_ = 0;

  std::mutex mu_;
  std::vector<Pending> pending_;  ///< guarded by mu_
  bool stopped_ = false;          ///< guarded by mu_
  std::string stopped_why_;       ///< guarded by mu_
};

}  // namespace sluice::ingest
