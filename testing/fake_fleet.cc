#include "testing/fake_fleet.h"

#include <algorithm>
#include <thread>

namespace sluice::testing {

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

}  // namespace sluice::testing
