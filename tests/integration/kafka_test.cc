// Integration tests against Apache Kafka itself (a three-node KRaft cluster on loopback, shared
// by this binary) and private mariadbd servers: failover to a server that lags (a restored dump,
// a real replica), offsets expired during a long pause and a restart, kill -9 at random
// instants mixed with pauses and a MariaDB kill, the partition leader's broker killed, and a
// rebalance while partitions are paused for backpressure. Each asserts the exact outcome:
// every event once, in partition order, the spool empty, sluice_offsets exact.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <random>
#include <thread>

#include "tests/integration/stack_test.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

class KafkaTest : public RealKafkaTest {
 protected:
  /// sluice_offsets of `db` per partition equals Kafka's log end: exact, nothing more.
  void expect_offsets_exact(MariaDb& db) {
    for (int32_t p = 0; p < partitions_; ++p) {
      const auto [low, high] = cluster_->watermarks(topic_, p);
      EXPECT_EQ(db.scalar("SELECT next_offset FROM sluice_offsets WHERE kafka_partition = " +
                          std::to_string(p)),
                high)
          << "partition " << p;
    }
  }

  bool spool_empty_and_running(const Process& sluice) {
    const auto s = status(sluice);
    return s.is_object() && s["state"] == "running" && s["spool"]["events"] == 0;
  }

  /// Points the running service at `db` (SIGHUP with the config rewritten), while paused.
  void retarget(Process& sluice, const MariaDb& db) {
    config("", "", &db);
    sluice.signal(SIGHUP);
    ASSERT_TRUE(wait_until(
        [&] { return sluice.log().find("MariaDB endpoint is now") != std::string::npos; }, 30s))
        << sluice.log();
  }
};

/// Now as ISO-8601 UTC, to the second.
std::string iso_now() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return out;
}

TEST_F(KafkaTest, CheckConfigOnlineNamesAFleetTopicReplicatedOnFewerBrokersThanThree) {
  // On three brokers the fleet topic must be on three: its records are the fleet's pause.
  const std::string weak = "weak_fleet_" + topic_;
  cluster_->create_topic(weak, 1, 1);
  const std::string bin = binary_dir() + "/main/sluice";
  std::string out;
  const std::string with_weak = config("", "", nullptr, "fleet:\n  topic: \"" + weak + "\"\n");
  // Until every broker's metadata has the new topic, one may still answer that it does not
  // exist yet.
  EXPECT_TRUE(wait_until(
      [&] {
        return run_command({bin, "check-config", "--online", "--config", with_weak}, out) == 1;
      },
      30s))
      << out;
  EXPECT_NE(out.find("\u2714 kafka: 3 broker(s)"), std::string::npos) << out;
  EXPECT_NE(out.find("\u2718 fleet.topic: " + weak + " is replicated on 1 broker(s), not 3"),
            std::string::npos)
      << out;
  // The default fleet topic, not made yet: the first instance creates it on three.
  EXPECT_EQ(run_command({bin, "check-config", "--online", "--config", config()}, out), 0) << out;
  EXPECT_NE(out.find("does not exist yet: the first instance creates it (1 partition, "
                     "replication 3, compacted)"),
            std::string::npos)
      << out;
}

