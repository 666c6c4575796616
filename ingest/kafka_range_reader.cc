#include "ingest/kafka_range_reader.h"

#include <algorithm>

#include "ingest/kafka_common.h"

namespace sluice::ingest {

KafkaRangeReader::~KafkaRangeReader() {
  release_held();
  if (rk_ != nullptr) {
    // Never joined a group and never committed: closing has nothing to tell the brokers.
    rd_kafka_destroy(rk_);
  }
}

Result<std::unique_ptr<KafkaRangeReader>> KafkaRangeReader::create(const KafkaConfig& config,
                                                                  const std::string& group) {
  std::unique_ptr<KafkaRangeReader> reader(new KafkaRangeReader());
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const std::string& key, const std::string& value) {
    return kafka_set(conf, key, value);
  };
  // The service's own properties (TLS, SASL, tuning) apply; the group's do not matter here.
  std::vector<std::pair<std::string, std::string>> settings = {
      {"queued.max.messages.kbytes", "32768"}, {"fetch.message.max.bytes", "1048576"}};
  for (const auto& [k, v] : config.properties) settings.emplace_back(k, v);
  const std::string instance =
      config.instance_id.empty() ? default_instance_id() : config.instance_id;
  for (const auto& kv : std::initializer_list<std::pair<std::string, std::string>>{
           {"bootstrap.servers", config.brokers},
           // Required by librdkafka to assign; never sent (no join, no offset fetch or commit).
           {"group.id", group.empty() ? "sluice-replay" : group},
           {"enable.auto.commit", "false"},
           {"enable.auto.offset.store", "false"},
           // The end of a partition's log ends its range when the last offsets hold no event.
           {"enable.partition.eof", "true"},
           // Offsets that expire under the reader: go on at the log start, and report the jump.
           {"auto.offset.reset", "earliest"},
           {"client.id", "sluice-replay-" + instance}}) {
    settings.push_back(kv);
  }
  for (const auto& [k, v] : settings) {
    if (auto st = set(k, v); !st) {
      rd_kafka_conf_destroy(conf);
      return st;
    }
  }
  rd_kafka_conf_set_log_cb(conf, kafka_log);
  reader->rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (reader->rk_ == nullptr) return Status::error(std::string("kafka consumer: ") + err);
  rd_kafka_poll_set_consumer(reader->rk_);
  return reader;
}

Status KafkaRangeReader::committed(const std::string& topic, const std::vector<int32_t>& partitions,
                                   std::vector<int64_t>& out, std::chrono::milliseconds timeout) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  for (const auto p : partitions) rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  const auto e = rd_kafka_committed(rk_, list, static_cast<int>(timeout.count()));
  out.assign(partitions.size(), -1);
  for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < list->cnt; ++i) {
    out[static_cast<size_t>(i)] = list->elems[i].offset >= 0 ? list->elems[i].offset : -1;
  }
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(std::string("the group's committed offsets: ") + rd_kafka_err2str(e));
  }
  return Status::ok();
}

int KafkaRangeReader::group_members(const std::string& group, std::chrono::milliseconds timeout,
                                    std::string& error) {
  const rd_kafka_group_list* list = nullptr;
  const auto e =
      rd_kafka_list_groups(rk_, group.c_str(), &list, static_cast<int>(timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    error = std::string("describing group ") + group + ": " + rd_kafka_err2str(e);
    return -1;
  }
  int members = 0;
  for (int i = 0; i < list->group_cnt; ++i) {
    if (group == list->groups[i].group) members += list->groups[i].member_cnt;
  }
  rd_kafka_group_list_destroy(list);
  return members;
}

Status KafkaRangeReader::commit(const std::string& topic,
                                const std::map<int32_t, int64_t>& offsets) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
  for (const auto& [p, offset] : offsets) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = offset;
  }
  auto e = rd_kafka_commit(rk_, list, 0);
  for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < list->cnt; ++i) e = list->elems[i].err;
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(std::string("committing the group's offsets: ") + rd_kafka_err2str(e) +
                         (e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
                                  e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
                                  e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS
                              ? " (the group has members: an instance still runs)"
                              : ""));
  }
  return Status::ok();
}

Status KafkaRangeReader::cluster(Cluster& out, std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  const auto e = rd_kafka_metadata(rk_, 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(std::string("kafka metadata: ") + rd_kafka_err2str(e));
  }
  out = {};
  for (int i = 0; i < md->broker_cnt; ++i) {
    out.brokers.push_back(std::to_string(md->brokers[i].id) + " " + md->brokers[i].host + ":" +
                          std::to_string(md->brokers[i].port));
  }
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& t = md->topics[i];
    if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    out.topics[t.topic] = {t.partition_cnt, t.partition_cnt > 0 ? t.partitions[0].replica_cnt : 0};
  }
  rd_kafka_metadata_destroy(md);
  return Status::ok();
}

Status KafkaRangeReader::partitions(const std::string& topic, std::vector<int32_t>& out,
                                    std::chrono::milliseconds timeout, bool& unknown_topic) {
  out.clear();
  unknown_topic = false;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
  if (rkt == nullptr) return Status::error("kafka topic " + topic + ": cannot be used");
  const rd_kafka_metadata_t* md = nullptr;
  const auto e = rd_kafka_metadata(rk_, 0, rkt, &md, static_cast<int>(timeout.count()));
  rd_kafka_topic_destroy(rkt);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error("kafka metadata of " + topic + ": " + rd_kafka_err2str(e));
  }
  Status st = Status::ok();
  if (md->topic_cnt < 1 || md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
    unknown_topic = true;
    st = Status::error("Kafka has no topic " + topic);
  } else if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    st = Status::error("kafka topic " + topic + ": " + rd_kafka_err2str(md->topics[0].err));
  } else {
    for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
      out.push_back(md->topics[0].partitions[i].id);
    }
    std::sort(out.begin(), out.end());
  }
  rd_kafka_metadata_destroy(md);
  return st;
}

