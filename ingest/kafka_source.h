#pragma once
/// librdkafka adapter of EventSource: high-level consumer, subscription (names and ^regex),
/// consumer group, rebalance (eager and cooperative), manual offset commits, pause/resume/seek,
/// watermarks. Offsets are never auto-committed: the pipeline commits only what MariaDB or the
/// spool holds durably.
/// Thread safety: as EventSource — one thread.

#include <librdkafka/rdkafka.h>

#include <memory>
#include <vector>

#include "common/config.h"
#include "ingest/event_source.h"

namespace sluice::ingest {

class KafkaSource final : public EventSource {
 public:
  ~KafkaSource() override;
  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;

  /// Creates the consumer and subscribes. Fails on bad properties or topics.
  static Result<std::unique_ptr<EventSource>> create(const KafkaConfig& config,
                                                     RebalanceHandler handler);

  void poll(std::chrono::milliseconds timeout, size_t max,
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
  void close() override;

 private:
  KafkaSource() = default;
  static void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque);
  /// Destroys the messages handed out by the previous poll.
  void release_held();

  rd_kafka_t* rk_ = nullptr;
  RebalanceHandler handler_;
  std::vector<rd_kafka_message_t*> held_;  ///< backing the views of the last poll
  bool closed_ = false;
};

}  // namespace sluice::ingest
