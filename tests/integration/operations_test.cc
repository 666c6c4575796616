// Integration tests of operating Sluice: metrics that move with the stream, a bounded graceful
// stop under load, SIGHUP retargeting to another MariaDB while paused, and the spool tools.
// The real binary against a private mariadbd (two, for the failover) and the test broker.

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <signal.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "admin/admin_client.h"
#include "ingest/drain_governor.h"
#include "storage/rocksdb_spool.h"
#include "tests/integration/stack_test.h"

namespace sluice::testing {
namespace {

class OperationsTest : public StackTest {
 protected:
  std::string metrics(const Process& sluice) {
    std::string url;
    EXPECT_TRUE(wait_until([&] { return !(url = admin_url(sluice)).empty(); }, 10s));
    auto reply = admin::http_request(url, "GET", "/metrics", "", "", 5000);
    EXPECT_TRUE(static_cast<bool>(reply));
    return reply ? reply->body : "";
  }

  /// The value of one series (`name` or `name{labels}` exactly as exposed); NaN when absent.
  static double value(const std::string& text, const std::string& series) {
    const std::string head = series + " ";
    for (size_t at = text.find(head); at != std::string::npos; at = text.find(head, at + 1)) {
      if (at == 0 || text[at - 1] == '\n')
        return std::strtod(text.c_str() + at + head.size(), nullptr);
    }
    return std::nan("");
  }

  /// `sluice run` with `replicas` (mariadb.replicas lines), and 20 events per partition
  /// produced.
  /// `replica` replicating `primary` (two private servers), and a config writing to the
  /// primary whose drain is capped by hand (1,000 events/s: a known pace for a test) and
  /// follows the replica's lag past 2 s.
  std::string replicated_config(MariaDb& primary, MariaDb& replica) {
    start_replication(primary, replica);
    return write_config(dir_, broker_->bootstrap(), primary, {topic_}, group_,
                        {.extra_yaml = "batch:\n  max_rows: 500\n  max_delay_ms: 100\n"
                                       "drain:\n  max_rate: 1000\n  max_replica_lag_s: 2\n",
                         .kafka_properties = kShortSession,
                         .mariadb_lines = replicas_lines(replica)});
  }

  /// Sluice started on `path` (a replicated_config), `events` per partition produced and seen
  /// on both servers; a failure is recorded (the caller asserts !HasFailure()).
  std::unique_ptr<Process> start_replicated(const std::string& path, MariaDb& primary,
                                            MariaDb& replica, size_t events) {
    auto sluice = start_sluice(dir_, path);
    produce(events);
    EXPECT_TRUE(wait_for_all(180s, &primary)) << sluice->log();
    EXPECT_TRUE(wait_for_all(60s, &replica)) << "replication does not run";
    return sluice;
  }

  /// start_written_then_paused(10, reason), then 100 more events per partition spooled.
  std::unique_ptr<Process> start_spooling_100(const std::string& reason) {
    auto sluice = start_written_then_paused(10, reason);
    produce(100);
    EXPECT_TRUE(
        wait_until([&] { return status(*sluice)["spool"]["events"] == 100 * partitions_; }, 60s));
    return sluice;
  }

  std::unique_ptr<Process> start_watching_replicas(const std::string& replicas) {
    auto sluice = start_sluice(dir_, config_watching(replicas));
    produce(20);
    return sluice;
  }

