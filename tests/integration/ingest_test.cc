// Integration tests of the core ingestion path: the real `sluice` binary against a private
// mariadbd and sluice-testbroker, each started by the test. Every test asserts the exact
// outcome: every good event stored once, in offset order per partition, every bad one
// dead-lettered with its reason at its offset, sluice_offsets at each partition's end.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "testing/harness.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

/// A stopped consumer stays in its group until its session times out (the mock broker does
/// not shortcut that on leave); tests that restart Sluice keep it short so the new process is
/// assigned the partitions soon.
const std::map<std::string, std::string> kShortSession = {{"session.timeout.ms", "6000"},
                                                          {"heartbeat.interval.ms", "500"}};

struct Expected {
  struct Bad {
    std::string topic;
    int32_t partition;
    size_t index;  ///< position among the messages produced to that partition
    std::string reason_prefix;
  };
  std::map<std::string, std::set<std::string>> uuids_by_table;
  std::vector<Bad> bad;
  std::map<std::pair<std::string, int32_t>, size_t> produced;  ///< messages per partition
};

class IngestTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = std::make_unique<MariaDb>(dir_.file("mariadb")); }

  void start_broker(const std::vector<std::string>& topics) {
    broker_ = std::make_unique<Broker>(topics, dir_.path());
    producer_ = std::make_unique<Producer>(broker_->bootstrap());
  }

  /// Produces `count` messages per partition: schemas in rotation, every `bad_every`-th
  /// message a bad one of the next failure class (0 = none).
  void produce(const std::string& topic, uint32_t topic_index, int32_t partitions, size_t count,
               size_t bad_every, Expected& expected, int only_schema = -1) {
    for (size_t i = 0; i < count; ++i) {
      for (int32_t p = 0; p < partitions; ++p) {
        auto& n = expected.produced[{topic, p}];
        if (bad_every > 0 && i % bad_every == bad_every - 1) {
          std::string reason;
          producer_->produce(
              topic, p, EventFactory::bad(static_cast<int>(bad_class_++), next_bad_++, reason));
          expected.bad.push_back({topic, p, n, reason});
        } else {
          const int which = only_schema >= 0 ? only_schema : static_cast<int>((i + p) % 4);
          const uint64_t seq = seq_[{topic, p}]++;
          producer_->produce(topic, p,
                             EventFactory::good(which, topic_index, static_cast<uint32_t>(p), seq));
          expected.uuids_by_table[EventFactory::table(which)].insert(
              EventFactory::uuid_for(topic_index, static_cast<uint32_t>(p), seq));
        }
        ++n;
      }
    }
    producer_->flush();
  }

  int64_t committed_total(const std::string& group) {
    return db_->scalar(
        "SELECT COALESCE(SUM(next_offset), 0) FROM sluice_offsets WHERE "
        "consumer_group = '" +
        group + "'");
  }

  int64_t last_offset_total() {
    int64_t total = 0;
    for (const auto& [key, offsets] : producer_->offsets()) total += offsets.back() + 1;
    return total;
  }

  bool wait_for_all(const std::string& group, std::chrono::seconds timeout = 120s) {
    const int64_t want = last_offset_total();
    return wait_until(
        [&] {
          try {
            return committed_total(group) == want;
          } catch (const std::exception&) {
            return false;
          }
        },
        timeout);
  }

  int64_t table_rows(const std::string& table) { return db_->table_rows(table); }

  /// The exact-outcome check shared by every test.
  void verify_exact(const Expected& expected, const std::string& group) {
    std::map<std::string, uint32_t> topic_index_seen;
    for (const auto& [table, uuids] : expected.uuids_by_table) {
      const auto rows = db_->query("SELECT uuid FROM `" + table + "` ORDER BY id");
      std::set<std::string> stored;
      std::map<std::pair<uint32_t, uint32_t>, uint64_t> last_seq;
      for (const auto& r : rows) {
        const std::string& uuid = *r[0];
        EXPECT_TRUE(stored.insert(uuid).second) << "duplicate row " << uuid << " in " << table;
        uint32_t t = 0, p = 0;
        uint64_t seq = 0;
        EventFactory::parse_uuid(uuid, t, p, seq);
        auto it = last_seq.find({t, p});
        if (it != last_seq.end()) {
          EXPECT_LT(it->second, seq) << "partition order broken in " << table << " at " << uuid;
        }
        last_seq[{t, p}] = seq;
      }
      EXPECT_EQ(stored.size(), uuids.size()) << table;
      EXPECT_TRUE(stored == uuids) << "stored rows differ from produced events in " << table;
    }
    const auto letters = db_->query(
        "SELECT topic, kafka_partition, kafka_offset, reason FROM sluice_dead_letter ORDER BY id");
    std::map<std::tuple<std::string, int32_t, int64_t>, std::string> by_position;
    for (const auto& r : letters) {
      EXPECT_TRUE(
          by_position.emplace(std::make_tuple(*r[0], std::stoi(*r[1]), std::stoll(*r[2])), *r[3])
              .second)
          << "duplicate dead letter at " << *r[0] << "/" << *r[1] << "@" << *r[2];
    }
    EXPECT_EQ(by_position.size(), expected.bad.size());
    for (const auto& b : expected.bad) {
      const int64_t offset = producer_->offsets().at({b.topic, b.partition}).at(b.index);
      auto it = by_position.find({b.topic, b.partition, offset});
      ASSERT_NE(it, by_position.end()) << "no dead letter for " << b.topic << "/" << b.partition
                                       << "@" << offset << " (" << b.reason_prefix << ")";
      EXPECT_EQ(it->second.rfind(b.reason_prefix, 0), 0u)
          << "at offset " << offset << ": " << it->second << " does not start with "
          << b.reason_prefix;
    }
    for (const auto& [key, offsets] : producer_->offsets()) {
      EXPECT_EQ(db_->scalar("SELECT next_offset FROM sluice_offsets WHERE consumer_group = '" +
                            group + "' AND topic = '" + key.first +
                            "' AND kafka_partition = " + std::to_string(key.second)),
                offsets.back() + 1)
          << key.first << "/" << key.second;
    }
  }

  /// `sluice status --json` against the running service.
  nlohmann::json status_of(const Process& sluice, const std::string& token_file = "") {
    std::string url;
    EXPECT_TRUE(wait_until([&] { return !(url = admin_url(sluice)).empty(); }, 10s));
    std::vector<std::string> argv = {binary_dir() + "/main/sluice", "status", "--admin", url,
                                     "--json"};
    if (!token_file.empty()) argv.insert(argv.end(), {"--token-file", token_file});
    std::string out;
    EXPECT_EQ(run_command(argv, out), 0) << out;
    return nlohmann::json::parse(out, nullptr, false);
  }

  TempDir dir_;
  std::unique_ptr<MariaDb> db_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<Producer> producer_;
  std::map<std::pair<std::string, int32_t>, uint64_t> seq_;
  uint64_t bad_class_ = 0;
  uint64_t next_bad_ = 0;
};

