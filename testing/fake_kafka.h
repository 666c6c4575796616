#pragma once
/// A scripted Kafka for unit tests: FakeKafka (the logs, the group, its offsets and faults) and
/// the FakeSource consumer it hands out, behaving as librdkafka does where the pipeline
/// depends on it. Both belong to the test's thread (the pipeline's ingest thread in these
/// tests).

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ingest/event_source.h"

namespace sluice::testing {

using PartitionKey = std::pair<std::string, int32_t>;

// --- Kafka ----------------------------------------------------------------------------------

class FakeSource;

/// The broker and the group coordinator: partition logs, one consumer group's committed
/// offsets and its members. Behaves like Kafka where the pipeline depends on it:
///  - the group assigns the subscribed partitions among live members (sticky: a partition stays
///    with its owner when it can), eagerly (everything revoked, then assigned) or cooperatively
///    (only what moves is revoked, and assigned to its new owner only once given up);
///  - static membership: a member that crashes (destroyed without close) keeps its partitions
///    until `expire_session`; a new member with the same instance id takes them over at once;
///  - retention (`expire_below`): a consumer positioned below the log start is moved to it
///    (auto.offset.reset = earliest).
class FakeKafka {
 public:
  enum class Protocol { kEager, kCooperative };
  /// Appends to a partition's log; returns the message's offset.
  int64_t produce(const std::string& topic, int32_t partition, std::string payload,
                  int64_t timestamp_ms = 1'700'000'000'000);
  /// Appends an offset that holds no record (a transaction marker): never delivered.
  int64_t produce_marker(const std::string& topic, int32_t partition);
  /// The next fetch of a partition by any consumer goes wrong once: `n` offsets are skipped
  /// (they are still in the log). The pipeline must notice and read them again. Never the
  /// very same skip twice in a row (see the fetch).
  void lose_next_fetch(const std::string& topic, int32_t partition, int64_t n) {
    lost_fetch_[{topic, partition}] = n;
  }
  /// Deletes the log below `offset` (retention), so those offsets are gone unread.
  void expire_below(const std::string& topic, int32_t partition, int64_t offset);
  /// The partitions the group consumes (its subscription); a change rebalances.
  void set_assignment(std::vector<PartitionKey> partitions);
  void set_protocol(Protocol protocol) { protocol_ = protocol; }
  /// A simulation's consumers: a poll with nothing to deliver returns at once (with writers on
  /// threads it waits a little, as a consumer would, so they get the processor).
  void set_simulated(bool simulated) { simulated_ = simulated; }
  bool simulated() const { return simulated_; }
  /// Forces a rebalance (as a metadata change or a member joining would).
  void rebalance();
  /// The session of a crashed static member times out: its partitions move to the others.
  void expire_session(const std::string& instance_id);
  /// The session of a live static member times out (a broker away for longer than the
  /// session): its partitions move to the others, and its next call is fenced — fatal for
  /// that consumer, as librdkafka reports FENCED_INSTANCE_ID.
  void expire_live_session(const std::string& instance_id);

  /// The group's committed offset, kOffsetInvalid when none.
  int64_t committed(const std::string& topic, int32_t partition) const;
  /// Every commit, in order: the test checks none went ahead of what was durable.
  struct Commit {
    PartitionKey partition;
    int64_t offset;
  };
  const std::vector<Commit>& commits() const { return commits_; }
  /// The member that owns a partition now ("" when none).
  std::string owner(const PartitionKey& partition) const;

  struct Log {
    int64_t start = 0;  ///< log start offset (retention)
    std::vector<std::string> payloads;
    std::vector<int64_t> timestamps;  ///< -2 marks an offset holding no record
    int64_t end() const { return start + static_cast<int64_t>(payloads.size()); }
  };
  const Log& log(const std::string& topic, int32_t partition) { return logs_[{topic, partition}]; }

  /// Seeks that took effect on a partition, by any member.
  uint64_t seeks(const std::string& topic, int32_t partition) const {
    const auto it = seeks_.find({topic, partition});
    return it == seeks_.end() ? 0 : it->second;
  }

  /// Faults: the next `n` calls of a kind fail (and do nothing).
  enum class Call { kSeek, kPause, kResume, kCommit, kWatermarks };
  void fail_next(Call call, int n) { failures_[call] = n; }

