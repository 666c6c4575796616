#include "ingest/replay.h"

#include <algorithm>
#include <thread>
#include <unordered_map>

#include "common/logging.h"
#include "ingest/decoder.h"
#include "ingest/writer_pool.h"
#include "storage/table_layout.h"

namespace sluice::ingest {

using storage::WriteOutcome;

// --- resolve_ranges ----------------------------------------------------------------------------

Result<std::vector<PartitionRange>> resolve_ranges(const std::string& topic, ReplayBound from,
                                                   ReplayBound to,
                                                   const std::vector<PartitionFacts>& facts) {
  using Kind = ReplayBound::Kind;
  if (from.kind == Kind::kNone) {
    return Status::error("a replay needs a start: --from-time or --from-offset");
  }
  if (from.kind == Kind::kOffset && from.value < 0) {
    return Status::error("--from-offset must not be negative, got " + std::to_string(from.value));
  }
  if (to.kind == Kind::kOffset && to.value < 0) {
    return Status::error("--to-offset must not be negative, got " + std::to_string(to.value));
  }
  if (from.kind == to.kind && to.value < from.value) {
    return Status::error(from.kind == Kind::kOffset
                             ? "--to-offset " + std::to_string(to.value) +
                                   " is before --from-offset " + std::to_string(from.value)
                             : std::string("--to-time is before --from-time"));
  }
  std::vector<PartitionRange> out;
  out.reserve(facts.size());
  for (const auto& f : facts) {
    PartitionRange r;
    r.topic = topic;
    r.partition = f.partition;
    const int64_t asked_from = from.kind == Kind::kOffset ? from.value
                               : f.from_time_offset >= 0  ? f.from_time_offset
                                                          : f.high;
    int64_t end = f.high;
    if (to.kind == Kind::kOffset) end = std::min(to.value, f.high);
    if (to.kind == Kind::kTime && f.to_time_offset >= 0) end = std::min(f.to_time_offset, f.high);
    if (asked_from < f.low && asked_from < end) {
      r.expired_from = asked_from;
      r.expired_to = std::min(f.low, end);
    }
    r.from = std::max(asked_from, f.low);
    r.to = std::max(end, r.from);
    // Kafka answers a time before the log start with the log start: whatever expired below it
    // may have been in the window.
    r.may_have_expired = from.kind == Kind::kTime && f.from_time_offset >= 0 &&
                         f.from_time_offset == f.low && f.low > 0;
    out.push_back(std::move(r));
  }
  return out;
}

// --- ReplayLedger ------------------------------------------------------------------------------

int64_t ReplayLedger::Partition::covered_end() const {
  int64_t end = read_next >= 0 ? read_next : from;
  if (open_base_ >= 0) end = std::min(end, open_base_);
  if (!in_flight_.empty()) end = std::min(end, in_flight_.front().base);
  if (stopped_at_ >= 0) end = std::min(end, stopped_at_);
  return std::max(end, from);
}

ReplayLedger::Partition& ReplayLedger::expect(const PartitionRange& range) {
  Partition& p = partition(range.topic, range.partition);
  p.from = range.from;
  p.to = range.to;
  p.may_have_expired = range.may_have_expired;
  if (range.expired_to > range.expired_from) expired(p, range.expired_from, range.expired_to);
  return p;
}

ReplayLedger::Partition& ReplayLedger::partition(const std::string& topic, int32_t partition) {
  auto [it, inserted] = partitions_.try_emplace({topic, partition});
  if (inserted) {
    it->second.topic = topic;
    it->second.partition = partition;
  }
  return it->second;
}

ReplayTableCounts& ReplayLedger::table(std::string_view name) {
  if (auto it = tables_.find(name); it != tables_.end()) return it->second;
  return tables_.emplace(std::string(name), ReplayTableCounts{}).first->second;
}

void ReplayLedger::expired(Partition& p, int64_t from, int64_t to) {
  if (to <= from) return;
  // Merge with the last range when they touch: one line per hole, however it was found.
  if (!p.expired.empty() && p.expired.back().second >= from) {
    p.expired.back().second = std::max(p.expired.back().second, to);
    return;
  }
  p.expired.emplace_back(from, to);
}

void ReplayLedger::read(Partition& p, int64_t offset, ReplayTableCounts& table, bool dead) {
  ++p.read;
  if (p.from < 0) p.from = offset;
  p.read_next = offset + 1;
  if (p.open_base_ < 0) p.open_base_ = offset;
  ++table.read;
  if (dead) p.open_letters_.push_back({offset, &table});
}

void ReplayLedger::skipped(Partition& p, int64_t offset) {
  ++p.read;
  ++p.skipped;
  ++p.durable;
  if (p.from < 0) p.from = offset;
  p.read_next = offset + 1;
}

void ReplayLedger::dispatched(Partition& p, int64_t end) {
  if (p.open_base_ < 0) return;  // nothing was built
  p.in_flight_.push_back({p.open_base_, end, std::move(p.open_letters_)});
  p.open_base_ = -1;
  p.open_letters_.clear();
}

void ReplayLedger::dropped_open(Partition& p) {
  if (p.open_base_ < 0) return;
  if (p.stopped_at_ < 0 || p.open_base_ < p.stopped_at_) p.stopped_at_ = p.open_base_;
  p.open_base_ = -1;
  p.open_letters_.clear();
}

void ReplayLedger::finished(Partition& p) {
  if (p.to >= 0 && p.stopped_at_ < 0 && p.open_base_ < 0 && p.in_flight_.empty()) {
    p.read_next = std::max(p.read_next, p.to);
  }
}

bool ReplayLedger::reported(const WriteReport& r) {
  const auto it = partitions_.find({r.topic, r.partition});
  if (it == partitions_.end()) {
    if (error_.empty()) error_ = "a writer reported a batch the replay did not send";
    return false;
  }
  Partition& p = it->second;
  // Reports of one partition usually come in order, but batches dropped from a writer's queue
  // (a replay stopping) are reported before the one being written: match by the batch's end.
  auto at = std::find_if(p.in_flight_.begin(), p.in_flight_.end(),
                         [&](const Partition::InFlight& f) { return f.end == r.end_offset; });
  if (at == p.in_flight_.end()) {
    if (error_.empty()) error_ = "a writer reported a batch the replay did not send";
    return false;
  }
  Partition::InFlight batch = std::move(*at);
  p.in_flight_.erase(at);
  if (r.outcome != WriteOutcome::kCommitted) {
    // Not written: nothing from here on in this partition is covered.
    if (p.stopped_at_ < 0 || batch.base < p.stopped_at_) p.stopped_at_ = batch.base;
    if (!r.error.is_ok() && error_.empty()) {
      error_ = "batch " + r.topic + "/" + std::to_string(r.partition) + " [" +
               std::to_string(r.base_offset) + ", " + std::to_string(r.end_offset) +
               ") not written: " + r.error.describe();
    }
    return r.error.is_ok();
  }
  uint64_t outcomes = 0;
  for (const auto& t : r.tables) {
    ReplayTableCounts& counts = table(t.name);
    counts.written += t.rows;
    counts.already_present += t.already_present;
    outcomes += t.rows + t.already_present;
  }
  for (const auto& t : r.table_dead_letters) {
    ReplayTableCounts& counts = table(t.name);
    counts.dead_lettered += t.dead_lettered;
    counts.already_present += t.already_present;
    outcomes += t.dead_lettered + t.already_present;
  }
  for (const auto& letter : batch.letters) {
    const bool present = std::find(r.dead_letters_present.begin(), r.dead_letters_present.end(),
                                   letter.offset) != r.dead_letters_present.end();
    ++(present ? letter.table->already_present : letter.table->dead_lettered);
    ++outcomes;
  }
  p.durable += outcomes;
  return true;
}

ReplayTableCounts ReplayLedger::totals() const {
  ReplayTableCounts sum;
  for (const auto& [name, t] : tables_) {
    sum.read += t.read;
    sum.written += t.written;
    sum.already_present += t.already_present;
    sum.dead_lettered += t.dead_lettered;
  }
  return sum;
}

uint64_t ReplayLedger::expected() const {
  uint64_t n = 0;
  for (const auto& [key, p] : partitions_) {
    if (p.from >= 0 && p.to > p.from) n += static_cast<uint64_t>(p.to - p.from);
  }
  return n;
}

bool ReplayLedger::any_expired() const {
  for (const auto& [key, p] : partitions_) {
    if (!p.expired.empty()) return true;
  }
  return false;
}

// --- Replay ------------------------------------------------------------------------------------

Replay::Replay(SchemaRegistry& registry, SinkFactory sinks, ReplayOptions options,
               const Clock& clock)
    : registry_(registry),
      sinks_(std::move(sinks)),
      options_(std::move(options)),
      clock_(clock),
      governor_({options_.max_rate, options_.max_replica_lag_s}, clock_) {}

namespace {

/// One partition being replayed: its batcher and its record in the ledger.
struct Lane {
  std::unique_ptr<Batcher> batcher;
  ReplayLedger::Partition* ledger = nullptr;
};

/// One run of Replay::run: the input read through the governor, decoded into one lane per
/// partition, batches to the writers, and the ledger kept exact. Each step is a method; run()
/// is the loop.
class ReplayRun {
 public:
  ReplayRun(SchemaRegistry& registry, const Replay::SinkFactory& sinks,
            const ReplayOptions& options, const Clock& clock, DrainGovernor& governor,
            std::map<std::string, double>& held_back, ReplayInput& input, ReplayLedger& ledger,
            const Replay::Progress& progress)
      : options_(options),
        clock_(clock),
        governor_(governor),
        held_back_(held_back),
        input_(input),
        ledger_(ledger),
        progress_(progress),
        writer_count_(std::max<size_t>(1, options.writers)),
        // Bounded as the service bounds them.
        max_in_flight_bytes_(WriterPool::in_flight_budget(writer_count_, options.limits.max_bytes)),
        max_open_bytes_((writer_count_ + 1) * options.limits.max_bytes),
        writers_(WriterPool::for_batches(writer_count_, options.limits.max_bytes,
                                         RetryLimit{options.attempts}),
                 sinks, clock),
        registry_(registry),
        decoder_(registry) {}

