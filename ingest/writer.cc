#include "ingest/writer.h"

#include "common/backoff.h"
#include "common/logging.h"
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

Writer::Writer(size_t index, std::unique_ptr<storage::BatchSink> sink, Report report,
               const Clock& clock, RetryLimit limit)
    : index_(index),
      sink_(std::move(sink)),
      report_(std::move(report)),
      clock_(clock),
      limit_(limit),
      thread_([this] { loop(); }) {}

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
  {
    std::lock_guard lock(mu_);
    dropped.swap(queue_);
  }
  for (auto& b : dropped) report_dropped(b);
  sink_->disconnect();
}

void Writer::loop() {
  for (;;) {
    Batch batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] {
        return stopping_ || !queue_.empty() || (quiet_requested_ && !disconnected_);
      });
      if (abandon_ || (stopping_ && queue_.empty())) return;
      if (quiet_requested_) {
        // The sink is only ever touched by this thread; close it here.
        lock.unlock();
        sink_->disconnect();
        lock.lock();
        disconnected_ = true;
        continue;
      }
      batch = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    if (given_up_) {
      // A batch before this one was given up: nothing after it is written either, so a
      // partition never gets a hole with rows past it.
      report_dropped(batch);
      std::lock_guard lock(mu_);
      busy_ = false;
      continue;
    }
    WriteReport report = report_for(batch);
    const auto started = clock_.now();
    const bool written = write_with_retry(batch, report);
    if (!written && !report.error.is_ok() && limit_.attempts > 0) given_up_ = true;
    report.seconds = std::chrono::duration<double>(clock_.now() - started).count();
    report.spent = std::move(batch.tables);
    report_(std::move(report));
    std::lock_guard lock(mu_);
    busy_ = false;
  }
}

bool Writer::write_with_retry(Batch& batch, WriteReport& report) {
  auto log = logger("mariadb");
  Backoff backoff(milliseconds(100), milliseconds(30'000));
  Backoff quick(milliseconds(20), milliseconds(1'000));
  int failures = 0;          // of this batch; the streak (failed_attempts_) spans batches
  int lasting_failures = 0;  // of this batch, not transient
  for (;;) {
    const auto result = sink_->write(batch);
    if (result.outcome != WriteOutcome::kFailed) {
      if (failed_attempts_ > 0) {
        log->info("writer {}: MariaDB writes recovered after {} failed attempts in {:.1f} s",
                  index_, failed_attempts_,
                  std::chrono::duration<double>(clock_.now() - failing_since_).count());
        failed_attempts_ = 0;
      }
      report.outcome = result.outcome;
      report.db_next_offset = result.db_next_offset;
      report.rows = result.rows;
      report.dead_letters = result.dead_letters;
      if (result.outcome == WriteOutcome::kCommitted) {
        report.tables.reserve(batch.tables.size());
        for (size_t i = 0; i < batch.tables.size(); ++i) {
          const auto& t = batch.tables[i];
          const uint64_t present =
              i < result.present_per_table.size() ? result.present_per_table[i] : 0;
          report.tables.push_back({t.table->name(), t.rows() - present, t.max_timestamp, present});
        }
        count_dead_letter_classes(batch, result.duplicates, report.dead_letter_classes);
        report.dead_letters_present = result.dead_letters_present;
      }
      return true;
    }
    ++failures;
    const auto cls = result.error.error_class();
    if (cls != DbErrorClass::kTransient) ++lasting_failures;
    if (limit_.attempts > 0 &&
        (lasting_failures >= limit_.attempts || cls == DbErrorClass::kFatal)) {
      // Given up: the caller reports the error; no "retrying" line.
      report.outcome = WriteOutcome::kFailed;
      report.error = result.error;
      return false;
    }
    const auto now = clock_.now();
    // One line when a failure streak starts — however many batches it then spans — and a
    // summary every 30 s while it lasts.
    if (failed_attempts_++ == 0) {
      failing_since_ = last_summary_ = now;
      log->warn("writer {}: batch {}/{} [{}, {}) not written: {}; retrying with backoff", index_,
                batch.topic, batch.partition, batch.base_offset, batch.end_offset,
                result.error.describe());
    } else if (now - last_summary_ >= std::chrono::seconds(30)) {
      last_summary_ = now;
      log->warn("writer {}: still failing after {} attempts over {:.0f} s; last error: {}", index_,
                failed_attempts_, std::chrono::duration<double>(now - failing_since_).count(),
                result.error.describe());
    }
    const bool outage_class = cls == DbErrorClass::kOutage || cls == DbErrorClass::kReadOnly;
    if (outage_class && failures >= kOutageAttempts) {
      // Not a blip: hand the outage to the pipeline, which spools until MariaDB is back. The
      // batch's events are read again from the partition's rewind point.
      report.outcome = WriteOutcome::kFailed;
      report.error = result.error;
      return false;
    }
    const auto delay =
        cls == DbErrorClass::kTransient || outage_class ? quick.next() : backoff.next();
    std::unique_lock lock(mu_);
    // Abandoned at shutdown, or dropped for a pause: the events are read again later.
    if (cv_.wait_for(lock, delay, [&] { return abandon_ || quiet_requested_; })) {
      report.outcome = WriteOutcome::kFailed;
      return false;
    }
  }
}

}  // namespace sluice::ingest
