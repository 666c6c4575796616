#include "testing/kafka_cluster.h"

#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

/// Runs an admin request through `rk`, waits for its result event and checks it.
template <typename Send, typename Check>
void admin_call(rd_kafka_t* rk, rd_kafka_event_type_t type, Send&& send, Check&& check) {
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
  char err[256];
  rd_kafka_AdminOptions_set_operation_timeout(options, 30000, err, sizeof err);
  rd_kafka_AdminOptions_set_request_timeout(options, 30000, err, sizeof err);
  send(options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 60000);
  std::string failure;
  if (event == nullptr) {
    failure = "no answer";
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure = rd_kafka_event_error_string(event);
  } else if (rd_kafka_event_type(event) != type) {
    failure = "unexpected answer";
  } else {
    failure = check(event);
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  if (!failure.empty()) throw std::runtime_error("kafka admin: " + failure);
}

std::string topic_results(const rd_kafka_topic_result_t* const* results, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const auto e = rd_kafka_topic_result_error(results[i]);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      return std::string(rd_kafka_topic_result_name(results[i])) + ": " +
             rd_kafka_topic_result_error_string(results[i]);
    }
  }
  return "";
}

}  // namespace

KafkaCluster::KafkaCluster(int nodes) : nodes_(nodes) {
  // A cluster CTest started for the whole binary (fixture kafka_cluster), or one of our own.
  if (const char* shared = std::getenv("SLUICE_KAFKA_DIR"); shared != nullptr) {
    path_ = shared;
    owned_ = false;
  } else {
    path_ = dir_.file("kafka");
  }
  std::string out;
  const int code =
      run_command({source_dir() + "/scripts/kafka", "start", path_, std::to_string(nodes)}, out);
  const auto at = out.find("bootstrap=");
  if (code != 0 || at == std::string::npos) {
    throw std::runtime_error("scripts/kafka start failed: " + out);
  }
  bootstrap_ = out.substr(at + 10, out.find('\n', at) - at - 10);
}

KafkaCluster::~KafkaCluster() {
  if (admin_ != nullptr) rd_kafka_destroy(admin_);
  if (!owned_) return;
  std::string out;
  run_command({source_dir() + "/scripts/kafka", "stop", path_}, out);
}

KafkaCluster& KafkaCluster::shared(int nodes) {
  static std::unique_ptr<KafkaCluster> cluster;
  if (!cluster) cluster = std::make_unique<KafkaCluster>(nodes);
  return *cluster;
}

rd_kafka_t* KafkaCluster::admin() {
  if (admin_ != nullptr) return admin_;
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "log_level", "2", err, sizeof err);
  rd_kafka_conf_set(conf, "topic.metadata.refresh.interval.ms", "1000", err, sizeof err);
  admin_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (admin_ == nullptr) throw std::runtime_error(std::string("kafka admin client: ") + err);
  return admin_;
}

void KafkaCluster::script(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {source_dir() + "/scripts/kafka"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  if (run_command(argv, out) != 0) throw std::runtime_error("scripts/kafka failed: " + out);
}

void KafkaCluster::create_topic(const std::string& name, int partitions, int replication,
                                const std::map<std::string, std::string>& configs) {
  if (replication <= 0) replication = std::min(3, nodes_);
  char err[256];
  rd_kafka_NewTopic_t* topic =
      rd_kafka_NewTopic_new(name.c_str(), partitions, replication, err, sizeof err);
  if (topic == nullptr) throw std::runtime_error(std::string("kafka topic: ") + err);
  for (const auto& [k, v] : configs) rd_kafka_NewTopic_set_config(topic, k.c_str(), v.c_str());
  admin_call(
      admin(), RD_KAFKA_EVENT_CREATETOPICS_RESULT,
      [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_CreateTopics(admin(), &topic, 1, options, queue);
      },
      [](rd_kafka_event_t* event) {
        size_t n = 0;
        const auto* results =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
        return topic_results(results, n);
      });
  rd_kafka_NewTopic_destroy(topic);
  // Wait until every partition has a leader, so the first produce does not race the election.
  for (int attempt = 0; attempt < 200; ++attempt) {
    bool ready = true;
    for (int32_t p = 0; p < partitions && ready; ++p) ready = leader(name, p) > 0;
    if (ready) return;
    std::this_thread::sleep_for(100ms);
  }
  throw std::runtime_error("kafka topic " + name + ": no leaders after 20 s");
}

void KafkaCluster::add_partitions(const std::string& name, int total) {
  char err[256];
  rd_kafka_NewPartitions_t* parts =
      rd_kafka_NewPartitions_new(name.c_str(), static_cast<size_t>(total), err, sizeof err);
  admin_call(
      admin(), RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT,
      [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_CreatePartitions(admin(), &parts, 1, options, queue);
      },
      [](rd_kafka_event_t* event) {
        size_t n = 0;
        const auto* results = rd_kafka_CreatePartitions_result_topics(
            rd_kafka_event_CreatePartitions_result(event), &n);
        return topic_results(results, n);
      });
  rd_kafka_NewPartitions_destroy(parts);
}

void KafkaCluster::delete_records(const std::string& topic, int32_t partition, int64_t offset) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = offset;
  rd_kafka_DeleteRecords_t* request = rd_kafka_DeleteRecords_new(list);
  admin_call(
      admin(), RD_KAFKA_EVENT_DELETERECORDS_RESULT,
      [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_DeleteRecords(admin(), &request, 1, options, queue);
      },
      [](rd_kafka_event_t* event) -> std::string {
        const auto* offsets =
            rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(event));
        for (int i = 0; offsets != nullptr && i < offsets->cnt; ++i) {
          if (offsets->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            return rd_kafka_err2str(offsets->elems[i].err);
          }
        }
        return "";
      });
  rd_kafka_DeleteRecords_destroy(request);
  rd_kafka_topic_partition_list_destroy(list);
}

