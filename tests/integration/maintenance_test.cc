// Integration tests of maintenance and outages: the real `sluice` binary, a private mariadbd
// that the tests stop, kill and restart, and the test broker. Each asserts the exact outcome:
// every event once, in partition order, the spool empty at the end.

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "tests/integration/stack_test.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLUICE_TEST_UNDER_ASAN 1
#endif
#endif

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

class MaintenanceTest : public StackTest {};

TEST_F(MaintenanceTest, PlannedMaintenancePauseStopServerSpoolStartResumeIsExact) {
  auto sluice = start_written(500);
  ASSERT_FALSE(HasFailure());

  std::string out;
  const auto before = std::chrono::steady_clock::now();
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "security update"}, out), 0) << out;
  const auto pause_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - before)
                            .count();
  std::cout << "[ measure  ] pause latency " << pause_ms << " ms\n";
  EXPECT_NE(out.find("state: paused"), std::string::npos) << out;
  EXPECT_EQ(sluice_connections(), 0) << "pause answered but Sluice still holds connections";

  db_->stop();
  produce(5000);  // 20,000 events while the server is down
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = status(*sluice);
        return s.is_object() && s["spool"]["events"] == 20000;
      },
      60s))
      << status(*sluice).dump() << sluice->log();
  const auto paused = status(*sluice);
  EXPECT_EQ(paused["state"], "paused");
  EXPECT_EQ(paused["pause"]["reason"], "security update");

  db_->start();
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(sluice_connections(), 0) << "a paused Sluice connected to a restarted server";
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = status(*sluice);
        return s.is_object() && s["state"] == "running" && s["spool"]["events"] == 0;
      },
      30s))
      << status(*sluice).dump();
  // Resume and pause are idempotent.
  EXPECT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), 0) << sluice->log();
}

TEST_F(MaintenanceTest, PauseThatWaitsFifteenSecondsForASlowTransactionStillAnswers) {
  auto sluice = start_written(50);
  ASSERT_FALSE(HasFailure());
  // A DBA's table lock holds the next batch's statement inside its transaction: the pause can
  // only answer once that transaction ends, 15 s from now.
  db_->exec("LOCK TABLES TestSchema_1 WRITE");
  produce(50);
  ASSERT_TRUE(wait_until(
      [&] {
        return db_->scalar(
                   "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = "
                   "'sluice' AND STATE LIKE '%metadata lock%'") > 0;
      },
      30s))
      << sluice->log();
  std::string out;
  int code = -1;
  std::thread pause([&] { code = cli(*sluice, {"pause", "--reason", "slow"}, out); });
  std::this_thread::sleep_for(15s);
  db_->exec("UNLOCK TABLES");
  pause.join();
  EXPECT_EQ(code, 0) << out << sluice->log();
  EXPECT_NE(out.find("paused"), std::string::npos) << out;
  EXPECT_EQ(sluice_connections(), 0);
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
}

TEST_F(MaintenanceTest, KilledWhileSpoolingComesBackPausedAndQuietThenDrainsExactly) {
  auto sluice = start_written_then_paused(200, "schema patch");
  ASSERT_FALSE(HasFailure());
  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause"}, out), 0) << out;  // idempotent
  produce(2000);
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["events"] > 3000; }, 60s));
  sluice->signal(SIGKILL);
  ASSERT_TRUE(sluice->wait(10s));

  sluice = start_sluice(dir_, config(), "sluice-restarted.log");
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["state"] == "paused"; }, 60s))
      << sluice->log();
  produce(1000);
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["events"] == 12000; }, 60s))
      << status(*sluice).dump() << sluice->log();
  EXPECT_EQ(sluice_connections(), 0);
  EXPECT_EQ(rows(), 800);
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
}

