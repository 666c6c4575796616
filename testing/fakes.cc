#include "testing/fakes.h"

#include <errmsg.h>
#include <mysqld_error.h>

#include <algorithm>
#include <thread>

#include "storage/mariadb_sink.h"
#include "storage/table_layout.h"

namespace sluice::testing {

using ingest::kOffsetInvalid;
using ingest::TopicPartition;
using storage::DbStatus;
using storage::WriteOutcome;
using storage::WriteResult;

// --- FakeKafka --------------------------------------------------------------------------------

int64_t FakeKafka::produce(const std::string& topic, int32_t partition, std::string payload,
                           int64_t timestamp_ms) {
  auto& log = logs_[{topic, partition}];
  log.payloads.push_back(std::move(payload));
  log.timestamps.push_back(timestamp_ms);
  return log.end() - 1;
}

int64_t FakeKafka::produce_marker(const std::string& topic, int32_t partition) {
  auto& log = logs_[{topic, partition}];
  log.payloads.emplace_back();
  log.timestamps.push_back(-2);
  return log.end() - 1;
}

void FakeKafka::expire_below(const std::string& topic, int32_t partition, int64_t offset) {
  auto& log = logs_[{topic, partition}];
  const auto drop = static_cast<size_t>(std::clamp<int64_t>(offset - log.start, 0, log.end()));
  log.payloads.erase(log.payloads.begin(), log.payloads.begin() + static_cast<ptrdiff_t>(drop));
  log.timestamps.erase(log.timestamps.begin(),
                       log.timestamps.begin() + static_cast<ptrdiff_t>(drop));
  log.start += static_cast<int64_t>(drop);
}

void FakeKafka::set_assignment(std::vector<PartitionKey> partitions) {
  subscription_ = std::move(partitions);
  assign();
}

void FakeKafka::rebalance() { assign(); }

int64_t FakeKafka::committed(const std::string& topic, int32_t partition) const {
  const auto it = committed_.find({topic, partition});
  return it == committed_.end() ? kOffsetInvalid : it->second;
}

std::string FakeKafka::owner(const PartitionKey& partition) const {
  for (const auto& m : members_) {
    if (m.owned.contains(partition)) return m.instance_id;
  }
  return "";
}

bool FakeKafka::take_failure(Call call) {
  auto& n = failures_[call];
  if (n <= 0) return false;
  --n;
  return true;
}

void FakeKafka::join(FakeSource* source) {
  for (auto& m : members_) {
    if (m.instance_id != source->instance_id_) continue;
    // Static membership: the same instance id takes over its partitions at once, without a
    // rebalance. A live member with that id is fenced.
    if (m.source != nullptr && m.source != source) {
      m.source->fail_fatally("FENCED_INSTANCE_ID: another member joined with instance id " +
                             m.instance_id);
      m.source->fenced_ = true;
    }
    m.source = source;
    for (const auto& p : m.owned) source->pending_assign_.push_back(p);
    deliver_pending_assignments();  // what was on its way to it when it went down
    return;
  }
  members_.push_back({source->instance_id_, source, {}});
  assign();
}

void FakeKafka::leave(FakeSource* source, bool crashed) {
  for (auto it = members_.begin(); it != members_.end(); ++it) {
    if (it->source != source) continue;
    if (crashed) {
      it->source = nullptr;           // keeps its partitions until its session expires
      deliver_pending_assignments();  // revokes it had not run yet no longer hold anything
      return;
    }
    members_.erase(it);
    assign();
    return;
  }
}

void FakeKafka::expire_session(const std::string& instance_id) {
  for (auto it = members_.begin(); it != members_.end(); ++it) {
    if (it->instance_id == instance_id && it->source == nullptr) {
      members_.erase(it);
      assign();
      return;
    }
  }
}

void FakeKafka::expire_live_session(const std::string& instance_id) {
  for (auto it = members_.begin(); it != members_.end(); ++it) {
    if (it->instance_id != instance_id || it->source == nullptr) continue;
    it->source->fail_fatally(
        "OffsetCommit failed: Broker: Static consumer fenced by other consumer with same "
        "group.instance.id");
    it->source->fenced_ = true;
    members_.erase(it);
    assign();
    return;
  }
}

void FakeKafka::assign() {
  target_.clear();
  if (!members_.empty()) {
    // Sticky: each member keeps what it owns up to its share; the rest goes round-robin.
    const size_t n = members_.size();
    const size_t base = subscription_.size() / n, extra = subscription_.size() % n;
    std::vector<size_t> quota(n), count(n, 0);
    for (size_t i = 0; i < n; ++i) quota[i] = base + (i < extra ? 1 : 0);
    for (size_t i = 0; i < n; ++i) {
      for (const auto& p : subscription_) {
        if (count[i] < quota[i] && members_[i].owned.contains(p) && !target_.contains(p)) {
          target_[p] = members_[i].instance_id;
          ++count[i];
        }
      }
    }
    size_t next = 0;
    for (const auto& p : subscription_) {
      if (target_.contains(p)) continue;
      while (count[next % n] >= quota[next % n]) ++next;
      target_[p] = members_[next % n].instance_id;
      ++count[next % n];
    }
  }
  for (auto& m : members_) {
    std::vector<PartitionKey> revoke;
    for (const auto& p : m.owned) {
      const auto t = target_.find(p);
      const bool moves = t == target_.end() || t->second != m.instance_id;
      if (moves || protocol_ == Protocol::kEager) revoke.push_back(p);
    }
    for (const auto& p : revoke) {
      m.owned.erase(p);
      if (m.source != nullptr) m.source->pending_revoke_.push_back(p);
    }
  }
  deliver_pending_assignments();
}

void FakeKafka::deliver_pending_assignments() {
  for (const auto& [p, id] : target_) {
    bool held = false;
    for (const auto& m : members_) {
      if (m.owned.contains(p)) held = true;
      if (m.source == nullptr) continue;
      // Given up only once the old owner's revoke callback has run.
      if (m.source->fetch_.contains(p) ||
          std::find(m.source->pending_revoke_.begin(), m.source->pending_revoke_.end(), p) !=
              m.source->pending_revoke_.end()) {
        held = true;
      }
    }
    if (held) continue;
    for (auto& m : members_) {
      if (m.instance_id != id) continue;
      m.owned.insert(p);
      if (m.source != nullptr) m.source->pending_assign_.push_back(p);
    }
  }
}

// --- FakeSource -------------------------------------------------------------------------------

FakeSource::FakeSource(FakeKafka& kafka, ingest::SourceHandler handler, std::string instance_id)
    : kafka_(kafka), handler_(std::move(handler)), instance_id_(std::move(instance_id)) {}

FakeSource::~FakeSource() {
  if (joined_ && !closed_) kafka_.leave(this, true);
}

void FakeSource::start_fetch(const PartitionKey& key, int64_t offset) {
  Fetch f;
  const int64_t committed = kafka_.committed(key.first, key.second);
  f.position = offset >= 0 ? offset : (committed >= 0 ? committed : kafka_.logs_[key].start);
  f.started_at = f.position;
  fetch_[key] = std::move(f);
}

Status FakeSource::poll(std::chrono::milliseconds timeout, size_t max,
                        std::vector<ingest::SourceMessage>& out) {
  out.clear();
  topics_.clear();
  if (!fatal_.empty()) {
    return Status::error("kafka consumer: fatal error: " + fatal_,
                         fenced_ ? ErrorKind::kFenced : ErrorKind::kError);
  }
  if (closed_) return Status::ok();
  if (!joined_) {
    joined_ = true;
    kafka_.join(this);
  }
  if (!acks_.empty() && handler_.on_commit) {
    auto acks = std::move(acks_);
    acks_.clear();
    handler_.on_commit(acks, Status::ok());
  }
  if (!pending_revoke_.empty()) {
    std::vector<TopicPartition> list;
    for (const auto& key : pending_revoke_) list.push_back({key.first, key.second, -1});
    handler_.on_revoke(list);
    for (const auto& key : pending_revoke_) fetch_.erase(key);
    pending_revoke_.clear();
    kafka_.deliver_pending_assignments();
  }
  if (!pending_assign_.empty()) {
    std::vector<TopicPartition> list;
    for (const auto& key : pending_assign_) list.push_back({key.first, key.second, kOffsetInvalid});
    pending_assign_.clear();
    handler_.on_assign(list);
    for (const auto& tp : list) start_fetch({tp.topic, tp.partition}, tp.offset);
  }
  auto fill = [&](const PartitionKey& key, Fetch& f) {
    if (paused_.contains(key)) return;
    const auto& log = kafka_.logs_[key];
    f.position = std::max(f.position, log.start);  // out of range: auto.offset.reset=earliest
    if (auto lost = kafka_.lost_fetch_.find(key); lost != kafka_.lost_fetch_.end()) {
      // A fetch gone wrong. Faults are independent: one never repeats the previous one's skip
      // exactly (from the same offset to the same offset) — an identical delivery after a
      // seek back is what tells real offsets without records (transaction markers) from a
      // fetch gone wrong, and a broker that lost the same records twice in a row is not one
      // this fake pretends to be.
      // (Compared by the first record delivered after the skip: offsets holding no records, or
      // the log's end, can make two skips of different lengths deliver the same jump — then
      // this fetch goes right instead.)
      auto delivered = [&](int64_t to) {
        while (to < log.end() && log.timestamps[static_cast<size_t>(to - log.start)] == -2) ++to;
        return to;
      };
      int64_t to = std::min(f.position + lost->second, log.end());
      const auto previous = kafka_.last_lost_.find(key);
      if (previous != kafka_.last_lost_.end() &&
          previous->second == std::pair{f.position, delivered(to)}) {
        to = f.position;
      }
      kafka_.last_lost_[key] = {f.position, delivered(to)};
      f.position = to;
      kafka_.lost_fetch_.erase(lost);
    }
    while (f.ready.size() < kPrefetch && f.position < log.end()) {
      const int64_t o = f.position++;
      if (log.timestamps[static_cast<size_t>(o - log.start)] != -2) f.ready.push_back(o);
    }
  };
  bool progress = true;
  while (out.size() < max && progress) {
    progress = false;
    for (auto& [key, f] : fetch_) {
      if (out.size() >= max) break;
      fill(key, f);
      if (f.ready.empty()) continue;
      const int64_t offset = f.ready.front();
      f.ready.pop_front();
      progress = true;
      const auto& log = kafka_.logs_[key];
      if (offset < log.start) continue;  // expired after it was prefetched: gone
      const auto i = static_cast<size_t>(offset - log.start);
      if (topics_.empty() || topics_.back() != key.first) topics_.push_back(key.first);
      out.push_back({topics_.back(), key.second, offset, log.timestamps[i],
                     std::string_view(log.payloads[i])});
    }
  }
  // Nothing to deliver: wait as a consumer would, so writer threads get the processor.
  if (out.empty() && !kafka_.simulated()) {
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(2)));
  }
  return Status::ok();
}

