#include "ingest/kafka_source.h"

#include <cstring>

#include "common/logging.h"
#include "ingest/kafka_common.h"

namespace sluice::ingest {
namespace {

std::vector<TopicPartition> to_vector(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartition> out;
  if (list == nullptr) return out;
  out.reserve(static_cast<size_t>(list->cnt));
  for (int i = 0; i < list->cnt; ++i) {
    out.push_back({list->elems[i].topic, list->elems[i].partition, list->elems[i].offset});
  }
  return out;
}

rd_kafka_topic_partition_list_t* to_list(const std::vector<TopicPartition>& partitions) {
  auto* list = rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  for (const auto& p : partitions) {
    rd_kafka_topic_partition_list_add(list, p.topic.c_str(), p.partition)->offset = p.offset;
  }
  return list;
}

}  // namespace

KafkaSource::~KafkaSource() {
  if (rk_ == nullptr) return;
  close();
  if (!rebalanced_) {
    // librdkafka before 2.3 (Debian 12 has 2.0.2) aborts when a cooperative-sticky consumer
    // that joined but has not yet been given its first assignment is destroyed
    // (confluentinc/librdkafka#4312). A stop in that window (SIGTERM during the first
    // rebalance) would end in an abort; the closed handle is kept, quiet, until the process
    // ends instead. Reachable from a global, so leak checkers do not count it.
    static std::vector<rd_kafka_t*> kept;
    rd_kafka_set_log_level(rk_, 0);
    kept.push_back(rk_);
    return;
  }
  rd_kafka_destroy(rk_);
}

Result<std::unique_ptr<EventSource>> KafkaSource::create(const KafkaConfig& config,
                                                         SourceHandler handler) {
  std::unique_ptr<KafkaSource> source(new KafkaSource());
  source->handler_ = std::move(handler);
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const std::string& key, const std::string& value) {
    return kafka_set(conf, key, value);
  };
  // Defaults Sluice relies on; kafka.properties may override these tunables. The settings that
  // carry Sluice's promises (commits, reset policy, group identity) are refused there by the
  // config loader and set below.
  // librdkafka's own prefetch bounds are kept (queued.max.messages.kbytes 64 MiB, fetch.max.bytes
  // 50 MiB): with 8 partitions, 32 MiB cost 40 % of the rate on the test broker and a fifth on
  // Kafka, 8 MiB three quarters and a third (bench/README.md, "Memory").
  const std::pair<const char*, const char*> defaults[] = {
      {"fetch.message.max.bytes", "1048576"},
      {"session.timeout.ms", "30000"},
      // Incremental rebalances: partitions that stay keep flowing while others move.
      {"partition.assignment.strategy", "cooperative-sticky"},
  };
  for (const auto& [k, v] : defaults) {
    if (auto st = set(k, v); !st) {
      rd_kafka_conf_destroy(conf);
      return st;
    }
  }
  for (const auto& [k, v] : config.properties) {
    if (auto st = set(k, v); !st) {
      rd_kafka_conf_destroy(conf);
      return st;
    }
  }
  const std::string instance =
      config.instance_id.empty() ? default_instance_id() : config.instance_id;
  for (const auto& [k, v] : std::initializer_list<std::pair<std::string, std::string>>{
           {"bootstrap.servers", config.brokers},
           {"group.id", config.group_id},
           {"group.instance.id", instance},
           // Never skip: a partition without an offset starts at the oldest event Kafka has.
           {"auto.offset.reset", "earliest"},
           {"enable.auto.commit", "false"},
           {"enable.auto.offset.store", "false"},
           {"enable.partition.eof", "false"},
           {"client.id", "sluice-" + instance}}) {
    if (auto st = set(k, v); !st) {
      rd_kafka_conf_destroy(conf);
      return st;
    }
  }
  rd_kafka_conf_set_log_cb(conf, kafka_log);
  rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
  rd_kafka_conf_set_offset_commit_cb(conf, commit_cb);
  rd_kafka_conf_set_opaque(conf, source.get());
  source->rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (source->rk_ == nullptr) return Status::error(std::string("kafka consumer: ") + err);
  rd_kafka_poll_set_consumer(source->rk_);

