#include "ingest/pipeline.h"

#include <algorithm>

#include "common/backoff.h"
#include "common/logging.h"

namespace sluice::ingest {

using std::chrono::milliseconds;
using storage::Batch;
using storage::WriteOutcome;

// ---------------------------------------------------------------------------------------------
// Writer: one thread, one sink (connection), a FIFO of batches. A failed write is retried with
// backoff until it succeeds or the pipeline abandons it at shutdown; a failure streak logs one
// line when it starts, a summary every 30 s, and one line when it ends.

/// A connection error or read-only refusal that survives this many quick attempts is an outage.
constexpr int kOutageAttempts = 3;

class Pipeline::Writer {
 public:
  Writer(size_t index, std::unique_ptr<storage::BatchSink> sink, Pipeline& owner)
      : index_(index), sink_(std::move(sink)), owner_(owner), thread_([this] { loop(); }) {}

  ~Writer() { stop(true); }

  void push(Batch batch) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(batch));
    }
    cv_.notify_all();
  }

  /// True when nothing is queued or being written.
  bool idle() {
    std::lock_guard lock(mu_);
    return queue_.empty() && !busy_;
  }

  /// Asks for quiet: drops queued batches (their events are read again later), lets the batch
  /// being written finish or fail without retrying, then closes the connection.
  void quiesce() {
    size_t dropped = 0;
    {
      std::lock_guard lock(mu_);
      quiet_requested_ = true;
      for (const auto& b : queue_) dropped += b.bytes;
      queue_.clear();
    }
    owner_.in_flight_bytes_ -= dropped;
    cv_.notify_all();
  }
  /// True once quiesce() has taken effect: nothing in flight, connection closed.
  bool quiet() {
    std::lock_guard lock(mu_);
    return quiet_requested_ && disconnected_ && !busy_;
  }
  void unquiesce() {
    std::lock_guard lock(mu_);
    quiet_requested_ = false;
    disconnected_ = false;
  }

  /// Stops the thread after the queue is written, or at once (dropping the queue) if `abandon`.
  void stop(bool abandon) {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      abandon_ = abandon_ || abandon;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    sink_->disconnect();
  }

 private:
  void loop() {
    auto log = logger("mariadb");
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
      const bool written = write_with_retry(batch, *log);
      std::lock_guard lock(mu_);
      busy_ = false;
      if (!written) {
        owner_.in_flight_bytes_ -= batch.bytes;
        if (abandon_) return;
      }
    }
  }

  bool write_with_retry(Batch& batch, spdlog::logger& log) {
    Backoff backoff(milliseconds(100), milliseconds(30'000));
    Backoff quick(milliseconds(20), milliseconds(1'000));
    const auto started = std::chrono::steady_clock::now();
    auto last_summary = started;
    int failures = 0;
    const size_t bytes = batch.bytes;
    for (;;) {
      auto result = sink_->write(batch);
      if (result.outcome != WriteOutcome::kFailed) {
        if (failures > 0) {
          log.info(
              "writer {}: MariaDB writes recovered after {} failed attempts in {:.1f} s", index_,
              failures,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        }
        log.debug("writer {}: {}/{} [{}, {}) {}: {} rows, {} dead letters, db next {}", index_,
                  batch.topic, batch.partition, batch.base_offset, batch.end_offset,
                  result.outcome == WriteOutcome::kCommitted        ? "committed"
                  : result.outcome == WriteOutcome::kAlreadyApplied ? "already applied"
                                                                    : "behind",
                  result.rows, result.dead_letters, result.db_next_offset);
        owner_.stats_.rows_inserted += result.rows;
        if (result.outcome == WriteOutcome::kCommitted) {
          std::lock_guard lock(owner_.status_mu_);
          for (const auto& t : batch.tables) {
            auto& table = owner_.tables_[t.table->name()];
            table.table = t.table->name();
            table.rows_inserted += t.rows();
            table.max_timestamp = std::max(table.max_timestamp, t.max_timestamp);
          }
        }
        owner_.stats_.dead_letters += result.dead_letters;
        if (result.outcome == WriteOutcome::kCommitted) {
          ++owner_.stats_.batches_committed;
        } else {
          ++owner_.stats_.batches_already_applied;
        }
        Completion c{batch.topic,        batch.partition,  batch.generation,      result.outcome,
                     batch.base_offset,  batch.end_offset, result.db_next_offset, bytes,
                     storage::DbStatus{}};
        {
          std::lock_guard lock(owner_.completions_mu_);
          owner_.completions_.push_back(std::move(c));
        }
        owner_.in_flight_bytes_ -= bytes;
        return true;
      }
      ++failures;
      const auto cls = result.error.error_class();
      const auto now = std::chrono::steady_clock::now();
      const bool outage_class =
          cls == storage::DbErrorClass::kOutage || cls == storage::DbErrorClass::kReadOnly;
      if (outage_class && failures >= kOutageAttempts) {
        // Not a blip: hand the outage to the pipeline, which spools until MariaDB is back.
        // The batch is dropped; its events are read again from the rewind point.
        Completion c;
        c.topic = batch.topic;
        c.partition = batch.partition;
        c.generation = batch.generation;
        c.outcome = WriteOutcome::kFailed;
        c.error = result.error;
        std::lock_guard lock(owner_.completions_mu_);
        owner_.completions_.push_back(std::move(c));
        return false;
      }
      if (failures == 1) {
        log.warn("writer {}: batch {}/{} [{}, {}) not written: {}; retrying with backoff", index_,
                 batch.topic, batch.partition, batch.base_offset, batch.end_offset,
                 result.error.describe());
      } else if (now - last_summary >= std::chrono::seconds(30)) {
        last_summary = now;
        log.warn("writer {}: still failing after {} attempts over {:.0f} s; last error: {}", index_,
                 failures, std::chrono::duration<double>(now - started).count(),
                 result.error.describe());
      }
      const auto delay =
          cls == storage::DbErrorClass::kTransient || outage_class ? quick.next() : backoff.next();
      std::unique_lock lock(mu_);
      // Abandoned at shutdown, or dropped for a pause: the events are read again later.
      if (cv_.wait_for(lock, delay, [&] { return abandon_ || quiet_requested_; })) return false;
    }
  }

  size_t index_;
  std::unique_ptr<storage::BatchSink> sink_;
  Pipeline& owner_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;       // guarded by mu_
  bool busy_ = false;             // guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  bool abandon_ = false;          // guarded by mu_
  bool quiet_requested_ = false;  // guarded by mu_
  bool disconnected_ = false;     // guarded by mu_
  std::thread thread_;            // last: starts after the members above exist
};

// ---------------------------------------------------------------------------------------------

Pipeline::Pipeline(Config config, SinkFactory sink_factory, const Clock& clock)
    : config_(std::move(config)),
      sink_factory_(std::move(sink_factory)),
      clock_(clock),
      registry_(config_.schemas_path, clock),
      decoder_(registry_) {
  limits_.max_rows = static_cast<size_t>(config_.batch.max_rows);
  limits_.max_bytes = static_cast<size_t>(config_.batch.max_bytes);
  limits_.max_delay = milliseconds(config_.batch.max_delay_ms);
  // Enough for every writer to have one batch in the database and one or two waiting.
  max_in_flight_bytes_ = limits_.max_bytes * (2 * static_cast<size_t>(config_.mariadb.writers) + 1);
}

Pipeline::~Pipeline() = default;

Status Pipeline::prepare_database(const std::atomic<bool>& /*stop*/) {
  auto st = control_->prepare();
  if (st.is_ok()) {
    logger("mariadb")->info("connected to MariaDB; bookkeeping tables ready in database '{}'",
                            config_.mariadb.database);
    return Status::ok();
  }
  if (st.error_class() == storage::DbErrorClass::kFatal) {
    // Wrong password, unknown database, missing privilege: a person must act.
    return Status::error("cannot use MariaDB: " + st.describe());
  }
  // Down or read-only at start-up: consume into the spool and probe until it is back.
  enter_outage(st);
  gate_ = Gate::kClosed;  // no writer has connected yet: nothing to wait for
  return Status::ok();
}

void Pipeline::on_assign(std::vector<TopicPartition>& assigned) {
  auto log = logger("ingest");
  // Invariant 4: start from sluice_offsets, else the group's committed offset, else the reset
  // policy. The group's offset is never ahead of sluice_offsets (it is committed after MariaDB),
  // so falling back to it when MariaDB cannot be asked re-reads events but never skips any;
  // the compare-and-set then skips what MariaDB already has.
  std::map<std::string, std::map<int32_t, int64_t>> stored;
  bool stored_known = gate_ == Gate::kOpen;  // a paused service asks MariaDB nothing
  for (const auto& tp : assigned) {
    if (gate_ != Gate::kOpen || stored.contains(tp.topic)) continue;
    Backoff backoff(milliseconds(200), milliseconds(2000));
    storage::DbStatus st;
    for (int attempt = 0; attempt < 4; ++attempt) {
      st = control_->read_offsets(tp.topic, stored[tp.topic]);
      if (st.is_ok()) break;
      std::this_thread::sleep_for(backoff.next());
    }
    if (!st.is_ok()) {
      stored_known = false;
      log->warn(
          "cannot read sluice_offsets for {} ({}); starting from the group's committed "
          "offsets, which are never ahead of MariaDB",
          tp.topic, st.describe());
    }
  }
  std::vector<TopicPartition> committed = assigned;
  if (auto st = source_->committed(committed, 10'000); !st) {
    log->warn("{}; partitions without a sluice_offsets row start from the reset policy",
              st.message());
    for (auto& c : committed) c.offset = RD_KAFKA_OFFSET_INVALID;
  }
  std::string summary;
  for (size_t i = 0; i < assigned.size(); ++i) {
    auto& tp = assigned[i];
    int64_t start = RD_KAFKA_OFFSET_INVALID;
    const char* from = "the reset policy";
    const auto& topic_offsets = stored[tp.topic];
    const bool in_database = topic_offsets.contains(tp.partition);
    const auto spooled = spool_->partition(tp.topic, tp.partition);
    if (spooled) {
      start = spooled->last_offset + 1;
      from = "the spool";
    } else if (in_database) {
      start = topic_offsets.at(tp.partition);
      from = "sluice_offsets";
    } else if (committed[i].offset >= 0) {
      start = committed[i].offset;
      from = stored_known ? "the group's committed offset"
                          : "the group's committed offset "
                            "(MariaDB unavailable)";
    }
    tp.offset = start;
    auto p = std::make_unique<Partition>(tp.topic, tp.partition, limits_, clock_);
    p->generation = next_generation_++;
    p->batcher.reset(start, p->generation);
    p->kafka_committed = committed[i].offset;
    if (in_database && !spooled) p->db_end = start;
    p->fetch_next = start;
    p->floor = start;
    if (spooled) {
      // Invariant 3: what the spool holds goes first; live events queue behind it.
      p->spooling = true;
      p->spool_end = p->spool_durable = start;
      p->drain_next = spooled->first_offset;
      p->floor = spooled->first_offset;
      p->batcher.reset(spooled->first_offset, p->generation);
    } else if (gate_ != Gate::kOpen) {
      p->spooling = true;
      p->spool_end = p->spool_durable = p->drain_next = start;
    }
    p->writer = (std::hash<std::string>{}(tp.topic) * 31 + static_cast<size_t>(tp.partition)) %
                writers_.size();
    partitions_[{tp.topic, tp.partition}] = std::move(p);
    summary += fmt::format("{}{}/{}@{} ({})", summary.empty() ? "" : ", ", tp.topic, tp.partition,
                           start >= 0 ? std::to_string(start) : "reset", from);
  }
  log->info("assigned {} partition(s): {}", assigned.size(), summary);
  if (gate_ != Gate::kOpen) control_->disconnect();
  backpressure_ = false;
}

void Pipeline::on_revoke(const std::vector<TopicPartition>& revoked) {
  process_completions();
  commit_offsets(false);
  for (const auto& tp : revoked) partitions_.erase({tp.topic, tp.partition});
  logger("ingest")->info(
      "revoked {} partition(s); open batches are dropped and will be read "
      "again by the next owner",
      revoked.size());
}

void Pipeline::check_gap(Partition& p, int64_t offset) {
  auto log = logger("ingest");
  const int64_t expected = p.batcher.next_offset();
  int64_t low = -1, high = -1;
  const auto st = source_->watermarks(p.topic, p.partition, low, high, 5000);
  if (st && expected >= low) {
    // Offsets Kafka never had as records (transaction markers, compaction): nothing is lost.
    log->debug("{}/{}: offsets [{}, {}) hold no records", p.topic, p.partition, expected, offset);
    return;
  }
  const int64_t lost = (st ? std::min(low, offset) : offset) - expected;
  stats_.expired_offsets += static_cast<uint64_t>(lost);
  const std::string why =
      st ? fmt::format("expired from Kafka (log start is now {}) before Sluice read them", low)
         : fmt::format("were skipped by Kafka (watermarks unavailable: {})", st.message());
  const std::string reason = fmt::format(
      "kafka_gap: offsets [{}, {}) {}: {} event(s) lost upstream", expected, offset, why, lost);
  log->error("{}/{}: {}; recorded in sluice_dead_letter", p.topic, p.partition, reason);
  {
    constexpr size_t kGapsKept = 100;
    std::lock_guard lock(status_mu_);
    status_.gaps.push_back({p.topic, p.partition, expected, offset, lost, clock_.wall_ms()});
    if (status_.gaps.size() > kGapsKept) status_.gaps.erase(status_.gaps.begin());
  }
  p.batcher.add_dead_letter(expected, reason, "");
}

void Pipeline::handle_message(const rd_kafka_message_t& msg) {
  if (msg.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    static RateLimiter limiter(std::chrono::seconds(10));
    uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      logger("kafka")->error("consumer error: {} ({} similar suppressed)",
                             rd_kafka_message_errstr(&msg), suppressed);
    }
    return;
  }
  const auto it = partitions_.find({rd_kafka_topic_name(msg.rkt), msg.partition});
  if (it == partitions_.end()) return;  // not (or no longer) assigned to us
  Partition& p = *it->second;
  if (p.paused) return;  // fetched before the pause took effect: read again after resume
  if (gate_ == Gate::kClosing) return;  // read again after the rewind to the floor
  const int64_t offset = msg.offset;
  const int64_t expected = p.fetch_next;
  if (expected >= 0 && offset < expected) {
    // Normal right after a seek (messages fetched before it). Anything else means the log was
    // rewound under us (a recreated topic): those offsets are below what sluice_offsets records
    // as written, so they are not written again, but say so.
    if (!p.seeking) {
      static RateLimiter limiter(std::chrono::seconds(30));
      uint64_t suppressed = 0;
      if (limiter.allow(suppressed)) {
        logger("ingest")->error(
            "{}/{}: Kafka delivered offset {} but the partition is at {} (sluice_offsets); "
            "skipping offsets already recorded as written. If the topic was recreated, stop "
            "Sluice and delete its sluice_offsets rows for this topic ({} similar suppressed)",
            p.topic, p.partition, offset, expected, suppressed);
      }
    }
    return;
  }
  p.seeking = false;
  p.fetch_next = offset + 1;
  if (p.floor < 0) p.floor = offset;
  ++stats_.consumed;
  const std::string_view payload(static_cast<const char*>(msg.payload), msg.len);
  const int64_t timestamp_ms = rd_kafka_message_timestamp(&msg, nullptr);
  if (p.spooling) {
    // Behind older spooled events, or the gate is closed: into the spool, raw. Made durable by
    // commit_spool() before its Kafka offset is committed.
    spool_->append(p.topic, p.partition, offset, timestamp_ms, payload);
    if (p.drain_next < 0) p.drain_next = offset;
    p.spool_end = offset + 1;
    ++stats_.spooled;
    return;
  }
  batch_event(p, offset, timestamp_ms, payload);
}

void Pipeline::batch_event(Partition& p, int64_t offset, int64_t timestamp_ms,
                           std::string_view payload) {
  const int64_t expected = p.batcher.next_offset();
  if (expected >= 0 && offset > expected) check_gap(p, offset);
  if (const Schema* schema = decoder_.decode(payload, timestamp_ms, reason_)) {
    auto& rows = p.batcher.rows_for(schema->table.get());
    const size_t before = rows.data.size();
    decoder_.encode_row(rows.data);
    rows.max_timestamp = std::max(rows.max_timestamp, decoder_.timestamp());
    p.batcher.row_added(rows, offset, before);
  } else {
    static RateLimiter limiter(std::chrono::seconds(10));
    uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      logger("ingest")->warn("{}/{}@{} dead-lettered: {} ({} more since the last such line)",
                             p.topic, p.partition, offset, reason_, suppressed);
    }
    p.batcher.add_dead_letter(offset, reason_, std::string(payload));
  }
  if (p.batcher.full()) dispatch(p);
}

void Pipeline::dispatch(Partition& p) {
  // With the gate not open nothing goes to MariaDB; open batches are dropped by the rewind.
  if (p.batcher.empty() || gate_ != Gate::kOpen) return;
  Batch batch = p.batcher.take();
  batch.generation = p.generation;
  in_flight_bytes_ += batch.bytes;
  writers_[p.writer]->push(std::move(batch));
}

void Pipeline::flush_due() {
  for (auto& [key, p] : partitions_) {
    if (p->batcher.due()) dispatch(*p);
  }
}

void Pipeline::apply_backpressure() {
  const size_t in_flight = in_flight_bytes_.load();
  const bool spool_was_full = spool_full_;
  spool_full_ = spool_->totals().bytes >= static_cast<uint64_t>(config_.spool.max_bytes);
  if (spool_full_ != spool_was_full) {
    if (spool_full_) {
      logger("ingest")->warn(
          "spool full ({} bytes, spool.max_bytes {}): fetching paused; "
          "Kafka keeps the events",
          spool_->totals().bytes, config_.spool.max_bytes);
    } else {
      logger("ingest")->info("spool below spool.max_bytes again");
    }
  }
  const bool over = in_flight >= max_in_flight_bytes_ || spool_full_;
  if (!backpressure_ && over) {
    std::vector<TopicPartition> list;
    for (auto& [key, p] : partitions_) {
      list.push_back({p->topic, p->partition, -1});
      p->paused = true;
    }
    if (auto st = source_->pause(list); !st) logger("kafka")->error("{}", st.message());
    backpressure_ = true;
    logger("ingest")->info("fetching paused: {} MiB of batches waiting for MariaDB",
                           in_flight >> 20);
  } else if (backpressure_ && !spool_full_ && in_flight <= max_in_flight_bytes_ / 2) {
    std::vector<TopicPartition> seek, all;
    for (auto& [key, p] : partitions_) {
      all.push_back({p->topic, p->partition, -1});
      if (p->fetch_next >= 0) seek.push_back({p->topic, p->partition, p->fetch_next});
      p->paused = false;
    }
    // Messages fetched while paused were dropped: read again from exactly where each stopped.
    if (auto st = source_->seek(seek); !st) logger("kafka")->error("{}", st.message());
    if (auto st = source_->resume(all); !st) logger("kafka")->error("{}", st.message());
    for (auto& [key, p] : partitions_) p->seeking = true;
    backpressure_ = false;
    logger("ingest")->info("fetching resumed");
  }
}

void Pipeline::reposition(Partition& p, int64_t offset) {
  p.generation = next_generation_++;
  p.batcher.reset(offset, p.generation);
  p.fetch_next = offset;
  p.seeking = true;
  if (auto st = source_->seek({{p.topic, p.partition, offset}}); !st) {
    logger("kafka")->error("{}", st.message());
  }
}

void Pipeline::process_completions() {
  std::vector<Completion> done;
  {
    std::lock_guard lock(completions_mu_);
    done.swap(completions_);
  }
  for (const auto& c : done) {
    const auto it = partitions_.find({c.topic, c.partition});
    if (it == partitions_.end()) continue;  // revoked meanwhile
    Partition& p = *it->second;
    switch (c.outcome) {
      case WriteOutcome::kCommitted:
      case WriteOutcome::kAlreadyApplied:
        p.db_end = std::max({p.db_end, c.end_offset, c.db_next_offset});
        p.floor = std::max(p.floor, p.db_end);
        if (spool_->partition(p.topic, p.partition)) {
          // MariaDB has these now: reclaim their space in the spool.
          if (auto st = spool_->release(p.topic, p.partition, p.db_end); !st) {
            logger("spool")->error("{}", st.message());
          }
        }
        break;
      case WriteOutcome::kBehind:
        if (c.generation != p.generation) break;  // an earlier reposition already handled it
        logger("ingest")->error(
            "{}/{}: sluice_offsets says the next offset is {}, behind the batch [{}, {}) Sluice "
            "built; reading the partition again from {}",
            c.topic, c.partition, c.db_next_offset, c.base_offset, c.end_offset, c.db_next_offset);
        reposition(p, c.db_next_offset);
        break;
      case WriteOutcome::kFailed:
        enter_outage(c.error);
        break;
    }
  }
}

void Pipeline::commit_offsets(bool async) {
  last_commit_ = clock_.now();
  std::vector<TopicPartition> list;
  for (auto& [key, p] : partitions_) {
    // Durable means committed in MariaDB or synced in the spool (invariant 1).
    const int64_t durable = std::max(p->db_end, p->spool_durable);
    if (durable > p->kafka_committed) {
      list.push_back({p->topic, p->partition, durable});
      p->kafka_committed = durable;
    }
  }
  if (auto st = source_->commit(list, async); !st) {
    static RateLimiter limiter(std::chrono::seconds(30));
    uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) logger("kafka")->warn("{}", st.message());
  }
}

void Pipeline::log_summary(bool force) {
  const auto now = clock_.now();
  if (!force && now - last_summary_ < std::chrono::seconds(30)) return;
  const double seconds = last_summary_ == Clock::time_point{}
                             ? 0
                             : std::chrono::duration<double>(now - last_summary_).count();
  const uint64_t consumed = stats_.consumed.load();
  logger("ingest")->info(
      "consumed {} ({:.0f}/s), rows inserted {}, dead letters {}, batches {} (+{} already "
      "applied), in flight {} KiB",
      consumed,
      seconds > 0 ? static_cast<double>(consumed - last_summary_consumed_) / seconds : 0.0,
      stats_.rows_inserted.load(), stats_.dead_letters.load(), stats_.batches_committed.load(),
      stats_.batches_already_applied.load(), in_flight_bytes_.load() >> 10);
  last_summary_ = now;
  last_summary_consumed_ = consumed;
}

void Pipeline::publish_status(bool force) {
  const auto now = clock_.now();
  if (!force && now - last_status_ < milliseconds(250)) return;
  last_status_ = now;
  std::vector<PipelineStatus::Partition> parts;
  parts.reserve(partitions_.size());
  for (const auto& [key, p] : partitions_) {
    parts.push_back({p->topic, p->partition, p->fetch_next, p->db_end, p->kafka_committed});
  }
  const auto totals = spool_->totals();
  std::lock_guard lock(status_mu_);
  status_.partitions = std::move(parts);
  status_.fetch_paused = backpressure_;
  if (status_.state != "stopping") status_.state = state_name();
  status_.pause_reason = pause_ ? pause_->reason : "";
  status_.outage_error = outage_ ? outage_error_.describe() : "";
  status_.outage_since_ms = outage_ ? outage_since_ms_ : 0;
  status_.paused_since_ms = pause_ ? pause_->since_ms : 0;
  status_.spool_events = totals.events;
  status_.spool_bytes = totals.bytes;
  status_.spool_oldest_age_s =
      totals.oldest_timestamp_ms >= 0
          ? std::max(0.0, static_cast<double>(clock_.wall_ms() - totals.oldest_timestamp_ms) / 1e3)
          : 0.0;
  status_.spool_full = spool_full_;
}

PipelineStatus Pipeline::status() const {
  std::lock_guard lock(status_mu_);
  PipelineStatus out = status_;
  out.in_flight_bytes = in_flight_bytes_.load();
  for (const auto& [name, t] : tables_) out.tables.push_back(t);
  return out;
}

std::string Pipeline::state_name() const {
  if (gate_ != Gate::kOpen) return outage_ && !pause_ ? "outage" : "paused";
  for (const auto& [key, p] : partitions_) {
    if (p->spooling) return "draining";
  }
  return "running";
}

void Pipeline::complete_command(uint64_t id, Status st) {
  {
    std::lock_guard lock(command_mu_);
    command_done_.emplace(id, std::move(st));
  }
  command_cv_.notify_all();
}

namespace {

Status wait_for_command(std::mutex& mu, std::condition_variable& cv,
                        std::map<uint64_t, Status>& done, uint64_t id,
                        std::chrono::milliseconds timeout, const char* what) {
  std::unique_lock lock(mu);
  if (!cv.wait_for(lock, timeout, [&] { return done.contains(id); })) {
    return Status::error(std::string(what) + " did not complete within " +
                         std::to_string(timeout.count() / 1000) +
                         " s (a transaction may still be running); it goes on in the background");
  }
  Status st = std::move(done.at(id));
  done.erase(id);
  return st;
}

}  // namespace

Status Pipeline::pause(const std::string& reason, std::chrono::milliseconds timeout) {
  uint64_t id = 0;
  {
    std::lock_guard lock(command_mu_);
    id = next_command_++;
    commands_.push_back({Command::kPause, reason, id});
  }
  return wait_for_command(command_mu_, command_cv_, command_done_, id, timeout, "pause");
}

Status Pipeline::resume(std::chrono::milliseconds timeout) {
  uint64_t id = 0;
  {
    std::lock_guard lock(command_mu_);
    id = next_command_++;
    commands_.push_back({Command::kResume, "", id});
  }
  return wait_for_command(command_mu_, command_cv_, command_done_, id, timeout, "resume");
}

void Pipeline::process_commands() {
  std::deque<Command> todo;
  {
    std::lock_guard lock(command_mu_);
    // A resume waits while a pause is still closing the gate: the rewind must happen first.
    while (!commands_.empty() &&
           !(gate_ == Gate::kClosing && commands_.front().kind == Command::kResume)) {
      todo.push_back(std::move(commands_.front()));
      commands_.pop_front();
    }
  }
  auto log = logger("ingest");
  for (auto& c : todo) {
    if (c.kind == Command::kPause) {
      if (pause_) {  // already paused, or pausing: idempotent
        if (gate_ == Gate::kClosed) {
          complete_command(c.id, Status::ok());
        } else {
          closing_commands_.push_back(c.id);
        }
        continue;
      }
      storage::PauseRecord record{c.reason, clock_.wall_ms()};
      if (auto st = spool_->set_pause(record); !st) {
        complete_command(c.id, st);
        continue;
      }
      pause_ = record;
      if (gate_ == Gate::kClosed) {
        // Closed by an outage: already quiet. It now stays closed until resumed.
        complete_command(c.id, Status::ok());
        log->info("paused{}{} during a MariaDB outage: Sluice stays paused when it returns",
                  c.reason.empty() ? "" : " for ", c.reason);
        publish_status(true);
        continue;
      }
      closing_commands_.push_back(c.id);
      if (gate_ == Gate::kOpen) close_gate();
      log->info("pausing{}{}: finishing the open transactions and closing MariaDB connections",
                c.reason.empty() ? "" : " for ", c.reason);
      continue;
    }
    // Resume.
    if (!pause_) {
      // Nothing an operator closed. (In an outage Sluice reopens by itself.)
      complete_command(c.id, Status::ok());
      continue;
    }
    if (auto st = spool_->set_pause(std::nullopt); !st) {
      complete_command(c.id, st);
      continue;
    }
    pause_.reset();
    if (outage_) {
      log->info("resumed; MariaDB is still unavailable: the spool drains once it is back");
      publish_status(true);
      complete_command(c.id, Status::ok());
      continue;
    }
    gate_ = Gate::kOpen;
    for (auto& w : writers_) w->unquiesce();
    const auto totals = spool_->totals();
    publish_status(true);
    log->info("resumed: draining {} spooled event(s) in offset order, ahead of live traffic",
              totals.events);
    complete_command(c.id, Status::ok());
  }
}

void Pipeline::close_gate() {
  gate_ = Gate::kClosing;
  for (auto& w : writers_) w->quiesce();
  control_->disconnect();
}

void Pipeline::enter_outage(const storage::DbStatus& cause) {
  if (outage_) {
    outage_error_ = cause;
    return;
  }
  if (gate_ != Gate::kOpen) return;  // already closing or closed by an operator
  outage_ = true;
  outage_error_ = cause;
  outage_since_ms_ = clock_.wall_ms();
  last_outage_summary_ = clock_.now();
  probe_backoff_ = std::make_unique<Backoff>(milliseconds(500), milliseconds(30'000));
  next_probe_ = clock_.now() + probe_backoff_->next();
  if (!writers_.empty()) close_gate();
  logger("ingest")->warn(
      "MariaDB unavailable ({}): spooling events to {} and probing with backoff until it takes "
      "writes again",
      cause.describe(), config_.spool.path);
}

void Pipeline::probe_outage() {
  if (!outage_ || pause_ || gate_ != Gate::kClosed) return;
  const auto now = clock_.now();
  if (now < next_probe_) return;
  auto st = control_->probe_writable();
  if (!st.is_ok()) {
    outage_error_ = st;
    next_probe_ = clock_.now() + probe_backoff_->next();
    if (now - last_outage_summary_ >= std::chrono::seconds(60)) {
      last_outage_summary_ = now;
      logger("ingest")->warn(
          "outage for {} s: the spool holds {} event(s); last error: {}; probing with backoff",
          (clock_.wall_ms() - outage_since_ms_) / 1000, spool_->totals().events, st.describe());
    }
    return;
  }
  outage_ = false;
  gate_ = Gate::kOpen;
  for (auto& w : writers_) w->unquiesce();
  publish_status(true);
  logger("ingest")->info(
      "MariaDB takes writes again after {} s: draining {} spooled event(s) in offset order",
      (clock_.wall_ms() - outage_since_ms_) / 1000, spool_->totals().events);
}

void Pipeline::finish_closing() {
  if (gate_ != Gate::kClosing) return;
  for (auto& w : writers_) {
    if (!w->quiet()) return;
  }
  process_completions();
  commit_spool();
  // Everything MariaDB has not committed is read again — into the spool this time — from the
  // partition's floor, so the spool holds each partition contiguously from MariaDB's end.
  for (auto& [key, p] : partitions_) {
    if (p->spooling) {
      // Already draining: the spool still holds everything above the floor. Live events keep
      // appending at spool_end; the drain restarts from the floor.
      p->generation = next_generation_++;
      const auto spooled = spool_->partition(p->topic, p->partition);
      p->drain_next = spooled ? std::max(p->floor, spooled->first_offset) : p->spool_end;
      p->batcher.reset(p->drain_next, p->generation);
      continue;
    }
    p->spooling = true;
    if (p->floor >= 0) {
      reposition(*p, p->floor);
      p->spool_end = p->spool_durable = p->drain_next = p->floor;
    }
  }
  gate_ = Gate::kClosed;
  publish_status(true);
  if (pause_) {
    logger("ingest")->info(
        "paused: no open transaction and no connection to MariaDB; spooling events to {}",
        config_.spool.path);
  }
  for (const auto id : closing_commands_) complete_command(id, Status::ok());
  closing_commands_.clear();
}

void Pipeline::commit_spool() {
  if (spool_->staged() == 0) return;
  if (auto st = spool_->commit(); !st) {
    static RateLimiter limiter(std::chrono::seconds(10));
    uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      logger("spool")->error("{} ({} similar suppressed); retrying", st.message(), suppressed);
    }
    return;
  }
  for (auto& [key, p] : partitions_) p->spool_durable = std::max(p->spool_durable, p->spool_end);
}

void Pipeline::drain() {
  if (gate_ != Gate::kOpen) return;
  std::vector<storage::SpooledEvent> events;
  for (auto& [key, pp] : partitions_) {
    Partition& p = *pp;
    if (!p.spooling) continue;
    if (in_flight_bytes_.load() >= max_in_flight_bytes_) return;
    if (p.drain_next >= p.spool_end) {
      // Caught up: everything spooled is batched. From here live events flow directly.
      if (spool_->staged() > 0) continue;  // wait for the last appends to be synced
      p.spooling = false;
      dispatch(p);
      logger("ingest")->info("{}/{}: spool drained; events flow directly again", p.topic,
                             p.partition);
      continue;
    }
    if (auto st = spool_->read(p.topic, p.partition, p.drain_next, limits_.max_rows, events); !st) {
      logger("spool")->error("{}", st.message());
      continue;
    }
    for (const auto& e : events) {
      batch_event(p, e.offset, e.timestamp_ms, e.payload);
      p.drain_next = e.offset + 1;
      ++stats_.drained;
    }
    if (events.empty()) {
      // Staged but not yet synced: read it on a later round.
      continue;
    }
    if (events.size() < limits_.max_rows) dispatch(p);  // the tail: do not wait for max_delay
  }
}

Status Pipeline::run(const std::atomic<bool>& stop) {
  auto log = logger("ingest");
  auto spool = storage::Spool::open(config_.spool.path);
  if (!spool) return spool.status();
  spool_ = std::move(spool).value();
  const auto totals = spool_->totals();
  if (totals.events > 0) {
    log->info("spool at {} holds {} event(s) ({} bytes); they drain first", config_.spool.path,
              totals.events, totals.bytes);
  }
  control_ = std::make_unique<storage::MariaDbSink>(config_.mariadb, config_.kafka.group_id);
  if (auto record = spool_->pause()) {
    // Invariant 5 across restarts: a service paused for maintenance stays paused, and quiet.
    pause_ = record;
    gate_ = Gate::kClosed;
    log->info("starting paused (\"{}\"): no MariaDB connection until `sluice resume`",
              record->reason);
  } else {
    if (auto st = prepare_database(stop); !st) return st;
  }
  if (stop.load()) return Status::ok();
  for (int i = 0; i < config_.mariadb.writers; ++i) {
    writers_.push_back(std::make_unique<Writer>(static_cast<size_t>(i), sink_factory_(), *this));
  }
  RebalanceHandler handler{[this](std::vector<TopicPartition>& p) { on_assign(p); },
                           [this](const std::vector<TopicPartition>& p) { on_revoke(p); }};
  auto source = KafkaSource::create(config_.kafka, std::move(handler));
  if (!source) return source.status();
  source_ = std::move(source).value();
  std::string topics;
  for (const auto& t : config_.kafka.topics) topics += (topics.empty() ? "" : ", ") + t;
  log->info("consuming [{}] as group '{}' with {} writer(s)", topics, config_.kafka.group_id,
            writers_.size());
  last_summary_ = clock_.now();

  while (!stop.load()) {
    process_commands();
    finish_closing();
    process_completions();
    probe_outage();
    drain();
    flush_due();
    apply_backpressure();
    // Wake for the nearest batch deadline so a quiet partition flushes on time.
    auto timeout = milliseconds(100);
    for (auto& [key, p] : partitions_) {
      if (auto d = p->batcher.deadline()) {
        timeout = std::min(timeout, std::chrono::duration_cast<milliseconds>(*d - clock_.now()));
      }
    }
    timeout = std::max(timeout, milliseconds(1));
    if (auto msg = source_->poll(static_cast<int>(timeout.count()))) handle_message(*msg);
    for (int i = 0; i < 1000 && !backpressure_; ++i) {
      auto msg = source_->poll(0);
      if (!msg) break;
      handle_message(*msg);
    }
    commit_spool();  // group commit: one synced write per loop round
    if (clock_.now() - last_commit_ >= std::chrono::seconds(1)) commit_offsets(true);
    log_summary(false);
    publish_status(false);
  }
  shutdown();
  return Status::ok();
}

void Pipeline::shutdown() {
  auto log = logger("ingest");
  {
    std::lock_guard lock(status_mu_);
    status_.state = "stopping";
  }
  log->info("stopping: writing open batches");
  for (auto& [key, p] : partitions_) dispatch(*p);
  constexpr auto kDrainTimeout = std::chrono::seconds(30);
  const auto deadline = std::chrono::steady_clock::now() + kDrainTimeout;
  auto all_idle = [&] {
    return std::all_of(writers_.begin(), writers_.end(), [](auto& w) { return w->idle(); });
  };
  while (!all_idle() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  if (!all_idle()) {
    log->warn(
        "MariaDB did not take the last {} KiB within {} s; those events are not committed "
        "anywhere and will be read again from Kafka on the next start",
        in_flight_bytes_.load() >> 10, kDrainTimeout.count());
  }
  for (auto& w : writers_) w->stop(true);
  process_completions();
  commit_spool();
  commit_offsets(false);
  for (const auto id : closing_commands_) complete_command(id, Status::error("shutting down"));
  source_->close();
  source_.reset();
  control_.reset();
  writers_.clear();
  log_summary(true);
  log->info("stopped");
}

}  // namespace sluice::ingest
