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
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (abandon_ || (stopping_ && queue_.empty())) return;
        batch = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
      }
      const bool written = write_with_retry(batch, *log);
      std::lock_guard lock(mu_);
      busy_ = false;
      if (!written) return;
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
        Completion c{batch.topic,       batch.partition,  batch.generation,      result.outcome,
                     batch.base_offset, batch.end_offset, result.db_next_offset, bytes};
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
      const auto delay = cls == storage::DbErrorClass::kTransient ? quick.next() : backoff.next();
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, delay, [&] { return abandon_; })) return false;
    }
  }

  size_t index_;
  std::unique_ptr<storage::BatchSink> sink_;
  Pipeline& owner_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;  // guarded by mu_
  bool busy_ = false;        // guarded by mu_
  bool stopping_ = false;    // guarded by mu_
  bool abandon_ = false;     // guarded by mu_
  std::thread thread_;       // last: starts after the members above exist
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

Status Pipeline::prepare_database(const std::atomic<bool>& stop) {
  auto log = logger("mariadb");
  control_ = std::make_unique<storage::MariaDbSink>(config_.mariadb, config_.kafka.group_id);
  Backoff backoff(milliseconds(200), milliseconds(30'000));
  RateLimiter limiter(std::chrono::seconds(30));
  while (!stop.load()) {
    auto st = control_->prepare();
    if (st.is_ok()) {
      log.get()->info("connected to MariaDB; bookkeeping tables ready in database '{}'",
                      config_.mariadb.database);
      return Status::ok();
    }
    if (st.error_class() == storage::DbErrorClass::kFatal) {
      return Status::error("cannot use MariaDB: " + st.describe());
    }
    uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      log->warn("MariaDB is not available ({}); retrying with backoff", st.describe());
    }
    const auto until = std::chrono::steady_clock::now() + backoff.next();
    while (!stop.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(milliseconds(50));
    }
  }
  return Status::ok();
}

void Pipeline::on_assign(std::vector<TopicPartition>& assigned) {
  auto log = logger("ingest");
  // Invariant 4: start from sluice_offsets, else the group's committed offset, else the reset
  // policy. The group's offset is never ahead of sluice_offsets (it is committed after MariaDB),
  // so falling back to it when MariaDB cannot be asked re-reads events but never skips any;
  // the compare-and-set then skips what MariaDB already has.
  std::map<std::string, std::map<int32_t, int64_t>> stored;
  bool stored_known = true;
  for (const auto& tp : assigned) {
    if (stored.contains(tp.topic)) continue;
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
    if (in_database) {
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
    if (in_database) p->db_end = start;
    p->writer = (std::hash<std::string>{}(tp.topic) * 31 + static_cast<size_t>(tp.partition)) %
                writers_.size();
    partitions_[{tp.topic, tp.partition}] = std::move(p);
    summary += fmt::format("{}{}/{}@{} ({})", summary.empty() ? "" : ", ", tp.topic, tp.partition,
                           start >= 0 ? std::to_string(start) : "reset", from);
  }
  log->info("assigned {} partition(s): {}", assigned.size(), summary);
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
  const int64_t offset = msg.offset;
  const int64_t expected = p.batcher.next_offset();
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
  if (expected >= 0 && offset > expected) check_gap(p, offset);
  ++stats_.consumed;

  const std::string_view payload(static_cast<const char*>(msg.payload), msg.len);
  const int64_t timestamp_ms = rd_kafka_message_timestamp(&msg, nullptr);
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
  if (p.batcher.empty()) return;
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
  if (!backpressure_ && in_flight >= max_in_flight_bytes_) {
    std::vector<TopicPartition> list;
    for (auto& [key, p] : partitions_) {
      list.push_back({p->topic, p->partition, -1});
      p->paused = true;
    }
    if (auto st = source_->pause(list); !st) logger("kafka")->error("{}", st.message());
    backpressure_ = true;
    logger("ingest")->info("fetching paused: {} MiB of batches waiting for MariaDB",
                           in_flight >> 20);
  } else if (backpressure_ && in_flight <= max_in_flight_bytes_ / 2) {
    std::vector<TopicPartition> seek, all;
    for (auto& [key, p] : partitions_) {
      all.push_back({p->topic, p->partition, -1});
      if (p->batcher.next_offset() >= 0) {
        seek.push_back({p->topic, p->partition, p->batcher.next_offset()});
      }
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
        p.db_end = std::max(p.db_end, c.end_offset);
        break;
      case WriteOutcome::kAlreadyApplied:
        p.db_end = std::max({p.db_end, c.end_offset, c.db_next_offset});
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
        break;  // never reported: writers retry until written or abandoned
    }
  }
}

void Pipeline::commit_offsets(bool async) {
  last_commit_ = clock_.now();
  std::vector<TopicPartition> list;
  for (auto& [key, p] : partitions_) {
    if (p->db_end > p->kafka_committed) {
      list.push_back({p->topic, p->partition, p->db_end});
      p->kafka_committed = p->db_end;
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
    parts.push_back(
        {p->topic, p->partition, p->batcher.next_offset(), p->db_end, p->kafka_committed});
  }
  std::lock_guard lock(status_mu_);
  status_.partitions = std::move(parts);
  status_.fetch_paused = backpressure_;
  if (status_.state == "starting") status_.state = "running";
}

PipelineStatus Pipeline::status() const {
  std::lock_guard lock(status_mu_);
  PipelineStatus out = status_;
  out.in_flight_bytes = in_flight_bytes_.load();
  for (const auto& [name, t] : tables_) out.tables.push_back(t);
  return out;
}

Status Pipeline::run(const std::atomic<bool>& stop) {
  auto log = logger("ingest");
  if (auto st = prepare_database(stop); !st) return st;
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
    process_completions();
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
  commit_offsets(false);
  source_->close();
  source_.reset();
  control_.reset();
  writers_.clear();
  log_summary(true);
  log->info("stopped");
}

}  // namespace sluice::ingest