Status FakeSource::committed(std::vector<TopicPartition>& partitions,
                             std::chrono::milliseconds /*timeout*/) {
  for (auto& tp : partitions) tp.offset = kafka_.committed(tp.topic, tp.partition);
  return Status::ok();
}

Status FakeSource::commit(const std::vector<TopicPartition>& partitions, bool async) {
  if (kafka_.take_failure(FakeKafka::Call::kCommit)) {
    const auto st = Status::error("kafka commit: Broker: Coordinator not available");
    if (async && handler_.on_commit) handler_.on_commit(partitions, st);
    return async ? Status::ok() : st;
  }
  for (const auto& tp : partitions) {
    kafka_.committed_[{tp.topic, tp.partition}] = tp.offset;
    kafka_.commits_.push_back({{tp.topic, tp.partition}, tp.offset});
    if (async) acks_.push_back(tp);
  }
  return Status::ok();
}

Status FakeSource::pause(const std::vector<TopicPartition>& partitions) {
  if (kafka_.take_failure(FakeKafka::Call::kPause)) {
    return Status::error("kafka pause: Local: Erroneous state");
  }
  // Messages already prefetched are still delivered, as librdkafka does.
  for (const auto& tp : partitions) paused_.insert({tp.topic, tp.partition});
  return Status::ok();
}