TEST_F(IngestTest, MixedStreamLandsExactlyOnceInPartitionOrderWithBadEventsDeadLettered) {
  start_broker({"eventlogging_mixed:4", "eventlogging_other:2"});
  Expected expected;
  produce("eventlogging_mixed", 1, 4, 1500, 37, expected);
  produce("eventlogging_other", 2, 2, 700, 29, expected);
  const auto config =
      write_config(dir_, broker_->bootstrap(), *db_, {"^eventlogging_.*"}, "mixed",
                   {.extra_yaml = "batch:\n  max_rows: 400\n  max_delay_ms: 200\n"});
  auto sluice = start_sluice(dir_, config);
  ASSERT_TRUE(wait_for_all("mixed")) << sluice->log();
  verify_exact(expected, "mixed");
  EXPECT_GE(expected.bad.size(), 8u * 2);  // every failure class, more than once

  // Columns typed as DESIGN.md §3 says.
  const auto cols = db_->query(
      "SELECT COLUMN_NAME, COLUMN_TYPE, COALESCE(CHARACTER_SET_NAME, ''), IS_NULLABLE FROM "
      "information_schema.COLUMNS WHERE TABLE_SCHEMA = 'log' AND TABLE_NAME = "
      "'NavigationTiming_15485142'");
  std::map<std::string, std::string> types;
  for (const auto& c : cols) types[*c[0]] = *c[1] + (c[2]->empty() ? "" : " " + *c[2]);
  EXPECT_EQ(types["id"], "bigint(20) unsigned");
  EXPECT_EQ(types["uuid"], "char(32) ascii");
  EXPECT_EQ(types["timestamp"], "varbinary(14)");
  EXPECT_EQ(types["dt"], "datetime");
  EXPECT_EQ(types["wiki"], "varbinary(1024)");
  EXPECT_EQ(types["webHost"], "varbinary(1024)");
  EXPECT_EQ(types["userAgent"], "varbinary(1024)");
  EXPECT_EQ(types["event_isAnon"], "tinyint(1)");
  EXPECT_EQ(types["event_connectStart"], "bigint(20)");
  EXPECT_EQ(types["event_netinfoDownlink"], "double");
  EXPECT_EQ(types["event_mobileMode"], "varbinary(1024)");
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = "
                        "'log' AND TABLE_NAME = 'NavigationTiming_15485142' AND COLUMN_NAME = "
                        "'uuid' AND NON_UNIQUE = 0"),
            1);

  // Values: timestamp in MediaWiki form from epoch milliseconds, unicode intact.
  const auto row = db_->query(
      "SELECT timestamp, event_title, event_userText FROM EditConflict_8860941 WHERE uuid = '" +
      EventFactory::uuid_for(1, 0, 2) + "'");
  ASSERT_EQ(row.size(), 1u);
  EXPECT_EQ(*row[0][0], "20231114221320");  // 1700000000002 ms
  EXPECT_EQ(*row[0][1], "Ünïcödé_page_2");
  EXPECT_EQ(*row[0][2], "Zoë 😀");

  // Status: freshness per table equals max(timestamp) queried directly; positions equal
  // sluice_offsets (the status is a snapshot at most a quarter second old: allow it to settle).
  auto committed_in_db = [&](const nlohmann::json& p) {
    return db_->scalar("SELECT next_offset FROM sluice_offsets WHERE topic = '" +
                       p["topic"].get<std::string>() +
                       "' AND kafka_partition = " + std::to_string(p["partition"].get<int>()));
  };
  nlohmann::json status;
  EXPECT_TRUE(wait_until(
      [&] {
        status = status_of(*sluice);
        return status.is_object() && status["partitions"].size() == 6u &&
               std::all_of(status["partitions"].begin(), status["partitions"].end(),
                           [&](const auto& p) { return p["committed"] == committed_in_db(p); });
      },
      10s))
      << status.dump();
  EXPECT_EQ(status["state"], "running");
  EXPECT_EQ(status["tables"].size(), 4u);
  for (const auto& t : status["tables"]) {
    const std::string table = t["table"];
    const auto direct = db_->query("SELECT MAX(timestamp), COUNT(*) FROM `" + table + "`");
    EXPECT_EQ(t["max_timestamp"], *direct[0][0]) << table;
    EXPECT_EQ(t["rows_inserted"].get<int64_t>(), std::stoll(*direct[0][1])) << table;
  }
  EXPECT_TRUE(status["kafka_gaps"].empty());

  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), 0) << sluice->log();
}

