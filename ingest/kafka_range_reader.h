#pragma once
/// librdkafka adapter of ReplayInput: reads fixed offset ranges of a topic's partitions for
/// `sluice replay`, outside any consumer group — its own assignment, no subscription, no commit
/// ever, so the service's group offsets cannot move. (librdkafka wants a `group.id` before it
/// assigns; the reader sets one that no request ever carries: a group is only contacted to
/// join, or to read or commit offsets, and the reader does none of these.)
///
/// Before reading it answers what resolve_ranges needs: the partitions of a topic, their
/// watermarks, and offsets-for-times. While reading it checks every jump in offsets: when the
/// log start has moved past the offset it expected, the offsets in between expired during the
/// replay and are reported (take_expired); other jumps are offsets that hold no event
/// (transaction markers, compaction). A partition is done at the end of its range, or at the
/// log end when the range's last offsets hold no event.
/// Thread safety: one thread.

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/logging.h"
#include "ingest/replay.h"

namespace sluice::ingest {

class KafkaRangeReader final : public ReplayInput {
 public:
  ~KafkaRangeReader() override;
  KafkaRangeReader(const KafkaRangeReader&) = delete;
  KafkaRangeReader& operator=(const KafkaRangeReader&) = delete;

  /// A consumer with kafka.brokers and kafka.properties (TLS, SASL), without the group. With
  /// `group`, committed() and commit() act on that consumer group's offsets (without joining
  /// it: Kafka takes such a commit only while the group has no member).
  static Result<std::unique_ptr<KafkaRangeReader>> create(const KafkaConfig& config,
                                                          const std::string& group = "");
  /// The group's committed offset of each partition (-1: none).
  Status committed(const std::string& topic, const std::vector<int32_t>& partitions,
                   std::vector<int64_t>& out, std::chrono::milliseconds timeout);
  /// How many members the group has now (librdkafka's list_groups), or -1 with `error`.
  int group_members(const std::string& group, std::chrono::milliseconds timeout,
                    std::string& error);
  /// Commits `offsets` (partition -> next offset) as the group's, synchronously.
  Status commit(const std::string& topic, const std::map<int32_t, int64_t>& offsets);

  /// What the cluster says of itself: its brokers, and each topic with its partition count and
  /// the replication of its first partition (for `check-config --online`).
  struct Cluster {
    std::vector<std::string> brokers;  ///< "id host:port"
    struct Topic {
      int partitions = 0;
      int replication = 0;
    };
    std::map<std::string, Topic> topics;
  };
  Status cluster(Cluster& out, std::chrono::milliseconds timeout);

  /// The topic's partitions, in order. An unknown topic is an error, with `unknown_topic` set.
  Status partitions(const std::string& topic, std::vector<int32_t>& out,
                    std::chrono::milliseconds timeout, bool& unknown_topic);
  Status watermarks(const std::string& topic, int32_t partition, int64_t& low, int64_t& high,
                    std::chrono::milliseconds timeout);
  /// Kafka's offsets-for-times: per partition, the first offset whose timestamp is at or after
  /// `epoch_ms`, or -1 when no event is.
  Status offsets_for_times(const std::string& topic, const std::vector<int32_t>& partitions,
                           int64_t epoch_ms, std::vector<int64_t>& out,
                           std::chrono::milliseconds timeout);

  /// Starts reading each non-empty range at its `from`.
  Status start(const std::vector<PartitionRange>& ranges);

  Status read(std::chrono::milliseconds timeout, size_t max,
              std::vector<SourceMessage>& out) override;
  bool done() const override { return remaining_ == 0; }
  void take_expired(std::vector<ExpiredRange>& out) override;

 private:
  KafkaRangeReader() = default;
  struct Reading {
    std::string topic;
    int32_t partition = 0;
    int64_t next = 0;  ///< the next offset expected
    int64_t to = 0;    ///< one past the last offset wanted
    bool done = false;
  };
  void release_held();
  /// A jump from r.next to `offset`: records what expired in between, if anything.
  void check_jump(Reading& r, int64_t offset);
  void finish(Reading& r);

  rd_kafka_t* rk_ = nullptr;
  std::map<std::pair<std::string, int32_t>, Reading> readings_;
  size_t remaining_ = 0;  ///< readings not done
  std::vector<rd_kafka_message_t*> held_;
  std::vector<ExpiredRange> expired_;
  RateLimiter error_limiter_{std::chrono::seconds(10)};
};

}  // namespace sluice::ingest
