// Partial failures with the real binary: a link cut while the others work. Two instances of one
// consumer group on the binary's three-node Apache Kafka and a private mariadbd; host-b reaches
// every broker and MariaDB through proxies the test cuts and heals (testing/tcp_proxy.h), host-a
// directly. What must hold (DESIGN.md invariant 5): once a fleet pause answers nothing writes,
// whatever link is down; an instance that cannot hear the fleet stops writing within its lease;
// and after healing every event is in MariaDB once, in partition order.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/integration/fleet_stack.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

class NetworkTest : public FleetStackTest {
 protected:
  NetworkTest() { partitions_ = 8; }

  void SetUp() override {
    FleetStackTest::SetUp();
    route_ = std::make_unique<KafkaRoute>(*cluster_);
    db_link_ = std::make_unique<TcpProxy>(db_->port());
  }

  /// Sessions of host-b: it alone reaches MariaDB over TCP (host-a uses the socket).
  int64_t b_sessions() {
    return db_->scalar(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'sluice' AND "
        "HOST LIKE '%:%'");
  }

  /// Partitions instance `i` owns, or -1 when it does not answer.
  int owned(Instance& i) {
    const auto s = status(*i.process);
    if (!s.is_object()) return -1;
    int n = 0;
    for (const auto& p : s["partitions"]) n += p["mode"] != "orphan";
    return n;
  }

  std::unique_ptr<KafkaRoute> route_;
  std::unique_ptr<TcpProxy> db_link_;
};

TEST_F(NetworkTest, AFleetPauseWhileOneInstanceCutOffFromKafkaDrainsAnswersOnlyOnceNothingWrites) {
  // The drain is slowed down so that host-b is still draining when its link to Kafka goes.
  const std::string slow_drain = "drain:\n  max_rate: 400\n";
  Instance& a = add("host-a", "", 0, slow_drain);
  Instance& b = add("host-b", route_->bootstrap(), db_link_->port(), slow_drain);
  start(a);
  start(b);
  produce(50);
  ASSERT_TRUE(wait_for_all()) << logs();
  ASSERT_TRUE(wait_until([&] { return settled() && owns(a) > 0 && owns(b) > 0; }, 120s))
      << logs();
  std::string out;
  ASSERT_EQ(cli(*a.process, {"pause", "--reason", "before the outage"}, out), 0) << out << logs();
  produce(1500);  // 12,000 events spooled by the two, drained at 400/s each after the resume
  ASSERT_TRUE(wait_spooled_by_both(1500 * partitions_)) << logs();
  ASSERT_EQ(cli(*a.process, {"resume"}, out), 0) << out << logs();
  ASSERT_TRUE(wait_until(
      [&] { return status(*b.process)["state"] == "draining" && b_sessions() > 0; }, 30s))
      << logs();
  const int64_t before_cut = rows();
  ASSERT_TRUE(wait_until([&] { return rows() > before_cut + 500; }, 30s)) << "not draining";

  // host-b loses Kafka — the brokers and the fleet topic — but not MariaDB.
  route_->cut();
  const auto cut_at = std::chrono::steady_clock::now();
  ASSERT_EQ(cli(*a.process, {"pause", "--reason", "failover"}, out), 0) << out << logs();
  const auto answered_after = std::chrono::steady_clock::now() - cut_at;
  const int64_t at_answer = rows();
  EXPECT_EQ(sluice_connections(), 0) << "a session open when the pause answered\n" << logs();
  // Nothing written for at least a lease (5 s) more: the DBA restarts the server now.
  for (auto until = std::chrono::steady_clock::now() + 7s; std::chrono::steady_clock::now() < until;
       std::this_thread::sleep_for(200ms)) {
    ASSERT_EQ(rows(), at_answer) << "rows written after the pause answered\n" << logs();
    ASSERT_EQ(sluice_connections(), 0) << "a session after the pause answered\n" << logs();
  }
  EXPECT_LE(answered_after, 30s) << "the lease, the grace and a heartbeat are 11 s";
  EXPECT_EQ(status(*b.process)["state"], "fleet_unreachable") << b.process->log();
  EXPECT_EQ(status(*b.process)["fleet"]["lease"]["valid"], false);

  // Healed, host-b reads the pause before it writes anything.
  route_->heal();
  ASSERT_TRUE(wait_until([&] { return status(*b.process)["state"] == "paused"; }, 60s))
      << b.process->log();
  EXPECT_EQ(rows(), at_answer);
  EXPECT_EQ(sluice_connections(), 0);
  ASSERT_EQ(cli(*b.process, {"resume"}, out), 0) << out << logs();
  ASSERT_TRUE(wait_for_all(300s)) << logs();
  verify_exact();
  expect_offsets_exact();
}