TEST_F(IngestTest, SigkillMidStreamTwiceThenRestartYieldsTheExactResult) {
  start_broker({"eventlogging_kill:4"});
  Expected expected;
  produce("eventlogging_kill", 1, 4, 5000, 101, expected);
  const auto config = write_config(dir_, broker_->bootstrap(), *db_, {"eventlogging_kill"}, "kill",
                                   {.extra_yaml = "batch:\n  max_rows: 250\n  max_delay_ms: 100\n",
                                    .kafka_properties = kShortSession});
  int64_t total = 0;
  for (const auto& [t, uuids] : expected.uuids_by_table)
    total += static_cast<int64_t>(uuids.size());
  auto rows_now = [&] {
    int64_t n = 0;
    for (const auto& [t, uuids] : expected.uuids_by_table) n += table_rows(t);
    return n;
  };
  for (int64_t threshold : {total / 5, total / 2}) {
    auto sluice = start_sluice(dir_, config, "sluice-killed.log");
    ASSERT_TRUE(wait_until([&] { return rows_now() >= threshold; }, 120s)) << sluice->log();
    sluice->signal(SIGKILL);
    ASSERT_TRUE(sluice->wait(10s).has_value());
    ASSERT_LT(rows_now(), total) << "the kill came too late to test anything";
  }
  auto sluice = start_sluice(dir_, config);
  ASSERT_TRUE(wait_for_all("kill")) << sluice->log();
  verify_exact(expected, "kill");
}

TEST_F(IngestTest, QuietPartitionFlushesOnTimeWithoutFurtherEvents) {
  start_broker({"eventlogging_quiet:1"});
  const auto config =
      write_config(dir_, broker_->bootstrap(), *db_, {"eventlogging_quiet"}, "quiet",
                   {.extra_yaml = "batch:\n  max_rows: 5000\n  max_delay_ms: 300\n"});
  auto sluice = start_sluice(dir_, config);
  Expected expected;
  produce("eventlogging_quiet", 1, 1, 3, 0, expected, 3);
  // Three events never fill a 5000-row batch: only the delay can flush them.
  ASSERT_TRUE(wait_until([&] { return table_rows("TestSchema_1") == 3; }, 30s)) << sluice->log();
  ASSERT_TRUE(wait_for_all("quiet"));
  verify_exact(expected, "quiet");
}

