#include "ingest/offset_committer.h"

namespace sluice::ingest {

OffsetCommitter::OffsetCommitter(const Clock& clock, std::chrono::milliseconds interval)
    : clock_(clock), interval_(interval) {}

void OffsetCommitter::collect(PartitionCursor& c, std::vector<TopicPartition>& list) {
  // Orphans are no longer ours to commit; an unknown MariaDB position is not committed.
  if (c.mode() == PartitionMode::kOrphan || !c.database_known() || c.row_missing() ||
      c.floor() < 0) {
    return;
  }
  const PartitionKey key{c.topic(), c.partition()};
  const auto it = sent_.find(key);
  if (it != sent_.end() && it->second == c.floor()) return;
  sent_[key] = c.floor();
  list.push_back({c.topic(), c.partition(), c.floor()});
}

void OffsetCommitter::maybe_commit(EventSource& source, Cursors& cursors, bool force) {
  const auto now = clock_.now();
  if (!force && now - last_ < interval_) return;
  last_ = now;
  std::vector<TopicPartition> list;
  for (auto& [key, c] : cursors) collect(*c, list);
  if (list.empty()) return;
  if (auto st = source.commit(list, true); !st) {
    for (const auto& tp : list) sent_.erase({tp.topic, tp.partition});  // send again later
    uint64_t suppressed = 0;
    if (errors_.allow(suppressed)) {
      logger("kafka")->warn("{} ({} similar suppressed)", st.message(), suppressed);
    }
  }
}

void OffsetCommitter::commit_now(EventSource& source, Cursors& cursors) {
  std::vector<PartitionKey> keys;
  for (const auto& [key, c] : cursors) keys.push_back(key);
  commit_now(source, cursors, keys);
}

void OffsetCommitter::commit_now(EventSource& source, Cursors& cursors,
                                 const std::vector<PartitionKey>& keys) {
  std::vector<TopicPartition> list;
  for (const auto& key : keys) {
    if (const auto it = cursors.find(key); it != cursors.end()) {
      sent_.erase(key);  // whatever is in flight, say it once more and wait for the answer
      collect(*it->second, list);
    }
  }
  if (list.empty()) return;
  const auto st = source.commit(list, false);
  acknowledged(cursors, list, st);
}

void OffsetCommitter::acknowledged(Cursors& cursors, const std::vector<TopicPartition>& offsets,
                                   const Status& outcome) {
  for (const auto& tp : offsets) {
    const PartitionKey key{tp.topic, tp.partition};
    if (!outcome.is_ok()) {
      // Refused: send it again with the next round (unless a newer offset went out meanwhile).
      const auto it = sent_.find(key);
      if (it != sent_.end() && it->second == tp.offset) sent_.erase(it);
      continue;
    }
    if (const auto it = cursors.find(key); it != cursors.end()) {
      it->second->kafka_committed(tp.offset);
    }
  }
  if (outcome.is_ok()) return;
  uint64_t suppressed = 0;
  if (errors_.allow(suppressed)) {
    logger("kafka")->warn("{} ({} similar suppressed); committing again", outcome.message(),
                          suppressed);
  }
}

}  // namespace sluice::ingest