TEST_F(MaintenanceTest, KilledWhileDrainingRestartsAndFinishesExactly) {
  auto sluice = start_written(100);
  ASSERT_FALSE(HasFailure());
  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause"}, out), 0) << out;
  produce(5000);
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["events"] == 20000; }, 60s));
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_until([&] { return rows() > 2000; }, 60s)) << sluice->log();
  sluice->signal(SIGKILL);
  ASSERT_TRUE(sluice->wait(10s));
  ASSERT_LT(rows(), static_cast<int64_t>(produced())) << "the kill came too late";

  sluice = start_sluice(dir_, config(), "sluice-restarted.log");
  produce(500);  // live events arrive behind the rest of the spool
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["state"] == "running"; }, 30s));
}

TEST_F(MaintenanceTest, FullSpoolStopsFetchingLosesNothingAndResumesAsItDrains) {
  auto sluice = start_sluice(dir_, config("  max_bytes: 100000\n"));
  produce(10);
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause"}, out), 0) << out;
  produce(2500);  // about 3 MB, some 500 KB compressed: far more than the spool may hold
  // `full` is published the round the limit is reached, `fetch_paused` (and the log line) the
  // round after: wait for both.
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = status(*sluice);
        return s.is_object() && s["spool"]["full"] == true && s["fetch_paused"] == true;
      },
      60s))
      << status(*sluice).dump() << sluice->log();
  const auto full = status(*sluice);
  EXPECT_LT(full["spool"]["events"].get<int64_t>(), 10000);
  EXPECT_TRUE(full["fetch_paused"].get<bool>());
  EXPECT_NE(sluice->log().find("spool full"), std::string::npos);
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
}

/// Resident memory of a process, in KiB (VmRSS), or -1.
// The spool on a filesystem that fills up: fetching stops for what would be spooled, memory
// stays bounded, status and metrics say why; once there is space again the spool writes by
// itself, and every event ends up stored exactly once.
TEST_F(MaintenanceTest, ASpoolOnAFullDiskStopsFetchingSaysWhyAndRecoversWhenSpaceReturns) {
  SmallDisk disk(dir_.file("spool"), "4m");
  ASSERT_TRUE(disk.mounted());
  auto sluice = start_written(10);
  ASSERT_FALSE(HasFailure());
  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "disk drill"}, out), 0) << out;
  // Incompressible events (junk, dead-lettered once drained), 4 KB each: 6 MB, more than the
  // disk holds (and less than the test broker keeps per partition).
  std::mt19937 random(7);
  int64_t junk = 0;
  auto produce_junk = [&](int n) {
    for (int i = 0; i < n; ++i) {
      std::string payload(4000, '\0');
      for (auto& ch : payload) ch = static_cast<char>(random());
      producer_->produce(topic_, static_cast<int32_t>(i % partitions_), payload);
      ++junk;
    }
    producer_->flush();
  };
  produce_junk(1500);
  produce(100);
  nlohmann::json s;
  ASSERT_TRUE(wait_until(
      [&] {
        s = status(*sluice);
        return s.is_object() && s["spool"]["error"].is_string() && s["fetch_paused"] == true;
      },
      60s))
      << s.dump() << sluice->log();
  EXPECT_NE(s["spool"]["error"].get<std::string>().find("MiB free"), std::string::npos)
      << s.dump();
  EXPECT_EQ(s["state"], "paused");
  std::string text;
  EXPECT_EQ(cli(*sluice, {"status"}, text), 0);
  EXPECT_NE(text.find("CANNOT WRITE"), std::string::npos) << text;
  const std::string url = admin_url(*sluice);
  std::string metrics;
  ASSERT_EQ(run_command({"curl", "-sf", url + "/metrics"}, metrics), 0);
  EXPECT_EQ(metrics.find("sluice_spool_write_errors_total 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sluice_spool_write_errors_total "), std::string::npos) << metrics;

  // Bounded: another 6 MB arriving while the disk is full changes nothing in memory.
  std::this_thread::sleep_for(2s);
  const int64_t rss_full = rss_kib(sluice->pid());
  produce_junk(1500);
  produce(100);
  std::this_thread::sleep_for(5s);
  const int64_t rss_later = rss_kib(sluice->pid());
  std::cout << "[ measure  ] RSS with the spool's disk full " << rss_full / 1024 << " MiB, after "
            << "6 MB more arrived " << rss_later / 1024 << " MiB\n";
