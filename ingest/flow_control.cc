#include "ingest/flow_control.h"

#include <vector>

namespace sluice::ingest {

FlowControl::FlowControl(size_t max_in_flight_bytes, const Clock& clock,
                         std::chrono::milliseconds hold_before_pause,
                         std::chrono::milliseconds stall_after)
    : max_in_flight_bytes_(max_in_flight_bytes),
      clock_(clock),
      hold_before_pause_(hold_before_pause),
      stall_after_(stall_after) {}

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
  if (!paused_ && stuck) {
    paused_ = true;
    holding_since_.reset();
    logger("ingest")->info("fetching paused: {} MiB of batches waiting for MariaDB",
                           in_flight_bytes >> 20);
  } else if (paused_ && in_flight_bytes <= max_in_flight_bytes_ / 2) {
    paused_ = false;
    logger("ingest")->info("fetching resumed");
  }
  spool_full_ = spool_full;
  watch(source, cursors);
  // Seek before resuming: a partition fetches again only from where it should.
  seek(source, cursors);
  reconcile(source, cursors);
}

void FlowControl::watch(EventSource& source, Cursors& cursors) {
  const auto now = clock_.now();
  for (auto& [key, c] : cursors) {
    const auto mode = c->mode();
    const bool reads_kafka = mode == PartitionMode::kDirect || mode == PartitionMode::kRefill ||
                             mode == PartitionMode::kDraining || mode == PartitionMode::kSpooling;
    auto& p = progress_[key];
    const int64_t high =
        reads_kafka ? source.cached_high_watermark(c->topic(), c->partition()) : -1;
    if (!reads_kafka || should_pause(*c) || c->wants_seek() || c->fetch_next() < 0 ||
        high <= c->fetch_next() || p.fetch_next != c->fetch_next()) {
      p = {c->fetch_next(), now};  // moving, or nothing to fetch: not a stall
      continue;
    }
    if (now - p.since < stall_after_) continue;
    uint64_t suppressed = 0;
    if (stall_log_.allow(suppressed)) {
      logger("kafka")->warn(
          "{}/{}: no message for {} s although the log reaches {} and the partition stands at "
          "{}; seeking it there again ({} similar suppressed)",
          c->topic(), c->partition(),
          std::chrono::duration_cast<std::chrono::seconds>(now - p.since).count(), high,
          c->fetch_next(), suppressed);
    }
    c->seek_again();
    p.since = now;
  }
}

bool FlowControl::should_pause(const PartitionCursor& c) const {
  const auto mode = c.mode();
  return paused_ ||
         (spool_full_ && (mode == PartitionMode::kSpooling || mode == PartitionMode::kDraining)) ||
         // Waiting for a schema: read again from the held event once the hold ends.
         (c.held() && (mode == PartitionMode::kDirect || mode == PartitionMode::kRefill));
}

void FlowControl::seek(EventSource& source, Cursors& cursors) {
  std::vector<TopicPartition> list;
  std::vector<PartitionCursor*> sought;
  for (auto& [key, c] : cursors) {
    const auto mode = c->mode();
    // Whatever arrives while paused is dropped: a paused partition is sought on the way out.
    // Halted partitions are rewound once the gate has closed, waiting ones when they go on;
    // orphans are not assigned.
    if (!c->wants_seek() || should_pause(*c) || mode == PartitionMode::kHalted ||
        mode == PartitionMode::kWaiting || mode == PartitionMode::kOrphan) {
      continue;
    }
    // An unknown position is sought to the beginning of the log (the earliest offset).
    list.push_back(
        {c->topic(), c->partition(), c->fetch_next() >= 0 ? c->fetch_next() : kOffsetBeginning});
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
  for (const Told want : {Told::kPaused, Told::kFetching}) {
    std::vector<TopicPartition> change;
    std::vector<PartitionKey> keys;
    for (auto& [key, c] : cursors) {
      if (c->mode() == PartitionMode::kOrphan) continue;
      if ((want == Told::kPaused) != should_pause(*c)) continue;
      auto [it, added] = told_.try_emplace(key, Told::kUnknown);
      if (it->second == want) continue;
      change.push_back({c->topic(), c->partition(), kOffsetInvalid});
      keys.push_back(key);
    }
    if (change.empty()) continue;
    const auto st = want == Told::kPaused ? source.pause(change) : source.resume(change);
    if (!st) {
      uint64_t suppressed = 0;
      if (pause_errors_.allow(suppressed)) {
        logger("kafka")->warn("{}; retrying ({} similar suppressed)", st.message(), suppressed);
      }
      continue;
    }
    for (const auto& key : keys) told_[key] = want;
  }
}

}  // namespace sluice::ingest