 private:
  friend class FakeSource;
  struct Member {
    std::string instance_id;
    FakeSource* source = nullptr;  ///< nullptr while crashed (static membership)
    std::set<PartitionKey> owned;  ///< as the coordinator sees it
  };
  bool take_failure(Call call);
  void join(FakeSource* source);
  void leave(FakeSource* source, bool crashed);
  /// Recomputes the assignment and queues revokes and assigns for the members.
  void assign();
  /// Hands partitions nobody holds any longer to the members they are meant for.
  void deliver_pending_assignments();

  std::map<PartitionKey, Log> logs_;
  std::map<PartitionKey, int64_t> committed_;
  std::vector<Commit> commits_;
  std::vector<PartitionKey> subscription_;
  std::vector<Member> members_;
  std::map<PartitionKey, std::string> target_;  ///< the assignment being moved towards
  Protocol protocol_ = Protocol::kCooperative;
  bool simulated_ = false;
  std::map<Call, int> failures_;
  std::map<PartitionKey, int64_t> lost_fetch_;
  /// The records each partition's last fetch gone wrong lost: [first record at or after where
  /// it skipped from, first record delivered after it).
  std::map<PartitionKey, std::pair<int64_t, int64_t>> last_lost_;
  std::map<PartitionKey, uint64_t> seeks_;
};

/// A consumer of FakeKafka, as librdkafka behaves for the pipeline: it joins the group on its
/// first poll, prefetches a few messages per partition — still delivered after a pause or a
/// seek (stale), and after a resume it goes on from where its fetcher was, not from the last
/// message delivered — except that resuming a partition that was not paused restarts its
/// fetcher where the assignment or the last seek started it, as librdkafka before 2.4 does
/// (Debian 12 ships 2.0) — and runs the handler's callbacks inside poll and close.
class FakeSource final : public ingest::EventSource {
 public:
  FakeSource(FakeKafka& kafka, ingest::SourceHandler handler, std::string instance_id = "sluice-1");
  /// Without close(): a crash. The group keeps the partitions (static membership).
  ~FakeSource() override;

  Status poll(std::chrono::milliseconds timeout, size_t max,
              std::vector<ingest::SourceMessage>& out) override;
  Status committed(std::vector<ingest::TopicPartition>& partitions,
                   std::chrono::milliseconds timeout) override;
  Status commit(const std::vector<ingest::TopicPartition>& partitions, bool async) override;
  Status pause(const std::vector<ingest::TopicPartition>& partitions) override;
  Status resume(const std::vector<ingest::TopicPartition>& partitions) override;
  Status seek(const std::vector<ingest::TopicPartition>& partitions) override;
  Status watermarks(const std::string& topic, int32_t partition, int64_t& low, int64_t& high,
                    std::chrono::milliseconds timeout) override;
  int64_t cached_high_watermark(const std::string& topic, int32_t partition) override;
  void close() override;

  bool fetching(const std::string& topic, int32_t partition) const;
  const std::string& instance_id() const { return instance_id_; }
  /// The next poll returns this fatal error.
  void fail_fatally(std::string why) { fatal_ = std::move(why); }
  /// Messages prefetched per partition (delivered even after a pause or a seek).
  static constexpr size_t kPrefetch = 3;

 private:
  friend class FakeKafka;
  struct Fetch {
    int64_t position = -1;      ///< the fetcher's next offset (-1: from committed / earliest)
    int64_t started_at = -1;    ///< where the assignment or the last seek started it
    std::deque<int64_t> ready;  ///< prefetched offsets, delivered in order
  };
  void start_fetch(const PartitionKey& key, int64_t offset);

  FakeKafka& kafka_;
  ingest::SourceHandler handler_;
  std::string instance_id_;
  bool joined_ = false;
  bool closed_ = false;
  std::string fatal_;
  bool fenced_ = false;
  std::map<PartitionKey, Fetch> fetch_;  ///< assigned partitions
  /// Paused partitions. Like librdkafka's per-partition flag, it outlives a revoke and a new
  /// assignment of the same partition: only resume() clears it.
  std::set<PartitionKey> paused_;
  std::vector<PartitionKey> pending_revoke_;  ///< delivered at the next poll
  std::vector<PartitionKey> pending_assign_;  ///< delivered at the next poll
  std::vector<ingest::TopicPartition> acks_;  ///< async commits to acknowledge
  std::deque<std::string> topics_;            ///< backing the views handed out
};

}  // namespace sluice::testing
