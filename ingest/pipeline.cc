#include "ingest/pipeline.h"

#include <algorithm>

#include "common/logging.h"

namespace sluice::ingest {

using std::chrono::milliseconds;
using storage::Batch;
using storage::DbErrorClass;
using storage::WriteOutcome;

namespace {

/// At most this many messages are taken from the source per loop round. While spooling, one
/// round's events are one group commit (one fsync): under a backlog, big groups are what lets
/// the spool keep up (bench/README.md: spool append by group size).
constexpr size_t kPollBatch = 5000;
/// How long fetching may simply wait for MariaDB before the partitions are paused in Kafka.
constexpr std::chrono::seconds kHoldBeforePause{5};

}  // namespace

Pipeline::Pipeline(Config config, PipelineParts parts, const Clock& clock)
    : config_(std::move(config)),
      parts_(std::move(parts)),
      clock_(clock),
      registry_(config_.schemas_path, clock),
      decoder_(registry_),
      spool_(*parts_.spool),
      // Enough spare buffers for a writer's worth of batches in flight, each at most twice a
      // batch's limit: bounded memory, no growing from scratch.
      rows_pool_(4 * static_cast<size_t>(config_.mariadb.writers) + 4,
                 2 * static_cast<size_t>(config_.batch.max_bytes)) {
  limits_.max_rows = static_cast<size_t>(config_.batch.max_rows);
  limits_.max_bytes = static_cast<size_t>(config_.batch.max_bytes);
  limits_.max_delay = milliseconds(config_.batch.max_delay_ms);
  // Enough for every writer to have one batch in the database and one or two waiting.
  max_in_flight_bytes_ = limits_.max_bytes * (2 * static_cast<size_t>(config_.mariadb.writers) + 1);
  // Open batches of all partitions together. With many partitions read round-robin, their
  // batches would all fill at once: a burst the writers cannot take, then nothing. Over this
  // budget the fullest batch goes, so batches flow steadily and memory stays bounded whatever
  // the partition count.
  max_open_bytes_ = limits_.max_bytes * (static_cast<size_t>(config_.mariadb.writers) + 1);
}

Pipeline::~Pipeline() {
  // Writers report into this object: stop them before anything else goes.
  for (auto& w : writers_) w->stop(true);
}

// ---------------------------------------------------------------------------------------------
// Life cycle

Status Pipeline::run(const std::atomic<bool>& stop) {
  if (auto st = start(); !st) return st;
  while (!stop.load()) step();
  shutdown();
  return Status::ok();
}

Status Pipeline::start() {
  auto log = logger("ingest");
  const auto totals = spool_.totals();
  if (totals.events > 0) {
    log->info("spool at {} holds {} event(s) ({} bytes); they drain first", config_.spool.path,
              totals.events, totals.bytes);
  }
  control_ = parts_.sinks(config_.mariadb);
  if (auto record = spool_.pause()) {
    // Invariant 5 across restarts: a service paused for maintenance stays paused, and quiet.
    pause_ = record;
    gate_ = Gate::kClosed;
    log->info("starting paused (\"{}\"): no MariaDB connection until `sluice resume`",
              record->reason);
  } else if (auto st = control_->probe(); st.is_ok()) {
    db_up_ = true;
    logger("mariadb")->info("connected to MariaDB; bookkeeping tables ready in database '{}'",
                            config_.mariadb.database);
  } else if (st.error_class() == DbErrorClass::kFatal) {
    // Wrong password, unknown database, missing privilege: a person must act.
    return Status::error("cannot use MariaDB: " + st.describe());
  } else {
    // Down or read-only at start-up: consume into the spool and probe until it is back.
    enter_outage(st);
  }
  for (int i = 0; i < config_.mariadb.writers; ++i) {
    writers_.push_back(make_writer(static_cast<size_t>(i)));
  }
  RebalanceHandler handler{[this](std::vector<TopicPartition>& p) { on_assign(p); },
                           [this](const std::vector<TopicPartition>& p) { on_revoke(p); }};
  auto source = parts_.source(std::move(handler));
  if (!source) return source.status();
  source_ = std::move(source).value();
  std::string topics;
  for (const auto& t : config_.kafka.topics) topics += (topics.empty() ? "" : ", ") + t;
  log->info("consuming [{}] as group '{}' with {} writer(s)", topics, config_.kafka.group_id,
            writers_.size());
  last_summary_ = clock_.now();
  started_ = true;
  publish_status(true);
  return Status::ok();
}

void Pipeline::step(milliseconds max_wait) {
  process_commands();
  finish_closing();
  process_reports();
  probe_outage();
  drain();
  flush_due();
  apply_backpressure();
  seek_dropped();
  // Wake for the nearest batch deadline so a quiet partition flushes on time.
  auto timeout = max_wait;
  for (auto& [key, p] : partitions_) {
    if (auto d = p->batcher.deadline()) {
      timeout = std::min(timeout, std::chrono::duration_cast<milliseconds>(*d - clock_.now()));
    }
  }
  timeout = std::max(timeout, milliseconds(0));
  if (holding()) {
    // MariaDB is behind: take nothing more for now. librdkafka's queue is bounded
    // (queued.max.messages.kbytes), so memory is too; nothing is dropped or fetched twice.
    std::unique_lock lock(reports_mu_);
    reports_cv_.wait_for(lock, timeout, [&] { return !reports_.empty(); });
  } else {
    // Paused in Kafka, one message at a time: whatever arrives is dropped and read again.
    source_->poll(timeout, backpressure_ ? 1 : kPollBatch, messages_);
    for (const auto& m : messages_) handle_message(m);
    dispatch_over_budget();
  }
  commit_spool();  // group commit: one synced write per loop round
  if (clock_.now() - last_commit_ >= std::chrono::seconds(1)) commit_offsets(true);
  log_summary(false);
  publish_status(false);
}

void Pipeline::shutdown() {
  if (!started_) return;  // start() failed: nothing was consumed
  started_ = false;
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
        in_flight_bytes_ >> 10, kDrainTimeout.count());
  }
  for (auto& w : writers_) w->stop(true);
  process_reports();
  commit_spool();
  commit_offsets(false);
  for (auto& w : closing_waiters_) w.set_value(Status::error("shutting down"));
  closing_waiters_.clear();
  {
    std::lock_guard lock(command_mu_);
    stopped_ = true;
    for (auto& c : commands_) c.done.set_value(Status::error("shutting down"));
    commands_.clear();
  }
  source_->close();
  source_.reset();
  control_.reset();
  writers_.clear();
  log_summary(true);
  log->info("stopped");
}