TEST_F(KafkaTest, OffsetsSetMovesTheGroupAndMariaDbTogetherOnlyWhileTheFleetIsStoppedAndNotOverASpool) {
  const std::string config_file = config();
  const std::string bin = binary_dir() + "/main/sluice";
  auto offsets = [&](std::vector<std::string> args, std::string& out) {
    std::vector<std::string> argv = {bin, "offsets"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--config", config_file});
    return run_command(argv, out);
  };
  auto sluice = start_sluice(dir_, config_file, "sluice-2.log");
  produce(50);
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  std::string out;
  ASSERT_EQ(offsets({"show", "--topic", topic_, "--json"}, out), 0) << out;
  const auto shown = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(shown.is_array() && shown.size() == 1) << out;
  for (const auto& p : shown[0]["partitions"]) {
    EXPECT_EQ(p["mariadb_next_offset"], 50) << out;
    EXPECT_EQ(p["log_end"], 50) << out;
    EXPECT_EQ(p["log_start"], 0) << out;
  }
  // Refused while an instance runs.
  EXPECT_EQ(offsets({"set", "--topic", topic_, "--to-latest", "--confirm"}, out), 4) << out;
  EXPECT_NE(out.find("the fleet is not stopped"), std::string::npos) << out;
  // Usage: exactly one target, and --dry-run or --confirm.
  EXPECT_EQ(offsets({"set", "--topic", topic_, "--to-latest"}, out), 2) << out;
  EXPECT_EQ(offsets({"set", "--topic", topic_, "--to-latest", "--to-earliest", "--dry-run"}, out), 2)
      << out;
  {
    // kafka.topics as a pattern this command cannot read: a usage error naming the way out.
    std::ifstream in(config_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto at = text.find("  topics: [");
    ASSERT_NE(at, std::string::npos) << text;
    text.replace(at, text.find('\n', at) - at, "  topics: [\"^el_(\"]");
    std::ofstream(dir_.file("pattern.yaml")) << text;
    EXPECT_EQ(run_command({bin, "offsets", "show", "--config", dir_.file("pattern.yaml")}, out), 2)
        << out;
    EXPECT_NE(out.find("name the topic with --topic"), std::string::npos) << out;
  }
  sluice->signal(SIGTERM);
  ASSERT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();

  // While it is stopped: 30 events per partition to skip, then (a second later) 20 to keep.
  produce(30);
  std::this_thread::sleep_for(1500ms);
  const std::string cut = iso_now();
  std::this_thread::sleep_for(1500ms);
  produce(20);
  ASSERT_EQ(offsets({"set", "--topic", topic_, "--to-time", cut, "--dry-run"}, out), 0) << out;
  EXPECT_NE(out.find("partition 0: 50 -> 80 (skips 30 events, never written)"), std::string::npos)
      << out;
  EXPECT_EQ(stored_offsets(), 50 * partitions_) << "a dry run changes nothing";
  // MariaDB fails half-way through (the record of the last partition's move is refused): no
  // partition moves.
  db_->exec("CREATE TRIGGER refuse_last_move BEFORE INSERT ON sluice_dead_letter FOR EACH ROW "
            "IF NEW.kafka_partition = " + std::to_string(partitions_ - 1) +
            " THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF");
  EXPECT_EQ(offsets({"set", "--topic", topic_, "--to-time", cut, "--confirm"}, out), 1) << out;
  EXPECT_NE(out.find("refused by the test"), std::string::npos) << out;
  EXPECT_NE(out.find("nothing changed"), std::string::npos) << out;
  EXPECT_EQ(stored_offsets(), 50 * partitions_) << "all or nothing: " << out;
  db_->exec("DROP TRIGGER refuse_last_move");
  ASSERT_EQ(offsets({"set", "--topic", topic_, "--to-time", cut, "--confirm"}, out), 0) << out;
  EXPECT_EQ(stored_offsets(), 80 * partitions_);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter WHERE reason LIKE "
                        "'offsets\\_set:%skipped, never written'"),
            partitions_)
      << "who, when and what was skipped, per partition";
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter WHERE reason LIKE "
                        "'offsets\\_set:%' AND kafka_offset <> -1"),
            0)
      << "a move's record never stands at an event's offset";
  ASSERT_EQ(offsets({"show", "--topic", topic_, "--json"}, out), 0) << out;
  for (const auto& p : nlohmann::json::parse(out)[0]["partitions"]) {
    EXPECT_EQ(p["group_offset"], 80) << "the group's offset moved too: " << out;
    EXPECT_EQ(p["mariadb_next_offset"], 80) << out;
  }
  sluice = start_sluice(dir_, config_file, "sluice-3.log");
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  std::map<uint32_t, std::set<uint64_t>> skipped;
  for (uint32_t p = 0; p < static_cast<uint32_t>(partitions_); ++p) {
    for (uint64_t seq = 50; seq < 80; ++seq) skipped[p].insert(seq);
  }
  verify_exact(nullptr, skipped);

  // A paused instance spools, then stops: the spooled range cannot be skipped.
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "offsets"}, out), 0) << out;
  produce(10);
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["events"] == 10 * partitions_; },
                         60s));
  sluice->signal(SIGTERM);
  ASSERT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
  EXPECT_EQ(offsets({"set", "--topic", topic_, "--to-latest", "--confirm"}, out), 4) << out;
  EXPECT_NE(out.find("holds offsets 100..109"), std::string::npos) << out;
  EXPECT_EQ(stored_offsets(), 100 * partitions_) << "nothing moved";

  // Drained by a run, then rewound to the log start: the skipped events are read again and
  // written; what MariaDB had is not written twice.
  sluice = start_sluice(dir_, config_file, "sluice-4.log");
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  sluice->signal(SIGTERM);
  ASSERT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
  ASSERT_EQ(offsets({"set", "--topic", topic_, "--to-earliest", "--confirm"}, out), 0) << out;
  EXPECT_EQ(stored_offsets(), 0);
  ASSERT_EQ(offsets({"show", "--topic", topic_}, out), 0) << out;
  EXPECT_NE(out.find("moved: "), std::string::npos) << out;
  sluice = start_sluice(dir_, config_file, "sluice-5.log");
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  EXPECT_EQ(rows(), static_cast<int64_t>(produced())) << "every event, once";
  EXPECT_EQ(db_->scalar("SELECT COUNT(DISTINCT uuid) FROM TestSchema_1"),
            static_cast<int64_t>(produced()));
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
}