  ReplayEnd run(const std::atomic<bool>& stop, std::string& error) {
    writers_.start();
    ReplayEnd end = ReplayEnd::kComplete;
    for (;;) {
      account_held_back();
      process_reports();
      if (failed_) {
        end = ReplayEnd::kFailed;
        break;
      }
      if (stop.load()) {
        end = ReplayEnd::kInterrupted;
        break;
      }
      if (input_.done()) break;
      if (writers_.in_flight_bytes() >= max_in_flight_bytes_) {
        writers_.wait_for_report(std::chrono::milliseconds(100));
        continue;
      }
      const size_t allowance = allowance_now();
      if (allowance == 0) {
        writers_.wait_for_report(std::chrono::milliseconds(20));
        continue;
      }
      if (auto st = input_.read(std::chrono::milliseconds(100), std::min<size_t>(allowance, 1000),
                                messages_);
          !st) {
        error = st.message();
        failed_ = true;
        end = ReplayEnd::kFailed;
        break;
      }
      governor_.spent(messages_.size());
      for (const auto& m : messages_) {
        if (!add(m, stop)) break;  // stopped while it waited for its schema: not read
      }
      take_expired();
      dispatch_due();
      maybe_progress();
    }
    finish(end);
    if (failed_ && end == ReplayEnd::kComplete) end = ReplayEnd::kFailed;
    if (end == ReplayEnd::kFailed && error.empty()) error = ledger_.error();
    if (end == ReplayEnd::kComplete) {
      take_expired();
      for (const auto& [key, p] : ledger_.partitions()) {
        ledger_.finished(ledger_.partition(key.first, key.second));
      }
    }
    if (progress_) progress_(ledger_, true);
    return end;
  }

