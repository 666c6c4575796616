#include "fleet/kafka_control_channel.h"

#include <array>

#include "common/logging.h"

namespace sluice::fleet {
namespace {

using namespace std::chrono_literals;

/// Properties of the pipeline's consumer that apply to these clients too (connection and
/// security); the rest are consumer tunables a producer would warn about.
bool shared_property(const std::string& key) {
  static constexpr std::array<std::string_view, 8> kPrefixes = {
      "security.", "ssl.", "sasl.", "socket.", "broker.", "client.dns", "api.version", "metadata."};
  for (const auto p : kPrefixes) {
    if (key.starts_with(p)) return true;
  }
  return false;
}

struct Delivery {
  bool done = false;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  auto* d = static_cast<Delivery*>(m->_private);
  if (d == nullptr) return;
  d->done = true;
  d->err = m->err;
}

void quiet_log(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  static thread_local RateLimiter limiter(std::chrono::seconds(30));
  uint64_t suppressed = 0;
  if (level > 4 || !limiter.allow(suppressed)) return;
  logger("fleet")->warn("{}: {} ({} similar suppressed)", fac, buf, suppressed);
}

rd_kafka_conf_t* base_conf(const ControlTopic& c, std::string& error) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const std::string& k, const std::string& v) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK &&
        error.empty()) {
      error = "kafka property " + k + ": " + err;
    }
  };
  for (const auto& [k, v] : c.properties) {
    if (shared_property(k)) set(k, v);
  }
  set("bootstrap.servers", c.brokers);
  set("client.id", c.client_id);
  rd_kafka_conf_set_log_cb(conf, quiet_log);
  return conf;
}

}  // namespace

KafkaControlChannel::~KafkaControlChannel() {
  if (creation_ != nullptr) rd_kafka_queue_destroy(creation_);
  if (consumer_ != nullptr) {
    rd_kafka_assign(consumer_, nullptr);
    rd_kafka_destroy(consumer_);
  }
  if (producer_ != nullptr) {
    rd_kafka_flush(producer_, 5000);
    rd_kafka_destroy(producer_);
  }
}

Result<std::unique_ptr<ControlChannel>> KafkaControlChannel::open(const ControlTopic& config) {
  std::unique_ptr<KafkaControlChannel> ch(new KafkaControlChannel());
  ch->topic_ = config.topic;
  char err[512];
  std::string error;

  rd_kafka_conf_t* pconf = base_conf(config, error);
  rd_kafka_conf_set(pconf, "enable.idempotence", "true", err, sizeof err);
  rd_kafka_conf_set(pconf, "linger.ms", "0", err, sizeof err);
  rd_kafka_conf_set(pconf, "message.timeout.ms", "15000", err, sizeof err);
  rd_kafka_conf_set_dr_msg_cb(pconf, on_delivery);
  if (!error.empty()) {
    rd_kafka_conf_destroy(pconf);
    return Status::error(error);
  }
  ch->producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof err);
  if (ch->producer_ == nullptr) return Status::error(std::string("fleet producer: ") + err);
  // Created (or checked) in the background, from the first poll: start-up does not wait for
  // a controller (the test broker has none and creates topics on the first write; every start
  // after the first finds it).

  rd_kafka_conf_t* cconf = base_conf(config, error);
  // An assignment of its own: it joins no group and commits nothing.
  rd_kafka_conf_set(cconf, "group.id", (config.client_id + "-reader").c_str(), err, sizeof err);
  rd_kafka_conf_set(cconf, "enable.auto.commit", "false", err, sizeof err);
  rd_kafka_conf_set(cconf, "enable.auto.offset.store", "false", err, sizeof err);
  rd_kafka_conf_set(cconf, "enable.partition.eof", "true", err, sizeof err);
  rd_kafka_conf_set(cconf, "fetch.wait.max.ms", "100", err, sizeof err);
  // Where the log starts when offset 0 is gone (records deleted): read everything there is.
  rd_kafka_conf_set(cconf, "auto.offset.reset", "earliest", err, sizeof err);
  ch->consumer_ = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, err, sizeof err);
  if (ch->consumer_ == nullptr) return Status::error(std::string("fleet consumer: ") + err);
  rd_kafka_poll_set_consumer(ch->consumer_);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  // From offset 0 rather than RD_KAFKA_OFFSET_BEGINNING: resolving BEGINNING costs a
  // ListOffsets round trip, which librdkafka retries only 500 ms later when the partition's
  // leader is not known yet — half a second of every start (the fleet's state, hence the write
  // lease, waits for this read). A compacted topic keeps offset 0 (Kafka refuses DeleteRecords
  // on it); one given a delete policy too may not, and auto.offset.reset then finds its start.
  rd_kafka_topic_partition_list_add(list, config.topic.c_str(), 0)->offset = 0;
  const auto e = rd_kafka_assign(ch->consumer_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(std::string("fleet consumer assign: ") + rd_kafka_err2str(e));
  }
  return std::unique_ptr<ControlChannel>(std::move(ch));
}

