// Several instances of `sluice run` in one consumer group — a fleet — against Apache Kafka (the
// binary's three-node KRaft cluster) and one private mariadbd. Each instance has a host of its
// own in miniature: its folder, spool, config and instance id. The tests assert the exact
// outcome — every event once, in partition order, every spool empty, sluice_offsets exact —
// after kills and restarts at random instants, pauses through any one instance, MariaDB
// killed or read-only, a broker killed; that a pause reaches every instance, survives restarts
// and holds a newcomer; that a range only a dead instance's spool holds is waited for, not
// declared lost, until that instance returns or is forgotten; and that two instances meeting a
// new Event Platform minor version at once grow its table once.

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "tests/integration/fleet_stack.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class FleetTest : public FleetStackTest {
 protected:
  FleetTest() { partitions_ = 12; }
};

TEST_F(FleetTest, ThreeInstancesThroughKillsRestartsPausesAndOutagesEndExact) {
  for (const char* id : {"host-a", "host-b", "host-c"}) start(add(id));
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    while (!stop.load()) {
      produce(2);
      std::this_thread::sleep_for(30ms);
    }
  });
  ASSERT_TRUE(wait_until([&] { return rows() > 1000; }, 90s)) << logs();

  std::mt19937 rng(20261130);
  const auto pick = [&]() -> Instance& { return instances_[rng() % instances_.size()]; };
  std::string out;
  for (int step = 1; step <= 12; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    std::this_thread::sleep_for(std::chrono::milliseconds(500 + rng() % 2000));
    const int64_t before = rows();
    switch (step % 6) {
      case 1: {  // kill -9, back within the session or after it expired
        Instance& i = pick();
        i.process->signal(SIGKILL);
        ASSERT_TRUE(i.process->wait(10s));
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 9000));
        start(i);
        break;
      }
      case 2: {  // a pause through one instance quiets all; a resume through another
        Instance& by = pick();
        ASSERT_EQ(cli(*by.process, {"pause", "--reason", "step " + std::to_string(step)}, out), 0)
            << out << logs();
        EXPECT_EQ(sluice_connections(), 0) << "an instance still holds a connection";
        for (auto& i : instances_) {
          EXPECT_EQ(status(*i.process)["state"], "paused") << i.id;
        }
        std::this_thread::sleep_for(2s);
        EXPECT_EQ(sluice_connections(), 0);
        ASSERT_EQ(cli(*pick().process, {"resume"}, out), 0) << out << logs();
        break;
      }
      case 3: {  // MariaDB killed, back after a while
        db_->kill9();
        std::this_thread::sleep_for(std::chrono::milliseconds(1000 + rng() % 3000));
        db_->start();
        break;
      }
      case 4: {  // a clean restart
        Instance& i = pick();
        i.process->signal(SIGTERM);
        ASSERT_EQ(i.process->wait(60s), 0) << i.process->log();
        start(i);
        break;
      }
      case 5: {  // MariaDB read-only for a while
        db_->exec("SET GLOBAL read_only = 1");
        std::this_thread::sleep_for(std::chrono::milliseconds(2000 + rng() % 3000));
        db_->exec("SET GLOBAL read_only = 0");
        break;
      }
      case 0: {  // the leader of a partition's broker killed, back after a while
        const int leader = cluster_->leader(topic_, static_cast<int32_t>(rng() % partitions_));
        ASSERT_GT(leader, 0);
        cluster_->kill_node(leader);
        std::this_thread::sleep_for(6s);
        cluster_->start_node(leader);
        break;
      }
    }
    ASSERT_TRUE(wait_until([&] { return rows() > before; }, 120s)) << "stalled: " << logs();
  }
  stop = true;
  producer.join();
  ASSERT_TRUE(wait_for_all(300s)) << logs();
  verify_exact();
  expect_offsets_exact();
  ASSERT_TRUE(wait_until([&] { return settled(); }, 120s)) << logs();
  for (auto& i : instances_) {
    i.process->signal(SIGTERM);
    EXPECT_EQ(i.process->wait(60s), 0) << i.process->log();
  }
}

