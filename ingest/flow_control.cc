#include "ingest/flow_control.h"

#include <vector>

namespace sluice::ingest {

FlowControl::FlowControl(size_t max_in_flight_bytes, const Clock& clock,
                         std::chrono::milliseconds hold_before_pause)
    : max_in_flight_bytes_(max_in_flight_bytes),
      clock_(clock),
      hold_before_pause_(hold_before_pause) {}

bool FlowControl::holding(size_t in_flight_bytes) {
  if (paused_ || in_flight_bytes < max_in_flight_bytes_) {
    holding_since_.reset();
    return false;
  }
  if (!holding_since_) holding_since_ = clock_.now();
  // A stall longer than this is not flow control but a stuck database: apply() then pauses the
  // partitions in Kafka and polling goes on, so the consumer stays in its group.
  return clock_.now() - *holding_since_ < hold_before_pause_;
}

void FlowControl::apply(EventSource& source, Cursors& cursors, size_t in_flight_bytes,
                        bool spool_full) {
  const bool stuck = holding_since_ && clock_.now() - *holding_since_ >= hold_before_pause_;
  if (!paused_ && (stuck || spool_full)) {
    paused_ = true;
    holding_since_.reset();
    logger("ingest")->info("fetching paused: {} MiB of batches waiting for MariaDB{}",
                           in_flight_bytes >> 20, spool_full ? ", spool full" : "");
  } else if (paused_ && !spool_full && in_flight_bytes <= max_in_flight_bytes_ / 2) {
    paused_ = false;
    logger("ingest")->info("fetching resumed");
  }
  // Seek before resuming: a partition fetches again only from where it should.
  seek(source, cursors);
  reconcile(source, cursors);
}

void FlowControl::seek(EventSource& source, Cursors& cursors) {
  if (paused_) return;  // whatever arrives while paused is dropped: seek on the way out
  std::vector<TopicPartition> list;
  std::vector<PartitionCursor*> sought;
  for (auto& [key, c] : cursors) {
    const auto mode = c->mode();
    // Halted partitions are rewound once the gate has closed, waiting ones when they go on;
    // orphans are not assigned.
    if (!c->wants_seek() || c->fetch_next() < 0 || mode == PartitionMode::kHalted ||
        mode == PartitionMode::kWaiting || mode == PartitionMode::kOrphan) {
      continue;
    }
    list.push_back({c->topic(), c->partition(), c->fetch_next()});
    sought.push_back(c.get());
  }
  if (list.empty()) return;
  if (auto st = source.seek(list); !st) {
    uint64_t suppressed = 0;
    if (seek_errors_.allow(suppressed)) {
      logger("kafka")->warn("{}; retrying ({} similar suppressed)", st.message(), suppressed);
    }
    return;
  }
  for (auto* c : sought) c->sought();
}

void FlowControl::reconcile(EventSource& source, Cursors& cursors) {
  std::vector<TopicPartition> change;
  std::vector<PartitionKey> keys;
  const Told want = paused_ ? Told::kPaused : Told::kFetching;
  for (auto& [key, c] : cursors) {
    if (c->mode() == PartitionMode::kOrphan) continue;
    auto [it, added] = told_.try_emplace(key, Told::kUnknown);
    if (it->second == want) continue;
    change.push_back({c->topic(), c->partition(), kOffsetInvalid});
    keys.push_back(key);
  }
  if (change.empty()) return;
  const auto st = paused_ ? source.pause(change) : source.resume(change);
  if (!st) {
    uint64_t suppressed = 0;
    if (pause_errors_.allow(suppressed)) {
      logger("kafka")->warn("{}; retrying ({} similar suppressed)", st.message(), suppressed);
    }
    return;
  }
  for (const auto& key : keys) told_[key] = want;
}

}  // namespace sluice::ingest