void KafkaControlChannel::inspect_topic() {
  if (inspected_) return;
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(producer_, 1, nullptr, &md, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
  inspected_ = true;
  brokers_ = md->broker_cnt;
  bool exists = false;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& t = md->topics[i];
    if (topic_ != t.topic || t.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    exists = true;
    if (t.partition_cnt > 0) replication_ = t.partitions[0].replica_cnt;
  }
  rd_kafka_metadata_destroy(md);
  const int want_rf = std::max(1, std::min(3, brokers_));
  char err[256];
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(producer_, RD_KAFKA_ADMIN_OP_ANY);
  rd_kafka_AdminOptions_set_request_timeout(options, 15000, err, sizeof err);
  creation_ = rd_kafka_queue_new(producer_);
  if (exists) {
    rd_kafka_ConfigResource_t* res =
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic_.c_str());
    rd_kafka_DescribeConfigs(producer_, &res, 1, options, creation_);
    rd_kafka_ConfigResource_destroy(res);
  } else {
    rd_kafka_NewTopic_t* topic =
        rd_kafka_NewTopic_new(topic_.c_str(), 1, want_rf, err, sizeof err);
    if (topic == nullptr) {
      logger("fleet")->warn("fleet topic {} not created: {}", topic_, err);
    } else {
      // Compacted: the latest record of each key is all anyone needs; rolled often, so it is.
      rd_kafka_NewTopic_set_config(topic, "cleanup.policy", "compact");
      rd_kafka_NewTopic_set_config(topic, "segment.ms", "600000");
      rd_kafka_NewTopic_set_config(topic, "min.cleanable.dirty.ratio", "0.1");
      rd_kafka_NewTopic_set_config(topic, "min.insync.replicas",
                                   std::to_string(std::min(2, want_rf)).c_str());
      rd_kafka_CreateTopics(producer_, &topic, 1, options, creation_);
      rd_kafka_NewTopic_destroy(topic);
    }
  }
  rd_kafka_AdminOptions_destroy(options);
}

void KafkaControlChannel::judge(int replication, const std::map<std::string, std::string>& configs) {
  const int want_rf = std::max(1, std::min(3, brokers_));
  std::vector<std::string> w;
  if (replication > 0 && replication < want_rf) {
    w.push_back("fleet topic " + topic_ + " has replication factor " + std::to_string(replication) +
                " on a cluster of " + std::to_string(brokers_) +
                " brokers: losing one broker can lose the fleet's pause; recreate it with " +
                std::to_string(want_rf) + " (docs/security.md)");
  }
  const auto isr = configs.find("min.insync.replicas");
  if (want_rf > 1 && isr != configs.end() && std::atoi(isr->second.c_str()) < 2) {
    w.push_back("fleet topic " + topic_ + " has min.insync.replicas " + isr->second +
                ": a pause acknowledged by one broker alone can be lost; set it to 2");
  }
  const auto policy = configs.find("cleanup.policy");
  if (policy != configs.end() && policy->second != "compact") {
    w.push_back("fleet topic " + topic_ + " has cleanup.policy " + policy->second +
                ": its records expire, the fleet's target and what spools hold with them; set "
                "it to compact");
  }
  for (const auto& line : w) logger("fleet")->warn("{}", line);
  warnings_ = std::move(w);
}