  /// Waits until status shows a `replicas` list for which `ready` holds; `s` is the last status.
  bool wait_for_replicas(const Process& sluice, nlohmann::json& s,
                         const std::function<bool(const nlohmann::json&)>& ready) {
    return wait_until(
        [&] {
          s = status(sluice);
          return s.contains("replicas") && ready(s["replicas"]);
        },
        30s);
  }
};

TEST_F(OperationsTest, EveryMetricIsPresentAndMovesWithTheStream) {
  auto sluice = start_sluice(dir_, config());
  produce(500);
  std::string reason_a, reason_b;
  producer_->produce("eventlogging_m", 0, EventFactory::bad(0, 1, reason_a));
  producer_->produce("eventlogging_m", 1, EventFactory::bad(2, 2, reason_b));
  producer_->flush();
  const int64_t total = static_cast<int64_t>(produced()) + 2;
  ASSERT_TRUE(wait_until([&] { return stored_offsets() == total; }, 120s)) << sluice->log();
  const std::string class_a = reason_a.substr(0, reason_a.find(':'));
  const std::string class_b = reason_b.substr(0, reason_b.find(':'));
  ASSERT_NE(class_a, class_b);
  std::string m;
  // Gauges are mirrored from a status snapshot at most a quarter second old, and a batch's
  // counters move once the ingest thread has taken its report — just after MariaDB's commit
  // is visible. Wait for both, then check exact values. (Every reason class is exported from
  // the start, at 0.)
  ASSERT_TRUE(wait_until(
      [&] {
        m = metrics(*sluice);
        return value(m, "sluice_consumer_lag_events{partition=\"3\",topic=\"eventlogging_m\"}") == 0 &&
               value(m, "sluice_rows_inserted_total{table=\"TestSchema_1\"}") == 2000 &&
               value(m, "sluice_dead_letters_total{reason=\"" + class_a + "\"}") == 1 &&
               value(m, "sluice_dead_letters_total{reason=\"" + class_b + "\"}") == 1;
      },
      10s))
      << m;
  EXPECT_EQ(value(m, "sluice_events_consumed_total{topic=\"eventlogging_m\"}"), total) << m;
  EXPECT_EQ(value(m, "sluice_rows_inserted_total{table=\"TestSchema_1\"}"), 2000) << m;
  EXPECT_EQ(value(m, "sluice_dead_letters_total{reason=\"" + class_a + "\"}"), 1) << m;
  EXPECT_EQ(value(m, "sluice_dead_letters_total{reason=\"" + class_b + "\"}"), 1) << m;
  const double batches = value(m, "sluice_batches_committed_total");
  EXPECT_GE(batches, 4) << m;
  EXPECT_EQ(value(m, "sluice_batch_rows_count"), batches) << m;
  EXPECT_EQ(value(m, "sluice_batch_rows_sum"), 2000) << m;
  EXPECT_EQ(value(m, "sluice_batch_seconds_count"), batches) << m;
  EXPECT_GT(value(m, "sluice_batch_seconds_sum"), 0) << m;
  EXPECT_GT(value(m, "sluice_transaction_seconds_max"), 0) << m;
  EXPECT_EQ(value(m, "sluice_state{state=\"running\"}"), 1) << m;
  EXPECT_EQ(value(m, "sluice_state{state=\"paused\"}"), 0) << m;
  EXPECT_EQ(value(m, "sluice_db_up"), 1) << m;
  for (int p = 0; p < 4; ++p) {
    EXPECT_EQ(value(m, "sluice_consumer_lag_events{partition=\"" + std::to_string(p) +
                           "\",topic=\"eventlogging_m\"}"),
              0)
        << m;
  }
  EXPECT_EQ(value(m, "sluice_spool_events"), 0) << m;
  EXPECT_EQ(value(m, "sluice_events_spooled_total"), 0) << m;

  // DBAs can tell Sluice's sessions from others: each says program_name=sluice.
  const int64_t sessions = sluice_connections();
  EXPECT_GE(sessions, 1);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM performance_schema.session_connect_attrs a JOIN "
                        "information_schema.PROCESSLIST p ON a.PROCESSLIST_ID = p.ID WHERE "
                        "p.USER = 'sluice' AND a.ATTR_NAME = 'program_name' AND "
                        "a.ATTR_VALUE = 'sluice'"),
            sessions);

  // Status: lag to the high watermark per partition, freshness per table equal to the table's.
  auto s = status(*sluice);
  for (const auto& p : s["partitions"]) {
    EXPECT_EQ(p["lag"], 0) << s.dump();
    EXPECT_EQ(p["high_watermark"], p["position"]) << s.dump();
  }
  ASSERT_EQ(s["tables"].size(), 1u) << s.dump();
  EXPECT_EQ(s["tables"][0]["max_timestamp"],
            *db_->query("SELECT MAX(timestamp) FROM TestSchema_1")[0][0]);

