#pragma once
/// The fleet's control topic on Kafka: one partition, compacted (only the latest record of each
/// key is kept), replicated on min(3, brokers) with min.insync.replicas min(2, that) — it is
/// inside the fleet's trust boundary (DESIGN.md invariant 9). Created on first use when it
/// does not exist (CreateTopics, in the background; on a broker that creates topics by itself,
/// the first write does); an existing topic with weaker settings is named in the log and in
/// `warnings()` (status);
/// written by an idempotent producer that waits for every in-sync replica; read from the
/// beginning by a consumer with an assignment of its own (it joins no group).
/// Thread safety: as ControlChannel — one thread.

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fleet/control_channel.h"

namespace sluice::fleet {

struct ControlTopic {
  std::string brokers;
  std::string topic;
  /// librdkafka properties shared with the pipeline's consumer (security, sockets); those
  /// that apply to consumers only are left out.
  std::map<std::string, std::string> properties;
  std::string client_id = "sluice-fleet";
};

class KafkaControlChannel final : public ControlChannel {
 public:
  ~KafkaControlChannel() override;
  KafkaControlChannel(const KafkaControlChannel&) = delete;
  KafkaControlChannel& operator=(const KafkaControlChannel&) = delete;

  /// Connects, asks for the topic (see above) and starts reading it from the beginning. Fails
  /// with the reason when the clients cannot be made (a bad property).
  static Result<std::unique_ptr<ControlChannel>> open(const ControlTopic& config);

  Status publish(const std::string& key, const std::optional<std::string>& value) override;
  Status send(const std::string& key, const std::string& value) override;
  Status poll(std::chrono::milliseconds timeout, std::vector<ControlRecord>& out) override;
  bool caught_up() const override { return caught_up_; }
  std::vector<std::string> warnings() const override { return warnings_; }

 private:
  KafkaControlChannel() = default;
  /// Once: the cluster's brokers and the topic as they are; then asks the controller to create
  /// the topic as it should be, or to describe the existing one's settings. Answers are read by
  /// check_topic_creation from poll.
  void inspect_topic();
  void check_topic_creation();
  /// An existing topic's replication and configs against what they should be.
  void judge(int replication, const std::map<std::string, std::string>& configs);

  std::string topic_;
  rd_kafka_t* producer_ = nullptr;
  rd_kafka_t* consumer_ = nullptr;
  rd_kafka_queue_t* creation_ = nullptr;  ///< the CreateTopics/DescribeConfigs answer
  bool inspected_ = false;
  int brokers_ = 0;
  int replication_ = 0;                     ///< of the existing topic's partition 0
  std::vector<std::string> warnings_;
  int64_t end_at_open_ = -1;              ///< the high watermark when opened
  int64_t next_ = 0;                      ///< the next offset to read
  bool caught_up_ = false;
};

}  // namespace sluice::fleet