 private:
  /// Adds the time since the last call to what holds the rate back now, if anything does.
  void account_held_back() {
    const auto now = clock_.now();
    const auto limit = governor_.limiting();
    if (limit != DrainGovernor::Limit::kNone && governor_.rate() > 0) {
      held_back_[DrainGovernor::limit_name(limit)] +=
          std::chrono::duration<double>(now - last_account_).count();
    }
    last_account_ = now;
  }

  /// How many events may be read now: the governor's allowance, told the replicas' lag once
  /// per interval.
  size_t allowance_now() {
    if (options_.replica_lag && clock_.now() - lag_read_ >= DrainGovernor::kInterval) {
      lag_read_ = clock_.now();
      governor_.replica_lag(options_.replica_lag());
    }
    return governor_.allowance();
  }

  void process_reports() {
    for (auto& r : writers_.take_reports()) {
      if (r.outcome == WriteOutcome::kCommitted) {
        governor_.committed(r.rows + r.dead_letters, r.seconds);
      }
      if (!ledger_.reported(r) && !failed_) {
        failed_ = true;
        // Batches still queued are dropped, so nothing is written past a hole.
        writers_.quiesce();
      }
    }
  }

  void dispatch(Lane& lane) {
    if (lane.batcher->empty()) return;
    storage::Batch batch = lane.batcher->take();
    ledger_.dispatched(*lane.ledger, batch.end_offset);
    writers_.push(std::move(batch));
  }