TEST_F(FleetTest, APauseReachesEveryInstanceOutlivesRestartsAndHoldsANewcomer) {
  // Settled first: an orphan copy in a spool would be counted below.
  ASSERT_TRUE(start_two_settled(200));
  Instance& a = instances_[0];
  Instance& b = instances_[1];

  std::string out;
  ASSERT_EQ(cli(*a.process, {"pause", "--reason", "schema patch"}, out), 0) << out << logs();
  // The contract: once the pause answered, no instance holds a connection.
  EXPECT_EQ(sluice_connections(), 0);
  const auto seen_by_b = fleet(b);
  EXPECT_EQ(seen_by_b["target"]["state"], "paused") << seen_by_b.dump();
  EXPECT_EQ(seen_by_b["target"]["reason"], "schema patch");
  EXPECT_EQ(seen_by_b["target"]["by"], "host-a");
  EXPECT_EQ(status(*b.process)["state"], "paused");
  produce(300);  // spooled, by both
  ASSERT_TRUE(wait_spooled_by_both(300 * partitions_)) << logs();

  // Every instance restarts — a rolling upgrade — and comes back paused, without a connection.
  for (Instance* i : {&a, &b}) {
    i->process->signal(SIGTERM);
    ASSERT_EQ(i->process->wait(60s), 0) << i->process->log();
    start(*i);
    ASSERT_TRUE(wait_until([&] { return status(*i->process)["state"] == "paused"; }, 60s))
        << i->process->log();
  }
  // A newcomer joins the paused fleet: paused from its first instant.
  Instance& c = add("host-c");
  start(c);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = status(*c.process);
        return s.is_object() && s["state"] == "paused" && s["fleet"]["caught_up"] == true;
      },
      60s))
      << c.process->log();
  std::this_thread::sleep_for(3s);  // the rebalance it caused settles; still quiet
  EXPECT_EQ(sluice_connections(), 0) << "a paused fleet opened a connection";

  // `sluice fleet status` reads the topic directly.
  ASSERT_EQ(
      run_command(
          {binary_dir() + "/main/sluice", "fleet", "status", "--config", c.config, "--json"}, out),
      0)
      << out;
  const auto listed = nlohmann::json::parse(out);
  EXPECT_EQ(listed["target"]["state"], "paused") << out;
  EXPECT_EQ(listed["instances"].size(), 3u) << out;

  // A resume through the newcomer reaches all.
  ASSERT_EQ(cli(*c.process, {"resume"}, out), 0) << out << logs();
  for (Instance* i : {&a, &b, &c}) EXPECT_NE(status(*i->process)["state"], "paused") << i->id;
  produce(100);
  ASSERT_TRUE(wait_for_all()) << logs();
  verify_exact();
  expect_offsets_exact();
  ASSERT_TRUE(wait_until([&] { return settled(); }, 120s)) << logs();
}

TEST_F(FleetTest, OfTwoInstancesGivenOneInstanceIdTheLaterStopsAndNothingIsLost) {
  Instance& a = add("host-a");
  start(a);
  produce(100);
  ASSERT_TRUE(wait_for_all()) << logs();
  // A copy-pasted config: a second host with the same kafka.instance_id.
  Instance& twin = add("host-a");
  start(twin);
  produce(100);
  // The group fences the two in turn until the later one stops: it reads the fleet topic (or
  // counts its fencings) and goes; the older one joins again each time and stays.
  // Exit 7: the unit names it in RestartPreventExitStatus=, so systemd does not bring it back.
  ASSERT_EQ(twin.process->wait(60s), 7) << twin.process->log();
  EXPECT_NE(twin.process->log().find("kafka.instance_id"), std::string::npos)
      << twin.process->log();
  EXPECT_NE(twin.process->log().find("give each instance of the group its own"), std::string::npos)
      << twin.process->log();
  ASSERT_TRUE(a.process->running()) << a.process->log();
  produce(100);
  ASSERT_TRUE(wait_for_all()) << logs();
  verify_exact();
  expect_offsets_exact();
  ASSERT_TRUE(a.process->running()) << a.process->log();
  instances_.pop_back();
  ASSERT_TRUE(wait_until([&] { return settled(); }, 120s)) << logs();
}