Status FakeSource::resume(const std::vector<TopicPartition>& partitions) {
  if (kafka_.take_failure(FakeKafka::Call::kResume)) {
    return Status::error("kafka resume: Local: Erroneous state");
  }
  for (const auto& tp : partitions) {
    const PartitionKey key{tp.topic, tp.partition};
    if (paused_.erase(key) > 0) continue;  // it goes on from its own position
    // Not paused: librdkafka before 2.4 (its issue 4686) restarts the fetch where the
    // assignment or the last seek started it; what was delivered comes again.
    if (const auto it = fetch_.find(key); it != fetch_.end() && it->second.started_at >= 0) {
      it->second.position = it->second.started_at;
    }
  }
  return Status::ok();
}

Status FakeSource::seek(const std::vector<TopicPartition>& partitions) {
  if (kafka_.take_failure(FakeKafka::Call::kSeek)) {
    return Status::error("kafka seek: Local: Timed out");
  }
  for (const auto& tp : partitions) {
    const auto it = fetch_.find({tp.topic, tp.partition});
    if (it == fetch_.end()) {
      return Status::error("kafka seek " + tp.topic + "/" + std::to_string(tp.partition) +
                           ": Local: Unknown partition");
    }
    Fetch& f = it->second;
    const int64_t target = tp.offset == ingest::kOffsetBeginning
                               ? kafka_.logs_[{tp.topic, tp.partition}].start
                               : tp.offset;
    // librdkafka purges what it prefetched; messages below the new position that were already
    // on their way may still arrive once (stale), never ones at or past it.
    std::deque<int64_t> stale;
    for (const int64_t o : f.ready) {
      if (o < target) stale.push_back(o);
    }
    f.ready = std::move(stale);
    f.position = f.started_at = target;
    ++kafka_.seeks_[{tp.topic, tp.partition}];
  }
  return Status::ok();
}