  // Paused: events go to the spool, and the metrics say so.
  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "metrics"}, out), 0) << out;
  produce(100);
  ASSERT_TRUE(wait_until(
      [&] {
        m = metrics(*sluice);
        return value(m, "sluice_spool_events") == 400;
      },
      60s))
      << m;
  EXPECT_EQ(value(m, "sluice_state{state=\"paused\"}"), 1) << m;
  EXPECT_EQ(value(m, "sluice_state{state=\"running\"}"), 0) << m;
  EXPECT_EQ(value(m, "sluice_events_spooled_total"), 400) << m;
  EXPECT_GT(value(m, "sluice_spool_bytes"), 0) << m;
  EXPECT_GE(value(m, "sluice_spool_oldest_age_seconds"), 0) << m;

  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_until([&] { return stored_offsets() == total + 400; }, 120s)) << sluice->log();
  ASSERT_TRUE(wait_until(
      [&] {
        m = metrics(*sluice);
        return value(m, "sluice_spool_events") == 0 &&
               value(m, "sluice_rows_inserted_total{table=\"TestSchema_1\"}") == 2400 &&
               value(m, "sluice_state{state=\"running\"}") == 1;
      },
      30s))
      << m;
  EXPECT_EQ(value(m, "sluice_events_drained_total"), 400) << m;
  EXPECT_EQ(value(m, "sluice_rows_inserted_total{table=\"TestSchema_1\"}"), 2400) << m;
  EXPECT_EQ(value(m, "sluice_events_consumed_total{topic=\"eventlogging_m\"}"), total + 400) << m;

  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), 0) << sluice->log();
}

TEST_F(OperationsTest, SigtermUnderLoadExitsZeroPromptlyAndARestartIsExact) {
  auto sluice = start_sluice(dir_, config());
  std::atomic<bool> stop_producing{false};
  std::thread producer([&] {
    for (int round = 0; round < 40 && !stop_producing; ++round) {
      produce(100);
      std::this_thread::sleep_for(50ms);
    }
  });
  ASSERT_TRUE(wait_until([&] { return rows() >= 2000; }, 60s)) << sluice->log();
  const auto before = std::chrono::steady_clock::now();
  sluice->signal(SIGTERM);
  const auto code = sluice->wait(30s);
  const auto took = std::chrono::steady_clock::now() - before;
  stop_producing = true;
  producer.join();
  ASSERT_TRUE(code.has_value()) << "no exit within 30 s of SIGTERM\n" << sluice->log();
  EXPECT_EQ(*code, 0) << sluice->log();
  std::cout << "[ measure  ] SIGTERM to exit under load "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";

  auto again = start_sluice(dir_, config(), "sluice-2.log");
  ASSERT_TRUE(wait_for_all()) << again->log();
  verify_exact();
  // The first process may have stored everything already: wait until this one is up (its
  // handlers installed) before asking it to stop, or SIGTERM meets the default action.
  ASSERT_TRUE(wait_until([&] { return !admin_url(*again).empty(); }, 30s)) << again->log();
  again->signal(SIGTERM);
  EXPECT_EQ(again->wait(60s), 0) << again->log();
}

TEST_F(OperationsTest, SighupRetargetsToAServerThatLagsOnlyWhilePausedAndLosesNothing) {
  auto sluice = start_written(100);
  ASSERT_FALSE(HasFailure());
  db_->dump(dir_.file("backup.sql"));  // what the replica we fail over to will hold
  produce(100);
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  // The new primary: a server restored from that dump, 100 events per partition behind.
  MariaDb second(dir_.file("mariadb-2"));
  second.load(dir_.file("backup.sql"));

  // Not paused: the new endpoint is refused, and writing goes on where it was.
  config("", "", &second);
  sluice->signal(SIGHUP);
  ASSERT_TRUE(wait_until(
      [&] { return sluice->log().find("MariaDB endpoint not changed") != std::string::npos; }, 10s))
      << sluice->log();
  produce(50);
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  const int64_t on_first = static_cast<int64_t>(produced());

  // The failover: pause, point at the new primary, reload, resume.
  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "failover"}, out), 0) << out;
  produce(300);
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["events"] == 1200; }, 60s));
  sluice->signal(SIGHUP);
  ASSERT_TRUE(wait_until(
      [&] {
        return status(*sluice)["mariadb"].get<std::string>().find(second.socket()) !=
               std::string::npos;
      },
      10s))
      << sluice->log();
  EXPECT_EQ(status(*sluice)["state"], "paused");
  EXPECT_EQ(sluice_connections(&second), 0)
      << "paused: the new server is not touched before the resume";
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  produce(25);  // and live traffic follows to the new server
  ASSERT_TRUE(wait_for_all(120s, &second)) << sluice->log();

  // The new server has every event exactly once, in order: the 100 per partition it was
  // restored with, the 150 it lacked read again from Kafka, then the spool and live traffic.
  verify_exact(&second);
  // The old server kept what it had and was not touched again.
  EXPECT_EQ(db_->scalar("SELECT COALESCE(SUM(next_offset), 0) FROM sluice_offsets"), on_first);
  EXPECT_EQ(sluice_connections(), 0) << "connections left on the old server";
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), 0) << sluice->log();
}