TEST_F(NetworkTest, AnInstanceCutOffFromKafkaUnderLoadStopsWritingItsPartitionsMoveAndAllEndsExact) {
  Instance& a = add("host-a");
  Instance& b = add("host-b", route_->bootstrap(), db_link_->port());
  start(a);
  start(b);
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    while (!stop.load()) {
      produce(2);
      std::this_thread::sleep_for(50ms);
    }
  });
  ASSERT_TRUE(wait_until([&] { return settled() && owns(a) > 0 && owns(b) > 0; }, 120s))
      << logs();
  ASSERT_TRUE(wait_until([&] { return b_sessions() > 0; }, 30s)) << logs();

  route_->cut();
  // Within its lease (5 s) and the grace (5 s), host-b holds no session; it stays so.
  ASSERT_TRUE(wait_until([&] { return b_sessions() == 0; }, 12s)) << b.process->log();
  EXPECT_EQ(status(*b.process)["state"], "fleet_unreachable");
  // Its partitions move to host-a once the group's session expired (6 s), and host-a goes on.
  ASSERT_TRUE(wait_until([&] { return owned(a) == partitions_; }, 60s)) << a.process->log();
  const int64_t moving = rows();
  ASSERT_TRUE(wait_until([&] { return rows() > moving + 100; }, 30s)) << "host-a stalled";
  for (int i = 0; i < 25; ++i) {
    ASSERT_EQ(b_sessions(), 0) << "host-b writes while cut off from the fleet";
    std::this_thread::sleep_for(200ms);
  }

  route_->heal();
  ASSERT_TRUE(wait_until([&] { return status(*b.process)["state"] != "fleet_unreachable"; }, 60s))
      << b.process->log();
  stop = true;
  producer.join();
  ASSERT_TRUE(wait_for_all(300s)) << logs();
  verify_exact();
  expect_offsets_exact();
  ASSERT_TRUE(wait_until([&] { return settled(); }, 120s)) << logs();
}

TEST_F(NetworkTest, WithKafkaUnreachableALocalPauseAnswersAtOnceAndTheFleetAdoptsItOnceBack) {
  Instance& a = add("host-a", route_->bootstrap());
  Instance& b = add("host-b");
  start(a);
  start(b);
  produce(50);
  ASSERT_TRUE(wait_for_all()) << logs();
  ASSERT_TRUE(wait_until([&] { return settled(); }, 120s)) << logs();
  route_->cut();  // host-a loses Kafka: it cannot write the fleet's pause
  std::string out;
  EXPECT_NE(cli(*a.process, {"pause", "--reason", "failover"}, out), 0) << out;
  EXPECT_NE(out.find("--local"), std::string::npos) << "the refusal names the way out: " << out;
  const auto asked = std::chrono::steady_clock::now();
  ASSERT_EQ(cli(*a.process, {"pause", "--local", "--reason", "failover"}, out), 0) << out << logs();
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 15s);
  EXPECT_NE(out.find("this instance alone"), std::string::npos) << out;
  EXPECT_EQ(status(*a.process)["state"], "paused");
  // Back, the fleet adopts host-a's pause: host-b pauses too, and nothing writes.
  route_->heal();
  ASSERT_TRUE(wait_until([&] { return status(*b.process)["state"] == "paused"; }, 60s))
      << logs();
  EXPECT_NE(fleet(b)["target"]["reason"].get<std::string>().find("failover"), std::string::npos)
      << fleet(b).dump();
  const int64_t at = rows();
  produce(50);
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(rows(), at);
  EXPECT_EQ(sluice_connections(), 0);
  ASSERT_EQ(cli(*b.process, {"resume"}, out), 0) << out << logs();
  ASSERT_TRUE(wait_for_all(180s)) << logs();
  verify_exact();
}