Status FakeSource::watermarks(const std::string& topic, int32_t partition, int64_t& low,
                              int64_t& high, std::chrono::milliseconds /*timeout*/) {
  if (kafka_.take_failure(FakeKafka::Call::kWatermarks)) {
    return Status::error("kafka watermarks: Local: Timed out");
  }
  const auto& log = kafka_.logs_[{topic, partition}];
  low = log.start;
  high = log.end();
  return Status::ok();
}

int64_t FakeSource::cached_high_watermark(const std::string& topic, int32_t partition) {
  return kafka_.logs_[{topic, partition}].end();
}

bool FakeSource::fetching(const std::string& topic, int32_t partition) const {
  return fetch_.contains({topic, partition}) && !paused_.contains({topic, partition});
}

void FakeSource::close() {
  if (closed_) return;
  closed_ = true;
  if (!joined_) return;
  std::vector<TopicPartition> all;
  for (const auto& [key, f] : fetch_) all.push_back({key.first, key.second, f.position});
  if (!all.empty()) handler_.on_revoke(all);
  fetch_.clear();
  pending_revoke_.clear();
  pending_assign_.clear();
  kafka_.leave(this, false);
}

// --- FakeControlTopic -------------------------------------------------------------------------

int64_t FakeControlTopic::append(fleet::ControlRecord r) {
  std::lock_guard lock(mu_);
  r.offset = static_cast<int64_t>(log_.size());
  log_.push_back(std::move(r));
  return log_.back().offset;
}

std::vector<fleet::ControlRecord> FakeControlTopic::read(size_t from) const {
  std::lock_guard lock(mu_);
  if (from >= log_.size()) return {};
  return {log_.begin() + static_cast<std::ptrdiff_t>(from), log_.end()};
}

size_t FakeControlTopic::size() const {
  std::lock_guard lock(mu_);
  return log_.size();
}

void FakeControlTopic::set_reachable(bool reachable) {
  std::lock_guard lock(mu_);
  reachable_ = reachable;
}

bool FakeControlTopic::reachable() const {
  std::lock_guard lock(mu_);
  return reachable_;
}

Status FakeControlChannel::publish(const std::string& key,
                                   const std::optional<std::string>& value) {
  if (!topic_.reachable() || cut_writes_)
    return Status::error("fleet topic: Local: All broker connections are down");
  topic_.append({key, value});
  return Status::ok();
}

Status FakeControlChannel::send(const std::string& key, const std::string& value) {
  // Queued as librdkafka would queue it: the error is only learnt by not reading it back.
  if (topic_.reachable() && !cut_writes_) topic_.append({key, value});
  return Status::ok();
}

Status FakeControlChannel::poll(std::chrono::milliseconds timeout,
                                std::vector<fleet::ControlRecord>& out) {
  if (!topic_.reachable() || cut_reads_) {
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(1)));
    return Status::error("fleet topic: Local: All broker connections are down");
  }
  auto records = topic_.read(next_);
  if (records.empty()) {
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(1)));
    return Status::ok();
  }
  next_ += records.size();
  for (auto& r : records) out.push_back(std::move(r));
  return Status::ok();
}

// --- FakeFleetClaims ----------------------------------------------------------------------------

void FakeFleetClaims::claim(const std::string& topic, int32_t partition, int64_t first,
                            int64_t last) {
  std::lock_guard lock(mu_);
  ranges_.push_back({{topic, partition}, first, last});
}

void FakeFleetClaims::clear() {
  std::lock_guard lock(mu_);
  ranges_.clear();
}

std::optional<int64_t> FakeFleetClaims::first_claimed(const std::string& topic, int32_t partition,
                                                      int64_t from, int64_t to) const {
  std::lock_guard lock(mu_);
  std::optional<int64_t> first;
  for (const auto& r : ranges_) {
    if (r.key != PartitionKey{topic, partition} || r.first >= to || r.last < from) continue;
    const int64_t at = std::max(from, r.first);
    if (!first || at < *first) first = at;
  }
  return first;
}