TEST_F(OperationsTest, SighupAppliesTheLogLevelRefusesRestartOnlyKeysAndSurvivesABadFile) {
  const std::string path = config();
  auto sluice = start_sluice(dir_, path);
  produce(10);
  ASSERT_TRUE(wait_for_all()) << sluice->log();

  std::ofstream(path, std::ios::app) << "batch_typo: [\n";
  sluice->signal(SIGHUP);
  ASSERT_TRUE(wait_until(
      [&] { return sluice->log().find("reload refused, nothing changed") != std::string::npos; },
      10s))
      << sluice->log();
  EXPECT_EQ(status(*sluice)["state"], "running");

  // A valid file that changes the log level (applied) and batch.max_rows (needs a restart).
  write_config(dir_, broker_->bootstrap(), *db_, {"eventlogging_m"}, "m",
               {.extra_yaml = "batch:\n  max_rows: 250\n  max_delay_ms: 100\nlog:\n  level: warn\n",
                .kafka_properties = kShortSession});
  sluice->signal(SIGHUP);
  ASSERT_TRUE(wait_until(
      [&] {
        return sluice->log().find("batch.max_rows changed; it needs a restart") !=
               std::string::npos;
      },
      10s))
      << sluice->log();
  // At warn, the 30 s info summaries and pause/resume info lines are no longer written.
  const size_t before = sluice->log().size();
  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause"}, out), 0) << out;
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  produce(10);
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  EXPECT_EQ(sluice->log().substr(before).find(" info "), std::string::npos)
      << sluice->log().substr(before);
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), 0) << sluice->log();
}

TEST_F(OperationsTest, JsonLogLinesStayJsonWhateverTheMessageHolds) {
  auto sluice = start_sluice(dir_, config("", "", nullptr, "log:\n  format: json\n"));
  produce(10);
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "say \"hi\" \\ then\ttab"}, out), 0) << out;
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  sluice->signal(SIGTERM);
  ASSERT_EQ(sluice->wait(60s), 0) << sluice->log();
  std::istringstream lines(sluice->log());
  std::string line;
  size_t parsed = 0;
  bool reason_seen = false;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    ASSERT_TRUE(j.contains("msg") && j.contains("level") && j.contains("logger")) << line;
    reason_seen |= j["msg"].get<std::string>().find("say \"hi\" \\ then\ttab") != std::string::npos;
    ++parsed;
  }
  EXPECT_GT(parsed, 3u);
  EXPECT_TRUE(reason_seen) << sluice->log();
}