TEST_F(FleetTest, TwoInstancesMeetingANewMinorVersionAtOnceGrowItsTableOnce) {
  // An Event Platform title only a schema repository has (the shipped /test/click under another
  // name): both instances fetch 1.0.0 and make its table; then 1.1.0 reaches every partition at
  // once, so each instance finds the table short of its two new columns at the same moment.
  TempDir repo;
  using Version = EventFactory::PlatformVersion;
  auto renamed = [](std::string text) { return EventFactory::retitled(text, "/fleet/click"); };
  for (const Version v : {Version::k1_0, Version::k1_1}) {
    const fs::path file =
        repo.file("fleet/click") + "/" + (v == Version::k1_0 ? "1.0.0.json" : "1.1.0.json");
    fs::create_directories(file.parent_path());
    std::ofstream(file) << renamed(EventFactory::platform_schema_document(v));
  }
  Process server({"python3", source_dir() + "/testing/serve_folder.py", repo.path()},
                 repo.file("serve"));
  ASSERT_TRUE(wait_until([&] { return server.log().find("port ") != std::string::npos; }, 20s));
  const std::string served = server.log();
  const std::string url =
      "http://127.0.0.1:" + std::to_string(std::stoi(served.substr(served.find("port ") + 5)));
  for (const char* id : {"host-a", "host-b"}) {
    Instance& i = add(id);
    i.schemas_lines = "  repository_url: \"" + url + "\"\n";
    write(i, *db_);
    start(i);
  }
  std::map<int32_t, uint64_t> seq;
  auto produce_version = [&](Version v, uint64_t n) {
    for (uint64_t k = 0; k < n; ++k) {
      for (int32_t p = 0; p < partitions_; ++p) {
        producer_->produce(
            topic_, p,
            renamed(EventFactory::platform_event(v, 1, static_cast<uint32_t>(p), seq[p]++)));
      }
    }
    producer_->flush();
  };
  auto stored = [&] { return stored_offsets(); };
  produce_version(Version::k1_0, 20);
  ASSERT_TRUE(wait_until([&] { return stored() == 20 * partitions_; }, 180s)) << logs();
  ASSERT_TRUE(wait_until([&] { return owns(instances_[0]) > 0 && owns(instances_[1]) > 0; }, 60s))
      << logs();
  produce_version(Version::k1_1, 20);
  produce_version(Version::k1_0, 20);
  ASSERT_TRUE(wait_until([&] { return stored() == 60 * partitions_; }, 180s)) << logs();
  // Every event once, in offset order per partition; the new columns once; nothing refused.
  EXPECT_EQ(EventFactory::exact_fault(db_->query("SELECT uuid FROM fleet_click_1 ORDER BY id"),
                                      static_cast<uint32_t>(partitions_), 60),
            "");
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM fleet_click_1 WHERE session_id IS NOT NULL"),
            20 * partitions_);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_NAME = "
                        "'fleet_click_1' AND COLUMN_NAME IN ('session_id', 'ratio')"),
            2);
  // One instance added the columns; the other found them there (before its own ALTER, or by
  // it: two sessions' ALTERs at the same instant are SinkTest's, which makes them race).
  size_t grew = 0;
  const std::string all = logs();
  for (size_t at = 0; (at = all.find("grew by 2 column(s)", at)) != std::string::npos; ++at) {
    ++grew;
  }
  EXPECT_EQ(grew, 1u) << all;
}

TEST_F(FleetTest, TheFleetTopicIsReplicatedCompactedAndAWeakerOneIsNamed) {
  Instance& a = add("host-a");
  start(a);
  produce(10);
  ASSERT_TRUE(wait_for_all()) << logs();
  const std::string fleet_topic = "_sluice_fleet." + group_;
  EXPECT_EQ(cluster_->replication(fleet_topic), 3);
  EXPECT_EQ(cluster_->topic_config(fleet_topic, "min.insync.replicas"), "2");
  EXPECT_EQ(cluster_->topic_config(fleet_topic, "cleanup.policy"), "compact");
  EXPECT_FALSE(fleet(a).contains("topic_warnings")) << fleet(a).dump();

  // Another group whose fleet topic someone made by hand, weaker.
  Instance& b = instances_.emplace_back();
  b.id = "host-b";
  const std::string weak = "_sluice_fleet_weak_" + group_;
  cluster_->create_topic(weak, 1, 1, {{"cleanup.policy", "delete"}});
  b.config = write_config(*b.dir, bootstrap_, *db_, {topic_}, group_ + "-weak",
                          {.extra_yaml = "fleet:\n  topic: " + weak +
                                         "\n  heartbeat_ms: 1000\n  lease_ms: 5000\n"
                                         "  instance_timeout_ms: 10000\n",
                           .kafka_properties = kShortSession,
                           .instance_id = b.id});
  start(b);
  nlohmann::json warned;
  ASSERT_TRUE(wait_until(
      [&] {
        warned = fleet(b);
        return warned.is_object() && warned.contains("topic_warnings") &&
               warned["topic_warnings"].size() == 3;
      },
      30s))
      << warned.dump() << b.process->log();
  EXPECT_NE(warned["topic_warnings"].dump().find("replication factor 1"), std::string::npos);
  EXPECT_NE(warned["topic_warnings"].dump().find("cleanup.policy delete"), std::string::npos);
  EXPECT_NE(warned["topic_warnings"].dump().find("min.insync.replicas 1"), std::string::npos);
  EXPECT_NE(b.process->log().find("replication factor 1"), std::string::npos);
}

