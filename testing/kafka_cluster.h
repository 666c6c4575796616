#pragma once
/// Apache Kafka (KRaft) for integration tests: a one-node or three-node cluster on loopback,
/// started and stopped through scripts/kafka, and the admin operations tests need — topics,
/// more partitions, records deleted as retention would, the leader of a partition, nodes
/// killed and started again. Not used by production code.
///
/// One cluster serves a whole test binary (`shared`): starting the JVMs is the slow part, and
/// every test works on topics of its own. Under CTest the cluster is started once for all the
/// binary's tests (each runs in a process of its own) and found through SLUICE_KAFKA_DIR; run
/// by hand, the binary starts (and stops) one itself.
/// Thread safety: one thread (the test's).

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "testing/harness.h"
#include "testing/tcp_proxy.h"

namespace sluice::testing {

/// Proxies in front of every node's second listener: a route to the whole cluster that a test
/// can cut (one instance's link to Kafka) while every other client keeps the direct one.
class KafkaRoute {
 public:
  explicit KafkaRoute(class KafkaCluster& cluster);
  /// The bootstrap servers through the proxies.
  const std::string& bootstrap() const { return bootstrap_; }
  void cut();
  void heal();

 private:
  std::vector<std::unique_ptr<TcpProxy>> proxies_;
  std::string bootstrap_;
};

class KafkaCluster {
 public:
  /// Starts `nodes` (1 or 3) in a fresh folder; throws std::runtime_error on failure.
  explicit KafkaCluster(int nodes);
  ~KafkaCluster();
  KafkaCluster(const KafkaCluster&) = delete;
  KafkaCluster& operator=(const KafkaCluster&) = delete;

  /// The cluster of this test binary, started on first use and stopped at exit.
  static KafkaCluster& shared(int nodes);

  const std::string& bootstrap() const { return bootstrap_; }
  int nodes() const { return nodes_; }
  const std::string& dir() const { return path_; }

  /// Creates a topic (replication factor min(3, nodes) unless given) and waits until every
  /// partition has a leader. `configs` are topic configs (retention.ms, ...).
  void create_topic(const std::string& name, int partitions, int replication = 0,
                    const std::map<std::string, std::string>& configs = {});
  /// Grows a topic to `total` partitions (a rebalance for its consumers).
  void add_partitions(const std::string& name, int total);
  /// Deletes every record of a partition below `offset`, as retention does: the log then
  /// starts there.
  void delete_records(const std::string& topic, int32_t partition, int64_t offset);
  /// A topic's replication factor (of its partition 0), and one of its configs ("" unknown).
  int replication(const std::string& topic);
  std::string topic_config(const std::string& topic, const std::string& key);
  /// Low and high watermarks of a partition.
  std::pair<int64_t, int64_t> watermarks(const std::string& topic, int32_t partition);
  /// The node leading a partition (1..nodes), or -1.
  int leader(const std::string& topic, int32_t partition);
  void kill_node(int node);
  void start_node(int node);

  /// Each node's second listener (scripts/kafka, ROUTE): where it listens, and the port it
  /// advertises, where a test's proxy should listen.
  struct Route {
    int node = 0;
    int listen = 0;
    int advertised = 0;
  };
  std::vector<Route> routes();

 private:
  rd_kafka_t* admin();
  void script(const std::vector<std::string>& args);

  TempDir dir_;
  std::string path_;   ///< the cluster's folder (scripts/kafka DIR)
  bool owned_ = true;  ///< started here, so stopped here
  int nodes_;
  std::string bootstrap_;
  rd_kafka_t* admin_ = nullptr;
};

}  // namespace sluice::testing