// A corrupt spool block: the service refuses to start saying where and what to do; the tool
// lists it and removes nothing without --confirm, then copies it aside and removes it; the
// service reads the offsets it held again from Kafka: every event once, in order.
TEST_F(OperationsTest, ACorruptSpoolBlockIsNamedCopiedAsideRemovedOnConfirmAndReadAgain) {
  auto sluice = start_spooling_100("corrupt block drill");
  ASSERT_FALSE(HasFailure());
  const std::string path = config();  // the file it runs on
  std::string out;
  produce(100);  // a second block per partition
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["events"] == 800; }, 60s));
  sluice->signal(SIGTERM);
  ASSERT_EQ(sluice->wait(60s), 0) << sluice->log();

  // Garble the header of partition 0's second block.
  int64_t damaged_first = -1;
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_.file("spool"), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string prefix = storage::spool_block_key(topic_, 0, 0);
    prefix.resize(prefix.size() - 8);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    int n = 0;
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      if (++n < 2) continue;
      const std::string key = it->key().ToString();
      for (int64_t first = 0; first < 1000 && damaged_first < 0; ++first) {
        if (storage::spool_block_key(topic_, 0, first) == key) damaged_first = first;
      }
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, "xyz").ok());
      break;
    }
  }
  ASSERT_GT(damaged_first, 10) << "partition 0 has a second block";

  auto refused = start_sluice(dir_, path, "refused.log");
  EXPECT_EQ(refused->wait(60s), std::optional<int>(1)) << refused->log();
  const std::string where = "corrupt block at " + topic_ + "/0@" + std::to_string(damaged_first);
  EXPECT_NE(refused->log().find(where), std::string::npos) << refused->log();
  EXPECT_NE(refused->log().find("sluice spool discard --path DIR --corrupt"), std::string::npos);

  const std::string sluice_bin = binary_dir() + "/main/sluice";
  ASSERT_EQ(run_command({sluice_bin, "spool", "discard", "--config", path, "--corrupt"}, out), 0)
      << out;
  EXPECT_NE(out.find("would remove 1 corrupt block(s)"), std::string::npos) << out;
  EXPECT_NE(out.find(topic_ + "/0 from offset " + std::to_string(damaged_first)), std::string::npos)
      << out;
  EXPECT_NE(out.find("nothing removed"), std::string::npos) << out;
  ASSERT_EQ(run_command(
                {sluice_bin, "spool", "discard", "--config", path, "--corrupt", "--confirm"}, out),
            0)
      << out;
  EXPECT_TRUE(std::filesystem::exists(dir_.file("spool.corrupt") + "/" + topic_ + "-0-" +
                                      std::to_string(damaged_first) + ".block"))
      << out;

  auto again = start_sluice(dir_, path, "again.log");
  ASSERT_TRUE(wait_until([&] { return status(*again)["state"] == "paused"; }, 60s)) << again->log();
  ASSERT_EQ(cli(*again, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_for_all()) << again->log();
  verify_exact();
  EXPECT_TRUE(wait_until([&] { return status(*again)["spool"]["events"] == 0; }, 30s));
}

TEST_F(OperationsTest, SpoolToolsInspectExportAndDeleteNothingWithoutConfirm) {
  auto sluice = start_spooling_100("spool tools");
  ASSERT_FALSE(HasFailure());
  const std::string path = config();  // the file it runs on
  std::string out;

  // A running service: inspect through the admin API; the offline tools refuse its spool.
  ASSERT_EQ(cli(*sluice, {"spool", "inspect", "--json"}, out), 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["events"], 400);
  ASSERT_EQ(j["partitions"].size(), 4u) << out;
  for (const auto& p : j["partitions"]) {
    EXPECT_EQ(p["first_offset"], 10) << out;
    EXPECT_EQ(p["last_offset"], 109) << out;
    EXPECT_EQ(p["events"], 100) << out;
    EXPECT_GE(p["newest_timestamp_ms"].get<int64_t>(), p["oldest_timestamp_ms"].get<int64_t>());
  }
  const std::string sluice_bin = binary_dir() + "/main/sluice";
  EXPECT_EQ(run_command({sluice_bin, "spool", "export", "--config", path}, out), 1);
  EXPECT_NE(out.find("stop the service first"), std::string::npos) << out;

  sluice->signal(SIGTERM);
  ASSERT_EQ(sluice->wait(60s), 0) << sluice->log();

  // Offline: the same picture, and the operator's pause.
  ASSERT_EQ(run_command({sluice_bin, "spool", "inspect", "--config", path, "--json"}, out), 0)
      << out;
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["events"], 400);
  EXPECT_EQ(j["pause"]["reason"], "spool tools");
  ASSERT_EQ(run_command({sluice_bin, "spool", "inspect", "--config", path}, out), 0) << out;
  EXPECT_NE(out.find("eventlogging_m/3"), std::string::npos) << out;

  // Export: every event, as received, in offset order per partition.
  const std::string file = dir_.file("export.jsonl");
  ASSERT_EQ(run_command({sluice_bin, "spool", "export", "--config", path, "-o", file}, out), 0)
      << out;
  std::ifstream in(file);
  std::string line;
  std::map<int, int64_t> next;
  size_t lines = 0;
  while (std::getline(in, line)) {
    const auto e = nlohmann::json::parse(line);
    const int p = e["partition"];
    EXPECT_EQ(e["offset"].get<int64_t>(), next.contains(p) ? next[p] : 10) << line;
    next[p] = e["offset"].get<int64_t>() + 1;
    const auto capsule = nlohmann::json::parse(e["payload"].get<std::string>());
    uint32_t t = 0, part = 0;
    uint64_t seq = 0;
    EventFactory::parse_uuid(capsule["uuid"], t, part, seq);
    EXPECT_EQ(static_cast<int>(part), p);
    EXPECT_EQ(static_cast<int64_t>(seq), e["offset"].get<int64_t>());
    ++lines;
  }
  EXPECT_EQ(lines, 400u);

  // Discard: without --confirm it only says what it would delete.
  EXPECT_EQ(run_command({sluice_bin, "spool", "discard", "--config", path}, out), 2) << out;
  ASSERT_EQ(run_command({sluice_bin, "spool", "discard", "--config", path, "--all"}, out), 0);
  EXPECT_NE(out.find("would delete 400"), std::string::npos) << out;
  EXPECT_NE(out.find("nothing deleted"), std::string::npos) << out;
  ASSERT_EQ(run_command({sluice_bin, "spool", "discard", "--config", path, "--topic",
                         "eventlogging_m", "--partition", "0"},
                        out),
            0);
  EXPECT_NE(out.find("eventlogging_m/0 offsets 10..109: 100 event(s)"), std::string::npos) << out;
  ASSERT_EQ(run_command({sluice_bin, "spool", "inspect", "--config", path, "--json"}, out), 0);
  EXPECT_EQ(nlohmann::json::parse(out)["events"], 400) << "deleted without --confirm";

  ASSERT_EQ(run_command({sluice_bin, "spool", "discard", "--config", path, "--topic",
                         "eventlogging_m", "--partition", "0", "--confirm"},
                        out),
            0)
      << out;
  ASSERT_EQ(run_command({sluice_bin, "spool", "inspect", "--config", path, "--json"}, out), 0);
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["events"], 300) << out;
  ASSERT_EQ(j["partitions"].size(), 3u) << out;
  for (const auto& p : j["partitions"]) EXPECT_NE(p["partition"], 0) << out;
}