  KafkaListPtr topics(rd_kafka_topic_partition_list_new(static_cast<int>(config.topics.size())));
  for (const auto& t : config.topics) {
    rd_kafka_topic_partition_list_add(topics.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  }
  if (auto e = rd_kafka_subscribe(source->rk_, topics.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(std::string("kafka subscribe: ") + rd_kafka_err2str(e));
  }
  return std::unique_ptr<EventSource>(std::move(source));
}

void KafkaSource::rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* self = static_cast<KafkaSource*>(opaque);
  self->rebalanced_ = true;
  const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  auto log = logger("kafka");
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    auto assigned = to_vector(partitions);
    if (self->handler_.on_assign) self->handler_.on_assign(assigned);
    KafkaListPtr list(to_list(assigned));
    if (cooperative) {
      if (rd_kafka_error_t* error = rd_kafka_incremental_assign(rk, list.get())) {
        log->error("assign failed: {}", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
      }
    } else if (auto e = rd_kafka_assign(rk, list.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log->error("assign failed: {}", rd_kafka_err2str(e));
    }
    return;
  }
  if (rd_kafka_assignment_lost(rk)) {
    // The group moved on without us (a session timeout): another member may own these already.
    // Whatever we still write is fenced by the sluice_offsets compare-and-set.
    log->warn("{} partition(s) lost to the group (session timeout); giving them up",
              partitions != nullptr ? partitions->cnt : 0);
  }
  if (self->handler_.on_revoke) self->handler_.on_revoke(to_vector(partitions));
  if (cooperative) {
    if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk, partitions)) {
      log->error("unassign failed: {}", rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    }
  } else {
    rd_kafka_assign(rk, nullptr);
  }
}

void KafkaSource::commit_cb(rd_kafka_t* /*rk*/, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t* offsets, void* opaque) {
  auto* self = static_cast<KafkaSource*>(opaque);
  if (!self->handler_.on_commit || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
  std::vector<TopicPartition> done, failed;
  std::string why = err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(err) : "";
  for (int i = 0; offsets != nullptr && i < offsets->cnt; ++i) {
    const auto& e = offsets->elems[i];
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && e.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      done.push_back({e.topic, e.partition, e.offset});
    } else {
      failed.push_back({e.topic, e.partition, e.offset});
      if (why.empty()) why = rd_kafka_err2str(e.err);
    }
  }
  if (!done.empty()) self->handler_.on_commit(done, Status::ok());
  if (!failed.empty()) self->handler_.on_commit(failed, Status::error("kafka commit: " + why));
}

void KafkaSource::release_held() {
  for (auto* m : held_) rd_kafka_message_destroy(m);
  held_.clear();
}

Status KafkaSource::poll(std::chrono::milliseconds timeout, size_t max,
                         std::vector<SourceMessage>& out) {
  release_held();
  out.clear();
  if (closed_) return Status::ok();
  int wait_ms = static_cast<int>(timeout.count());
  while (out.size() < max) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, wait_ms);
    if (m == nullptr) break;
    wait_ms = 0;  // only the first message is waited for
    held_.push_back(m);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.push_back({rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                     rd_kafka_message_timestamp(m, nullptr),
                     std::string_view(static_cast<const char*>(m->payload), m->len)});
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
      char reason[512] = {};
      const bool fenced =
          rd_kafka_fatal_error(rk_, reason, sizeof reason) == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
      return Status::error(std::string("kafka consumer: fatal error: ") + reason,
                           fenced ? ErrorKind::kFenced : ErrorKind::kError);
    }
    uint64_t suppressed = 0;
    if (error_limiter_.allow(suppressed)) {
      logger("kafka")->error("consumer error: {} ({} similar suppressed)",
                             rd_kafka_message_errstr(m), suppressed);
    }
  }
  return Status::ok();
}

Status KafkaSource::committed(std::vector<TopicPartition>& partitions,
                              std::chrono::milliseconds timeout) {
  KafkaListPtr list(to_list(partitions));
  if (auto e = rd_kafka_committed(rk_, list.get(), static_cast<int>(timeout.count()));
      e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(std::string("kafka committed offsets: ") + rd_kafka_err2str(e));
  }
  partitions = to_vector(list.get());
  return Status::ok();
}

