#include "testing/memory_spool.h"

#include <algorithm>

namespace sluice::testing {

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

}  // namespace sluice::testing