TEST_F(OperationsTest, AServerSettingThatMakesWritersTakeTurnsIsNamedInLogAndStatus) {
  // MariaDB's default: a LOAD DATA holds its table's AUTO-INC lock to the end.
  MariaDb server(dir_.file("defaults"), "--innodb-autoinc-lock-mode=1");
  auto sluice = start_sluice(dir_, config("", "", &server));
  produce(20);
  ASSERT_TRUE(wait_for_all(180s, &server)) << sluice->log();
  verify_exact(&server);
  nlohmann::json s;
  ASSERT_TRUE(wait_until(
      [&] {
        s = status(*sluice);
        return s.contains("mariadb_notes") && s["mariadb_notes"].size() == 1;
      },
      30s))
      << s.dump();
  const auto note = s["mariadb_notes"][0].get<std::string>();
  EXPECT_NE(note.find("innodb_autoinc_lock_mode = 1"), std::string::npos) << note;
  EXPECT_NE(note.find("innodb_autoinc_lock_mode = 2"), std::string::npos) << note;
  EXPECT_NE(sluice->log().find("innodb_autoinc_lock_mode = 1"), std::string::npos) << sluice->log();
  std::string out;
  ASSERT_EQ(cli(*sluice, {"status"}, out), 0) << out;
  EXPECT_NE(out.find("note:      innodb_autoinc_lock_mode = 1"), std::string::npos) << out;
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), 0) << sluice->log();
}