// --- FakeDatabase -----------------------------------------------------------------------------

void FakeDatabase::set_mode(Mode mode) {
  {
    std::lock_guard lock(mu_);
    mode_ = mode;
  }
  cv_.notify_all();
}

bool FakeDatabase::holds_writes() const {
  std::lock_guard lock(mu_);
  return hold_ && mode_ == Mode::kUp;
}

void FakeDatabase::hold_writes(bool hold) {
  {
    std::lock_guard lock(mu_);
    hold_ = hold;
  }
  cv_.notify_all();
}

void FakeDatabase::fail_next_writes_transiently(int n) {
  std::lock_guard lock(mu_);
  transient_failures_ = n;
}

void FakeDatabase::copy_from(const FakeDatabase& other) {
  std::scoped_lock lock(mu_, other.mu_);
  next_offset_ = other.next_offset_;
  for (const auto& [key, next] : next_offset_) {
    auto& high = highest_next_offset_.try_emplace(key, -1).first->second;
    high = std::max(high, next);
  }
  stored_ = other.stored_;
  reasons_ = other.reasons_;
  dead_letters_ = other.dead_letters_;
}

void FakeDatabase::truncate(const std::string& topic, int32_t partition, int64_t next_offset) {
  std::lock_guard lock(mu_);
  const PartitionKey key{topic, partition};
  auto& stored = stored_[key];
  stored.erase(
      std::remove_if(stored.begin(), stored.end(), [&](int64_t o) { return o >= next_offset; }),
      stored.end());
  next_offset_[key] = next_offset;
}

void FakeDatabase::forget_partition(const std::string& topic, int32_t partition) {
  std::lock_guard lock(mu_);
  const PartitionKey key{topic, partition};
  stored_.erase(key);
  reasons_.erase(key);
  next_offset_.erase(key);
}

std::vector<int64_t> FakeDatabase::stored(const std::string& topic, int32_t partition) const {
  std::lock_guard lock(mu_);
  const auto it = stored_.find({topic, partition});
  return it == stored_.end() ? std::vector<int64_t>{} : it->second;
}

int64_t FakeDatabase::highest_next_offset(const std::string& topic, int32_t partition) const {
  std::lock_guard lock(mu_);
  const auto it = highest_next_offset_.find({topic, partition});
  return it == highest_next_offset_.end() ? -1 : it->second;
}

int64_t FakeDatabase::next_offset(const std::string& topic, int32_t partition) const {
  std::lock_guard lock(mu_);
  const auto it = next_offset_.find({topic, partition});
  return it == next_offset_.end() ? -1 : it->second;
}

std::map<int64_t, std::string> FakeDatabase::dead_letter_reasons(const std::string& topic,
                                                                 int32_t partition) const {
  std::lock_guard lock(mu_);
  const auto it = reasons_.find({topic, partition});
  return it == reasons_.end() ? std::map<int64_t, std::string>{} : it->second;
}

size_t FakeDatabase::dead_letters() const {
  std::lock_guard lock(mu_);
  return dead_letters_;
}

int FakeDatabase::connections() const {
  std::lock_guard lock(mu_);
  return connections_;
}

int FakeDatabase::open_transactions() const {
  std::lock_guard lock(mu_);
  return open_transactions_;
}

bool FakeDatabase::writes_waiting() const {
  std::lock_guard lock(mu_);
  return held_ > 0;
}

int FakeDatabase::writes_attempted() const {
  std::lock_guard lock(mu_);
  return writes_;
}

int FakeDatabase::probes() const {
  std::lock_guard lock(mu_);
  return probes_;
}

// --- FakeSession ------------------------------------------------------------------------------

namespace {

WriteResult failed(unsigned int code, const char* message) {
  WriteResult r;
  r.outcome = WriteOutcome::kFailed;
  r.error = {code, message};
  return r;
}

}  // namespace

DbStatus FakeSession::connect_locked() {
  switch (db_.mode_) {
    case FakeDatabase::Mode::kDown:
      if (connected_) {
        connected_ = false;
        --db_.connections_;
        return {CR_SERVER_LOST, "Lost connection to server during query"};
      }
      return {CR_CONNECTION_ERROR, "Can't connect to local server"};
    case FakeDatabase::Mode::kAccessDenied:
      return {ER_ACCESS_DENIED_ERROR, "Access denied for user 'sluice'"};
    case FakeDatabase::Mode::kUp:
    case FakeDatabase::Mode::kReadOnly:
      break;
  }
  if (!connected_) {
    connected_ = true;
    ++db_.connections_;
  }
  return {};
}

