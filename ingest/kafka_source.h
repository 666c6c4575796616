#pragma once
/// librdkafka adapter of EventSource: high-level consumer, subscription (names and ^regex),
/// consumer group with static membership (group.instance.id = kafka.instance_id, so a restarted
/// instance gets its partitions back at once) and cooperative-sticky assignment by default
/// (eager protocols work too), manual offset commits acknowledged through the handler,
/// pause/resume/seek, watermarks. Offsets are never auto-committed: the pipeline commits only
/// what MariaDB holds. A fatal consumer error (another member fenced this one) is returned by
/// poll; transient ones are logged at a bounded rate.
/// Thread safety: as EventSource — one thread.

#include <librdkafka/rdkafka.h>

#include <memory>
#include <vector>

#include "common/config.h"
#include "common/logging.h"
#include "ingest/event_source.h"

namespace sluice::ingest {

class KafkaSource final : public EventSource {
 public:
  ~KafkaSource() override;
  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;

  /// Creates the consumer and subscribes. Fails on bad properties or topics.
  static Result<std::unique_ptr<EventSource>> create(const KafkaConfig& config,
                                                     SourceHandler handler);

  Status poll(std::chrono::milliseconds timeout, size_t max,
              std::vector<SourceMessage>& out) override;
  Status committed(std::vector<TopicPartition>& partitions,
                   std::chrono::milliseconds timeout) override;
  Status commit(const std::vector<TopicPartition>& partitions, bool async) override;
  Status pause(const std::vector<TopicPartition>& partitions) override;
  Status resume(const std::vector<TopicPartition>& partitions) override;
  Status seek(const std::vector<TopicPartition>& partitions) override;
  Status watermarks(const std::string& topic, int32_t partition, int64_t& low, int64_t& high,
                    std::chrono::milliseconds timeout) override;
  int64_t cached_high_watermark(const std::string& topic, int32_t partition) override;
  int64_t cached_low_watermark(const std::string& topic, int32_t partition) override;
  void close() override;

 private:
  KafkaSource() = default;
  static void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque);
  static void commit_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t* offsets, void* opaque);
  /// Destroys the messages handed out by the previous poll.
  void release_held();

  rd_kafka_t* rk_ = nullptr;
  SourceHandler handler_;
  std::vector<rd_kafka_message_t*> held_;  ///< backing the views of the last poll
  bool closed_ = false;
  bool rebalanced_ = false;  ///< the group has answered a join with an assignment (even empty)
  RateLimiter error_limiter_{std::chrono::seconds(10)};
};

}  // namespace sluice::ingest