TEST_F(OperationsTest, ADrainSlowsWhileAReplicaFallsBehindAndFinishesOnceItCatchesUp) {
  MariaDb primary(dir_.file("primary"), kPrimaryOptions);
  MariaDb replica(dir_.file("replica"), kReplicaOptions);
  auto sluice = start_replicated(replicated_config(primary, replica), primary, replica, 50);
  ASSERT_FALSE(HasFailure());

  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "schema patch"}, out), 0) << out;
  produce(2500);  // 10,000 events spooled: ten seconds of drain at the cap
  const int64_t backlog = 2500 * partitions_;
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["events"] == backlog; }, 60s));
  replica.exec("STOP SLAVE SQL_THREAD");  // from here the replica applies nothing
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;

  // The replica falls behind Sluice's commits past the bound: the drain slows down to its
  // floor, and the backlog waits in the spool rather than in the replica's relay log.
  nlohmann::json s;
  ASSERT_TRUE(wait_until(
      [&] {
        s = status(*sluice);
        return s["drain"]["limiting"] == "replica_lag" &&
               s["drain"]["rate_limit"] == ingest::DrainGovernor::kMinRate;
      },
      60s))
      << s.dump() << sluice->log();
  EXPECT_GT(s["drain"]["replica_lag_s"].get<double>(), 2) << s.dump();
  EXPECT_GT(s["spool"]["events"].get<int64_t>(), 0) << "the drain did not slow down";
  const auto m = metrics(*sluice);
  EXPECT_EQ(value(m, "sluice_drain_limited{factor=\"replica_lag\"}"), 1) << m;
  EXPECT_GT(value(m, "sluice_replica_lag_seconds"), 2) << m;
  ASSERT_EQ(cli(*sluice, {"status"}, out), 0) << out;
  EXPECT_NE(out.find("by replica_lag"), std::string::npos) << out;

  // The replica applies again and catches up: the drain speeds up to its cap and finishes.
  replica.exec("START SLAVE SQL_THREAD");
  ASSERT_TRUE(wait_for_all(180s, &primary)) << status(*sluice).dump() << sluice->log();
  ASSERT_TRUE(wait_for_all(60s, &replica));
  verify_exact(&primary);
  verify_exact(&replica);
  ASSERT_TRUE(wait_until(
      [&] {
        s = status(*sluice);
        return s["state"] == "running" && s["spool"]["events"] == 0 &&
               s["drain"]["limiting"] == "max_rate";
      },
      60s))
      << s.dump();
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), 0) << sluice->log();
}

TEST_F(OperationsTest, AReplaySlowsWhileAReplicaFallsBehindAndFinishesOnceItCatchesUp) {
  MariaDb primary(dir_.file("primary"), kPrimaryOptions);
  MariaDb replica(dir_.file("replica"), kReplicaOptions);
  // A replay (ten seconds for 10,000 events at the cap) follows the lag as the drain does.
  const std::string path = replicated_config(primary, replica);
  auto sluice = start_replicated(path, primary, replica, 2500);
  ASSERT_FALSE(HasFailure());
  sluice->signal(SIGTERM);
  ASSERT_EQ(sluice->wait(60s), 0) << sluice->log();
  // Both servers lose the rows (a replicated DELETE); the replica then stops applying.
  primary.exec("DELETE FROM TestSchema_1");
  ASSERT_TRUE(wait_until(
      [&] { return *replica.query("SELECT COUNT(*) FROM TestSchema_1")[0][0] == "0"; }, 60s));
  replica.exec("STOP SLAVE SQL_THREAD");

  Process replay({binary_dir() + "/main/sluice", "replay", "--config", path, "--topic", topic_,
                  "--from-offset", "0"},
                 dir_.file("replay.log"));
  EXPECT_TRUE(wait_until(
      [&] { return replay.log().find("limited by replica_lag") != std::string::npos; }, 60s))
      << replay.log();
  EXPECT_TRUE(replay.running()) << "the replay did not slow down: " << replay.log();
  EXPECT_NE(replay.log().find("following the replicas' lag (at most 2 s)"), std::string::npos)
      << replay.log();
  EXPECT_LT(std::stoll(*primary.query("SELECT COUNT(*) FROM TestSchema_1")[0][0]),
            2500 * partitions_);

  // The replica applies again and catches up: the replay speeds up and finishes, once each.
  replica.exec("START SLAVE SQL_THREAD");
  EXPECT_EQ(replay.wait(180s), 0) << replay.log();
  ASSERT_TRUE(wait_for_all(60s, &replica));
  verify_exact(&primary);
  verify_exact(&replica);
}