TEST_F(KafkaTest, FailoverToARestoredDumpDuringAPauseEndsExactlyOnTheNewServer) {
  auto sluice = start_written(500);
  ASSERT_FALSE(HasFailure());
  db_->dump(dir_.file("backup.sql"));  // last night's backup: 500 events per partition
  produce(800);
  ASSERT_TRUE(wait_for_all()) << sluice->log();

  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "failover"}, out), 0) << out;
  produce(700);  // spooled: the partitions stand at 2,000, the spool holds [1,300, 2,000)
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["events"] == 700 * 4; }, 60s));

  // The new primary is the old one's backup restored: 1,500 events per partition behind.
  MariaDb restored(dir_.file("restored"));
  restored.load(dir_.file("backup.sql"));
  ASSERT_EQ(rows(&restored), 500 * 4);
  retarget(*sluice, restored);
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  produce(100);  // live events keep arriving
  ASSERT_TRUE(wait_for_all(180s, &restored)) << sluice->log();
  verify_exact(&restored);
  expect_offsets_exact(restored);
  ASSERT_TRUE(wait_until([&] { return spool_empty_and_running(*sluice); }, 60s))
      << status(*sluice).dump();
  EXPECT_EQ(sluice_connections(db_.get()), 0) << "the old server is not touched again";
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), 0) << sluice->log();
}

TEST_F(KafkaTest, FailoverToARealReplicaThatLagsEndsExactlyOnTheReplica) {
  // A primary with a binary log and a replica of it (real replication between two servers).
  MariaDb primary(dir_.file("primary"), kPrimaryOptions);
  MariaDb replica(dir_.file("replica"), kReplicaOptions);
  start_replication(primary, replica);

  auto sluice = start_sluice(dir_, config("", "", &primary));
  produce(600);
  ASSERT_TRUE(wait_for_all(180s, &primary)) << sluice->log();
  ASSERT_TRUE(wait_for_all(60s, &replica)) << "replication does not run";
  replica.exec("STOP SLAVE SQL_THREAD");  // from here the replica falls behind
  produce(500);
  ASSERT_TRUE(wait_for_all(180s, &primary)) << sluice->log();

  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "primary lost"}, out), 0) << out;
  produce(400);
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["events"] == 400 * 4; }, 60s));
  // The primary is lost; the replica is promoted as it stands: 500 events per partition short.
  replica.exec("STOP SLAVE");
  replica.exec("RESET SLAVE ALL");
  ASSERT_EQ(rows(&replica), 600 * 4);
  primary.stop();
  retarget(*sluice, replica);
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  produce(100);
  ASSERT_TRUE(wait_for_all(180s, &replica)) << sluice->log();
  verify_exact(&replica);
  expect_offsets_exact(replica);
  ASSERT_TRUE(wait_until([&] { return spool_empty_and_running(*sluice); }, 60s))
      << status(*sluice).dump();
}