WriteResult FakeSession::write(storage::Batch& batch) {
  std::unique_lock lock(db_.mu_);
  ++db_.writes_;
  if (auto st = connect_locked(); !st.is_ok()) return failed(st.code, st.message.c_str());
  if (db_.mode_ == FakeDatabase::Mode::kReadOnly) {
    // MariaDbSink closes the connection after a read-only refusal.
    connected_ = false;
    --db_.connections_;
    return failed(ER_OPTION_PREVENTS_STATEMENT, "The MariaDB server is running with --read-only");
  }
  if (db_.transient_failures_ > 0) {
    --db_.transient_failures_;
    return failed(ER_LOCK_DEADLOCK, "Deadlock found when trying to get lock");
  }
  ++db_.open_transactions_;
  if (db_.hold_) {
    ++db_.held_;
    db_.cv_.wait(lock, [&] { return !db_.hold_ || db_.mode_ != FakeDatabase::Mode::kUp; });
    --db_.held_;
    if (db_.mode_ != FakeDatabase::Mode::kUp) {
      --db_.open_transactions_;
      connected_ = false;
      --db_.connections_;
      return failed(CR_SERVER_LOST, "Lost connection to server during query");
    }
  }
  const PartitionKey key{batch.topic, batch.partition};
  WriteResult result;
  if (const auto it = db_.next_offset_.find(key); it != db_.next_offset_.end()) {
    const int64_t next = it->second;
    if (next >= batch.end_offset || next < batch.base_offset) {
      --db_.open_transactions_;
      result.outcome =
          next >= batch.end_offset ? WriteOutcome::kAlreadyApplied : WriteOutcome::kBehind;
      result.db_next_offset = next;
      return result;
    }
    if (next > batch.base_offset) batch.trim_before(next);
  } else if (batch.base_offset != 0 && batch.base_offset != batch.origin) {
    // As MariaDbSink: no row, and the batch does not start where the partition began.
    --db_.open_transactions_;
    result.outcome = WriteOutcome::kBehind;
    result.db_next_offset = 0;
    return result;
  }
  if (lease_ != nullptr && !lease_->valid()) {
    --db_.open_transactions_;
    return failed(storage::kFenced, "this instance's write lease ran out");
  }
  std::vector<int64_t> offsets;
  for (const auto& t : batch.tables) {
    offsets.insert(offsets.end(), t.offsets.begin(), t.offsets.end());
    result.rows += t.rows();
  }
  for (const auto& d : batch.dead_letters) offsets.push_back(d.offset);
  std::sort(offsets.begin(), offsets.end());
  auto& stored = db_.stored_[key];
  stored.insert(stored.end(), offsets.begin(), offsets.end());
  db_.next_offset_[key] = batch.end_offset;
  auto& high = db_.highest_next_offset_.try_emplace(key, -1).first->second;
  high = std::max(high, batch.end_offset);
  db_.dead_letters_ += batch.dead_letters.size();
  for (const auto& d : batch.dead_letters) db_.reasons_[key][d.offset] = d.reason;
  result.dead_letters = batch.dead_letters.size();
  result.outcome = WriteOutcome::kCommitted;
  --db_.open_transactions_;
  return result;
}

DbStatus FakeSession::probe() {
  std::lock_guard lock(db_.mu_);
  ++db_.probes_;
  if (auto st = connect_locked(); !st.is_ok()) return st;
  if (db_.mode_ == FakeDatabase::Mode::kReadOnly) {
    connected_ = false;
    --db_.connections_;
    return {ER_OPTION_PREVENTS_STATEMENT, "the server is read-only (@@global.read_only = 1)"};
  }
  identity_ = db_.identity_;
  return {};
}

void FakeDatabase::set_identity(std::string identity) {
  std::lock_guard lock(mu_);
  identity_ = std::move(identity);
}

std::string FakeDatabase::identity() const {
  std::lock_guard lock(mu_);
  return identity_;
}

DbStatus FakeSession::read_offsets(const std::string& topic, std::map<int32_t, int64_t>& out) {
  std::lock_guard lock(db_.mu_);
  out.clear();
  if (auto st = connect_locked(); !st.is_ok()) return st;
  for (const auto& [key, next] : db_.next_offset_) {
    if (key.first == topic) out[key.second] = next;
  }
  return {};
}

void FakeSession::disconnect() {
  std::lock_guard lock(db_.mu_);
  if (connected_) --db_.connections_;
  connected_ = false;
}