Status KafkaRangeReader::watermarks(const std::string& topic, int32_t partition, int64_t& low,
                                    int64_t& high, std::chrono::milliseconds timeout) {
  const auto e = rd_kafka_query_watermark_offsets(rk_, topic.c_str(), partition, &low, &high,
                                                  static_cast<int>(timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error("kafka watermarks of " + topic + "/" + std::to_string(partition) + ": " +
                         rd_kafka_err2str(e));
  }
  return Status::ok();
}

Status KafkaRangeReader::offsets_for_times(const std::string& topic,
                                           const std::vector<int32_t>& partitions, int64_t epoch_ms,
                                           std::vector<int64_t>& out,
                                           std::chrono::milliseconds timeout) {
  KafkaListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const int32_t p : partitions) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = epoch_ms;
  }
  const auto e = rd_kafka_offsets_for_times(rk_, list.get(), static_cast<int>(timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error("kafka offsets for times of " + topic + ": " + rd_kafka_err2str(e));
  }
  out.assign(partitions.size(), -1);
  for (int i = 0; i < list->cnt; ++i) {
    const auto& el = list->elems[i];
    if (el.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::error("kafka offsets for times of " + topic + "/" +
                           std::to_string(el.partition) + ": " + rd_kafka_err2str(el.err));
    }
    const auto at = std::find(partitions.begin(), partitions.end(), el.partition);
    // RD_KAFKA_OFFSET_END (-1): no event at or after that time.
    if (at != partitions.end()) out[static_cast<size_t>(at - partitions.begin())] = el.offset;
  }
  return Status::ok();
}

Status KafkaRangeReader::start(const std::vector<PartitionRange>& ranges) {
  KafkaListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(ranges.size())));
  for (const auto& r : ranges) {
    if (r.events() == 0) continue;
    readings_[{r.topic, r.partition}] = Reading{r.topic, r.partition, r.from, r.to, false};
    rd_kafka_topic_partition_list_add(list.get(), r.topic.c_str(), r.partition)->offset = r.from;
  }
  remaining_ = readings_.size();
  if (remaining_ == 0) return Status::ok();
  if (auto e = rd_kafka_assign(rk_, list.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(std::string("kafka assign: ") + rd_kafka_err2str(e));
  }
  return Status::ok();
}

void KafkaRangeReader::release_held() {
  for (auto* m : held_) rd_kafka_message_destroy(m);
  held_.clear();
}

void KafkaRangeReader::finish(Reading& r) {
  if (r.done) return;
  r.done = true;
  --remaining_;
  // Stop fetching it: what comes after the range is not wanted.
  KafkaListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), r.topic.c_str(), r.partition);
  (void)rd_kafka_pause_partitions(rk_, list.get());  // only saves fetching; ignored if it fails
}

void KafkaRangeReader::check_jump(Reading& r, int64_t offset) {
  const int64_t upto = std::min(offset, r.to);
  if (upto <= r.next) return;
  int64_t low = -1, high = -1;
  if (!watermarks(r.topic, r.partition, low, high, std::chrono::seconds(10))) {
    // Cannot tell: say so rather than claim the offsets held nothing.
    logger("replay")->warn(
        "{}/{}: offsets [{}, {}) were not delivered and the log start "
        "could not be asked; counted as expired",
        r.topic, r.partition, r.next, upto);
    expired_.push_back({r.topic, r.partition, r.next, upto});
    return;
  }
  if (low > r.next) expired_.push_back({r.topic, r.partition, r.next, std::min(low, upto)});
}

Status KafkaRangeReader::read(std::chrono::milliseconds timeout, size_t max,
                              std::vector<SourceMessage>& out) {
  release_held();
  out.clear();
  int wait_ms = static_cast<int>(timeout.count());
  while (out.size() < max && remaining_ > 0) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, wait_ms);
    if (m == nullptr) break;
    wait_ms = 0;
    held_.push_back(m);
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (m->err == RD_KAFKA_RESP_ERR__FATAL || m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
          m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
          m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
        return Status::error(std::string("kafka consumer: ") + rd_kafka_message_errstr(m));
      }
      uint64_t suppressed = 0;
      if (error_limiter_.allow(suppressed)) {
        logger("kafka")->warn("consumer error: {} ({} similar suppressed)",
                              rd_kafka_message_errstr(m), suppressed);
      }
      continue;
    }
    if (m->rkt == nullptr) continue;
    const auto it = readings_.find({rd_kafka_topic_name(m->rkt), m->partition});
    if (it == readings_.end() || it->second.done) continue;
    Reading& r = it->second;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // The log ends at m->offset: whatever of the range lies below it and was not delivered
      // held no event, or expired.
      if (m->offset >= r.to) {
        check_jump(r, r.to);
        finish(r);
      }
      continue;
    }
    if (m->offset < r.next) continue;  // fetched again after a reset: already handed out
    if (m->offset > r.next) check_jump(r, m->offset);
    if (m->offset >= r.to) {
      finish(r);
      continue;
    }
    r.next = m->offset + 1;
    out.push_back({rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                   rd_kafka_message_timestamp(m, nullptr),
                   std::string_view(static_cast<const char*>(m->payload), m->len)});
    if (r.next >= r.to) finish(r);
  }
  return Status::ok();
}

void KafkaRangeReader::take_expired(std::vector<ExpiredRange>& out) {
  for (auto& e : expired_) out.push_back(std::move(e));
  expired_.clear();
}

}  // namespace sluice::ingest