#if defined(__SANITIZE_ADDRESS__) || defined(SLUICE_TEST_UNDER_ASAN)
  // Under AddressSanitizer freed memory waits in its quarantine (256 MiB by default), so RSS
  // measures the quarantine, not Sluice; the plain build (scripts/test) checks the bound.
  (void)rss_later;
#else
  EXPECT_LT(rss_later, rss_full + 8 * 1024) << "memory grows with what cannot be spooled";
#endif
  EXPECT_EQ(status(*sluice)["spool"]["error"].is_string(), true);

  ASSERT_TRUE(disk.grow("256m"));
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["error"].is_null(); }, 30s))
      << sluice->log();
  EXPECT_NE(sluice->log().find("the spool writes again"), std::string::npos);
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(
      wait_until([&] { return stored_offsets() == static_cast<int64_t>(produced()) + junk; }, 180s))
      << sluice->log();
  verify_exact();
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter WHERE reason LIKE "
                        "'malformed_json%'"),
            junk);
  EXPECT_EQ(sluice->log().find("kafka_gap"), std::string::npos) << "nothing expired unread";
}

/// Lines at warning level or above in a log: what an on-call person would be paged by.
size_t loud_lines(const std::string& log) {
  size_t n = 0;
  for (size_t pos = 0; (pos = log.find('\n', pos)) != std::string::npos; ++pos) {
    const auto start = log.rfind('\n', pos - 1);
    const auto line = log.substr(start == std::string::npos ? 0 : start + 1, pos - start);
    if (line.find(" warning ") != std::string::npos || line.find(" error ") != std::string::npos) {
      ++n;
    }
  }
  return n;
}

TEST_F(MaintenanceTest, ServerKilledMidStreamMeansQuietSpoolingThenDrainsByItself) {
  auto sluice = start_written(300);
  ASSERT_FALSE(HasFailure());
  const size_t loud_before = loud_lines(sluice->log());
  // A steady stream (about 8,000 events/s) that goes on after the kill, so the server dies
  // with batches in flight and events keep arriving while it is away.
  std::atomic<bool> stop_producing{false};
  std::thread producer([&] {
    while (!stop_producing.load()) {
      produce(40);
      std::this_thread::sleep_for(20ms);
    }
  });
  ASSERT_TRUE(wait_until([&] { return rows() > 1500; }, 60s));
  db_->kill9();  // mid-stream
  std::this_thread::sleep_for(2s);
  stop_producing = true;
  producer.join();
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = status(*sluice);
        return s.is_object() && s["state"] == "outage" && s["spool"]["events"] > 0;
      },
      60s))
      << status(*sluice).dump() << sluice->log();
  std::this_thread::sleep_for(3s);  // a few probe rounds while the server is away
  ASSERT_TRUE(sluice->running());
  db_->start();
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["state"] == "running"; }, 30s));
  // No storm: a handful of lines for the whole outage, not one per event, batch or retry —
  // one per writer when its failures start, the transition, at most a summary.
  const size_t loud = loud_lines(sluice->log()) - loud_before;
  EXPECT_LE(loud, 5u) << sluice->log();
  EXPECT_NE(sluice->log().find("MariaDB unavailable"), std::string::npos);
  EXPECT_NE(sluice->log().find("takes writes again"), std::string::npos);
}

TEST_F(MaintenanceTest, ReadOnlyServerGetsNoRowsAndWritableAgainDrainsInOrder) {
  auto sluice = start_written(100);
  ASSERT_FALSE(HasFailure());
  db_->exec("SET GLOBAL read_only = 1");
  produce(1000);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = status(*sluice);
        return s.is_object() && s["state"] == "outage" && s["spool"]["events"] >= 3000;
      },
      60s))
      << status(*sluice).dump() << sluice->log();
  EXPECT_EQ(rows(), 400) << "a row was written to a read-only server";
  EXPECT_NE(status(*sluice)["outage"]["error"].get<std::string>().find("read"), std::string::npos);
  db_->exec("SET GLOBAL read_only = 0");
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
}

