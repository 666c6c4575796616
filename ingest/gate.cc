#include "ingest/gate.h"

#include <utility>

#include "common/logging.h"

namespace sluice::ingest {

using std::chrono::milliseconds;

Gate::Gate(GateEffects& effects, const Clock& clock) : effects_(effects), clock_(clock) {}

void Gate::start_paused(storage::PauseRecord record) {
  pause_ = std::move(record);
  state_ = State::kClosed;
}

void Gate::start_in_outage(const storage::DbStatus& cause) {
  state_ = State::kClosed;
  enter_outage(cause);
}

void Gate::enter_outage(const storage::DbStatus& cause) {
  db_up_ = false;
  outage_error_ = cause;
  start_probing();
  next_probe_ = clock_.now() + probe_backoff_->next();
}

void Gate::start_probing() {
  outage_ = true;
  outage_since_ms_ = clock_.wall_ms();
  last_outage_summary_ = clock_.now();
  probe_backoff_.emplace(milliseconds(500), milliseconds(30'000), clock_.seed());
  next_probe_ = clock_.now();
}

void Gate::start_held() {
  state_ = State::kClosed;
  held_ = true;
}

ServiceState Gate::closed_state() const {
  if (pause_) return ServiceState::kPaused;
  if (held_) return ServiceState::kStarting;
  if (fenced_) return ServiceState::kFleetUnreachable;
  return outage_ ? ServiceState::kOutage : ServiceState::kPaused;
}

void Gate::lease(bool valid) {
  if (valid != fenced_) return;  // no change
  fenced_ = !valid;
  ++version_;
  auto log = logger("ingest");
  if (fenced_) {
    fenced_since_ = clock_.now();
    cancelled_ = false;
    if (state_ == State::kOpen) {
      closed_by_fence_ = true;
      close();
      log->error(
          "the write lease ran out (the fleet topic has not been read back in time): closing "
          "every MariaDB session; events are spooled until the fleet is heard again");
    }
    return;
  }
  log->info("the write lease is renewed: the fleet is heard again");
}

void Gate::follow_lease() {
  const auto now = clock_.now();
  if (fenced_ && state_ == State::kClosing && !cancelled_ &&
      now - fenced_since_ >= std::chrono::seconds(1)) {
    cancelled_ = true;
    effects_.cancel_writes();
  }
  if (!fenced_ && closed_by_fence_ && state_ == State::kClosed) {
    closed_by_fence_ = false;
    if (!pause_ && !held_ && !outage_) reopen();
  }
}

std::future<Status> Gate::submit(Command kind, std::string reason,
                                 std::optional<MariaDbConfig> mariadb, bool local,
                                 std::string expected_server) {
  std::lock_guard lock(mu_);
  Pending c{kind, std::move(reason), {}, std::move(mariadb), local, std::move(expected_server)};
  auto done = c.done.get_future();
  if (stopped_) {
    c.done.set_value(Status::error(stopped_why_));
  } else {
    pending_.push_back(std::move(c));
  }
  return done;
}

Status Gate::await(std::future<Status> answer, std::chrono::milliseconds timeout,
                   const char* what) {
  if (answer.wait_for(timeout) != std::future_status::ready) {
    return Status::error(std::string(what) + " did not complete within " +
                         std::to_string(timeout.count() / 1000) +
                         " s (a transaction may still be running); it goes on in the background");
  }
  return answer.get();
}

void Gate::stop(const std::string& why) {
  for (auto& w : closing_waiters_) w.set_value(Status::error(why));
  closing_waiters_.clear();
  std::lock_guard lock(mu_);
  stopped_ = true;
  stopped_why_ = why;
  for (auto& c : pending_) c.done.set_value(Status::error(why));
  pending_.clear();
}

void Gate::step() {
  for (;;) {
    std::optional<Pending> c;
    {
      std::lock_guard lock(mu_);
      // A resume waits while a pause is still closing the gate: the rewind must happen first.
      // (Checked before each command: a pause just taken may have started closing.)
      if (pending_.empty() ||
          (state_ == State::kClosing && pending_.front().kind == Command::kResume)) {
        break;
      }
      c.emplace(std::move(pending_.front()));
      pending_.erase(pending_.begin());
    }
    switch (c->kind) {
      case Command::kPause:
        pause(*c);
        break;
      case Command::kResume:
        resume(*c);
        break;
      case Command::kRetarget:
        retarget(*c);
        break;
      case Command::kRelease:
        release();
        c->done.set_value(Status::ok());
        break;
    }
  }
  finish_closing();
  follow_lease();
  probe();
}

void Gate::pause(Pending& c) {
  auto log = logger("ingest");
  if (pause_) {  // already paused, or pausing: idempotent
    if (pause_->local && !c.local) {
      // The fleet has adopted this host's own pause: it is the fleet's now.
      pause_->local = false;
      pause_->reason = c.reason;
      if (auto st = effects_.record_pause(pause_); !st) {
        log->warn("the pause could not be recorded in the spool: {}", st.message());
      }
      ++version_;
    }
    if (state_ == State::kClosed) {
      c.done.set_value(Status::ok());
    } else {
      closing_waiters_.push_back(std::move(c.done));
    }
    return;
  }
  storage::PauseRecord record{c.reason, clock_.wall_ms(), c.local};
  if (auto st = effects_.record_pause(record); !st) {
    // A spool that cannot write must never block a pause: the gate closes all the same. Only
    // a restart would forget it — and in a fleet the target, in the fleet topic, remembers.
    log->warn(
        "the pause could not be recorded in the spool ({}): paused all the same, but a restart "
        "of this instance alone would not remember it",
        st.message());
  }
  pause_ = record;
  const bool was_held = held_;
  held_ = false;  // a held gate is told: stay closed, paused
  ++version_;
  if (state_ == State::kClosed) {
    // Closed by an outage, or held at start: already quiet. It now stays closed until resumed.
    c.done.set_value(Status::ok());
    if (was_held) {
      log->info("paused{}{} before writing anything: no MariaDB connection until resumed",
                c.reason.empty() ? "" : " for ", c.reason);
    } else {
      log->info("paused{}{} during a MariaDB outage: Sluice stays paused when it returns",
                c.reason.empty() ? "" : " for ", c.reason);
    }
    return;
  }
  closing_waiters_.push_back(std::move(c.done));
  if (state_ == State::kOpen) close();
  log->info("pausing{}{}: finishing the open transactions and closing MariaDB connections",
            c.reason.empty() ? "" : " for ", c.reason);
}

void Gate::release() {
  if (pause_ || !held_) return;
  // Find out whether MariaDB takes writes, and open when it does.
  held_ = false;
  first_contact_ = true;
  start_probing();
  ++version_;
  probe();
}

void Gate::resume(Pending& c) {
  // The server it is for holds from this resume on, whatever the gate does with it (a resume
  // of a running gate, or one that waits for an outage to end).
  expected_server_ = std::move(c.expected_server);
  if (!pause_ && held_) {
    release();
    c.done.set_value(Status::ok());
    return;
  }
  if (!pause_) {
    // Nothing an operator closed. (In an outage Sluice reopens by itself.)
    c.done.set_value(Status::ok());
    return;
  }
  if (auto st = effects_.record_pause(std::nullopt); !st) {
    logger("ingest")->warn(
        "the resume could not be recorded in the spool ({}): resumed all the same; a restart "
        "would find the old pause (in a fleet, the target in the fleet topic decides)",
        st.message());
  }
  pause_.reset();
  ++version_;
  if (fenced_) {
    // Written nowhere until the fleet is heard again: the gate opens then.
    closed_by_fence_ = true;
    logger("ingest")->info("resumed; the write lease has run out: writing starts once renewed");
    c.done.set_value(Status::ok());
    return;
  }
  if (outage_) {
    logger("ingest")->info("resumed; MariaDB is still unavailable: writing starts once it is back");
    // Probe soon: the outage may have ended while paused (a paused service does not probe).
    next_probe_ = clock_.now();
    c.done.set_value(Status::ok());
    return;
  }
  reopen();
  logger("ingest")->info("resumed: spooled events drain first, in offset order");
  c.done.set_value(Status::ok());
}

void Gate::retarget(Pending& c) {
  if (!pause_ || state_ != State::kClosed) {
    c.done.set_value(Status::error(
        "the MariaDB endpoint changes only while paused: run `sluice pause` first, then reload"));
    return;
  }
  // Paused means quiet: no writer holds a batch or a connection, so their sessions can be
  // replaced. The new ones stay quiet until the resume.
  effects_.retarget(*c.mariadb);
  db_up_ = false;
  c.done.set_value(Status::ok());
}

void Gate::close() {
  ++version_;
  state_ = State::kClosing;
  effects_.quiesce();
}

void Gate::reopen() {
  ++version_;
  state_ = State::kOpen;
  effects_.opened();
}

void Gate::finish_closing() {
  if (state_ != State::kClosing || !effects_.quiet()) return;
  effects_.closed();
  ++version_;
  state_ = State::kClosed;
  for (auto& w : closing_waiters_) w.set_value(Status::ok());
  closing_waiters_.clear();
}

void Gate::outage(const storage::DbStatus& cause) {
  if (outage_) {
    outage_error_ = cause;
    return;
  }
  if (state_ != State::kOpen) return;  // already closing or closed by an operator
  enter_outage(cause);
  close();
  logger("ingest")->warn(
      "MariaDB unavailable ({}): spooling events and probing with backoff until it takes writes "
      "again",
      cause.describe());
}

void Gate::probe() {
  if (!outage_ || pause_ || fenced_ || state_ != State::kClosed) return;
  const auto now = clock_.now();
  if (now < next_probe_) return;
  auto st = effects_.probe();
  const bool first_contact = std::exchange(first_contact_, false);
  if (!st.is_ok() && first_contact && st.error_class() == storage::DbErrorClass::kFatal) {
    outage_error_ = st;
    ++version_;
    effects_.refused(st);
    return;
  }
  if (!st.is_ok()) {
    if (first_contact) {
      logger("ingest")->warn(
          "MariaDB unavailable at start-up ({}): spooling events and probing with backoff",
          st.describe());
    }
    if (st.describe() != outage_error_.describe()) ++version_;
    outage_error_ = st;
    next_probe_ = clock_.now() + probe_backoff_->next();
    if (now - last_outage_summary_ >= std::chrono::seconds(60)) {
      last_outage_summary_ = now;
      logger("ingest")->warn("outage for {} s; last error: {}; probing with backoff",
                             (clock_.wall_ms() - outage_since_ms_) / 1000, st.describe());
    }
    return;
  }
  outage_ = false;
  db_up_ = true;
  ++version_;
  if (first_contact) {
    logger("ingest")->info("connected to MariaDB; bookkeeping tables ready: writing starts");
  } else {
    logger("ingest")->info("MariaDB takes writes again after {} s: spooled events drain first",
                           (clock_.wall_ms() - outage_since_ms_) / 1000);
  }
  reopen();
}

}  // namespace sluice::ingest