Status KafkaSource::commit(const std::vector<TopicPartition>& partitions, bool async) {
  if (partitions.empty()) return Status::ok();
  KafkaListPtr list(to_list(partitions));
  if (async) {
    const auto e = rd_kafka_commit(rk_, list.get(), 1);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::error(std::string("kafka commit: ") + rd_kafka_err2str(e));
    }
    return Status::ok();
  }
  // Waited for on a queue of its own, for a bounded time (rd_kafka_commit would wait as long
  // as the coordinator takes: a minute and more when it is out of reach).
  constexpr int kWaitMs = 5000;
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk_);
  auto e = rd_kafka_commit_queue(rk_, list.get(), queue, nullptr, nullptr);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_event_t* done = rd_kafka_queue_poll(queue, kWaitMs);
    if (done == nullptr) {
      e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    } else {
      e = rd_kafka_event_error(done);
      rd_kafka_event_destroy(done);
    }
  }
  rd_kafka_queue_destroy(queue);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(std::string("kafka commit: ") + rd_kafka_err2str(e));
  }
  return Status::ok();
}

namespace {

/// The first per-partition error of a list a call filled in, as a Status.
Status first_partition_error(const char* what, const rd_kafka_topic_partition_list_t* list) {
  for (int i = 0; i < list->cnt; ++i) {
    if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::error(std::string(what) + " " + list->elems[i].topic + "/" +
                           std::to_string(list->elems[i].partition) + ": " +
                           rd_kafka_err2str(list->elems[i].err));
    }
  }
  return Status::ok();
}

/// Pauses or resumes fetching `partitions` (`call`: rd_kafka_pause_partitions or
/// rd_kafka_resume_partitions), the call's error or the first partition's.
Status fetching(rd_kafka_t* rk, const char* what, const std::vector<TopicPartition>& partitions,
                rd_kafka_resp_err_t (*call)(rd_kafka_t*, rd_kafka_topic_partition_list_t*)) {
  if (partitions.empty()) return Status::ok();
  KafkaListPtr list(to_list(partitions));
  if (auto e = call(rk, list.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(std::string(what) + ": " + rd_kafka_err2str(e));
  }
  return first_partition_error(what, list.get());
}

}  // namespace

Status KafkaSource::pause(const std::vector<TopicPartition>& partitions) {
  return fetching(rk_, "kafka pause", partitions, rd_kafka_pause_partitions);
}

Status KafkaSource::seek(const std::vector<TopicPartition>& partitions) {
  if (partitions.empty()) return Status::ok();
  KafkaListPtr list(to_list(partitions));
  if (rd_kafka_error_t* error = rd_kafka_seek_partitions(rk_, list.get(), 5000)) {
    Status st = Status::error(std::string("kafka seek: ") + rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    return st;
  }
  return first_partition_error("kafka seek", list.get());
}

Status KafkaSource::resume(const std::vector<TopicPartition>& partitions) {
  return fetching(rk_, "kafka resume", partitions, rd_kafka_resume_partitions);
}

Status KafkaSource::watermarks(const std::string& topic, int32_t partition, int64_t& low,
                               int64_t& high, std::chrono::milliseconds timeout) {
  const auto e = rd_kafka_query_watermark_offsets(rk_, topic.c_str(), partition, &low, &high,
                                                  static_cast<int>(timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::error(std::string("kafka watermarks: ") + rd_kafka_err2str(e));
  }
  return Status::ok();
}

int64_t KafkaSource::cached_high_watermark(const std::string& topic, int32_t partition) {
  int64_t low = -1, high = -1;
  if (rd_kafka_get_watermark_offsets(rk_, topic.c_str(), partition, &low, &high) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return -1;
  }
  return high;
}

int64_t KafkaSource::cached_low_watermark(const std::string& topic, int32_t partition) {
  int64_t low = -1, high = -1;
  if (rd_kafka_get_watermark_offsets(rk_, topic.c_str(), partition, &low, &high) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return -1;
  }
  return low >= 0 ? low : -1;
}

void KafkaSource::close() {
  if (closed_ || rk_ == nullptr) return;
  closed_ = true;
  release_held();
  if (auto e = rd_kafka_consumer_close(rk_); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    logger("kafka")->warn("consumer close: {}", rd_kafka_err2str(e));
  }
}

}  // namespace sluice::ingest
