#include "ingest/spool_lane.h"

#include <algorithm>

namespace sluice::ingest {

SpoolLane::SpoolLane(storage::Spool& spool, uint64_t max_bytes, const Clock& clock)
    : spool_(spool), max_bytes_(max_bytes), clock_(clock) {}

void SpoolLane::stage(PartitionCursor& c, int64_t offset, int64_t timestamp_ms,
                      std::string_view payload) {
  spool_.append(c.topic(), c.partition(), offset, timestamp_ms, payload);
  c.spooled(offset, timestamp_ms);
  // Events come a partition at a time: the entry of the last one is kept at hand, so the key
  // is built (and its topic copied) once per partition and round, not per event.
  if (last_staged_ == staged_.end() || last_staged_->first.second != c.partition() ||
      last_staged_->first.first != c.topic()) {
    last_staged_ =
        staged_.try_emplace(PartitionKey{c.topic(), c.partition()}, offset, offset).first;
  }
  last_staged_->second.second = offset;
  if (committed_bytes_ + spool_.staged_bytes() >= max_bytes_ ||
      spool_.staged_bytes() >= kMaxStagedBytes) {
    full_ = true;  // no more this round; flow control pauses fetching next round
  }
}

bool SpoolLane::update_full(bool lease_valid) {
  at_limit_ = committed_bytes_ + spool_.staged_bytes() >= max_bytes_ ||
              spool_.staged_bytes() >= kMaxStagedBytes;
  if (at_limit_ != full_logged_) {
    full_logged_ = at_limit_;
    if (at_limit_) {
      logger("ingest")->warn(
          "spool full ({} bytes, spool.max_bytes {}): fetching paused; Kafka keeps the events",
          committed_bytes_, max_bytes_);
    } else {
      logger("ingest")->info("spool below spool.max_bytes again");
    }
  }
  // Kafka keeps what is not spooled; the partitions' next owner, or this instance once it
  // hears the fleet again, reads it.
  full_ = at_limit_ || !error_.is_ok() || !lease_valid;
  return full_;
}

bool SpoolLane::past(double share) const {
  return static_cast<double>(committed_bytes_ + spool_.staged_bytes()) >=
         share * static_cast<double>(max_bytes_);
}

uint64_t SpoolLane::commit(Cursors& cursors) {
  uint64_t failed = 0;
  if (spool_.staged() == 0) {
    // Nothing waits for the disk (what was staged left with its partition): nothing fails.
    if (!error_.is_ok()) error_ = Status::ok();
    staged_.clear();
    last_staged_ = staged_.end();
  } else {
    if (!error_.is_ok() && clock_.now() < next_try_) return 0;
    if (auto st = spool_.commit(); !st) {
      failed = 1;
      next_try_ = clock_.now() + kRetry;
      if (error_.is_ok()) {
        error_since_ms_ = clock_.wall_ms();
        logger("spool")->error(
            "{}: fetching paused for what would be spooled ({} events wait in memory); Kafka "
            "keeps the events; retrying every second",
            st.message(), spool_.staged());
      } else {
        uint64_t suppressed = 0;
        if (error_log_.allow(suppressed)) {
          logger("spool")->error("{} ({} similar suppressed); retrying", st.message(), suppressed);
        }
      }
      error_ = st;
      return failed;
    }
    if (!error_.is_ok()) {
      logger("spool")->info("the spool writes again after {} s: fetching resumes",
                            (clock_.wall_ms() - error_since_ms_) / 1000);
      error_ = Status::ok();
    }
    for (auto& [key, c] : cursors) c->spool_synced_all();
    staged_.clear();
    last_staged_ = staged_.end();
  }
  committed_bytes_ = spool_.totals().bytes;
  return failed;
}

const std::vector<Cursors::value_type*>& SpoolLane::drain_order(Cursors& cursors) {
  drain_order_.clear();
  for (auto& entry : cursors) drain_order_.push_back(&entry);
  if (!drain_order_.empty()) {
    std::rotate(drain_order_.begin(),
                drain_order_.begin() +
                    static_cast<std::ptrdiff_t>(drain_turn_++ % drain_order_.size()),
                drain_order_.end());
  }
  return drain_order_;
}

const storage::SpoolChunk* SpoolLane::read(const PartitionKey& key, const PartitionCursor& c,
                                           size_t max, bool& changed) {
  changed = false;
  if (auto st = spool_.read(c.topic(), c.partition(), c.drain_next(), max, chunk_); !st) {
    auto& said = read_errors_[key];
    if (said != st.message()) {
      said = st.message();
      logger("spool")->error("{}", st.message());
      changed = true;
    }
    return nullptr;
  }
  if (read_errors_.erase(key) > 0) {
    logger("spool")->info("{}/{}: its spool reads again", c.topic(), c.partition());
    changed = true;
  }
  return &chunk_;
}

std::optional<std::pair<int64_t, int64_t>> SpoolLane::staged(const PartitionKey& key) const {
  const auto it = staged_.find(key);
  if (it == staged_.end()) return std::nullopt;
  return it->second;
}

void SpoolLane::tell(PartitionCursor& c) const {
  int64_t first = -1, end = -1, synced = -1;
  if (const auto durable = spool_.partition(c.topic(), c.partition());
      durable && durable->events > 0) {
    first = durable->first_offset;
    end = synced = durable->last_offset + 1;
  }
  if (const auto s = staged({c.topic(), c.partition()})) {
    first = first < 0 ? s->first : std::min(first, s->first);
    end = std::max(end, s->second + 1);
    if (synced < 0) synced = s->first;
  }
  c.spool_holds(first, end, synced);
}

void SpoolLane::release_below_floor(const PartitionCursor& c) {
  const auto spooled = spool_.partition(c.topic(), c.partition());
  if (!spooled || spooled->first_offset >= c.floor()) return;
  if (auto st = spool_.release(c.topic(), c.partition(), c.floor()); !st) {
    uint64_t suppressed = 0;
    if (error_log_.allow(suppressed)) {
      logger("spool")->error("{} ({} similar suppressed)", st.message(), suppressed);
    }
  }
}

}  // namespace sluice::ingest