TEST_F(OperationsTest, StatusShowsReplicaFreshnessBesideThePrimaryAndSurvivesADeadReplica) {
  MariaDb replica(dir_.file("replica"));
  replica.start();
  // A replica that lags: it holds an older copy of the table (only `timestamp` matters here).
  replica.exec("CREATE TABLE TestSchema_1 (`timestamp` VARBINARY(14), KEY (`timestamp`))");
  replica.exec("INSERT INTO TestSchema_1 VALUES ('20200101000000'), ('20200102030405')");
  const std::string replicas =
      replicas_lines(replica) + "    - host: 127.0.0.1\n      port: 1\n      user: nobody\n";
  // The replicas list belongs under mariadb: append it to that section's extra lines.
  auto sluice = start_watching_replicas(replicas);
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  nlohmann::json s;
  ASSERT_TRUE(wait_for_replicas(*sluice, s,
                                [](const nlohmann::json& r) {
                                  return r.size() == 2 && !r[0]["tables"].empty() &&
                                         r[1].contains("error");
                                }))
      << s.dump() << sluice->log();
  const auto& on_replica = s["replicas"][0];
  EXPECT_FALSE(on_replica.contains("error")) << s.dump();
  EXPECT_NE(on_replica["endpoint"].get<std::string>().find(replica.socket()), std::string::npos);
  ASSERT_EQ(on_replica["tables"][0]["table"], "TestSchema_1") << s.dump();
  EXPECT_EQ(on_replica["tables"][0]["max_timestamp"], "20200102030405") << s.dump();
  EXPECT_GT(on_replica["tables"][0]["behind_s"].get<int64_t>(), 365 * 24 * 3600) << s.dump();
  // The primary's own freshness, side by side, equals the table's.
  EXPECT_EQ(s["tables"][0]["max_timestamp"],
            *db_->query("SELECT MAX(timestamp) FROM TestSchema_1")[0][0]);
  EXPECT_EQ(s["state"], "running") << "a dead replica must not disturb ingestion";
  // The test servers run with innodb_autoinc_lock_mode = 2: nothing to say about them.
  EXPECT_TRUE(s["mariadb_notes"].empty()) << s.dump();

  std::string out;
  ASSERT_EQ(cli(*sluice, {"status"}, out), 0) << out;
  EXPECT_NE(out.find("freshness"), std::string::npos) << out;
  EXPECT_NE(out.find("20200102030405"), std::string::npos) << out;
  EXPECT_NE(out.find("unreachable"), std::string::npos) << out;
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), 0) << sluice->log();
}

TEST_F(OperationsTest, AReplicaThatRefusesItsOffsetsToThisUserStillShowsItsFreshness) {
  // A replica where Sluice's user may read the event table but not sluice_offsets (a DBA's
  // table-level grant): the replica's lag behind Sluice's commits is unknown, and its
  // tables' freshness is checked and shown all the same.
  MariaDb replica(dir_.file("replica"));
  replica.exec("CREATE TABLE TestSchema_1 (`timestamp` VARBINARY(14), KEY (`timestamp`))");
  replica.exec("INSERT INTO TestSchema_1 VALUES ('20200102030405')");
  replica.exec(
      "CREATE TABLE sluice_offsets (consumer_group VARBINARY(255), topic VARBINARY(255), "
      "kafka_partition INT, next_offset BIGINT)");
  replica.exec("REVOKE ALL PRIVILEGES ON log.* FROM 'sluice'@'localhost'");
  replica.exec("GRANT SELECT ON log.TestSchema_1 TO 'sluice'@'localhost'");
  auto sluice = start_watching_replicas(replicas_lines(replica));
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  nlohmann::json s;
  ASSERT_TRUE(wait_for_replicas(
      *sluice, s, [](const nlohmann::json& r) { return r.size() == 1 && !r[0]["tables"].empty(); }))
      << s.dump() << sluice->log();
  const auto& on_replica = s["replicas"][0];
  EXPECT_FALSE(on_replica.contains("error")) << s.dump();
  ASSERT_EQ(on_replica["tables"][0]["table"], "TestSchema_1") << s.dump();
  EXPECT_EQ(on_replica["tables"][0]["max_timestamp"], "20200102030405") << s.dump();
  EXPECT_TRUE(s["drain"]["replica_lag_s"].is_null()) << s.dump();
  EXPECT_EQ(s["state"], "running");
  // The setup is what it claims: on the replica this user reads the table, not the offsets.
  std::string out;
  auto as_sluice = [&](const std::string& sql) {
    return run_command({"mariadb", "--no-defaults", "-S", replica.socket(), "-usluice",
                        "-p" + replica.password(), "log", "-e", sql},
                       out);
  };
  EXPECT_EQ(as_sluice("SELECT COUNT(*) FROM TestSchema_1"), 0) << out;
  EXPECT_NE(as_sluice("SELECT COUNT(*) FROM sluice_offsets"), 0) << out;
  EXPECT_NE(out.find("denied"), std::string::npos) << out;
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), 0) << sluice->log();
}

}  // namespace
}  // namespace sluice::testing