// --- MemorySpool ------------------------------------------------------------------------------

/// What MemorySpool counts an event as costing beyond its payload (key and timestamp).
constexpr uint64_t kEventOverhead = 24;

void MemorySpool::append(const std::string& topic, int32_t partition, int64_t offset,
                         int64_t timestamp_ms, std::string_view payload) {
  std::lock_guard lock(mu_);
  const PartitionKey key{topic, partition};
  int64_t highest = -1;
  if (const auto it = events_.find(key); it != events_.end() && !it->second.empty()) {
    highest = it->second.rbegin()->first;
  }
  for (const auto& s : staged_) {
    if (s.key == key) highest = std::max(highest, s.offset);
  }
  if (offset <= highest) {
    ++violations_;  // refused, as RocksDbSpool refuses it
    return;
  }
  staged_.push_back({key, offset, {timestamp_ms, std::string(payload)}});
}

int MemorySpool::contract_violations() const {
  std::lock_guard lock(mu_);
  return violations_;
}

Status MemorySpool::commit() {
  std::lock_guard lock(mu_);
  if (fail_commits_)
    return Status::error("writing to the spool: IO error: No space left on device");
  for (auto& s : staged_) events_[s.key][s.offset] = std::move(s.event);
  staged_.clear();
  ++commits_;
  return Status::ok();
}

size_t MemorySpool::staged() const {
  std::lock_guard lock(mu_);
  return staged_.size();
}

uint64_t MemorySpool::staged_bytes() const {
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (const auto& s : staged_) n += kEventOverhead + s.event.payload.size();
  return n;
}

void MemorySpool::fail_reads(const std::string& topic, int32_t partition, std::string why) {
  std::lock_guard lock(mu_);
  if (why.empty()) {
    failing_reads_.erase({topic, partition});
  } else {
    failing_reads_[{topic, partition}] = std::move(why);
  }
}

Status MemorySpool::read(const std::string& topic, int32_t partition, int64_t from,
                         size_t max_events, storage::SpoolChunk& out) const {
  std::lock_guard lock(mu_);
  out.clear();
  if (const auto f = failing_reads_.find({topic, partition}); f != failing_reads_.end()) {
    return Status::error(f->second);
  }
  const auto it = events_.find({topic, partition});
  if (it == events_.end()) return Status::ok();
  std::vector<std::pair<size_t, size_t>> ranges;
  for (auto e = it->second.lower_bound(from);
       e != it->second.end() && out.events.size() < max_events; ++e) {
    ranges.emplace_back(out.bytes.size(), e->second.payload.size());
    out.bytes += e->second.payload;
    out.events.push_back({e->first, e->second.timestamp_ms, {}});
  }
  for (size_t i = 0; i < ranges.size(); ++i) {
    out.events[i].payload = std::string_view(out.bytes).substr(ranges[i].first, ranges[i].second);
  }
  return Status::ok();
}

Status MemorySpool::release(const std::string& topic, int32_t partition, int64_t below) {
  std::lock_guard lock(mu_);
  const auto it = events_.find({topic, partition});
  if (it == events_.end()) return Status::ok();
  it->second.erase(it->second.begin(), it->second.lower_bound(below));
  if (it->second.empty()) events_.erase(it);
  return Status::ok();
}

std::optional<storage::SpoolPartition> MemorySpool::partition(const std::string& topic,
                                                              int32_t partition) const {
  const auto all = partitions();
  const auto it = all.find({topic, partition});
  if (it == all.end()) return std::nullopt;
  return it->second;
}

std::map<storage::PartitionKey, storage::SpoolPartition> MemorySpool::partitions() const {
  std::lock_guard lock(mu_);
  std::map<storage::PartitionKey, storage::SpoolPartition> out;
  for (const auto& [key, events] : events_) {
    if (events.empty()) continue;
    auto& p = out[key];
    p.first_offset = events.begin()->first;
    p.last_offset = events.rbegin()->first;
    p.oldest_timestamp_ms = events.begin()->second.timestamp_ms;
    p.events = events.size();
    for (const auto& [offset, e] : events) p.bytes += kEventOverhead + e.payload.size();
  }
  return out;
}

storage::SpoolTotals MemorySpool::totals() const { return storage::sum_totals(partitions()); }

Status MemorySpool::set_pause(const std::optional<storage::PauseRecord>& record) {
  std::lock_guard lock(mu_);
  pause_ = record;
  return Status::ok();
}

std::optional<storage::PauseRecord> MemorySpool::pause() const {
  std::lock_guard lock(mu_);
  return pause_;
}

