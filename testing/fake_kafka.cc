#include "testing/fake_kafka.h"

#include <algorithm>
#include <thread>

namespace sluice::testing {

using ingest::kOffsetInvalid;
using ingest::TopicPartition;

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
      // (Compared by records, on both ends: the first record at or after where the skip starts
      // and the first delivered after it. Offsets holding no records, or the log's end, can make
      // two skips that start or end at different offsets lose the same records and deliver the
      // same jump — then this fetch goes right instead.)
      auto record_at_or_after = [&](int64_t o) {
        while (o < log.end() && log.timestamps[static_cast<size_t>(o - log.start)] == -2) ++o;
        return o;
      };
      int64_t to = std::min(f.position + lost->second, log.end());
      const std::pair lost_records{record_at_or_after(f.position), record_at_or_after(to)};
      const auto previous = kafka_.last_lost_.find(key);
      if (previous != kafka_.last_lost_.end() && previous->second == lost_records) {
        to = f.position;
      }
      kafka_.last_lost_[key] = {record_at_or_after(f.position), record_at_or_after(to)};
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

}  // namespace sluice::testing