TEST_F(IngestTest, LockWaitTimeoutsAndKilledConnectionsAreRetriedWithoutLossOrDuplicates) {
  start_broker({"eventlogging_retry:2"});
  db_->exec("SET GLOBAL innodb_lock_wait_timeout = 1");
  const auto config =
      write_config(dir_, broker_->bootstrap(), *db_, {"eventlogging_retry"}, "retry",
                   {.extra_yaml = "batch:\n  max_rows: 100\n  max_delay_ms: 100\n"});
  auto sluice = start_sluice(dir_, config);
  Expected expected;
  produce("eventlogging_retry", 1, 2, 300, 0, expected);
  ASSERT_TRUE(wait_for_all("retry")) << sluice->log();

  // Hold the offset rows locked: every batch now fails with a lock wait timeout (1205).
  db_->exec("START TRANSACTION");
  db_->exec("SELECT * FROM sluice_offsets FOR UPDATE");
  produce("eventlogging_retry", 1, 2, 500, 0, expected);
  ASSERT_TRUE(
      wait_until([&] { return sluice->log().find("Lock wait timeout") != std::string::npos; }, 30s))
      << sluice->log();
  db_->exec("COMMIT");

  // Kill Sluice's sessions mid-stream: lost connection (2013) and killed connection (1927).
  std::thread killer([&] {
    for (int i = 0; i < 6; ++i) {
      std::this_thread::sleep_for(150ms);
      try {
        for (const auto& r : db_->query("SELECT ID FROM information_schema.PROCESSLIST WHERE "
                                        "USER = 'sluice'")) {
          db_->exec("KILL CONNECTION " + *r[0]);
        }
      } catch (const std::exception&) {
        // A session may end between the list and the kill.
      }
    }
  });
  produce("eventlogging_retry", 1, 2, 1500, 0, expected);
  killer.join();
  ASSERT_TRUE(wait_for_all("retry")) << sluice->log();
  verify_exact(expected, "retry");
  EXPECT_NE(sluice->log().find("recovered"), std::string::npos) << sluice->log();
}

TEST_F(IngestTest, StalledDatabasePausesFetchingAndResumesExactlyWhereItStopped) {
  start_broker({"eventlogging_slow:2"});
  // max_bytes 4 KiB and one writer: at most 12 KiB may wait for MariaDB before fetching pauses.
  const auto config = write_config(
      dir_, broker_->bootstrap(), *db_, {"eventlogging_slow"}, "slow",
      {.extra_yaml = "batch:\n  max_rows: 50\n  max_bytes: 4096\n  max_delay_ms: 100\n",
       .mariadb_lines = "  writers: 1\n"});
  auto sluice = start_sluice(dir_, config);
  Expected expected;
  produce("eventlogging_slow", 1, 2, 20, 0, expected);
  ASSERT_TRUE(wait_for_all("slow")) << sluice->log();
  db_->exec("START TRANSACTION");
  db_->exec("SELECT * FROM sluice_offsets FOR UPDATE");  // stall every write
  produce("eventlogging_slow", 1, 2, 2000, 53, expected);
  ASSERT_TRUE(
      wait_until([&] { return sluice->log().find("fetching paused") != std::string::npos; }, 30s))
      << sluice->log();
  db_->exec("COMMIT");
  ASSERT_TRUE(wait_for_all("slow")) << sluice->log();
  // Resumption is decided on the round after a batch's report comes back, which may be just
  // after its commit is visible (when one poll brought every event in before the stall).
  EXPECT_TRUE(
      wait_until([&] { return sluice->log().find("fetching resumed") != std::string::npos; }, 10s))
      << sluice->log();
  verify_exact(expected, "slow");
}