// ---------------------------------------------------------------------------------------------
// Kafka side

void Pipeline::on_assign(std::vector<TopicPartition>& assigned) {
  auto log = logger("ingest");
  // Invariant 4: start from the spool, else sluice_offsets, else the group's committed offset,
  // else the reset policy. The group's offset is never ahead of sluice_offsets (it is committed
  // after MariaDB or the spool has the events), so falling back to it when MariaDB cannot be
  // asked re-reads events but never skips any; the compare-and-set then skips what MariaDB has.
  std::map<std::string, std::map<int32_t, int64_t>> stored;
  bool stored_known = gate_ == Gate::kOpen;  // a closed gate asks MariaDB nothing
  for (const auto& tp : assigned) {
    if (!stored_known || stored.contains(tp.topic)) continue;
    if (auto st = control_->read_offsets(tp.topic, stored[tp.topic]); !st.is_ok()) {
      stored_known = false;
      stored.clear();
      log->warn(
          "cannot read sluice_offsets ({}); starting from the group's committed offsets, which "
          "are never ahead of MariaDB",
          st.describe());
      const auto cls = st.error_class();
      if (cls == DbErrorClass::kOutage || cls == DbErrorClass::kReadOnly) enter_outage(st);
    }
  }
  std::vector<TopicPartition> committed = assigned;
  if (auto st = source_->committed(committed, std::chrono::seconds(10)); !st) {
    log->warn("{}; partitions without a sluice_offsets row start from the reset policy",
              st.message());
    for (auto& c : committed) c.offset = kOffsetInvalid;
  }
  std::string summary;
  for (size_t i = 0; i < assigned.size(); ++i) {
    auto& tp = assigned[i];
    int64_t start = kOffsetInvalid;
    const char* from = "the reset policy";
    const auto& topic_offsets = stored[tp.topic];
    const auto in_database = topic_offsets.find(tp.partition);
    const auto spooled = spool_.partition(tp.topic, tp.partition);
    if (spooled) {
      start = spooled->last_offset + 1;
      from = "the spool";
    } else if (in_database != topic_offsets.end()) {
      start = in_database->second;
      from = "sluice_offsets";
    } else if (committed[i].offset >= 0) {
      start = committed[i].offset;
      from = stored_known ? "the group's committed offset"
                          : "the group's committed offset (MariaDB not asked)";
    }
    tp.offset = start;
    auto p = std::make_unique<Partition>(tp.topic, tp.partition, limits_, clock_, &rows_pool_);
    p->topic_consumed = &consumed_by_topic_[tp.topic];
    p->generation = next_generation_++;
    p->batcher.reset(start, p->generation);
    p->kafka_committed = committed[i].offset;
    if (in_database != topic_offsets.end() && !spooled) p->db_end = start;
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
  publish_status(true);
}

void Pipeline::on_revoke(const std::vector<TopicPartition>& revoked) {
  process_reports();
  commit_spool();
  commit_offsets(false);
  for (const auto& tp : revoked) partitions_.erase({tp.topic, tp.partition});
  logger("ingest")->info(
      "revoked {} partition(s); open batches are dropped and will be read again by the next "
      "owner",
      revoked.size());
  publish_status(true);
}

void Pipeline::handle_message(const SourceMessage& msg) {
  const auto it = partitions_.find({std::string(msg.topic), msg.partition});
  if (it == partitions_.end()) return;  // not (or no longer) assigned to us
  Partition& p = *it->second;
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
  // Events Sluice does not take now are read again later: Kafka keeps them. Every such drop
  // leaves the partition to be sought back to fetch_next before it takes anything more, so a
  // dropped event can never turn into a hole.
  //  - paused in Kafka (backpressure): the resume seeks;
  //  - the gate is closing and the partition flows directly: it is rewound to its floor once the
  //    writers are quiet (a spooling partition is not rewound: its events keep going to the
  //    spool);
  //  - the spool is full (invariant 6).
  if (p.must_seek || p.paused || (gate_ == Gate::kClosing && !p.spooling) ||
      (p.spooling && spool_full_)) {
    if (p.fetch_next < 0) p.fetch_next = offset;  // the start was unknown: it is here
    if (p.floor < 0) p.floor = offset;
    p.must_seek = true;
    return;
  }
  p.seeking = false;
  p.fetch_next = offset + 1;
  if (p.floor < 0) p.floor = offset;
  ++stats_.consumed;
  ++*p.topic_consumed;
  if (p.spooling) {
    // Behind older spooled events, or the gate is closed: into the spool, raw. Made durable by
    // commit_spool() before its Kafka offset is committed.
    spool_.append(p.topic, p.partition, offset, msg.timestamp_ms, msg.payload);
    if (p.drain_next < 0) p.drain_next = offset;
    p.spool_end = offset + 1;
    p.spool_newest_ms = msg.timestamp_ms;
    ++stats_.spooled;
    if (spool_committed_bytes_ + spool_.staged_bytes() >=
        static_cast<uint64_t>(config_.spool.max_bytes)) {
      spool_full_ = true;  // apply_backpressure() pauses fetching on the next round
    }
    return;
  }
  batch_event(p, offset, msg.timestamp_ms, msg.payload);
}

void Pipeline::check_gap(Partition& p, int64_t offset) {
  auto log = logger("ingest");
  const int64_t expected = p.batcher.next_offset();
  int64_t low = -1, high = -1;
  const auto st = source_->watermarks(p.topic, p.partition, low, high, std::chrono::seconds(5));
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

bool Pipeline::holding() {
  if (backpressure_ || in_flight_bytes_ < max_in_flight_bytes_) {
    holding_since_.reset();
    return false;
  }
  if (!holding_since_) holding_since_ = clock_.now();
  // A stall longer than this is not flow control but a stuck database: apply_backpressure()
  // then pauses the partitions in Kafka and polling goes on, so the consumer stays in its group.
  return clock_.now() - *holding_since_ < kHoldBeforePause;
}

void Pipeline::apply_backpressure() {
  const auto totals = spool_.totals();
  spool_committed_bytes_ = totals.bytes;
  const bool spool_was_full = spool_full_reported_;
  spool_full_ = spool_committed_bytes_ + spool_.staged_bytes() >=
                static_cast<uint64_t>(config_.spool.max_bytes);
  spool_full_reported_ = spool_full_;
  if (spool_full_ != spool_was_full) {
    if (spool_full_) {
      logger("ingest")->warn(
          "spool full ({} bytes, spool.max_bytes {}): fetching paused; Kafka keeps the events",
          totals.bytes, config_.spool.max_bytes);
    } else {
      logger("ingest")->info("spool below spool.max_bytes again");
    }
  }
  const bool stuck = holding_since_ && clock_.now() - *holding_since_ >= kHoldBeforePause;
  const bool over = stuck || spool_full_;
  if (!backpressure_ && over) {
    std::vector<TopicPartition> list;
    for (auto& [key, p] : partitions_) {
      list.push_back({p->topic, p->partition, -1});
      p->paused = true;
    }
    if (auto st = source_->pause(list); !st) logger("kafka")->error("{}", st.message());
    backpressure_ = true;
    logger("ingest")->info("fetching paused: {} MiB of batches waiting for MariaDB{}",
                           in_flight_bytes_ >> 20, spool_full_ ? ", spool full" : "");
  } else if (backpressure_ && !spool_full_ && in_flight_bytes_ <= max_in_flight_bytes_ / 2) {
    std::vector<TopicPartition> seek, all;
    for (auto& [key, p] : partitions_) {
      all.push_back({p->topic, p->partition, -1});
      if (p->fetch_next >= 0) seek.push_back({p->topic, p->partition, p->fetch_next});
      p->paused = false;
      p->must_seek = false;
      p->seeking = true;
    }
    // Messages fetched while paused were dropped: read again from exactly where each stopped.
    if (auto st = source_->seek(seek); !st) logger("kafka")->error("{}", st.message());
    if (auto st = source_->resume(all); !st) logger("kafka")->error("{}", st.message());
    backpressure_ = false;
    logger("ingest")->info("fetching resumed");
  }
}

void Pipeline::reposition(Partition& p, int64_t offset) {
  p.generation = next_generation_++;
  p.batcher.reset(offset, p.generation);
  p.fetch_next = offset;
  seek_to_fetch_next(p);
}

void Pipeline::seek_to_fetch_next(Partition& p) {
  p.must_seek = false;
  p.seeking = true;
  if (auto st = source_->seek({{p.topic, p.partition, p.fetch_next}}); !st) {
    logger("kafka")->error("{}", st.message());
  }
}

void Pipeline::seek_dropped() {
  for (auto& [key, p] : partitions_) {
    // Paused ones seek on resume; closing ones are rewound by finish_closing().
    if (!p->must_seek || p->paused || (gate_ == Gate::kClosing && !p->spooling)) continue;
    seek_to_fetch_next(*p);
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
  if (list.empty()) return;
  if (auto st = source_->commit(list, async); !st) {
    static RateLimiter limiter(std::chrono::seconds(30));
    uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) logger("kafka")->warn("{}", st.message());
  }
}

// ---------------------------------------------------------------------------------------------
// Batches and writers

void Pipeline::batch_event(Partition& p, int64_t offset, int64_t timestamp_ms,
                           std::string_view payload) {
  const int64_t expected = p.batcher.next_offset();
  if (expected >= 0 && offset > expected) check_gap(p, offset);
  if (const Schema* schema = decoder_.decode(payload, timestamp_ms, reason_)) {
    p.batcher.add_decoded(schema->table.get(), decoder_, offset);
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

void Pipeline::dispatch_over_budget() {
  if (gate_ != Gate::kOpen) return;
  size_t open = 0;
  for (const auto& [key, p] : partitions_) open += p->batcher.bytes();
  while (open > max_open_bytes_) {
    Partition* fullest = nullptr;
    for (auto& [key, p] : partitions_) {
      if (fullest == nullptr || p->batcher.bytes() > fullest->batcher.bytes()) fullest = p.get();
    }
    if (fullest == nullptr || fullest->batcher.empty()) break;
    open -= fullest->batcher.bytes();
    dispatch(*fullest);
  }
}

void Pipeline::flush_due() {
  for (auto& [key, p] : partitions_) {
    if (p->batcher.due()) dispatch(*p);
  }
}

void Pipeline::on_report(WriteReport&& report) {
  {
    std::lock_guard lock(reports_mu_);
    reports_.push_back(std::move(report));
  }
  reports_cv_.notify_one();
}

void Pipeline::process_reports() {
  {
    std::lock_guard lock(reports_mu_);
    reports_in_.swap(reports_);
  }
  for (auto& r : reports_in_) {
    in_flight_bytes_ -= std::min(in_flight_bytes_, r.bytes);
    for (auto& rows : r.spent) rows_pool_.give(std::move(rows));
    if (r.outcome == WriteOutcome::kCommitted || r.outcome == WriteOutcome::kAlreadyApplied) {
      stats_.rows_inserted += r.rows;
      stats_.dead_letters += r.dead_letters;
      ++(r.outcome == WriteOutcome::kCommitted ? stats_.batches_committed
                                               : stats_.batches_already_applied);
      db_up_ = true;
      if (r.outcome == WriteOutcome::kCommitted && parts_.on_batch_committed) {
        parts_.on_batch_committed(r);
      }
      if (!r.tables.empty()) {
        std::lock_guard lock(status_mu_);
        for (const auto& t : r.tables) {
          auto& table = tables_[t.name];
          table.table = t.name;
          table.rows_inserted += t.rows;
          table.max_timestamp = std::max(table.max_timestamp, t.max_timestamp);
        }
      }
    }
    const auto it = partitions_.find({r.topic, r.partition});
    if (it == partitions_.end()) continue;  // revoked meanwhile
    Partition& p = *it->second;
    switch (r.outcome) {
      case WriteOutcome::kCommitted:
      case WriteOutcome::kAlreadyApplied:
        p.db_end = std::max({p.db_end, r.end_offset, r.db_next_offset});
        p.floor = std::max(p.floor, p.db_end);
        if (spool_.partition(p.topic, p.partition)) {
          // MariaDB has these now: reclaim their space in the spool.
          if (auto st = spool_.release(p.topic, p.partition, p.db_end); !st) {
            logger("spool")->error("{}", st.message());
          }
        }
        break;
      case WriteOutcome::kBehind:
        if (r.generation != p.generation) break;  // an earlier reposition already handled it
        logger("ingest")->error(
            "{}/{}: sluice_offsets says the next offset is {}, behind the batch [{}, {}) Sluice "
            "built; reading the partition again from {}",
            r.topic, r.partition, r.db_next_offset, r.base_offset, r.end_offset, r.db_next_offset);
        reposition(p, r.db_next_offset);
        break;
      case WriteOutcome::kFailed:
        // Dropped by a quiesce or a stop (read again from the floor), or an outage.
        if (!r.error.is_ok()) enter_outage(r.error);
        break;
    }
  }
  reports_in_.clear();
}

// ---------------------------------------------------------------------------------------------
// The gate

std::unique_ptr<Writer> Pipeline::make_writer(size_t index) {
  return std::make_unique<Writer>(
      index, parts_.sinks(config_.mariadb), [this](WriteReport&& r) { on_report(std::move(r)); },
      clock_);
}

std::future<Status> Pipeline::submit(Command::Kind kind, std::string reason,
                                     std::optional<MariaDbConfig> mariadb) {
  std::lock_guard lock(command_mu_);
  Command c{kind, std::move(reason), {}, std::move(mariadb)};
  auto done = c.done.get_future();
  if (stopped_) {
    c.done.set_value(Status::error("shutting down"));
  } else {
    commands_.push_back(std::move(c));
  }
  return done;
}

std::future<Status> Pipeline::request_pause(std::string reason) {
  return submit(Command::kPause, std::move(reason));
}

std::future<Status> Pipeline::request_resume() { return submit(Command::kResume, ""); }

namespace {

Status wait_for(std::future<Status> f, std::chrono::milliseconds timeout, const char* what) {
  if (f.wait_for(timeout) != std::future_status::ready) {
    return Status::error(std::string(what) + " did not complete within " +
                         std::to_string(timeout.count() / 1000) +
                         " s (a transaction may still be running); it goes on in the background");
  }
  return f.get();
}

}  // namespace

Status Pipeline::pause(const std::string& reason, std::chrono::milliseconds timeout) {
  return wait_for(request_pause(reason), timeout, "pause");
}

Status Pipeline::resume(std::chrono::milliseconds timeout) {
  return wait_for(request_resume(), timeout, "resume");
}

Status Pipeline::retarget(const MariaDbConfig& mariadb, std::chrono::milliseconds timeout) {
  return wait_for(request_retarget(mariadb), timeout, "retarget");
}

std::future<Status> Pipeline::request_retarget(MariaDbConfig mariadb) {
  return submit(Command::kRetarget, "", std::move(mariadb));
}

void Pipeline::process_commands() {
  std::vector<Command> todo;
  {
    std::lock_guard lock(command_mu_);
    // A resume waits while a pause is still closing the gate: the rewind must happen first.
    size_t n = 0;
    while (n < commands_.size() &&
           !(gate_ == Gate::kClosing && commands_[n].kind == Command::kResume)) {
      ++n;
    }
    std::move(commands_.begin(), commands_.begin() + static_cast<std::ptrdiff_t>(n),
              std::back_inserter(todo));
    commands_.erase(commands_.begin(), commands_.begin() + static_cast<std::ptrdiff_t>(n));
  }
  auto log = logger("ingest");
  for (auto& c : todo) {
    if (c.kind == Command::kRetarget) {
      apply_retarget(c);
      continue;
    }
    if (c.kind == Command::kPause) {
      if (pause_) {  // already paused, or pausing: idempotent
        if (gate_ == Gate::kClosed) {
          c.done.set_value(Status::ok());
        } else {
          closing_waiters_.push_back(std::move(c.done));
        }
        continue;
      }
      storage::PauseRecord record{c.reason, clock_.wall_ms()};
      if (auto st = spool_.set_pause(record); !st) {
        c.done.set_value(st);
        continue;
      }
      pause_ = record;
      if (gate_ == Gate::kClosed) {
        // Closed by an outage: already quiet. It now stays closed until resumed.
        c.done.set_value(Status::ok());
        log->info("paused{}{} during a MariaDB outage: Sluice stays paused when it returns",
                  c.reason.empty() ? "" : " for ", c.reason);
        publish_status(true);
        continue;
      }
      closing_waiters_.push_back(std::move(c.done));
      if (gate_ == Gate::kOpen) close_gate();
      log->info("pausing{}{}: finishing the open transactions and closing MariaDB connections",
                c.reason.empty() ? "" : " for ", c.reason);
      continue;
    }
    // Resume.
    if (!pause_) {
      // Nothing an operator closed. (In an outage Sluice reopens by itself.)
      c.done.set_value(Status::ok());
      continue;
    }
    if (auto st = spool_.set_pause(std::nullopt); !st) {
      c.done.set_value(st);
      continue;
    }
    pause_.reset();
    if (outage_) {
      log->info("resumed; MariaDB is still unavailable: the spool drains once it is back");
      publish_status(true);
      c.done.set_value(Status::ok());
      continue;
    }
    open_gate();
    log->info("resumed: draining {} spooled event(s) in offset order, ahead of live traffic",
              spool_.totals().events);
    c.done.set_value(Status::ok());
  }
}

void Pipeline::apply_retarget(Command& c) {
  if (!pause_ || gate_ != Gate::kClosed) {
    c.done.set_value(Status::error(
        "the MariaDB endpoint changes only while paused: run `sluice pause` first, then reload"));
    return;
  }
  const std::string before = describe_endpoint(config_.mariadb);
  const int writers = config_.mariadb.writers;
  config_.mariadb = std::move(*c.mariadb);
  config_.mariadb.writers = writers;
  // Paused means quiet: no writer holds a batch or a connection, so their sessions can be
  // replaced. The new ones stay quiet until the resume.
  control_ = parts_.sinks(config_.mariadb);
  for (size_t i = 0; i < writers_.size(); ++i) {
    writers_[i]->stop(true);
    writers_[i] = make_writer(i);
    writers_[i]->quiesce();
  }
  logger("ingest")->info("MariaDB endpoint is now {} (was {}); `sluice resume` writes there",
                         describe_endpoint(config_.mariadb), before);
  publish_status(true);
  c.done.set_value(Status::ok());
}

void Pipeline::close_gate() {
  gate_ = Gate::kClosing;
  for (auto& w : writers_) w->quiesce();
  control_->disconnect();
}

void Pipeline::open_gate() {
  gate_ = Gate::kOpen;
  for (auto& w : writers_) w->unquiesce();
  publish_status(true);
}

void Pipeline::finish_closing() {
  if (gate_ != Gate::kClosing) return;
  for (auto& w : writers_) {
    if (!w->quiet()) return;
  }
  process_reports();
  commit_spool();
  // Everything MariaDB has not committed is read again — into the spool this time — from the
  // partition's floor, so the spool holds each partition contiguously from MariaDB's end.
  for (auto& [key, p] : partitions_) {
    if (p->spooling) {
      // Already draining: the spool still holds everything above the floor. Live events keep
      // appending at spool_end; the drain restarts from the floor.
      p->generation = next_generation_++;
      const auto spooled = spool_.partition(p->topic, p->partition);
      p->drain_next = spooled ? std::max(p->floor, spooled->first_offset) : p->spool_end;
      p->batcher.reset(p->drain_next, p->generation);
      continue;
    }
    p->spooling = true;
    if (p->floor < 0) continue;  // nothing read yet
    if (p->spool_end > p->floor) {
      // A drain had just caught up: the spool still holds [floor, spool_end), whose batches were
      // dropped before MariaDB committed them. Keep them (spooling them again would put offsets
      // in the spool twice): drain from the floor, and read Kafka from after them.
      p->generation = next_generation_++;
      p->drain_next = p->floor;
      p->batcher.reset(p->floor, p->generation);
      p->fetch_next = p->spool_end;
      seek_to_fetch_next(*p);
      continue;
    }
    reposition(*p, p->floor);
    p->spool_end = p->spool_durable = p->drain_next = p->floor;
  }
  gate_ = Gate::kClosed;
  publish_status(true);
  if (pause_) {
    logger("ingest")->info(
        "paused: no open transaction and no connection to MariaDB; spooling events to {}",
        config_.spool.path);
  }
  for (auto& w : closing_waiters_) w.set_value(Status::ok());
  closing_waiters_.clear();
}

void Pipeline::enter_outage(const storage::DbStatus& cause) {
  if (outage_) {
    outage_error_ = cause;
    return;
  }
  if (gate_ != Gate::kOpen) return;  // already closing or closed by an operator
  outage_ = true;
  db_up_ = false;
  outage_error_ = cause;
  outage_since_ms_ = clock_.wall_ms();
  last_outage_summary_ = clock_.now();
  probe_backoff_.emplace(milliseconds(500), milliseconds(30'000));
  next_probe_ = clock_.now() + probe_backoff_->next();
  if (started_) {
    close_gate();
  } else {
    gate_ = Gate::kClosed;  // no writer exists yet: nothing to wait for
  }
  logger("ingest")->warn(
      "MariaDB unavailable ({}): spooling events to {} and probing with backoff until it takes "
      "writes again",
      cause.describe(), config_.spool.path);
  publish_status(true);
}

void Pipeline::probe_outage() {
  if (!outage_ || pause_ || gate_ != Gate::kClosed) return;
  const auto now = clock_.now();
  if (now < next_probe_) return;
  auto st = control_->probe();
  if (!st.is_ok()) {
    outage_error_ = st;
    next_probe_ = clock_.now() + probe_backoff_->next();
    if (now - last_outage_summary_ >= std::chrono::seconds(60)) {
      last_outage_summary_ = now;
      logger("ingest")->warn(
          "outage for {} s: the spool holds {} event(s); last error: {}; probing with backoff",
          (clock_.wall_ms() - outage_since_ms_) / 1000, spool_.totals().events, st.describe());
    }
    return;
  }
  outage_ = false;
  db_up_ = true;
  open_gate();
  logger("ingest")->info(
      "MariaDB takes writes again after {} s: draining {} spooled event(s) in offset order",
      (clock_.wall_ms() - outage_since_ms_) / 1000, spool_.totals().events);
}

// ---------------------------------------------------------------------------------------------
// The spool

void Pipeline::commit_spool() {
  if (spool_.staged() == 0) return;
  if (auto st = spool_.commit(); !st) {
    static RateLimiter limiter(std::chrono::seconds(10));
    uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      logger("spool")->error("{} ({} similar suppressed); retrying", st.message(), suppressed);
    }
    return;
  }
  for (auto& [key, p] : partitions_) p->spool_durable = std::max(p->spool_durable, p->spool_end);
  spool_committed_bytes_ = spool_.totals().bytes;
}

void Pipeline::drain() {
  if (gate_ != Gate::kOpen) return;
  for (auto& [key, pp] : partitions_) {
    Partition& p = *pp;
    if (!p.spooling) continue;
    if (in_flight_bytes_ >= max_in_flight_bytes_) return;
    if (p.drain_next >= p.spool_end) {
      // Caught up: everything spooled is batched. From here live events flow directly.
      if (spool_.staged() > 0) continue;  // wait for the last appends to be synced
      p.spooling = false;
      dispatch(p);
      logger("ingest")->info("{}/{}: spool drained; events flow directly again", p.topic,
                             p.partition);
      publish_status(true);
      continue;
    }
    if (auto st = spool_.read(p.topic, p.partition, p.drain_next, limits_.max_rows, chunk_); !st) {
      static RateLimiter limiter(std::chrono::seconds(10));
      uint64_t suppressed = 0;
      if (limiter.allow(suppressed)) {
        logger("spool")->error("{} ({} similar suppressed)", st.message(), suppressed);
      }
      continue;
    }
    for (const auto& e : chunk_.events) {
      batch_event(p, e.offset, e.timestamp_ms, e.payload);
      p.drain_next = e.offset + 1;
      ++stats_.drained;
    }
    // An empty read means staged but not yet synced: read it on a later round. A short read is
    // the tail: do not wait for max_delay.
    if (!chunk_.events.empty() && chunk_.events.size() < limits_.max_rows) dispatch(p);
  }
  dispatch_over_budget();
}

// ---------------------------------------------------------------------------------------------
// Status and logs

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
      stats_.batches_already_applied.load(), in_flight_bytes_ >> 10);
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
    const int64_t high = source_ ? source_->cached_high_watermark(p->topic, p->partition) : -1;
    const int64_t lag =
        high >= 0 && p->fetch_next >= 0 ? std::max<int64_t>(0, high - p->fetch_next) : -1;
    parts.push_back(
        {p->topic, p->partition, p->fetch_next, p->db_end, p->kafka_committed, high, lag});
  }
  const auto totals = spool_.totals();
  std::vector<PipelineStatus::SpoolPartition> spooled;
  for (const auto& [key, range] : spool_.partitions()) {
    const auto it = partitions_.find(key);
    spooled.push_back(
        {key.first, key.second, range,
         it != partitions_.end() && range.events > 0 ? it->second->spool_newest_ms : -1});
  }
  std::lock_guard lock(status_mu_);
  status_.spool_partitions = std::move(spooled);
  status_.partitions = std::move(parts);
  status_.fetch_paused = backpressure_ || holding_since_.has_value();
  if (status_.state != "stopping") status_.state = state_name();
  status_.pause_reason = pause_ ? pause_->reason : "";
  status_.paused_since_ms = pause_ ? pause_->since_ms : 0;
  status_.outage_error = outage_ ? outage_error_.describe() : "";
  status_.outage_since_ms = outage_ ? outage_since_ms_ : 0;
  status_.spool_events = totals.events;
  status_.spool_bytes = totals.bytes;
  status_.spool_oldest_age_s =
      totals.oldest_timestamp_ms >= 0
          ? std::max(0.0, static_cast<double>(clock_.wall_ms() - totals.oldest_timestamp_ms) / 1e3)
          : 0.0;
  status_.spool_full = spool_full_;
  status_.in_flight_bytes = in_flight_bytes_;
  status_.db_up = db_up_;
  status_.mariadb = describe_endpoint(config_.mariadb);
  status_.consumed_by_topic = consumed_by_topic_;
}

PipelineStatus Pipeline::status() const {
  std::lock_guard lock(status_mu_);
  PipelineStatus out = status_;
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

}  // namespace sluice::ingest
