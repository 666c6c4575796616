#pragma once
/// librdkafka high-level consumer: subscription (names and ^regex), consumer group, rebalance
/// (eager and cooperative), manual offset commits, pause/resume/seek, watermarks.
/// Offsets are never auto-committed: the pipeline commits only what MariaDB has committed.
/// Thread safety: every method, and the rebalance handler it calls, runs on the ingest thread.

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace sluice::ingest {

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = -1;  ///< meaning depends on the call; -1001 (RD_KAFKA_OFFSET_INVALID) = none
};

/// Called from inside poll() when the group assigns or revokes partitions. `on_assign` sets each
/// partition's start offset (or leaves RD_KAFKA_OFFSET_INVALID for the group/reset policy).
struct RebalanceHandler {
  std::function<void(std::vector<TopicPartition>&)> on_assign;
  std::function<void(const std::vector<TopicPartition>&)> on_revoke;
};

struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;

class KafkaSource {
 public:
  ~KafkaSource();
  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;

  /// Creates the consumer and subscribes. Fails on bad properties or topics.
  static Result<std::unique_ptr<KafkaSource>> create(const KafkaConfig& config,
                                                     RebalanceHandler handler);

  /// The next message or error event, or nullptr after `timeout_ms`.
  MessagePtr poll(int timeout_ms);

  /// Offsets the group committed for these partitions (offset -1001 when none).
  Status committed(std::vector<TopicPartition>& partitions, int timeout_ms);
  /// Commits `offset` (the next offset to read) of each partition; async or waiting.
  Status commit(const std::vector<TopicPartition>& partitions, bool async);
  Status pause(const std::vector<TopicPartition>& partitions);
  /// Moves each partition's fetch position to its `offset`.
  Status seek(const std::vector<TopicPartition>& partitions);
  Status resume(const std::vector<TopicPartition>& partitions);
  /// Low (log start) and high watermarks of a partition, asking the broker.
  Status watermarks(const std::string& topic, int32_t partition, int64_t& low, int64_t& high,
                    int timeout_ms);
  /// Leaves the group (revoking the assignment through the handler) and closes.
  void close();

 private:
  KafkaSource() = default;
  static void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque);

  rd_kafka_t* rk_ = nullptr;
  RebalanceHandler handler_;
  bool closed_ = false;
};

/// Converts between the C list and the value type.
std::vector<TopicPartition> to_vector(const rd_kafka_topic_partition_list_t* list);
rd_kafka_topic_partition_list_t* to_list(const std::vector<TopicPartition>& partitions);

}  // namespace sluice::ingest
