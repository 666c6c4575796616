#include "ingest/pipeline.h"

#include <algorithm>

#include "ingest/assignment_facts.h"

namespace sluice::ingest {

using std::chrono::milliseconds;
using storage::DbErrorClass;
using storage::WriteOutcome;

namespace {

/// At most this many messages are taken from the source per loop round. While spooling, one
/// round's events are one group commit (one fsync): under a backlog, big groups are what lets
/// the spool keep up (bench/README.md: spool append by group size).
constexpr size_t kPollBatch = 5000;
/// How often partitions that wait on MariaDB (or on another spool) look again.
constexpr std::chrono::seconds kLookAgainEvery{3};
/// A partition held for a schema revision asks again when the repository finished a fetch,
/// or when its next attempt is due — after this long at least, and at most.
constexpr std::chrono::milliseconds kAskAgainAtLeast{200};
constexpr std::chrono::milliseconds kAskAgainAtMost{std::chrono::seconds(5)};

bool outage_class(const storage::DbStatus& st) {
  const auto cls = st.error_class();
  return cls == DbErrorClass::kOutage || cls == DbErrorClass::kReadOnly;
}

}  // namespace

Pipeline::Pipeline(Config config, PipelineParts parts, const Clock& clock)
    : config_(std::move(config)),
      parts_(std::move(parts)),
      clock_(clock),
      limits_{static_cast<size_t>(config_.batch.max_rows),
              static_cast<size_t>(config_.batch.max_bytes),
              milliseconds(config_.batch.max_delay_ms)},
      max_in_flight_bytes_(WriterPool::in_flight_budget(
          static_cast<size_t>(config_.mariadb.writers), limits_.max_bytes)),
      // Open batches of all partitions together (dispatch_fullest_over).
      max_open_bytes_(limits_.max_bytes * (static_cast<size_t>(config_.mariadb.writers) + 1)),
      intake_(config_.schemas_path, clock),
      lane_(*parts_.spool, static_cast<uint64_t>(config_.spool.max_bytes), clock),
      // The sinks follow the endpoint (a retarget restarts the writers on it).
      writers_(WriterPool::for_batches(static_cast<size_t>(config_.mariadb.writers),
                                       limits_.max_bytes, RetryLimit{}, parts_.lease,
                                       parts_.inline_writers),
               [this] { return parts_.sinks(config_.mariadb); }, clock),
      gate_(*this, clock),
      flow_(max_in_flight_bytes_, clock),
      committer_(clock),
      governor_({.max_rate = static_cast<double>(config_.drain.max_rate),
                 .max_replica_lag_s = static_cast<double>(config_.drain.max_replica_lag_s)},
                clock),
      board_(clock),
      jumps_(parts_.fleet, stats_, board_),
      rejoins_(clock, config_.kafka.instance_id) {
  if (parts_.schemas) {
    intake_.use_repository(parts_.schemas.get(), config_.schema_repository.cache_path);
  }
}

Pipeline::~Pipeline() {
  // Writers report into this object's pool: stop them before anything else goes. Then the
  // source, whose closing calls back into the handler — which does nothing once detached.
  writers_.stop(true);
  detached_ = true;
  source_.reset();
  gate_.stop("shutting down");
}

// ---------------------------------------------------------------------------------------------
// Life cycle

Status Pipeline::run(const std::atomic<bool>& stop) {
  if (auto st = start(); !st) return st;
  while (!stop.load() && failed_.is_ok()) step();
  shutdown();
  return failed_;
}

Status Pipeline::start() {
  auto log = logger("ingest");
  const auto totals = lane_.spool().totals();
  if (totals.events > 0) {
    log->info("spool at {} holds {} event(s) ({} bytes); they drain first", config_.spool.path,
              totals.events, totals.bytes);
  }
  control_ = parts_.sinks(config_.mariadb);
  writers_.start();
  if (auto record = lane_.spool().pause()) {
    // Invariant 5 across restarts: a service paused for maintenance stays paused, and quiet.
    gate_.start_paused(*record);
    writers_.quiesce();
    log->info("starting paused (\"{}\"): no MariaDB connection until `sluice resume`",
              record->reason);
  } else if (parts_.start_held) {
    gate_.start_held();
    writers_.quiesce();
    log->info("starting quiet: no MariaDB connection until the fleet's target state is known");
  } else if (auto st = control_->probe(); st.is_ok()) {
    gate_.database_reached();
    logger("mariadb")->info("connected to MariaDB; bookkeeping tables ready in database '{}'",
                            config_.mariadb.database);
  } else if (st.error_class() == DbErrorClass::kFatal) {
    // Wrong password, unknown database, missing privilege: a person must act.
    writers_.stop(true);
    return Status::error("cannot use MariaDB: " + st.describe());
  } else {
    // Down or read-only at start-up: consume into the spool and probe until it is back.
    gate_.start_in_outage(st);
    writers_.quiesce();
    log->warn("MariaDB unavailable at start-up ({}): spooling events and probing with backoff",
              st.describe());
  }
  auto source = parts_.source(source_handler());
  if (!source) {
    writers_.stop(true);
    return source.status();
  }
  source_ = std::move(source).value();
  std::string topics;
  for (const auto& t : config_.kafka.topics) topics += (topics.empty() ? "" : ", ") + t;
  log->info("consuming [{}] as group '{}', member '{}', with {} writer(s)", topics,
            config_.kafka.group_id, config_.kafka.instance_id, writers_.size());
  // Partitions this spool holds but the group has not given us (yet) are orphans until then:
  // drained under the compare-and-set, or released once MariaDB has passed them.
  for (const auto& [key, range] : lane_.spool().partitions()) {
    PartitionCursor& c = cursor(key);
    c.start(decide_start({StartFacts::Spooled{range.first_offset, range.last_offset}, {}, -1}),
            range, false);
    c.become_orphan();
  }
  board_.started();
  started_ = true;
  publish_status(true);
  return Status::ok();
}

SourceHandler Pipeline::source_handler() {
  return {[this](std::vector<TopicPartition>& p) {
            if (!detached_) on_assign(p);
          },
          [this](const std::vector<TopicPartition>& p) {
            if (!detached_) on_revoke(p);
          },
          [this](const std::vector<TopicPartition>& p, const Status& outcome) {
            if (!detached_) committer_.acknowledged(cursors_, p, outcome);
          }};
}

Status Pipeline::rejoin(const Status& why) {
  if (auto st = rejoins_.fenced(why, parts_.fleet != nullptr &&
                                         parts_.fleet->outlives_a_later_twin());
      !st) {
    return st;
  }
  std::vector<TopicPartition> assigned;
  for (const auto& [key, c] : cursors_) {
    if (c->mode() != PartitionMode::kOrphan)
      assigned.push_back({key.first, key.second, kOffsetInvalid});
  }
  on_revoke(assigned);  // what MariaDB holds stays; spooled partitions become orphans
  detached_ = true;     // the old consumer's closing calls back: nothing to do
  source_->close();
  source_.reset();
  detached_ = false;
  auto source = parts_.source(source_handler());
  if (!source) return source.status();
  source_ = std::move(source).value();
  return Status::ok();
}

void Pipeline::step(milliseconds max_wait) {
  if (!failed_.is_ok()) return;
  if (deferred_outage_) {
    gate_.outage(*deferred_outage_);
    deferred_outage_.reset();
  }
  const bool lease_valid = parts_.lease == nullptr || parts_.lease->valid();
  gate_.lease(lease_valid);
  gate_.step();
  if (gate_.version() != gate_version_) {
    gate_version_ = gate_.version();
    publish_status(true);
  }
  process_reports();
  advance_partitions();
  follow_replicas();
  drain();
  flush_due();
  look_again();
  flow_.apply(*source_, cursors_, writers_.in_flight_bytes(), lane_.update_full(lease_valid));
  // Wake for the nearest batch deadline, so a quiet partition flushes on time, and for a
  // governed drain's next allowance — with the gate open: closed, nothing is dispatched or
  // drained, and a due batch must not make the loop spin.
  auto wake = clock_.now() + max_wait;
  if (gate_.open()) {
    for (auto& [key, c] : cursors_) wake = std::min(wake, c->batcher().deadline().value_or(wake));
    if (const auto next = governor_.next_allowance()) wake = std::min(wake, *next + milliseconds(1));
  }
  const auto timeout =
      std::max(std::chrono::duration_cast<milliseconds>(wake - clock_.now()), milliseconds(0));
  if (flow_.holding(writers_.in_flight_bytes())) {
    // MariaDB is behind: take nothing more for now. librdkafka's queue is bounded
    // (queued.max.messages.kbytes), so memory is too; nothing is dropped or fetched twice.
    writers_.wait_for_report(timeout);
  } else {
    // Paused in Kafka, one message at a time: whatever arrives is dropped and read again.
    if (auto st = source_->poll(timeout, flow_.fetch_paused() ? 1 : kPollBatch, messages_); !st) {
      if (st.kind() == ErrorKind::kFenced) st = rejoin(st);
      if (!st) {
        logger("kafka")->critical("{}", st.message());
        failed_ = st;
      }
      return;
    }
    for (const auto& m : messages_) handle_message(m);
    dispatch_over_budget();
  }
  commit_spool();  // group commit: one synced write per loop round
  committer_.maybe_commit(*source_, cursors_);
  log_summary(false);
  publish_status(false);
}

void Pipeline::shutdown() {
  if (!started_) return;  // start() failed: nothing was consumed
  started_ = false;
  auto log = logger("ingest");
  board_.set_stopping();
  log->info("stopping: writing open batches");
  for (auto& [key, c] : cursors_) dispatch(*c);
  constexpr auto kDrainTimeout = std::chrono::seconds(30);
  if (!writers_.wait_idle(kDrainTimeout)) {
    log->warn(
        "MariaDB did not take the last {} KiB within {} s; those events are not committed "
        "anywhere and will be read again from Kafka on the next start",
        writers_.in_flight_bytes() >> 10, kDrainTimeout.count());
  }
  writers_.stop(true);
  process_reports();
  commit_spool();
  committer_.commit_now(*source_, cursors_);
  gate_.stop("shutting down");
  source_->close();
  source_.reset();
  control_.reset();
  log_summary(true);
  log->info("stopped");
}

// ---------------------------------------------------------------------------------------------
// The gate's effects

std::future<Status> Pipeline::request_pause(std::string reason, bool local) {
  return gate_.submit(Gate::Command::kPause, std::move(reason), std::nullopt, local);
}

std::future<Status> Pipeline::request_resume(std::string expected_server) {
  return gate_.submit(Gate::Command::kResume, {}, std::nullopt, false,
                      std::move(expected_server));
}

std::future<Status> Pipeline::request_release() { return gate_.submit(Gate::Command::kRelease); }

std::future<Status> Pipeline::request_retarget(MariaDbConfig mariadb) {
  return gate_.submit(Gate::Command::kRetarget, "", std::move(mariadb));
}

Status Pipeline::pause(const std::string& reason, std::chrono::milliseconds timeout) {
  return Gate::await(request_pause(reason), timeout, "pause");
}

Status Pipeline::resume(std::chrono::milliseconds timeout) {
  return Gate::await(request_resume(), timeout, "resume");
}

Status Pipeline::retarget(const MariaDbConfig& mariadb, std::chrono::milliseconds timeout) {
  return Gate::await(request_retarget(mariadb), timeout, "retarget");
}

Status Pipeline::record_pause(const std::optional<storage::PauseRecord>& record) {
  return lane_.spool().set_pause(record);
}

void Pipeline::quiesce() {
  writers_.quiesce();
  control_->disconnect();
  for (auto& [key, c] : cursors_) c->gate_closing();
  publish_status(true);
}

bool Pipeline::quiet() { return writers_.quiet(); }

void Pipeline::closed() {
  process_reports();
  commit_spool();
  // Everything MariaDB has not committed is read again — into the spool this time — from each
  // partition's floor, so the spool holds each partition contiguously from MariaDB's end —
  // or after what the spool already holds of it, whatever the cursor counted.
  for (auto& [key, c] : cursors_) {
    lane_.tell(*c);
    c->gate_closed();
  }
  publish_status(true);
  if (gate_.pause_record()) {
    logger("ingest")->info(
        "paused: no open transaction and no connection to MariaDB; spooling events to {}",
        config_.spool.path);
  }
}

void Pipeline::opened() {
  if (!gate_.expected_server().empty()) {
    // Resumed by a fleet that writes to a given server: make sure this is it before a writer
    // may connect (they stay quiet meanwhile; a mismatch closes the gate as an outage).
    if (auto st = probe(); !st.is_ok()) {
      deferred_outage_ = st;
      return;
    }
  }
  writers_.unquiesce();
  // Where MariaDB stands decides each partition's plan: it may lag behind what was spooled (a
  // failover to a server that lags, a restore) or be past it (another owner wrote further).
  std::vector<PartitionCursor*> all;
  for (auto& [key, c] : cursors_) all.push_back(c.get());
  (void)learn_database(all);
  for (auto& [key, c] : cursors_) c->gate_opened();
  publish_status(true);
}

storage::DbStatus Pipeline::probe() {
  auto st = control_->probe();
  if (!st.is_ok()) return st;
  return check_server();
}

storage::DbStatus Pipeline::check_server() {
  const std::string& expected = gate_.expected_server();
  const std::string seen = control_->server_identity();
  if (expected.empty() || seen.empty() || seen == expected) return {};
  control_->disconnect();
  return {storage::kWrongServer, describe_endpoint(config_.mariadb) + " is server " + seen +
                                     ", the fleet writes to server " + expected +
                                     ": give this instance the fleet's mariadb endpoint"};
}

void Pipeline::cancel_writes() {
  logger("ingest")->warn("writers still busy after the lease ran out: cancelling their statements");
  writers_.cancel();
}

void Pipeline::refused(const storage::DbStatus& cause) {
  // As at a start that meets MariaDB at once (start()): a person must act.
  failed_ = Status::error("cannot use MariaDB: " + cause.describe());
}

void Pipeline::retarget(const MariaDbConfig& mariadb) {
  const std::string before = describe_endpoint(config_.mariadb);
  config_.mariadb.take_endpoint(mariadb);
  control_ = parts_.sinks(config_.mariadb);
  writers_.restart();
  // What the old server held says nothing about the new one: each partition learns again.
  logger("ingest")->info("MariaDB endpoint is now {} (was {}); `sluice resume` writes there",
                         describe_endpoint(config_.mariadb), before);
  publish_status(true);
}

// ---------------------------------------------------------------------------------------------
// Kafka side

bool Pipeline::learn_database(const std::vector<PartitionCursor*>& cursors) {
  const auto st = tell_database_positions(*control_, cursors);
  if (st.is_ok()) return true;
  logger("ingest")->warn("cannot read sluice_offsets ({}); the first writes will tell",
                         st.describe());
  if (outage_class(st)) deferred_outage_ = st;
  return false;
}

PartitionCursor& Pipeline::cursor(const PartitionKey& key) {
  auto& slot = cursors_[key];
  if (!slot) {
    slot = std::make_unique<PartitionCursor>(key.first, key.second, limits_, clock_,
                                             &writers_.rows());
  }
  return *slot;
}

void Pipeline::on_assign(std::vector<TopicPartition>& assigned) {
  auto facts = gather_start_facts(assigned, gate_.open(), *control_, *source_, lane_,
                                  parts_.fleet);
  if (facts.outage) deferred_outage_ = facts.outage;
  std::string summary;
  for (size_t i = 0; i < assigned.size(); ++i) {
    auto& tp = assigned[i];
    const PartitionKey key{tp.topic, tp.partition};
    const auto plan = decide_start(facts.facts[i]);
    PartitionCursor& c = cursor(key);  // an orphan of this partition is adopted again
    c.start(plan, facts.spooled[i], gate_.open());
    // The assignment itself positions the consumer where the cursor reads from.
    tp.offset = c.fetch_next() >= 0 ? c.fetch_next() : kOffsetInvalid;
    if (c.wants_seek()) c.sought();
    flow_.assigned(key);
    summary += fmt::format("{}{}/{}@{} ({}, {})", summary.empty() ? "" : ", ", tp.topic,
                           tp.partition, tp.offset >= 0 ? std::to_string(tp.offset) : "earliest",
                           start_source_name(plan.source), partition_mode_name(c.mode()));
  }
  logger("ingest")->info("assigned {} partition(s): {}", assigned.size(), summary);
  if (!gate_.open()) control_->disconnect();
  publish_status(true);
}

void Pipeline::on_revoke(const std::vector<TopicPartition>& revoked) {
  process_reports();
  commit_spool();
  std::vector<PartitionKey> keys;
  for (const auto& tp : revoked) keys.emplace_back(tp.topic, tp.partition);
  // Tell the group what MariaDB holds, so the next owner starts as close as it can.
  committer_.commit_now(*source_, cursors_, keys);
  size_t orphans = 0;
  for (const auto& key : keys) {
    flow_.revoked(key);
    committer_.forget(key);
    const auto it = cursors_.find(key);
    if (it == cursors_.end()) continue;
    if (it->second->spool_holds_events() || lane_.spool().partition(key.first, key.second) ||
        lane_.staged(key)) {
      // Its spooled events stay ours to drain under the compare-and-set, or to release once
      // MariaDB has passed them (invariant 9): an orphan until then.
      it->second->become_orphan();
      ++orphans;
    } else {
      cursors_.erase(it);
    }
  }
  logger("ingest")->info(
      "revoked {} partition(s){}; open batches are dropped and read again by the next owner",
      revoked.size(),
      orphans > 0 ? fmt::format(" ({} with spooled events, drained or released here)", orphans)
                  : std::string());
  publish_status(true);
}

void Pipeline::handle_message(const SourceMessage& msg) {
  const auto it = cursors_.find({std::string(msg.topic), msg.partition});
  if (it == cursors_.end()) return;  // not (or no longer) assigned to us
  PartitionCursor& c = *it->second;
  jumps_.recheck(c, msg.offset, *source_);
  Take take = c.take(msg.offset, lane_.full(), flow_.fetch_paused());
  if (take == Take::kJump) take = jumps_.jump(c, msg.offset, *source_);
  switch (take) {
    case Take::kStale:
      jumps_.stale(c, msg.offset);
      return;
    case Take::kDrop:
    case Take::kJump:
      return;
    case Take::kSpool:
      // Behind older spooled events, or the gate is closed: into the spool, raw. Made durable
      // by commit_spool() before anything depends on it.
      lane_.stage(c, msg.offset, msg.timestamp_ms, msg.payload);
      ++stats_.spooled;
      break;
    case Take::kBatch:
      if (!batch_event(c, msg.offset, msg.timestamp_ms, msg.payload)) return;  // held
      if (c.mode() == PartitionMode::kRefill) ++stats_.refilled;
      break;
  }
  ++stats_.consumed;
  board_.consumed(c.topic());
}

// ---------------------------------------------------------------------------------------------
// Batches and writers

bool Pipeline::batch_event(PartitionCursor& c, int64_t offset, int64_t timestamp_ms,
                           std::string_view payload) {
  switch (intake_.append(c.batcher(), c.topic(), c.partition(), offset, timestamp_ms, payload)) {
    case EventIntake::Outcome::kWaitsForSchema: {
      // Never a dead letter: the partition waits for the repository, and asks again shortly
      // (what it batched before goes now).
      const bool newly_held = c.held_for().empty();
      c.hold(offset, intake_.wait_until(clock_.now(), kAskAgainAtLeast, kAskAgainAtMost),
             intake_.reason());
      dispatch(c);
      if (newly_held) publish_status(true);
      return false;
    }
    case EventIntake::Outcome::kRow:
    case EventIntake::Outcome::kDeadLetter:
      c.batched();
      break;
  }
  if (c.batcher().full()) dispatch(c);
  return true;
}

void Pipeline::dispatch(PartitionCursor& c) {
  // With the gate not open nothing goes to MariaDB; open batches are dropped by the rewind.
  if (c.batcher().empty() || !gate_.open()) return;
  storage::Batch batch = c.batcher().take();
  batch.generation = c.generation();
  batch.origin = c.origin();
  writers_.push(std::move(batch));
}

void Pipeline::dispatch_over_budget() {
  if (!gate_.open()) return;  // nothing goes: the rewind drops open batches
  dispatch_fullest_over(
      max_open_bytes_, cursors_, [](auto& entry) -> Batcher& { return entry.second->batcher(); },
      [this](auto& entry) { dispatch(*entry.second); });
}

void Pipeline::flush_due() {
  for (auto& [key, c] : cursors_) {
    if (c->batcher().due()) dispatch(*c);
  }
}

void Pipeline::process_reports() {
  for (auto& r : writers_.take_reports()) {
    const bool committed = r.outcome == WriteOutcome::kCommitted;
    if (committed || r.outcome == WriteOutcome::kAlreadyApplied) {
      stats_.rows_inserted += r.rows;
      stats_.dead_letters += r.dead_letters;
      ++(committed ? stats_.batches_committed : stats_.batches_already_applied);
      gate_.database_reached();
      board_.add_tables(r.tables);
    }
    if (committed) {
      if (parts_.on_batch_committed) parts_.on_batch_committed(r);
      commits_.committed({r.topic, r.partition}, r.end_offset, clock_.wall_ms());
    }
    if (r.outcome == WriteOutcome::kFailed && !r.error.is_ok()) gate_.outage(r.error);
    const auto it = cursors_.find({r.topic, r.partition});
    if (it == cursors_.end()) continue;  // revoked meanwhile
    PartitionCursor& c = *it->second;
    switch (r.outcome) {
      case WriteOutcome::kCommitted:
      case WriteOutcome::kAlreadyApplied:
        // A drain's batch tells the governor how fast the database takes the backlog.
        if (committed &&
            (c.mode() == PartitionMode::kDraining || c.mode() == PartitionMode::kOrphan)) {
          governor_.committed(r.rows + r.dead_letters, r.seconds);
        }
        c.written(r.end_offset, r.db_next_offset);
        break;
      case WriteOutcome::kBehind:
        jumps_.database_behind(c, r.db_next_offset, r.generation, r.base_offset, r.end_offset);
        break;
      case WriteOutcome::kFailed:
        // Dropped by a quiesce or a stop (read again from the floor), or an outage (the gate
        // closes and every partition rewinds). A writer also drops what it holds the moment
        // the write lease runs out; renewed before the gate noticed, nothing rewinds the
        // partition: it starts again from the floor here, or a drain that has read past the
        // dropped batch would wait for MariaDB for ever.
        if (r.error.is_ok() && gate_.open() && r.generation == c.generation()) c.replan();
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Partitions

void Pipeline::advance_partitions() {
  const bool schema_news = intake_.schema_news();
  for (auto it = cursors_.begin(); it != cursors_.end();) {
    PartitionCursor& c = *it->second;
    (void)c.release_hold(clock_.now(), schema_news);  // it asks for its schema again
    const auto before = c.mode();
    if (c.advance()) {
      if (before == PartitionMode::kDraining && c.mode() == PartitionMode::kDirect) {
        dispatch(c);
        logger("ingest")->info("{}/{}: spool drained; events flow directly again", c.topic(),
                               c.partition());
      } else if (before == PartitionMode::kRefill) {
        logger("ingest")->info("{}/{}: read again from Kafka up to {}; the spool drains from there",
                               c.topic(), c.partition(), c.refill_end());
      }
      publish_status(true);
    }
    if (c.database_known() && c.floor() > 0) {
      // MariaDB holds everything below the floor: reclaim its space in the spool.
      lane_.release_below_floor(c);
    }
    if (c.orphan_done()) {
      logger("ingest")->info("{}/{}: spooled events of a partition that moved away are in MariaDB",
                             c.topic(), c.partition());
      it = cursors_.erase(it);
      continue;
    }
    ++it;
  }
}

void Pipeline::look_again() {
  if (!gate_.open()) return;
  const auto now = clock_.now();
  if (now - last_look_ < kLookAgainEvery) return;
  last_look_ = now;
  std::vector<PartitionCursor*> list;
  for (auto& [key, c] : cursors_) {
    if (c->mode() == PartitionMode::kWaiting || c->orphan_stuck()) list.push_back(c.get());
  }
  if (list.empty()) return;
  if (learn_database(list)) {
    for (auto* c : list) {
      // A waiting partition MariaDB did not move for looks again once the claim that held it
      // is gone (its instance forgotten): the jump is then verified afresh, and recorded.
      if (c->mode() == PartitionMode::kWaiting &&
          !jumps_.first_claimed(*c, c->waiting_from(), c->waiting_to())) {
        c->replan();
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The spool

void Pipeline::commit_spool() { stats_.spool_write_errors += lane_.commit(cursors_); }

void Pipeline::drain() {
  if (!gate_.open()) return;
  // The governor's allowance bounds what is read from the spool (live partitions are not
  // governed); a partition's order is untouched: its Kafka events wait behind its spool. Near
  // its limit the spool must empty, whatever the replicas say.
  if (governor_.spool_pressure(lane_.past(DrainGovernor::kPressure))) {
    publish_status(true);  // status says so at once, as for every change of state
  }
  size_t allowance = governor_.allowance();
  for (auto* entry : lane_.drain_order(cursors_)) {
    const auto& key = entry->first;
    PartitionCursor& c = *entry->second;
    if (writers_.in_flight_bytes() >= max_in_flight_bytes_ || allowance == 0) break;
    if (!c.drains_now()) continue;
    const size_t want = std::min(limits_.max_rows, allowance);
    bool changed = false;
    const storage::SpoolChunk* chunk = lane_.read(key, c, want, changed);
    if (changed) publish_status(true);
    if (chunk == nullptr) continue;
    size_t drained = 0;  // charged: a drain that stops at a hole or a hold read the rest only
    for (const auto& e : chunk->events) {
      // A hole in the spool (offsets Kafka never delivered while spooling): waiting, or read
      // again from Kafka first.
      if (e.offset > c.drain_next() && jumps_.spool_hole(c, e.offset, *source_) == Take::kDrop) {
        break;
      }
      if (!batch_event(c, e.offset, e.timestamp_ms, e.payload)) break;  // held
      c.drained(e.offset);
      ++stats_.drained;
      ++drained;
    }
    governor_.spent(drained);
    allowance -= std::min(allowance, drained);
    // An empty read means staged but not yet synced: read it on a later round. A short read is
    // the tail: do not wait for max_delay.
    if (!chunk->events.empty() && chunk->events.size() < want) dispatch(c);
  }
  dispatch_over_budget();
}

void Pipeline::follow_replicas() {
  if (!parts_.replica_positions || !governor_.replicas_due()) return;
  governor_.replica_lag(commits_.lag(parts_.replica_positions()));
  commits_.trim(clock_.wall_ms() - 10 * 60 * 1000);
}

// ---------------------------------------------------------------------------------------------
// Status and logs

void Pipeline::log_summary(bool force) {
  board_.log_summary(stats_, writers_.in_flight_bytes(), force);
}

void Pipeline::publish_status(bool force) {
  if (!board_.due(force)) return;
  board_.server_notes(control_ ? control_->autoinc_lock_mode() : -1, config_.mariadb);
  board_.publish(build_status({.cursors = cursors_,
                               .source = source_.get(),
                               .lane = lane_,
                               .gate = gate_,
                               .governor = governor_,
                               .writers = writers_,
                               .flow = flow_,
                               .control = control_.get(),
                               .mariadb = config_.mariadb,
                               .schemas = intake_.registry(),
                               .state = service_state(gate_, cursors_),
                               .wall_ms = clock_.wall_ms()}));
}

PipelineStatus Pipeline::status() const { return board_.snapshot(); }

}  // namespace sluice::ingest