TEST_F(MaintenanceTest, DatabaseDownAtStartUpSpoolsFromTheStartAndDrainsWhenItComes) {
  db_->stop();
  auto sluice = start_sluice(dir_, config());
  produce(500);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = status(*sluice);
        return s.is_object() && s["state"] == "outage" && s["spool"]["events"] == 2000;
      },
      60s))
      << status(*sluice).dump() << sluice->log();
  db_->start();
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
}

TEST_F(MaintenanceTest, PauseDuringOutageHoldsAfterTheServerReturnsUntilResumed) {
  db_->stop();
  auto sluice = start_sluice(dir_, config());
  produce(200);
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["state"] == "outage"; }, 60s));
  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "failover"}, out), 0) << out;
  db_->start();
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(status(*sluice)["state"], "paused");
  EXPECT_EQ(sluice_connections(), 0);
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
}

TEST_F(MaintenanceTest, GarbageOnTheAdminPortNeitherStopsServingNorDisturbsIngestion) {
  const std::string token = "tok-" + std::to_string(getpid());
  std::ofstream(dir_.file("token")) << token << "\n";
  auto sluice = start_sluice(dir_, config("", "  token_file: \"" + dir_.file("token") + "\"\n"));
  std::string url;
  ASSERT_TRUE(wait_until([&] { return !(url = admin_url(*sluice)).empty(); }, 30s));
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  std::atomic<bool> stop_producing{false};
  std::thread producer([&] {
    while (!stop_producing.load()) {
      produce(40);
      std::this_thread::sleep_for(20ms);
    }
  });

  // Hundreds of connections of junk while events flow.
  std::vector<std::thread> attackers;
  for (int t = 0; t < 4; ++t) {
    attackers.emplace_back([port, t] {
      for (int i = 0; i < 75; ++i) {
        std::string junk(static_cast<size_t>(1 + (i * 53 + t) % 4000), static_cast<char>(i * 7));
        (void)raw_exchange(port, junk);
      }
    });
  }
  const std::string auth = "Authorization: Bearer " + token + "\r\n";
  struct Case {
    std::string request;
    std::string status;
  };
  const std::vector<Case> cases = {
      {"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n", "401"},
      {"GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n", "401"},
      {"POST /v1/pause HTTP/1.1\r\nHost: x\r\n\r\n", "401"},
      {"GET /v1/nope HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", "404"},
      {"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", "404"},
      {"DELETE /v1/status HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", "405"},
      {"POST /v1/pause HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 9\r\n\r\n{not json",
       "400"},
      {"POST /v1/pause HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 99999999999\r\n\r\n{",
       "413"},
      {"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: " + std::string(50'000, 'j') + "\r\n\r\n",
       "431"},
      {"\x16\x03\x01\x02\x00 a TLS hello to a plain-text port\r\n\r\n", "400"},
  };
  for (const auto& c : cases) {
    const auto answer = raw_exchange(port, c.request, c.status != "413");
    EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 " + c.status) << c.request.substr(0, 60);
    EXPECT_NE(answer.find("{\"error\":"), std::string::npos) << answer.substr(0, 300);
  }
  for (auto& a : attackers) a.join();
  std::this_thread::sleep_for(500ms);
  stop_producing = true;
  producer.join();

  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
  EXPECT_NE(raw_exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").find("200 OK"),
            std::string::npos);
  std::string out;
  EXPECT_EQ(run_command({binary_dir() + "/main/sluice", "status", "--admin", url, "--token-file",
                         dir_.file("token")},
                        out),
            0)
      << out;
  EXPECT_NE(out.find("state:     running"), std::string::npos) << out;
  EXPECT_TRUE(sluice->running());
}

}  // namespace
}  // namespace sluice::testing