  /// The lane of a message's partition: looked up only when the partition changes from one
  /// event to the next (inputs hand out runs of one partition).
  Lane& lane_of(const SourceMessage& m) {
    if (last_lane_ != nullptr && last_lane_->ledger->partition == m.partition &&
        last_lane_->ledger->topic == m.topic) {
      return *last_lane_;
    }
    const std::string topic(m.topic);
    auto [it, inserted] = lanes_.try_emplace({topic, m.partition});
    Lane& lane = it->second;
    if (inserted) {
      lane.ledger = &ledger_.partition(topic, m.partition);
      lane.batcher =
          std::make_unique<Batcher>(topic, m.partition, options_.limits, clock_, &writers_.rows());
      lane.batcher->reset(lane.ledger->from >= 0 ? lane.ledger->from : m.offset, 1);
    }
    last_lane_ = &lane;
    return lane;
  }

  /// Decodes one event into its partition's batch (or skips it: not a schema asked for). An
  /// event whose schema revision is being fetched from the repository waits for it — never a
  /// dead letter for that — unless `stop` comes first: then false, and the event is not read.
  bool add(const SourceMessage& m, const std::atomic<bool>& stop) {
    Lane& lane = lane_of(m);
    const Schema* schema = decoder_.decode(m.payload, m.timestamp_ms, reason_);
    if (!options_.schemas.empty()) {
      const std::string_view name =
          schema != nullptr ? std::string_view(schema->name) : decoder_.capsule_schema();
      if (!options_.schemas.contains(name)) {
        ledger_.skipped(*lane.ledger, m.offset);
        return true;
      }
    }
    if (schema == nullptr && decoder_.schema_pending()) {
      schema = wait_for_schema(m, stop);
      if (schema == nullptr && decoder_.schema_pending()) return false;  // stopped, or failed
    }
    if (schema != nullptr) {
      ReplayTableCounts*& counts = counts_of_[schema];
      if (counts == nullptr) counts = &ledger_.table(schema->layout()->name());
      ledger_.read(*lane.ledger, m.offset, *counts, false);
      lane.batcher->add_decoded(schema->layout(), decoder_, m.offset);
    } else {
      const bool named = !decoder_.capsule_schema().empty() && decoder_.capsule_revision() >= 0;
      ReplayTableCounts& counts = ledger_.table(
          named ? table_name_of(decoder_.capsule_schema(), decoder_.capsule_revision())
                : std::string(kNoTable));
      ledger_.read(*lane.ledger, m.offset, counts, true);
      lane.batcher->add_dead_letter(m.offset, reason_, std::string(m.payload));
    }
    if (lane.batcher->full()) dispatch(lane);
    return true;
  }