TEST_F(IngestTest, DuplicateUuidsAtNewOffsetsAreDeadLetteredNotStoredTwice) {
  start_broker({"eventlogging_dup:1"});
  Expected expected;
  produce("eventlogging_dup", 1, 1, 20, 0, expected, 1);
  // The same events again at new offsets (an upstream replay): one row each, the replays
  // dead-lettered as duplicates. Then one more copy inside a single batch.
  for (uint64_t seq = 0; seq < 20; ++seq) {
    producer_->produce("eventlogging_dup", 0, EventFactory::good(1, 1, 0, seq));
    expected.bad.push_back({"eventlogging_dup", 0, 20 + seq, "duplicate_uuid: uuid: "});
  }
  producer_->produce("eventlogging_dup", 0, EventFactory::good(1, 1, 0, 5));
  expected.bad.push_back({"eventlogging_dup", 0, 40, "duplicate_uuid: uuid: "});
  producer_->flush();
  const auto config = write_config(dir_, broker_->bootstrap(), *db_, {"eventlogging_dup"}, "dup",
                                   {.extra_yaml = "batch:\n  max_rows: 15\n  max_delay_ms: 100\n"});
  auto sluice = start_sluice(dir_, config);
  ASSERT_TRUE(wait_for_all("dup")) << sluice->log();
  verify_exact(expected, "dup");
}

TEST_F(IngestTest, OffsetsExpiredFromKafkaAreReportedAsAGapNotSkippedSilently) {
  start_broker({"eventlogging_expiry:1"});
  Expected expected;
  produce("eventlogging_expiry", 1, 1, 10, 0, expected, 3);
  const auto config = write_config(
      dir_, broker_->bootstrap(), *db_, {"eventlogging_expiry"}, "expiry",
      {.extra_yaml = "batch:\n  max_delay_ms: 100\n", .kafka_properties = kShortSession});
  {
    auto sluice = start_sluice(dir_, config, "sluice-first.log");
    ASSERT_TRUE(wait_for_all("expiry")) << sluice->log();
    sluice->signal(SIGTERM);
    ASSERT_EQ(sluice->wait(60s), 0) << sluice->log();
  }
  // While Sluice is stopped, push far more than the mock broker's ~5 MiB per partition: the
  // oldest unread offsets expire.
  const std::string padding(900, 'p');
  for (uint64_t seq = 10; seq < 9010; ++seq) {
    std::string event = EventFactory::good(3, 1, 0, seq);
    event.insert(event.find("héllo"), padding);
    producer_->produce("eventlogging_expiry", 0, event);
  }
  producer_->flush();
  auto sluice = start_sluice(dir_, config);
  ASSERT_TRUE(wait_for_all("expiry")) << sluice->log();
  const auto gap = db_->query(
      "SELECT kafka_offset, reason FROM sluice_dead_letter WHERE reason LIKE 'kafka_gap:%'");
  ASSERT_EQ(gap.size(), 1u) << sluice->log();
  EXPECT_EQ(*gap[0][0], "10");
  const std::string& reason = *gap[0][1];
  EXPECT_NE(reason.find("expired from Kafka"), std::string::npos) << reason;
  // "offsets [10, N) ...: K event(s) lost upstream": the rows hold exactly what Kafka still had.
  const auto open = reason.find("[10, ") + 5;
  const int64_t first_kept = std::stoll(reason.substr(open));
  EXPECT_GT(first_kept, 10);
  EXPECT_NE(reason.find(std::to_string(first_kept - 10) + " event(s) lost upstream"),
            std::string::npos)
      << reason;
  EXPECT_EQ(table_rows("TestSchema_1"), 10 + (9010 - first_kept));
  EXPECT_NE(sluice->log().find("kafka_gap"), std::string::npos);
  // ...and the status shows it.
  const auto status = status_of(*sluice);
  ASSERT_EQ(status["kafka_gaps"].size(), 1u) << status.dump();
  EXPECT_EQ(status["kafka_gaps"][0]["from"], 10);
  EXPECT_EQ(status["kafka_gaps"][0]["to"], first_kept);
  EXPECT_EQ(status["kafka_gaps"][0]["lost"], first_kept - 10);
}