TEST_F(KafkaTest, OffsetsExpiredWhileStoppedInALongPauseAreAKafkaGapAndNothingElseIsLost) {
  auto sluice = start_written_then_paused(300, "long maintenance");
  ASSERT_FALSE(HasFailure());
  std::string out;
  produce(200);  // spooled: [300, 500)
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["events"] == 200 * 4; }, 60s));
  sluice->signal(SIGTERM);
  ASSERT_EQ(sluice->wait(60s), 0) << sluice->log();

  // While Sluice is stopped, more arrives and retention deletes what it never read.
  produce(300);  // [500, 800)
  for (int32_t p = 0; p < partitions_; ++p) cluster_->delete_records(topic_, p, 700);

  sluice = start_sluice(dir_, config(), "sluice-restarted.log");
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["state"] == "paused"; }, 60s))
      << sluice->log();
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  std::map<uint32_t, std::set<uint64_t>> lost;
  for (uint32_t p = 0; p < static_cast<uint32_t>(partitions_); ++p) {
    for (uint64_t s = 500; s < 700; ++s) lost[p].insert(s);
  }
  verify_exact(db_.get(), lost);
  expect_offsets_exact(*db_);
  // Exactly the expired range, once per partition, recorded where it happened.
  const auto gaps = db_->query(
      "SELECT kafka_partition, kafka_offset, reason FROM sluice_dead_letter ORDER BY "
      "kafka_partition");
  ASSERT_EQ(gaps.size(), 4u);
  for (const auto& g : gaps) {
    EXPECT_EQ(*g[1], "500");
    EXPECT_NE(g[2]->find("kafka_gap: offsets [500, 700)"), std::string::npos) << *g[2];
  }
  const auto s = status(*sluice);
  EXPECT_EQ(s["kafka_gaps"].size(), 4u) << s.dump();
  ASSERT_TRUE(wait_until([&] { return spool_empty_and_running(*sluice); }, 60s));
}