  /// Decodes `m` again each time the repository finishes a fetch (or its next attempt is due),
  /// writing what is done meanwhile, until its schema's answer came, `stop`, or a write failed.
  const Schema* wait_for_schema(const SourceMessage& m, const std::atomic<bool>& stop) {
    logger("replay")->info("{}/{}@{} waits: {}", m.topic, m.partition, m.offset, reason_);
    const SchemaSource* repo = registry_.repository();
    const Schema* schema = nullptr;
    while (schema == nullptr && decoder_.schema_pending() && !stop.load() && !failed_) {
      const uint64_t seen = repo != nullptr ? repo->completed() : 0;
      const auto retry = registry_.pending_retry_at();
      for (int i = 0; i < 50 && !stop.load() && !failed_; ++i) {
        if (repo != nullptr && repo->completed() != seen) break;
        if (retry != Clock::time_point{} && clock_.now() >= retry) break;
        // Meanwhile what is done is written: reports, batches that came due.
        process_reports();
        dispatch_due();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      schema = decoder_.decode(m.payload, m.timestamp_ms, reason_);
    }
    return schema;
  }

  void take_expired() {
    input_.take_expired(expired_);
    for (const auto& e : expired_) {
      ledger_.expired(ledger_.partition(e.topic, e.partition), e.from, e.to);
    }
    expired_.clear();
  }

  /// Due batches go, so a slow input still makes progress; over the memory budget the fullest
  /// go first.
  void dispatch_due() {
    for (auto& [key, lane] : lanes_) {
      if (lane.batcher->due()) dispatch(lane);
    }
    dispatch_fullest_over(
        max_open_bytes_, lanes_, [](auto& entry) -> Batcher& { return *entry.second.batcher; },
        [this](auto& entry) { dispatch(entry.second); });
  }

  void maybe_progress() {
    if (progress_ && clock_.now() - last_progress_ >= options_.progress_every) {
      last_progress_ = clock_.now();
      progress_(ledger_, false);
    }
  }

  /// The open batches go (complete) or are dropped from the ledger (otherwise); whatever is in
  /// flight ends before the ledger is read: written, or given up.
  void finish(ReplayEnd end) {
    if (end == ReplayEnd::kComplete) {
      for (auto& [key, lane] : lanes_) dispatch(lane);
    } else {
      for (auto& [key, lane] : lanes_) ledger_.dropped_open(*lane.ledger);
    }
    while (writers_.in_flight() > 0) {
      writers_.wait_for_report(std::chrono::milliseconds(200));
      process_reports();
      maybe_progress();
    }
    writers_.stop(false);
  }

  const ReplayOptions& options_;
  const Clock& clock_;
  DrainGovernor& governor_;
  std::map<std::string, double>& held_back_;
  ReplayInput& input_;
  ReplayLedger& ledger_;
  const Replay::Progress& progress_;
  const size_t writer_count_;
  const size_t max_in_flight_bytes_;
  const size_t max_open_bytes_;
  WriterPool writers_;  ///< before the lanes, whose batchers use its row buffers
  std::map<std::pair<std::string, int32_t>, Lane> lanes_;
  Lane* last_lane_ = nullptr;
  SchemaRegistry& registry_;
  Decoder decoder_;
  std::unordered_map<const Schema*, ReplayTableCounts*> counts_of_;
  std::vector<SourceMessage> messages_;
  std::vector<ExpiredRange> expired_;
  std::string reason_;
  bool failed_ = false;
  Clock::time_point lag_read_ = clock_.now() - DrainGovernor::kInterval;
  Clock::time_point last_progress_ = clock_.now();
  Clock::time_point last_account_ = clock_.now();
};

}  // namespace

ReplayEnd Replay::run(ReplayInput& input, ReplayLedger& ledger, const std::atomic<bool>& stop,
                      const Progress& progress, std::string& error) {
  ReplayRun run(registry_, sinks_, options_, clock_, governor_, held_back_, input, ledger,
                progress);
  return run.run(stop, error);
}

}  // namespace sluice::ingest