TEST_F(IngestTest, StatusCommandNeedsTheTokenAndSaysWhenTheServiceIsUnreachable) {
  start_broker({"eventlogging_admin:1"});
  std::ofstream(dir_.file("token")) << "tok-" << getpid() << "\n";
  const auto config =
      write_config(dir_, broker_->bootstrap(), *db_, {"eventlogging_admin"}, "admin",
                   {.admin_lines = "  token_file: \"" + dir_.file("token") + "\"\n"});
  auto sluice = start_sluice(dir_, config);
  Expected expected;
  produce("eventlogging_admin", 1, 1, 30, 0, expected, 2);
  ASSERT_TRUE(wait_for_all("admin")) << sluice->log();
  std::string url;
  ASSERT_TRUE(wait_until([&] { return !(url = admin_url(*sluice)).empty(); }, 10s));
  const std::string bin = binary_dir() + "/main/sluice";
  std::string out;
  EXPECT_EQ(run_command({bin, "status", "--admin", url}, out), 5) << out;  // not authorized
  EXPECT_NE(out.find("HTTP 401"), std::string::npos) << out;
  // The status is a snapshot at most a quarter second old: let it catch up with the database.
  nlohmann::json status;
  ASSERT_TRUE(wait_until(
      [&] {
        status = status_of(*sluice, dir_.file("token"));
        return status.is_object() && status["tables"].size() == 1 &&
               status["tables"][0]["rows_inserted"] == 30;
      },
      10s))
      << status.dump();
  EXPECT_EQ(run_command({bin, "status", "--admin", url, "--token-file", dir_.file("token")}, out),
            0)
      << out;
  EXPECT_NE(out.find("EditConflict_8860941"), std::string::npos) << out;
  EXPECT_NE(out.find("state:     running"), std::string::npos) << out;
  EXPECT_NE(out.find("schemas:   1 from "), std::string::npos) << out;  // no repository
  sluice->signal(SIGTERM);
  ASSERT_EQ(sluice->wait(60s), 0);
  EXPECT_EQ(run_command({bin, "status", "--admin", url}, out), 3) << out;
  EXPECT_NE(out.find("cannot reach the admin endpoint"), std::string::npos) << out;
}

TEST_F(IngestTest, TheCliTakesItsEndpointAndTokenFromTheConfigOrTheEnvironmentAndUsageErrorsExit2) {
  start_broker({"eventlogging_cli:1"});
  std::ofstream(dir_.file("token")) << "tok-" << getpid() << "\n";
  std::ofstream(dir_.file("wrong-token")) << "not-it\n";
  const int port = free_tcp_port(true);
  ASSERT_GT(port, 0) << "no IPv6 loopback on this machine";
  auto config =
      write_config(dir_, broker_->bootstrap(), *db_, {"eventlogging_cli"}, "cli",
                   {.admin_lines = "  token_file: \"" + dir_.file("token") + "\"\n"});
  {  // The admin endpoint on an IPv6 loopback port of its own, as an operator would set it.
    std::ifstream in(config);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto at = text.find("127.0.0.1:0");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 11, "[::1]:" + std::to_string(port));
    std::ofstream(config) << text;
  }
  auto sluice = start_sluice(dir_, config);
  Expected expected;
  produce("eventlogging_cli", 1, 1, 20, 0, expected, 2);
  ASSERT_TRUE(wait_for_all("cli")) << sluice->log();
  const std::string bin = binary_dir() + "/main/sluice";
  const std::string url = "http://[::1]:" + std::to_string(port);
  std::string out;
  // --config: the address and the token come from the file the service runs with.
  ASSERT_TRUE(wait_until([&] { return run_command({bin, "status", "--config", config}, out) == 0; },
                         10s))
      << out << sluice->log();
  EXPECT_NE(out.find("state:     running"), std::string::npos) << out;
  // The environment, as Vector's CLI reads it.
  EXPECT_EQ(run_command({"env", "SLUICE_CONFIG=" + config, bin, "status", "--json"}, out), 0)
      << out;
  EXPECT_TRUE(nlohmann::json::parse(out, nullptr, false).is_object()) << out;
  EXPECT_EQ(run_command({"env", "SLUICE_ADMIN=" + url, "SLUICE_TOKEN_FILE=" + dir_.file("token"),
                         bin, "status"},
                        out),
            0)
      << out;
  // Flags win over the config; a missing or wrong token has an exit code of its own.
  EXPECT_EQ(run_command({bin, "status", "--admin", url}, out), 5) << out;
  EXPECT_NE(out.find("not authorized: HTTP 401"), std::string::npos) << out;
  EXPECT_NE(out.find("no token was sent"), std::string::npos) << out;
  EXPECT_EQ(
      run_command({bin, "status", "--config", config, "--token-file", dir_.file("wrong-token")},
                  out),
      5)
      << out;
  // Pause and resume through the config; resume --wait returns once the spool is empty.
  ASSERT_EQ(run_command({bin, "pause", "--config", config, "--reason", "cli test"}, out), 0) << out;
  produce("eventlogging_cli", 1, 1, 30, 0, expected, 2);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = status_of(*sluice, dir_.file("token"));
        return s.is_object() && s["spool"].value("events", 0) == 30;
      },
      30s))
      << sluice->log();
  ASSERT_EQ(run_command({bin, "resume", "--config", config, "--wait"}, out), 0) << out;
  EXPECT_NE(out.find("drained: the spool is empty"), std::string::npos) << out;
  ASSERT_TRUE(wait_for_all("cli")) << sluice->log();

  // Every usage error exits 2, whatever CLI11 would have said.
  const std::vector<std::vector<std::string>> usage_errors = {
      {bin},
      {bin, "no-such-command"},
      {bin, "run"},
      {bin, "check-config"},
      {bin, "status", "--no-such-flag"},
      {bin, "pause", "--reason"},
      {bin, "status", "--admin", "ftp://127.0.0.1:21"},
      {bin, "status", "--admin", "http://127.0.0.1:70000"},
      {bin, "status", "--config", dir_.file("absent.yaml")},
      {bin, "replay"},
      {bin, "spool", "discard", "--partition", "x"},
      {bin, "fleet"},
  };
  for (const auto& argv : usage_errors) {
    EXPECT_EQ(run_command(argv, out), 2) << argv.back() << "\n" << out;
  }
  EXPECT_EQ(run_command({bin, "--help"}, out), 0) << out;
  EXPECT_EQ(run_command({bin, "status", "--help"}, out), 0) << out;
  EXPECT_NE(out.find("SLUICE_CONFIG"), std::string::npos) << out;
  sluice->signal(SIGTERM);
  ASSERT_EQ(sluice->wait(60s), 0) << sluice->log();
  EXPECT_EQ(run_command({bin, "status", "--config", config}, out), 3) << out;
  verify_exact(expected, "cli");
}

