#include "ingest/writer.h"

#include <algorithm>
#include <optional>

#include "common/backoff.h"
#include "common/logging.h"
#include "common/text.h"
#include "common/thread_name.h"
#include "storage/table_layout.h"

namespace sluice::ingest {

using std::chrono::milliseconds;
using storage::Batch;
using storage::DbErrorClass;
using storage::WriteOutcome;

namespace {

/// Dead letters per reason class: the text before the first ':' of each reason, plus the rows
/// the database refused as duplicates. Classes are a small fixed set, so a linear list will do.
void count_dead_letter_classes(const Batch& batch, size_t duplicates,
                               std::vector<std::pair<std::string, uint64_t>>& out) {
  auto add = [&](std::string_view cls, uint64_t n) {
    for (auto& [name, count] : out) {
      if (name == cls) {
        count += n;
        return;
      }
    }
    out.emplace_back(std::string(cls), n);
  };
  for (const auto& d : batch.dead_letters) {
    add(std::string_view(d.reason).substr(0, d.reason.find(':')), 1);
  }
  if (duplicates > 0) add("duplicate_uuid", duplicates);
}

WriteReport report_for(const Batch& batch) {
  WriteReport r;
  r.topic = batch.topic;
  r.partition = batch.partition;
  r.generation = batch.generation;
  r.base_offset = batch.base_offset;
  r.end_offset = batch.end_offset;
  r.bytes = batch.bytes;
  return r;
}

}  // namespace

struct Writer::Job {
  Job(Batch batch, const Clock& clock) : report(report_for(batch)), started(clock.now()) {
    parts.push_back(std::move(batch));
  }
  /// A new part: its retries start afresh.
  void next_part() {
    backoff.reset();
    quick.reset();
    access.reset();
    failures = lasting_failures = repeats = 0;
  }
  /// The delay before the next attempt, from the part's backoff for this kind of failure (made
  /// at its first use: a batch written at the first attempt seeds none).
  milliseconds next_delay(storage::DbErrorClass cls, bool access_denied, const Clock& clock) {
    auto next = [&](std::optional<Backoff>& b, int initial_ms, int max_ms) {
      if (!b) b.emplace(milliseconds(initial_ms), milliseconds(max_ms), clock.seed());
      return b->next();
    };
    if (cls == storage::DbErrorClass::kTransient || cls == storage::DbErrorClass::kOutage ||
        cls == storage::DbErrorClass::kReadOnly) {
      return next(quick, 20, 1'000);
    }
    // Refused privileges: each attempt is a new session (reconnect_after), and a DBA who puts
    // a grant back expects writes to resume within seconds, not half a minute.
    if (access_denied) return next(access, 100, 5'000);
    return next(backoff, 100, 30'000);
  }

  WriteReport report;
  /// Parts still to write, the next one last: splitting replaces the back with its halves.
  std::vector<Batch> parts;
  std::vector<storage::TableRows> spent;  ///< row buffers of the parts written
  size_t splits = 0, refused = 0;
  bool attempted = false;  ///< a statement was tried
  Clock::time_point started;
  /// Backing off: the next attempt is due at retry_at (inline), or after `delay` (a thread).
  Clock::time_point retry_at{};
  milliseconds delay{0};
  // The current part's retries (the streak, failed_attempts_, spans batches).
  std::optional<Backoff> backoff, quick, access;
  int failures = 0;          ///< of this part
  int lasting_failures = 0;  ///< of this part, neither transient nor split: for a RetryLimit
  int repeats = 0;  ///< of this part, in a row: errors that mean a bad batch if they repeat
};

Writer::Writer(size_t index, std::unique_ptr<storage::BatchSink> sink, Report report,
               const Clock& clock, RetryLimit limit, const WriteLease* lease, Execution execution)
    : index_(index),
      execution_(execution),
      sink_(std::move(sink)),
      report_(std::move(report)),
      clock_(clock),
      limit_(limit),
      lease_(lease) {
  if (execution_ == Execution::kThread) {
    thread_ = std::thread([this] {
      name_this_thread("sluice-writer" + std::to_string(index_));
      loop();
    });
  }
}

void Writer::cancel() { sink_->cancel(); }

Writer::~Writer() { stop(true); }

void Writer::push(Batch batch) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(batch));
  }
  cv_.notify_all();
}

bool Writer::idle() {
  std::lock_guard lock(mu_);
  return queue_.empty() && !busy_;
}

void Writer::report_dropped(Batch& batch) {
  WriteReport r = report_for(batch);
  r.outcome = WriteOutcome::kFailed;
  report_(std::move(r));
}

void Writer::quiesce() {
  std::deque<Batch> dropped;
  {
    std::lock_guard lock(mu_);
    quiet_requested_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  for (auto& b : dropped) report_dropped(b);
}

bool Writer::quiet() {
  std::lock_guard lock(mu_);
  return quiet_requested_ && disconnected_ && !busy_;
}

void Writer::unquiesce() {
  std::lock_guard lock(mu_);
  quiet_requested_ = false;
  disconnected_ = false;
}

void Writer::stop(bool abandon) {
  std::deque<Batch> dropped;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    abandon_ = abandon_ || abandon;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (job_) {
    // Inline: a batch between attempts when the writer stopped is given up (a thread gives it
    // up itself before it ends).
    job_->report.outcome = WriteOutcome::kFailed;
    job_->report.error = {};
    finish_job();
  }
  {
    std::lock_guard lock(mu_);
    dropped.swap(queue_);
  }
  for (auto& b : dropped) report_dropped(b);
  sink_->disconnect();
}

void Writer::loop() {
  for (;;) {
    switch (run_once()) {
      case Ran::kStopped:
        return;
      case Ran::kWorked:
        break;
      case Ran::kWaiting: {
        // A thread backs off by real time, whatever the clock says.
        std::unique_lock lock(mu_);
        // Abandoned at shutdown, or dropped for a pause: the next step gives the batch up.
        cv_.wait_for(lock, job_->delay, [&] { return abandon_ || quiet_requested_; });
        job_->retry_at = {};
        break;
      }
      case Ran::kIdle: {
        std::unique_lock lock(mu_);
        // Woken now and then while the lease holds it, so an idle session is closed as soon
        // as the lease runs out (the pipeline's quiesce may come later).
        if (!cv_.wait_for(lock, milliseconds(200), [&] {
              return stopping_ || (!quiet_requested_ && !queue_.empty()) ||
                     (quiet_requested_ && !disconnected_);
            })) {
          if (lease_ != nullptr && !lease_->valid()) {
            lock.unlock();
            sink_->disconnect();
          }
        }
        break;
      }
    }
  }
}

Writer::Ran Writer::run_once() {
  if (job_) {
    if (job_->retry_at > clock_.now()) {
      std::lock_guard lock(mu_);
      if (!abandon_ && !quiet_requested_) return Ran::kWaiting;
    }
    if (step_job()) finish_job();
    return Ran::kWorked;
  }
  Batch batch;
  bool disconnect = false;
  {
    std::lock_guard lock(mu_);
    if (abandon_ || (stopping_ && queue_.empty())) return Ran::kStopped;
    if (quiet_requested_) {
      if (disconnected_) return Ran::kIdle;
      disconnect = true;
    } else if (queue_.empty()) {
      if (execution_ == Execution::kThread || lease_ == nullptr || lease_->valid()) {
        return Ran::kIdle;
      }
      disconnect = true;  // inline, as a thread does when woken idle with the lease run out
    } else {
      batch = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
  }
  if (disconnect) {
    // The sink is only ever touched by the writer's own steps: it is closed here.
    sink_->disconnect();
    std::lock_guard lock(mu_);
    if (!quiet_requested_) return Ran::kIdle;  // an idle session closed: no progress
    disconnected_ = true;
    return Ran::kWorked;
  }
  if (given_up_) {
    // A batch before this one was given up: nothing after it is written either, so a
    // partition never gets a hole with rows past it.
    report_dropped(batch);
    std::lock_guard lock(mu_);
    busy_ = false;
    return Ran::kWorked;
  }
  job_ = std::make_unique<Job>(std::move(batch), clock_);
  if (step_job()) finish_job();
  return Ran::kWorked;
}

bool Writer::next_is_statement() {
  std::lock_guard lock(mu_);
  if (abandon_ || quiet_requested_) return false;  // a give-up, or a disconnect
  if (job_) return job_->retry_at <= clock_.now();
  return !queue_.empty() && !given_up_;
}

bool Writer::step_job() {
  Job& job = *job_;
  if (job.attempted) {
    // Between attempts (after a backoff, or between the parts of a split batch): a pause or a
    // stop takes precedence. What is committed stays; the rest is read again (the
    // compare-and-set skips the committed).
    std::lock_guard lock(mu_);
    if (abandon_ || quiet_requested_) {
      job.report.outcome = WriteOutcome::kFailed;
      job.report.error = {};
      return true;
    }
  }
  job.attempted = true;
  Batch& part = job.parts.back();
  storage::WriteResult result;
  switch (attempt(job, part, result)) {
    case PartEnd::kRetry:
      return false;
    case PartEnd::kGivenUp:
      job.report.outcome = WriteOutcome::kFailed;
      job.report.error = result.error;
      return true;
    case PartEnd::kWritten:
      if (result.outcome == WriteOutcome::kBehind) {
        // MariaDB is behind this part: the pipeline repositions the partition.
        job.report.outcome = WriteOutcome::kBehind;
        job.report.db_next_offset = result.db_next_offset;
        return true;
      }
      add_to_report(part, result, job.report);
      for (auto& t : part.tables) job.spent.push_back(std::move(t));
      job.parts.pop_back();
      job.next_part();
      return job.parts.empty();
    case PartEnd::kSplit:
      split(job, result);
      job.next_part();
      return false;
  }
  return false;
}

void Writer::split(Job& job, const storage::WriteResult& result) {
  auto log = logger("mariadb");
  Batch& part = job.parts.back();
  // Refused for what it holds: halve it, or, down to one event, dead-letter that event with
  // the server's error and write the dead letter in its place.
  if (const int64_t middle = part.middle_offset(); middle >= 0) {
    if (job.splits++ == 0) {
      uint64_t suppressed = 0;
      if (split_log_.allow(suppressed)) {
        log->warn(
            "writer {}: batch {}/{} [{}, {}) refused by MariaDB ({}); splitting it to find the "
            "events at fault ({} similar suppressed)",
            index_, part.topic, part.partition, part.base_offset, part.end_offset,
            result.error.describe(), suppressed);
      }
    }
    Batch tail = part.split_at(middle);
    Batch head = std::move(part);
    job.parts.pop_back();
    job.parts.push_back(std::move(tail));
    job.parts.push_back(std::move(head));
    return;
  }
  std::string reason = "db_refused: ";
  if (!result.failed_table.empty()) reason += result.failed_table + ": ";
  reason += result.error.describe();
  bound(reason, storage::kMaxReasonBytes);
  ++job.refused;
  uint64_t suppressed = 0;
  if (split_log_.allow(suppressed)) {
    log->warn("writer {}: {}/{}@{} dead-lettered: {} ({} similar suppressed)", index_, part.topic,
              part.partition, part.base_offset, reason, suppressed);
  }
  part.dead_letter_table(0, reason);
}

void Writer::finish_job() {
  std::unique_ptr<Job> job = std::move(job_);
  WriteReport& report = job->report;
  if (job->splits > 0 && report.outcome != WriteOutcome::kFailed) {
    logger("mariadb")->info(
        "writer {}: batch {}/{} [{}, {}) written in parts: {} event(s) refused by MariaDB "
        "and dead-lettered, {} row(s) written",
        index_, report.topic, report.partition, report.base_offset, report.end_offset,
        job->refused, report.rows);
  }
  if (report.outcome == WriteOutcome::kFailed && !report.error.is_ok() && limit_.attempts > 0) {
    given_up_ = true;
  }
  report.seconds = std::chrono::duration<double>(clock_.now() - job->started).count();
  // The report owns the row buffers, written or not, for the ingest thread to reuse.
  for (auto& p : job->parts) {
    for (auto& t : p.tables) job->spent.push_back(std::move(t));
  }
  report.spent = std::move(job->spent);
  report_(std::move(report));
  std::lock_guard lock(mu_);
  busy_ = false;
}

WriterState Writer::state() const {
  std::lock_guard lock(state_mu_);
  return state_;
}

void Writer::add_to_report(const Batch& part, const storage::WriteResult& result,
                           WriteReport& report) {
  report.rows += result.rows;
  report.dead_letters += result.dead_letters;
  report.db_next_offset = std::max(report.db_next_offset, result.db_next_offset);
  if (result.outcome != WriteOutcome::kCommitted) {
    if (report.outcome == WriteOutcome::kFailed) report.outcome = result.outcome;
    return;
  }
  report.outcome = WriteOutcome::kCommitted;
  for (size_t i = 0; i < part.tables.size(); ++i) {
    const auto& t = part.tables[i];
    const uint64_t present = i < result.present_per_table.size() ? result.present_per_table[i] : 0;
    auto it = std::find_if(report.tables.begin(), report.tables.end(),
                           [&](const WriteReport::Table& r) { return r.name == t.table->name(); });
    if (it == report.tables.end()) {
      report.tables.push_back({t.table->name(), t.rows() - present, t.max_timestamp, present});
    } else {
      it->rows += t.rows() - present;
      it->max_timestamp = std::max(it->max_timestamp, t.max_timestamp);
      it->already_present += present;
    }
  }
  count_dead_letter_classes(part, result.duplicates, report.dead_letter_classes);
  for (const auto& d : part.dead_letters) {
    if (d.table == nullptr) continue;  // dead-lettered before it reached the database
    auto it = std::find_if(
        report.table_dead_letters.begin(), report.table_dead_letters.end(),
        [&](const WriteReport::TableDeadLetters& t) { return t.name == d.table->name(); });
    if (it == report.table_dead_letters.end()) {
      it = report.table_dead_letters.insert(it, {d.table->name()});
    }
    const bool present =
        std::find(result.dead_letters_present.begin(), result.dead_letters_present.end(),
                  d.offset) != result.dead_letters_present.end();
    ++(present ? it->already_present : it->dead_lettered);
  }
  report.dead_letters_present.insert(report.dead_letters_present.end(),
                                     result.dead_letters_present.begin(),
                                     result.dead_letters_present.end());
}

void Writer::note_success() {
  if (failed_attempts_ > 0) {
    logger("mariadb")->info(
        "writer {}: MariaDB writes recovered after {} failed attempts in {:.1f} s", index_,
        failed_attempts_, std::chrono::duration<double>(clock_.now() - failing_since_).count());
    failed_attempts_ = 0;
  }
  std::lock_guard lock(state_mu_);
  state_.failing = false;
  state_.since_ms = 0;
  state_.attempts = 0;
  state_.partition.clear();
  state_.table.clear();
  state_.last_error.clear();
}

void Writer::note_failure(const Batch& part, const storage::WriteResult& result) {
  auto log = logger("mariadb");
  const auto now = clock_.now();
  // One line when a failure streak starts — however many batches it then spans — and a
  // summary every 30 s while it lasts.
  if (failed_attempts_++ == 0) {
    failing_since_ = last_summary_ = now;
    log->warn("writer {}: batch {}/{} [{}, {}) not written: {}; retrying with backoff", index_,
              part.topic, part.partition, part.base_offset, part.end_offset,
              result.error.describe());
  } else if (now - last_summary_ >= std::chrono::seconds(30)) {
    last_summary_ = now;
    log->warn("writer {}: still failing after {} attempts over {:.0f} s; last error: {}", index_,
              failed_attempts_, std::chrono::duration<double>(now - failing_since_).count(),
              result.error.describe());
  }
  std::lock_guard lock(state_mu_);
  if (failed_attempts_ == 1) {
    state_.since_ms = clock_.wall_ms();
  }
  state_.failing = failed_attempts_ >= kFailingAfter;
  state_.attempts = static_cast<uint64_t>(failed_attempts_);
  state_.partition = part.topic + "/" + std::to_string(part.partition);
  state_.table = result.failed_table;
  state_.last_error = result.error.describe();
}

Writer::PartEnd Writer::attempt(Job& job, Batch& part, storage::WriteResult& result) {
  if (lease_ != nullptr && !lease_->valid()) {
    // Fenced: this instance may not write (its view of the fleet is stale). Read again
    // later, under a renewed lease; the session is closed at once.
    sink_->disconnect();
    result.error = {};
    return PartEnd::kGivenUp;
  }
  result = sink_->write(part);
  if (result.outcome == WriteOutcome::kFailed && lease_ != nullptr && !lease_->valid()) {
    // Refused its COMMIT (storage::kFenced), or cancelled, for the same reason.
    sink_->disconnect();
    result.error = {};
    return PartEnd::kGivenUp;
  }
  if (result.outcome != WriteOutcome::kFailed) {
    note_success();
    return PartEnd::kWritten;
  }
  const auto cls = result.error.error_class();
  {
    std::lock_guard lock(state_mu_);
    ++state_.errors_by_class[static_cast<size_t>(cls)];
  }
  job.repeats = storage::repeated_means_bad_batch(result.error.code) ? job.repeats + 1 : 0;
  // A part that holds a row, or more than one event, can be split; a lone dead letter the
  // database refuses cannot, and is retried like any other failure.
  const bool splittable = part.events > 1 || !part.tables.empty();
  if (splittable && (cls == DbErrorClass::kBadRow || job.repeats >= kRepeatsBeforeSplit)) {
    return PartEnd::kSplit;  // progress, not a failure streak
  }
  ++job.failures;
  if (cls != DbErrorClass::kTransient) ++job.lasting_failures;
  if (limit_.attempts > 0 &&
      (job.lasting_failures >= limit_.attempts || cls == DbErrorClass::kFatal)) {
    // Given up: the caller reports the error; no "retrying" line.
    return PartEnd::kGivenUp;
  }
  // While a batch is being split, a part that times out (or meets a duplicate primary key)
  // once more is part of the search, not the start of a failure streak worth a log line.
  if (job.splits == 0 || !storage::repeated_means_bad_batch(result.error.code)) {
    note_failure(part, result);
  }
  const bool outage_class = cls == DbErrorClass::kOutage || cls == DbErrorClass::kReadOnly;
  if (outage_class && job.failures >= kOutageAttempts) {
    // Not a blip: hand the outage to the pipeline, which spools until MariaDB is back. The
    // batch's events are read again from the partition's rewind point.
    return PartEnd::kGivenUp;
  }
  job.delay = job.next_delay(cls, storage::is_access_denied(result.error.code), clock_);
  job.retry_at = clock_.now() + job.delay;
  return PartEnd::kRetry;
}

}  // namespace sluice::ingest