TEST_F(FleetTest, RecordsNotSignedWithTheFleetsKeyChangeNothingOnARealCluster) {
  std::ofstream(dir_.file("fleet.key")) << "a-shared-secret-of-at-least-16-bytes\n";
  const std::string keyed = "fleet:\n  key_file: " + dir_.file("fleet.key") + "\n";
  Instance& a = instances_.emplace_back();
  Instance& b = instances_.emplace_back();
  for (Instance* i : {&a, &b}) {
    i->id = i == &a ? "host-a" : "host-b";
    i->config = write_config(*i->dir, bootstrap_, *db_, {topic_}, group_,
                             {.extra_yaml = keyed + "  heartbeat_ms: 1000\n  lease_ms: 5000\n"
                                                    "  instance_timeout_ms: 10000\n",
                              .kafka_properties = kShortSession,
                              .instance_id = i->id});
    start(*i);
  }
  produce(20);
  ASSERT_TRUE(wait_for_all()) << logs();
  // Whoever can write to the topic but has no key: an unsigned pause, a tombstone forgetting
  // host-b, a record of host-b saying it is stopped.
  const std::string fleet_topic = "_sluice_fleet." + group_;
  producer_->produce(fleet_topic, 0,
                     R"({"state":"paused","reason":"forged","by":"x","id":"forged-1","epoch":99})",
                     0, std::string("target"));
  producer_->produce(fleet_topic, 0,
                     R"({"id":"host-b","state":"stopped","quiet":true,"incarnation":"x","seq":9})",
                     0, std::string("instance/host-b"));
  producer_->flush();
  ASSERT_TRUE(wait_until([&] { return fleet(a)["records_rejected"].get<int>() >= 2; }, 30s))
      << fleet(a).dump();
  produce(20);
  ASSERT_TRUE(wait_for_all()) << "a forged pause stopped the fleet\n" << logs();
  EXPECT_NE(status(*a.process)["state"], "paused");
  EXPECT_NE(a.process->log().find("is not signed: ignored"), std::string::npos);
  // The holders of the key pause and resume as ever.
  std::string out;
  ASSERT_EQ(cli(*b.process, {"pause", "--reason", "signed"}, out), 0) << out << logs();
  EXPECT_EQ(status(*a.process)["state"], "paused");
  EXPECT_EQ(sluice_connections(), 0);
  ASSERT_EQ(cli(*a.process, {"resume"}, out), 0) << out << logs();
  produce(20);
  ASSERT_TRUE(wait_for_all()) << logs();
  verify_exact();
}

class FleetClaimTest : public FleetTest {
 protected:
  FleetClaimTest() { partitions_ = 4; }

  /// host-a and host-b ingest, pause, spool; host-a is killed; while it is away its spooled
  /// range expires from Kafka. host-b resumes the fleet and 100 more events come: host-b's
  /// partitions of that range wait for the claim. Returns, per partition host-a spooled, the
  /// expired range. A failure is recorded: the caller asserts !HasFailure().
  std::map<int32_t, std::pair<int64_t, int64_t>> lose_a_with_an_expired_spool() {
    Instance& a = add("host-a");
    Instance& b = add("host-b");
    start(a);
    start(b);
    produce(100);
    EXPECT_TRUE(wait_for_all()) << logs();
    // The group has given host-b its share: no partition moves while the fleet is paused
    // (one that did would be spooled by both, its old owner's copy an orphan).
    EXPECT_TRUE(wait_until([&] { return settled() && owns(a) > 0 && owns(b) > 0; }, 120s))
        << logs();
    std::string out;
    EXPECT_EQ(cli(*a.process, {"pause", "--reason", "maintenance"}, out), 0) << out;
    produce(200);  // spooled: [100, 300) of every partition, by whoever owns it
    EXPECT_TRUE(wait_spooled_by_both(200 * partitions_)) << logs();
    // host-a's record in the fleet topic says what its spool holds; then it dies.
    std::map<int32_t, std::pair<int64_t, int64_t>> expired;
    EXPECT_TRUE(wait_until(
        [&] {
          expired.clear();
          uint64_t events = 0;
          const auto seen = fleet(b);
          for (const auto& i : seen["instances"]) {
            if (i["id"] != "host-a") continue;
            for (const auto& sp : i["spooled"]) {
              expired[sp["partition"].get<int32_t>()] = {100, 250};
              events += sp["events"].get<uint64_t>();
            }
          }
          return !expired.empty() && events == status(*a.process)["spool"]["events"];
        },
        30s))
        << "host-a's record does not say what it spools: " << fleet(b).dump() << "\n"
        << status(*a.process).dump();
    a.process->signal(SIGKILL);
    EXPECT_TRUE(a.process->wait(10s));
    // Retention deletes part of what only host-a's spool holds.
    for (const auto& [p, range] : expired) cluster_->delete_records(topic_, p, range.second);
    // host-b takes host-a's partitions once the session expired, and resumes the fleet: those
    // partitions jump from MariaDB's 100 to Kafka's 250, and the range between is claimed.
    EXPECT_TRUE(wait_until([&] { return settled_assignment(b); }, 60s)) << b.process->log();
    EXPECT_EQ(cli(*b.process, {"resume"}, out), 0) << out << logs();
    // The other partitions go on; host-a's wait, and say why.
    produce(100);
    EXPECT_TRUE(wait_until([&] { return waiting(b, expired); }, 60s)) << status(*b.process).dump();
    return expired;
  }