TEST_F(IngestTest, CheckConfigOnlineTriesEveryServerGrantAndSettingAndNamesWhatFails) {
  start_broker({"eventlogging_online:2"});
  const std::string bin = binary_dir() + "/main/sluice";
  auto write = [&](const std::vector<std::string>& topics, ConfigOptions options = {}) {
    return write_config(dir_, broker_->bootstrap(), *db_, topics, "online", options);
  };
  std::string out;
  auto check = [&](const std::string& config) {
    return run_command({bin, "check-config", "--config", config, "--online"}, out);
  };
  // Everything as it should be, with no more grants than Sluice needs (and DROP, so the check
  // can remove its scratch table): DELETE in particular is not among them.
  db_->exec("REVOKE ALL PRIVILEGES ON log.* FROM 'sluice'@'localhost'");
  db_->exec("GRANT CREATE, SELECT, INSERT, UPDATE, DROP ON log.* TO 'sluice'@'localhost'");
  ASSERT_EQ(check(write({"eventlogging_online", "^eventlogging_.*"})), 0) << out;
  for (const char* line :
       {"\u2714 kafka: 1 broker(s)", "\u2714 kafka.topics: eventlogging_online, 2 partition(s)",
        "\u2714 kafka.topics: ^eventlogging_.* matches 1 topic(s)",
        "\u2714 fleet.topic: _sluice_fleet.online does not exist yet",
        "\u2714 mariadb: CREATE, INSERT, UPDATE, SELECT, LOAD DATA LOCAL work as sluice",
        "\u2714 mariadb: max_allowed_packet", "\u2714 mariadb: innodb_autoinc_lock_mode",
        "\u2714 mariadb: ALTER is not granted: Event Platform tables cannot grow",
        "\u2714 spool.path", "every check passed"}) {
    EXPECT_NE(out.find(line), std::string::npos) << line << "\n" << out;
  }
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = "
                        "'sluice_check_online'"),
            0)
      << "the scratch table is dropped";

  // Each misconfiguration, one at a time: exit 1 and the line that names it.
  EXPECT_EQ(check(write({"eventlogging_absent"})), 1) << out;
  EXPECT_NE(out.find("\u2718 kafka.topics: no topic eventlogging_absent"), std::string::npos) << out;
  EXPECT_EQ(check(write({"^nothing_.*"})), 1) << out;
  EXPECT_NE(out.find("no topic matches ^nothing_.*"), std::string::npos) << out;

  db_->exec("SET GLOBAL local_infile = OFF");
  EXPECT_EQ(check(write({"eventlogging_online"})), 1) << out;
  EXPECT_NE(out.find("\u2718 mariadb: local_infile is OFF"), std::string::npos) << out;
  db_->exec("SET GLOBAL local_infile = ON");

  db_->exec("REVOKE CREATE ON log.* FROM 'sluice'@'localhost'");
  EXPECT_EQ(check(write({"eventlogging_online"})), 1) << out;
  EXPECT_NE(out.find("\u2718 mariadb: CREATE TABLE"), std::string::npos) << out;
  EXPECT_NE(out.find("GRANT CREATE, SELECT, INSERT, UPDATE ON `log`.*"), std::string::npos) << out;
  db_->exec("GRANT ALL ON log.* TO 'sluice'@'localhost'");

  EXPECT_EQ(check(write({"eventlogging_online"}, {.extra_yaml = "batch:\n  max_bytes: "
                                                                  "1073741824\n"})),
            1)
      << out;
  EXPECT_NE(out.find("\u2718 mariadb: max_allowed_packet"), std::string::npos) << out;

  EXPECT_EQ(check(write({"eventlogging_online"}, {.database = "absent_db"})), 1) << out;
  EXPECT_NE(out.find("\u2718 mariadb sluice@"), std::string::npos) << out;

  EXPECT_EQ(check(write({"eventlogging_online"},
                        {.spool_lines = "  max_bytes: 4611686018427387904\n"})),
            1)
      << out;
  EXPECT_NE(out.find("below spool.max_bytes"), std::string::npos) << out;

  // Two replicas: one that answers (the server itself, by its socket), one that does not.
  EXPECT_EQ(check(write({"eventlogging_online"},
                        {.mariadb_lines = replicas_lines(*db_) +
                                          "    - host: \"127.0.0.1\"\n      port: 1\n"
                                          "      user: sluice\n      password_file: \"" +
                                          db_->password_file() + "\"\n"})),
            1)
      << out;
  EXPECT_NE(out.find("\u2714 replica sluice@" + db_->socket() + ": connected"), std::string::npos)
      << out;
  EXPECT_NE(out.find("\u2718 replica sluice@127.0.0.1:1"), std::string::npos) << out;

  EXPECT_EQ(run_command({bin, "check-config", "--config",
                         write_config(dir_, "127.0.0.1:1", *db_, {"eventlogging_online"}, "online",
                                      {.kafka_properties = {{"socket.timeout.ms", "3000"}}}),
                         "--online"},
                        out),
            1)
      << out;
  EXPECT_NE(out.find("\u2718 kafka 127.0.0.1:1"), std::string::npos) << out;
  EXPECT_NE(out.find("\u2714 mariadb"), std::string::npos) << "each check runs: " << out;

  // Run as a user who cannot write the spool's directory (as the service's user would, were
  // the directory not given to it): the check names it.
  ASSERT_EQ(std::system(("chmod -R a+rX " + dir_.path()).c_str()), 0);
  const std::string as_nobody = write({"eventlogging_online"});  // spool.path: <dir>/spool
  ASSERT_EQ(std::system(("chmod a+r " + as_nobody).c_str()), 0);
  EXPECT_EQ(run_command({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin,
                         "check-config", "--config", as_nobody, "--online"},
                        out),
            1)
      << out;
  EXPECT_NE(out.find("\u2718 spool.path " + dir_.file("spool") + ": "), std::string::npos)
      << out;
  EXPECT_NE(out.find(" is not writable by this user"), std::string::npos) << out;
  EXPECT_NE(out.find("\u2714 mariadb"), std::string::npos) << "each check runs: " << out;
}