std::pair<int64_t, int64_t> KafkaCluster::watermarks(const std::string& topic, int32_t partition) {
  int64_t low = -1, high = -1;
  // Right after a broker comes back, leadership may still be moving: ask again for a while.
  rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
  for (int attempt = 0; attempt < 60; ++attempt) {
    e = rd_kafka_query_watermark_offsets(admin(), topic.c_str(), partition, &low, &high, 10000);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return {low, high};
    std::this_thread::sleep_for(500ms);
  }
  throw std::runtime_error(std::string("kafka watermarks: ") + rd_kafka_err2str(e));
}

int KafkaCluster::leader(const std::string& topic, int32_t partition) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(admin(), topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  int leader = -1;
  if (rd_kafka_metadata(admin(), 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int t = 0; t < md->topic_cnt; ++t) {
      for (int p = 0; p < md->topics[t].partition_cnt; ++p) {
        const auto& mp = md->topics[t].partitions[p];
        if (mp.id == partition && mp.err == RD_KAFKA_RESP_ERR_NO_ERROR) leader = mp.leader;
      }
    }
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_topic_destroy(rkt);
  return leader;
}

void KafkaCluster::kill_node(int node) { script({"kill", path_, std::to_string(node)}); }

void KafkaCluster::start_node(int node) { script({"start-node", path_, std::to_string(node)}); }

int KafkaCluster::replication(const std::string& topic) {
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(admin(), 1, nullptr, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
  int rf = -1;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (topic == md->topics[i].topic && md->topics[i].partition_cnt > 0) {
      rf = md->topics[i].partitions[0].replica_cnt;
    }
  }
  rd_kafka_metadata_destroy(md);
  return rf;
}

std::string KafkaCluster::topic_config(const std::string& topic, const std::string& key) {
  std::string value;
  rd_kafka_ConfigResource_t* res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  admin_call(
      admin(), RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
      [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_DescribeConfigs(admin(), &res, 1, options, queue);
      },
      [&](rd_kafka_event_t* event) {
        size_t n = 0;
        const auto* resources = rd_kafka_DescribeConfigs_result_resources(
            rd_kafka_event_DescribeConfigs_result(event), &n);
        for (size_t i = 0; i < n; ++i) {
          size_t count = 0;
          const auto* entries = rd_kafka_ConfigResource_configs(resources[i], &count);
          for (size_t k = 0; k < count; ++k) {
            const char* v = rd_kafka_ConfigEntry_value(entries[k]);
            if (key == rd_kafka_ConfigEntry_name(entries[k]) && v != nullptr) value = v;
          }
        }
        return std::string();
      });
  rd_kafka_ConfigResource_destroy(res);
  return value;
}

std::vector<KafkaCluster::Route> KafkaCluster::routes() {
  std::string out;
  if (run_command({source_dir() + "/scripts/kafka", "routes", path_}, out) != 0) {
    throw std::runtime_error("scripts/kafka routes failed: " + out);
  }
  std::vector<Route> routes;
  std::istringstream lines(out);
  Route r;
  while (lines >> r.node >> r.listen >> r.advertised) routes.push_back(r);
  if (routes.empty()) throw std::runtime_error("scripts/kafka routes: none in " + out);
  return routes;
}

KafkaRoute::KafkaRoute(KafkaCluster& cluster) {
  for (const auto& r : cluster.routes()) {
    proxies_.push_back(std::make_unique<TcpProxy>(r.listen, r.advertised));
    bootstrap_ += (bootstrap_.empty() ? "" : ",") + std::string("127.0.0.1:") +
                  std::to_string(r.advertised);
  }
}

void KafkaRoute::cut() {
  for (auto& p : proxies_) p->cut();
}

void KafkaRoute::heal() {
  for (auto& p : proxies_) p->heal();
}

}  // namespace sluice::testing
