#pragma once
// Several instances of `sluice run` in one consumer group — a fleet — against the binary's
// three-node Apache Kafka and one private mariadbd. Each instance has a host of its own in
// miniature: its folder, spool, config and instance id; and, when a test asks, its own links
// to Kafka and MariaDB through proxies it can cut (testing/tcp_proxy.h).

#include <signal.h>

#include <deque>
#include <memory>
#include <string>

#include "tests/integration/stack_test.h"

namespace sluice::testing {

/// One instance of the fleet: its own folder (spool, config, logs) and instance id.
struct Instance {
  std::string id;
  std::unique_ptr<TempDir> dir = std::make_unique<TempDir>();
  std::string config;
  std::unique_ptr<Process> process;
  int starts = 0;
  // What its config was written from (add()), to write it again for another server.
  std::string bootstrap;
  int mariadb_port = 0;
  std::string more_yaml;
  std::string spool_lines;
  std::string schemas_lines;  ///< more keys of `schemas:`
};

class FleetStackTest : public RealKafkaTest {
 protected:
  void TearDown() override {
    for (auto& i : instances_) {
      if (i.process && i.process->running()) i.process->signal(SIGKILL);
    }
  }

  /// Adds an instance (not started). `bootstrap` and `mariadb_port`: its own routes to Kafka
  /// and to MariaDB (proxies), instead of the direct ones. `more_yaml`: top-level sections;
  /// `spool_lines`: more keys of `spool:`.
  Instance& add(const std::string& id, const std::string& bootstrap = "", int mariadb_port = 0,
                const std::string& more_yaml = "", const std::string& spool_lines = "") {
    Instance& i = instances_.emplace_back();
    i.id = id;
    i.bootstrap = bootstrap.empty() ? bootstrap_ : bootstrap;
    i.mariadb_port = mariadb_port;
    i.more_yaml = more_yaml;
    i.spool_lines = spool_lines;
    write(i, *db_);
    return i;
  }

  /// (Re)writes an instance's config for server `db`.
  void write(Instance& i, const MariaDb& db) {
    i.config = write_config(*i.dir, i.bootstrap, db, {topic_}, group_,
                            {.extra_yaml = "batch:\n  max_rows: 500\n  max_delay_ms: 100\n"
                                           "fleet:\n  heartbeat_ms: 1000\n  lease_ms: 5000\n"
                                           "  instance_timeout_ms: 10000\n" +
                                           i.more_yaml,
                             .kafka_properties = kShortSession,
                             .spool_lines = i.spool_lines,
                             .schemas_lines = i.schemas_lines,
                             .instance_id = i.id,
                             .port = i.mariadb_port});
  }

  /// A failover, on one host: its config names `db` now, and it is told to reload (SIGHUP).
  void retarget(Instance& i, const MariaDb& db) {
    write(i, db);
    i.process->signal(SIGHUP);
  }

  /// retarget, then waits until the instance's status names the new server.
  bool retargeted(Instance& i, const MariaDb& db) {
    retarget(i, db);
    return wait_until(
        [&] {
          return status(*i.process)["mariadb"].get<std::string>().find(db.socket()) !=
                 std::string::npos;
        },
        30s);
  }

  void start(Instance& i) {
    i.process = start_sluice(*i.dir, i.config, "sluice-" + std::to_string(++i.starts) + ".log");
  }

  /// Every instance's log, for a failure message.
  std::string logs() {
    std::string out;
    for (auto& i : instances_) {
      if (i.process) out += "---- " + i.id + "\n" + i.process->log();
    }
    return out;
  }

  /// sluice_offsets per partition equals Kafka's log end.
  void expect_offsets_exact() {
    for (int32_t p = 0; p < partitions_; ++p) {
      const auto [low, high] = cluster_->watermarks(topic_, p);
      EXPECT_EQ(db_->scalar("SELECT next_offset FROM sluice_offsets WHERE kafka_partition = " +
                            std::to_string(p)),
                high)
          << "partition " << p;
    }
  }

  /// Every instance runs with an empty spool, and together they hold every partition once.
  bool settled() {
    int32_t assigned = 0;
    for (auto& i : instances_) {
      if (!i.process || !i.process->running()) continue;
      const auto s = status(*i.process);
      if (!s.is_object() || s["state"] != "running" || s["spool"]["events"] != 0) return false;
      for (const auto& p : s["partitions"]) {
        if (p["mode"] != "orphan") ++assigned;
      }
    }
    return assigned == partitions_;
  }

  /// host-a and host-b started in one group, `events` produced and all written, and the group
  /// settled: each instance owns its share and has released what it spooled of partitions it
  /// lost in the first rebalance (starting quiet, it spools until it may look at MariaDB).
  /// Paused before that look, such an orphan copy would stay in its spool until the resume.
  ::testing::AssertionResult start_two_settled(size_t events) {
    start(add("host-a"));
    start(add("host-b"));
    produce(events);
    if (!wait_for_all()) return ::testing::AssertionFailure() << "not all written\n" << logs();
    if (!wait_until([&] { return settled(); }, 120s)) {
      return ::testing::AssertionFailure() << "the group never settled\n" << logs();
    }
    return ::testing::AssertionSuccess();
  }

  /// Waits until the spools of host-a and host-b (the first two instances) hold `events`
  /// together.
  bool wait_spooled_by_both(int64_t events) {
    return wait_until(
        [&] {
          return status(*instances_[0].process)["spool"]["events"].get<int64_t>() +
                     status(*instances_[1].process)["spool"]["events"].get<int64_t>() ==
                 events;
        },
        60s);
  }

  /// How many partitions instance `i` owns (orphans not counted).
  int owns(Instance& i) {
    const auto s = status(*i.process);  // kept: the loop below refers into it
    int n = 0;
    if (!s.is_object()) return 0;
    for (const auto& p : s["partitions"]) n += p["mode"] != "orphan" ? 1 : 0;
    return n;
  }

  /// The fleet as instance `i` sees it.
  nlohmann::json fleet(Instance& i) { return status(*i.process)["fleet"]; }

  std::deque<Instance> instances_;
};

}  // namespace sluice::testing