void KafkaControlChannel::check_topic_creation() {
  inspect_topic();
  if (creation_ == nullptr) return;
  rd_kafka_event_t* event = rd_kafka_queue_poll(creation_, 0);
  if (event == nullptr) return;
  std::string problem;
  if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    problem = rd_kafka_event_error_string(event);
  } else if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT) {
    size_t n = 0;
    const auto* resources = rd_kafka_DescribeConfigs_result_resources(
        rd_kafka_event_DescribeConfigs_result(event), &n);
    std::map<std::string, std::string> configs;
    for (size_t i = 0; i < n; ++i) {
      size_t count = 0;
      const auto* entries = rd_kafka_ConfigResource_configs(resources[i], &count);
      for (size_t k = 0; k < count; ++k) {
        const char* value = rd_kafka_ConfigEntry_value(entries[k]);
        configs[rd_kafka_ConfigEntry_name(entries[k])] = value != nullptr ? value : "";
      }
    }
    judge(replication_, configs);
  } else {
    size_t n = 0;
    const auto* results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
    for (size_t i = 0; i < n; ++i) {
      const auto e = rd_kafka_topic_result_error(results[i]);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        logger("fleet")->info("fleet topic {} created (replication {}, compacted)", topic_,
                              std::max(1, std::min(3, brokers_)));
      } else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        problem = rd_kafka_topic_result_error_string(results[i]);
      }
    }
  }
  rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(creation_);
  creation_ = nullptr;
  if (!problem.empty()) {
    // A broker that creates topics by itself (or the test broker) takes the first write; one
    // that does not will say so then, with the topic's name.
    logger("fleet")->info("fleet topic {} not created or described ({}); relying on the first "
                          "write",
                          topic_, problem);
  }
}

Status KafkaControlChannel::publish(const std::string& key,
                                    const std::optional<std::string>& value) {
  Delivery d;
  void* payload = value ? const_cast<char*>(value->data()) : nullptr;  // null: a tombstone
  const size_t size = value ? value->size() : 0;
  void* key_bytes = const_cast<char*>(key.data());
  const auto e = rd_kafka_producev(
      producer_, RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_PARTITION(0),
      RD_KAFKA_V_KEY(key_bytes, key.size()), RD_KAFKA_V_VALUE(payload, size),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error("fleet topic " + topic_ + ": " + rd_kafka_err2str(e));
  }
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!d.done && std::chrono::steady_clock::now() < deadline) rd_kafka_poll(producer_, 50);
  if (!d.done) {
    // Still queued: wait for it to end (delivered or timed out), so `d` outlives it.
    rd_kafka_flush(producer_, 20000);
    if (!d.done) return Status::error("fleet topic " + topic_ + ": no answer from the brokers");
  }
  if (d.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error("fleet topic " + topic_ + ": " + rd_kafka_err2str(d.err));
  }
  return Status::ok();
}

Status KafkaControlChannel::send(const std::string& key, const std::string& value) {
  // Not waited for: the fleet learns it arrived by reading it back. Its delivery report (no
  // opaque) is served, and dropped, by the next publish or poll.
  rd_kafka_poll(producer_, 0);
  const auto e = rd_kafka_producev(
      producer_, RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_PARTITION(0),
      RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(nullptr), RD_KAFKA_V_END);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error("fleet topic " + topic_ + ": " + rd_kafka_err2str(e));
  }
  return Status::ok();
}

Status KafkaControlChannel::poll(std::chrono::milliseconds timeout,
                                 std::vector<ControlRecord>& out) {
  check_topic_creation();
  if (end_at_open_ < 0) {
    int64_t low = -1, high = -1;
    if (rd_kafka_query_watermark_offsets(consumer_, topic_.c_str(), 0, &low, &high, 5000) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      end_at_open_ = high;
      if (high <= low) caught_up_ = true;
    }
  }
  int wait_ms = static_cast<int>(timeout.count());
  Status result;
  for (int n = 0; n < 1000; ++n) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, wait_ms);
    if (m == nullptr) break;
    wait_ms = 0;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (end_at_open_ >= 0) caught_up_ = true;
    } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      result = Status::error("fleet topic " + topic_ + ": " + rd_kafka_message_errstr(m));
    } else {
      ControlRecord r;
      r.offset = m->offset;
      if (m->key != nullptr) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload != nullptr) {
        r.value.emplace(static_cast<const char*>(m->payload), m->len);
      }
      out.push_back(std::move(r));
      next_ = m->offset + 1;
      if (end_at_open_ >= 0 && next_ >= end_at_open_) caught_up_ = true;
    }
    rd_kafka_message_destroy(m);
  }
  return result;
}

}  // namespace sluice::fleet