void MemorySpool::fail_commits(bool fail) {
  std::lock_guard lock(mu_);
  fail_commits_ = fail;
}

bool MemorySpool::holds(const std::string& topic, int32_t partition, int64_t offset) const {
  std::lock_guard lock(mu_);
  const auto it = events_.find({topic, partition});
  return it != events_.end() && it->second.contains(offset);
}

int MemorySpool::commits() const {
  std::lock_guard lock(mu_);
  return commits_;
}

std::unique_ptr<MemorySpool> MemorySpool::crash_copy() const {
  auto copy = std::make_unique<MemorySpool>();
  std::lock_guard lock(mu_);
  copy->events_ = events_;
  copy->pause_ = pause_;
  return copy;
}

// --- FakeEventTables / FakeReplaySession -----------------------------------------------------

std::vector<std::string> FakeEventTables::uuids(const std::string& table) const {
  std::lock_guard lock(mu_);
  const auto it = order_.find(table);
  return it == order_.end() ? std::vector<std::string>{} : it->second;
}

std::map<std::string, std::string> FakeEventTables::dead_letters() const {
  std::lock_guard lock(mu_);
  return dead_letters_;
}

void FakeEventTables::store(const std::string& table, const std::string& uuid) {
  std::lock_guard lock(mu_);
  if (stored_[table].insert(uuid).second) order_[table].push_back(uuid);
}

void FakeEventTables::fail_next_writes(int n) {
  std::lock_guard lock(mu_);
  failures_ = n;
}

int FakeEventTables::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

WriteResult FakeReplaySession::write(storage::Batch& batch) {
  std::lock_guard lock(tables_.mu_);
  ++tables_.writes_;
  if (tables_.failures_ > 0) {
    --tables_.failures_;
    return failed(ER_ACCESS_DENIED_ERROR, "Access denied for user 'sluice'");
  }
  WriteResult result;
  result.present_per_table.assign(batch.tables.size(), 0);
  for (size_t t = 0; t < batch.tables.size(); ++t) {
    const auto& rows = batch.tables[t];
    const std::string& name = rows.table->name();
    auto& stored = tables_.stored_[name];
    std::set<std::string> in_batch;
    for (size_t i = 0; i < rows.rows(); ++i) {
      const uint32_t start = i == 0 ? 0 : rows.ends[i - 1];
      const std::string uuid(rows.data.data() + start, 32);
      if (stored.contains(uuid) || !in_batch.insert(uuid).second) {
        ++result.present_per_table[t];
        continue;
      }
      ++result.rows;
      if (!dry_run_) {
        stored.insert(uuid);
        tables_.order_[name].push_back(uuid);
      }
    }
  }
  for (const auto& d : batch.dead_letters) {
    const std::string key =
        batch.topic + "/" + std::to_string(batch.partition) + "@" + std::to_string(d.offset);
    if (tables_.dead_letters_.contains(key)) {
      result.dead_letters_present.push_back(d.offset);
      continue;
    }
    ++result.dead_letters;
    if (!dry_run_) tables_.dead_letters_[key] = d.reason + std::string(storage::kReplayMark);
  }
  result.outcome = WriteOutcome::kCommitted;
  return result;
}

// --- A simulation's writers ------------------------------------------------------------------

bool SimWriters::held(ingest::Writer& w) {
  const auto& db = dynamic_cast<const FakeSession&>(w.sink()).database();
  return w.next_is_statement() && db.holds_writes();
}

void SimWriters::run(size_t max_pieces) {
  const auto now = clock_.now();
  const auto& list = writers_.writers();
  if (writers_.generation() != generation_) {
    generation_ = writers_.generation();
    last_run_.assign(list.size(), now);
  }
  std::vector<size_t> ready;
  for (size_t n = std::uniform_int_distribution<size_t>(0, max_pieces)(rng_); n > 0; --n) {
    ready.clear();
    for (size_t i = 0; i < list.size(); ++i) {
      if (!held(*list[i])) ready.push_back(i);
    }
    if (ready.empty()) break;
    const size_t i = ready[std::uniform_int_distribution<size_t>(0, ready.size() - 1)(rng_)];
    list[i]->run_once();
    last_run_[i] = now;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (now - last_run_[i] < kWake) continue;
    // A thread woken: it does what is due, then sleeps again.
    for (int pieces = 0; pieces < 1000 && !held(*list[i]); ++pieces) {
      if (list[i]->run_once() != ingest::Writer::Ran::kWorked) break;
    }
    last_run_[i] = now;
  }
}

}  // namespace sluice::testing