  bool settled_assignment(Instance& i) {
    const auto s = status(*i.process);
    int32_t assigned = 0;
    for (const auto& p : s["partitions"]) assigned += p["mode"] != "orphan";
    return assigned == partitions_;
  }

  /// host-b's partitions `expired` wait for the claimed range.
  bool waiting(Instance& b, const std::map<int32_t, std::pair<int64_t, int64_t>>& expired) {
    const auto s = status(*b.process);
    size_t n = 0;
    for (const auto& p : s["partitions"]) {
      if (p["mode"] == "waiting" && expired.contains(p["partition"].get<int32_t>())) ++n;
    }
    return n == expired.size();
  }
};

TEST_F(FleetClaimTest, ARangeOnlyADeadInstancesSpoolHoldsIsWaitedForUntilItReturns) {
  const auto expired = lose_a_with_an_expired_spool();
  ASSERT_FALSE(HasFailure());
  Instance& a = instances_[0];
  Instance& b = instances_[1];
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(waiting(b, expired)) << status(*b.process).dump();
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0) << "declared lost";

  // host-a comes back: its spool drains from where MariaDB stands, host-b goes on after it.
  start(a);
  ASSERT_TRUE(wait_for_all()) << logs();
  verify_exact();
  expect_offsets_exact();
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
  ASSERT_TRUE(wait_until([&] { return settled(); }, 120s)) << logs();
}

TEST_F(FleetClaimTest, AHostLostForGoodIsForgottenAndOnlyWhatExpiredIsRecordedLost) {
  const auto expired = lose_a_with_an_expired_spool();
  ASSERT_FALSE(HasFailure());
  Instance& a = instances_[0];
  Instance& b = instances_[1];
  a.dir.reset();  // the host and its disk are gone for good

  // Forget refuses a live instance, and does nothing without --confirm.
  std::string out;
  EXPECT_EQ(
      run_command(
          {binary_dir() + "/main/sluice", "fleet", "forget", "host-b", "--config", b.config}, out),
      4)
      << out;
  ASSERT_TRUE(wait_until(
      [&] {
        return run_command({binary_dir() + "/main/sluice", "fleet", "forget", "host-a", "--config",
                            b.config},
                           out) == 0;
      },
      30s))
      << out;
  EXPECT_NE(out.find("offsets 100..299"), std::string::npos) << out;
  EXPECT_NE(out.find("--confirm"), std::string::npos) << out;
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(waiting(b, expired))
      << "forgotten without --confirm: " << status(*b.process).dump() << b.process->log();
  ASSERT_EQ(run_command({binary_dir() + "/main/sluice", "fleet", "forget", "host-a", "--config",
                         b.config, "--confirm"},
                        out),
            0)
      << out;

  // What Kafka still had is read again; exactly the expired range is recorded lost.
  ASSERT_TRUE(wait_for_all()) << b.process->log();
  std::map<uint32_t, std::set<uint64_t>> lost;
  for (const auto& [p, range] : expired) {
    for (int64_t s = range.first; s < range.second; ++s) {
      lost[static_cast<uint32_t>(p)].insert(static_cast<uint64_t>(s));
    }
  }
  verify_exact(db_.get(), lost);
  expect_offsets_exact();
  const auto gaps =
      db_->query("SELECT kafka_partition, kafka_offset, reason FROM sluice_dead_letter");
  ASSERT_EQ(gaps.size(), expired.size());
  for (const auto& g : gaps) {
    EXPECT_EQ(*g[1], "100");
    EXPECT_NE(g[2]->find("kafka_gap: offsets [100, 250)"), std::string::npos) << *g[2];
  }
  instances_.pop_front();  // host-a is gone
  ASSERT_TRUE(wait_until([&] { return settled(); }, 120s)) << logs();
}

}  // namespace
}  // namespace sluice::testing