TEST_F(IngestTest, BadConfigFilesAreRefusedWithKeyAndLine) {
  const std::string sluice = binary_dir() + "/main/sluice";
  struct Case {
    std::string yaml, expected;
  };
  const std::vector<Case> cases = {
      {"kafka:\n  topics: [a]\nbatch:\n  max_rowz: 5\n", ":4: batch.max_rowz: unknown key"},
      {"kafka:\n  topics: [a]\nmariadb:\n  port: abc\n", ":4: mariadb.port: expected an integer"},
      {"kafka:\n  topics: [a\n", "YAML syntax error"},
      {"kafka:\n  topics: [a]\nmariadb:\n  password_file: /nope/pw\n",
       ":4: mariadb.password_file: cannot read password file"},
      {"kafka:\n  topics: [a]\nbatch:\n  max_bytes: -1\n",
       ":4: batch.max_bytes: must not be negative"},
  };
  for (const auto& c : cases) {
    const std::string path = dir_.file("bad.yaml");
    std::ofstream(path, std::ios::trunc) << c.yaml;
    for (const char* cmd : {"check-config", "run"}) {
      std::string out;
      EXPECT_EQ(run_command({sluice, cmd, "--config", path}, out), 2) << cmd << ": " << out;
      EXPECT_NE(out.find(c.expected), std::string::npos) << cmd << ": " << out;
    }
  }
  std::string out;
  const auto good = write_config(dir_, "127.0.0.1:9", *db_, {"t"}, "g");
  EXPECT_EQ(run_command({sluice, "check-config", "--config", good}, out), 0) << out;
}

}  // namespace
}  // namespace sluice::testing