TEST_F(KafkaTest, KillNineAtRandomInstantsWithPausesAndAMariaDbKillEndsExact) {
  // The default session timeout: only static membership gets a restarted member its partitions
  // back before it expires.
  const std::string cfg = write_config(
      dir_, bootstrap_, *db_, {topic_}, group_,
      {.extra_yaml = "batch:\n  max_rows: 500\n  max_delay_ms: 100\n",
       .kafka_properties = {{"session.timeout.ms", "30000"}, {"heartbeat.interval.ms", "1000"}},
       .instance_id = "sluice-kill-test"});
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    while (!stop.load()) {
      produce(10);
      std::this_thread::sleep_for(30ms);
    }
  });
  std::mt19937 rng(20261130);
  std::vector<double> back_to_writing;
  auto sluice = start_sluice(dir_, cfg);
  ASSERT_TRUE(wait_until([&] { return rows() > 0; }, 60s)) << sluice->log();
  for (int kill = 1; kill <= 25; ++kill) {
    SCOPED_TRACE("kill " + std::to_string(kill));
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 1500));
    const bool paused_kill = kill % 6 == 3;
    std::string out;
    if (paused_kill) {
      ASSERT_EQ(cli(*sluice, {"pause"}, out), 0) << out;
    }
    if (kill == 12) db_->kill9();  // MariaDB dies with Sluice
    sluice->signal(SIGKILL);
    ASSERT_TRUE(sluice->wait(10s));
    if (kill == 12) db_->start();
    const int64_t before = rows();
    const auto restarted = std::chrono::steady_clock::now();
    sluice = start_sluice(dir_, cfg, "sluice-" + std::to_string(kill) + ".log");
    if (paused_kill) {
      ASSERT_TRUE(wait_until([&] { return status(*sluice)["state"] == "paused"; }, 60s))
          << sluice->log();
      EXPECT_EQ(sluice_connections(), 0) << "a paused restart opened a connection";
      ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
      continue;
    }
    ASSERT_TRUE(wait_until([&] { return rows() > before; }, 120s)) << sluice->log();
    if (kill != 12) {
      back_to_writing.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - restarted).count());
    }
  }
  stop = true;
  producer.join();
  ASSERT_TRUE(wait_for_all(300s)) << sluice->log();
  verify_exact();
  expect_offsets_exact(*db_);
  ASSERT_TRUE(wait_until([&] { return spool_empty_and_running(*sluice); }, 60s))
      << status(*sluice).dump();
  std::sort(back_to_writing.begin(), back_to_writing.end());
  std::cout << "[ measure  ] writing again after kill -9: median "
            << back_to_writing[back_to_writing.size() / 2] << " s, max " << back_to_writing.back()
            << " s over " << back_to_writing.size() << " restarts\n";
  // A behaviour, not a speed: without static membership each restart waits for the 30 s
  // session of its killed predecessor to expire.
  EXPECT_LT(back_to_writing.back(), 20.0);
}

TEST_F(KafkaTest, KillingThePartitionLeadersBrokerLosesNothing) {
  auto sluice = start_sluice(dir_, config());
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    while (!stop.load()) {
      produce(10);
      std::this_thread::sleep_for(30ms);
    }
  });
  ASSERT_TRUE(wait_until([&] { return rows() > 2000; }, 60s)) << sluice->log();
  const int leader = cluster_->leader(topic_, 0);
  ASSERT_GT(leader, 0);
  cluster_->kill_node(leader);
  std::this_thread::sleep_for(8s);
  const int64_t during = rows();
  ASSERT_TRUE(wait_until([&] { return rows() > during + 1000; }, 60s))
      << "nothing written with a broker down: " << sluice->log();
  cluster_->start_node(leader);
  std::this_thread::sleep_for(3s);
  stop = true;
  producer.join();
  ASSERT_TRUE(wait_for_all(180s)) << sluice->log();
  verify_exact();
  expect_offsets_exact(*db_);
  EXPECT_TRUE(sluice->running());
}

TEST_F(KafkaTest, ARebalanceWhilePausedForBackpressureLosesNothingAndStallsNothing) {
  // Small batches, so that the in-flight bound is reached while MariaDB is locked.
  auto sluice = start_sluice(dir_, config("", "", nullptr, "  max_bytes: 65536\n"));
  produce(200);
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  db_->exec("FLUSH TABLES WITH READ LOCK");  // every write now waits
  produce(2000);
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["fetch_paused"] == true; }, 90s))
      << status(*sluice).dump();
  // A rebalance while every partition is paused in Kafka: the topic grows two partitions.
  cluster_->add_partitions(topic_, 6);
  partitions_ = 6;
  seq_.resize(6, 0);
  ASSERT_TRUE(wait_until(
      [&] { return sluice->log().find("assigned 2 partition(s)") != std::string::npos; }, 60s))
      << sluice->log();
  std::this_thread::sleep_for(2s);
  db_->exec("UNLOCK TABLES");
  produce(300);
  ASSERT_TRUE(wait_for_all(180s)) << "a partition stalls: " << status(*sluice).dump();
  verify_exact();
  expect_offsets_exact(*db_);
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["fetch_paused"] == false; }, 60s));
}

}  // namespace
}  // namespace sluice::testing