TEST_F(NetworkTest, AFailoverWhereOneHostsRetargetIsForgottenWritesNowhereUntilBothAgree) {
  ASSERT_TRUE(start_two_settled(100));
  Instance& a = instances_[0];
  Instance& b = instances_[1];
  std::string out;
  ASSERT_EQ(cli(*a.process, {"pause", "--reason", "failover"}, out), 0) << out << logs();
  // The replica, caught up (the fleet is paused), is promoted; only host-a is retargeted.
  MariaDb promoted(dir_.file("promoted"));
  db_->dump(dir_.file("dump.sql"));
  promoted.load(dir_.file("dump.sql"));
  const int64_t before = rows();
  ASSERT_TRUE(retargeted(a, promoted)) << a.process->log();
  produce(100);
  std::this_thread::sleep_for(3s);  // host-a's record names its new server
  // A resume through either instance is refused, naming the other.
  EXPECT_NE(cli(*a.process, {"resume"}, out), 0) << out;
  EXPECT_NE(out.find("host-b writes to"), std::string::npos) << out;
  EXPECT_NE(cli(*b.process, {"resume"}, out), 0) << out;
  EXPECT_NE(out.find("host-a writes to"), std::string::npos) << out;
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(rows(), before) << "written to the old server";
  EXPECT_EQ(rows(&promoted), before) << "written to the new server before the fleet agreed";
  EXPECT_EQ(sluice_connections() + sluice_connections(&promoted), 0);
  // host-b follows: now the fleet resumes, onto the new server alone.
  ASSERT_TRUE(retargeted(b, promoted)) << b.process->log();
  std::this_thread::sleep_for(2s);
  ASSERT_EQ(cli(*b.process, {"resume"}, out), 0) << out << logs();
  ASSERT_TRUE(wait_for_all(180s, &promoted)) << logs();
  verify_exact(&promoted);
  EXPECT_EQ(rows(), before) << "the old server got rows after the failover";
}

/// The spool's disk fills while the fleet is paused (the reported crash: RocksDB, built with
/// its assertions, aborted on the full disk): Sluice stops fetching for the spool, says why,
/// stays small, and when the disk has room again goes on by itself — every event once.
TEST_F(NetworkTest, AFullSpoolDiskWhilePausedNeitherCrashesNorLosesAndRecoversWhenRoomReturns) {
  Instance& a = add("host-a", "", 0, "", "  max_bytes: 1073741824\n");
  SmallDisk disk(a.dir->file("spool"), "6m");
  ASSERT_TRUE(disk.mounted());
  start(a);
  produce(10);
  ASSERT_TRUE(wait_for_all()) << logs();
  std::string out;
  ASSERT_EQ(cli(*a.process, {"pause", "--reason", "the disk fills"}, out), 0) << out << logs();
  // 100,000 events (about 3.5 MB as spooled blocks): more than the disk takes.
  for (int i = 0; i < 50; ++i) produce(250);
  nlohmann::json s;
  ASSERT_TRUE(wait_until(
      [&] {
        s = status(*a.process);
        return s.is_object() && s["spool"]["error"].is_string() && s["fetch_paused"] == true;
      },
      120s))
      << s.dump() << logs();
  EXPECT_NE(s["spool"]["error"].get<std::string>().find("MiB free"), std::string::npos)
      << s.dump();
  std::this_thread::sleep_for(5s);
  ASSERT_TRUE(a.process->running()) << logs();
  EXPECT_LT(rss_kib(a.process->pid()), 400 * 1024) << "memory grows with what cannot be spooled";
  // A pause and a resume still answer with the spool unable to write (not even the record).
  ASSERT_EQ(cli(*a.process, {"pause", "--reason", "again"}, out), 0) << out << logs();

  ASSERT_TRUE(disk.grow("1g"));
  ASSERT_TRUE(wait_until([&] { return status(*a.process)["spool"]["error"].is_null(); }, 60s))
      << logs();
  ASSERT_EQ(cli(*a.process, {"resume"}, out), 0) << out << logs();
  ASSERT_TRUE(wait_for_all(300s)) << logs();
  verify_exact();
  expect_offsets_exact();
  EXPECT_EQ(a.process->log().find("kafka_gap"), std::string::npos);
}

}  // namespace
}  // namespace sluice::testing
