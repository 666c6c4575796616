// Integration tests of `sluice replay` against Apache Kafka (the binary's three-node KRaft
// cluster) and private mariadbd servers: a database restored from a dump and refilled from a
// time before it, and from a spool export; a capsule dump with bad lines; a replay while the
// service writes the same tables; a range that partly expired from Kafka; a dry run; the
// refusal over the bound; bad arguments. Each asserts the exact outcome — the same rows as
// before the loss, each once, in offset order within each partition — the exact counts of the
// JSON summary, and that neither sluice_offsets nor the group's offsets in Kafka moved.

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>

#include <ctime>
#include <fstream>
#include <thread>

#include "tests/integration/stack_test.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string iso8601(int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

class ReplayTest : public RealKafkaTest {
 protected:
  /// `sluice replay --config CFG ARGS...`; stdout and stderr in `out`.
  int replay(const std::vector<std::string>& args, std::string& out, std::string cfg = "") {
    if (cfg.empty()) cfg = config();
    std::vector<std::string> argv = {binary_dir() + "/main/sluice", "replay", "--config", cfg};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, out);
  }

  /// The JSON summary: the output's last line that is a JSON object.
  static nlohmann::json summary(const std::string& out) {
    size_t end = out.size();
    while (end > 0) {
      const size_t start = out.rfind('\n', end - 1);
      const size_t from = start == std::string::npos ? 0 : start + 1;
      if (from < end && out[from] == '{') {
        return nlohmann::json::parse(out.substr(from, end - from), nullptr, false);
      }
      if (start == std::string::npos) break;
      end = start;
    }
    return nlohmann::json();
  }

  /// Produces `count` TestSchema events per partition with Kafka timestamp `timestamp_ms`.
  void produce_at(size_t count, int64_t timestamp_ms) {
    for (size_t i = 0; i < count; ++i) {
      for (int32_t p = 0; p < partitions_; ++p) {
        producer_->produce(
            topic_, p,
            EventFactory::good(3, 1, static_cast<uint32_t>(p), seq_[static_cast<size_t>(p)]++),
            timestamp_ms);
      }
    }
    producer_->flush();
  }

  /// Every row of TestSchema_1 but its id, ordered by uuid: "the same rows".
  std::vector<std::string> rows_without_id(MariaDb& db) {
    const auto cols = db.query(
        "SELECT GROUP_CONCAT(CONCAT('`', COLUMN_NAME, '`') ORDER BY ORDINAL_POSITION) FROM "
        "information_schema.COLUMNS WHERE TABLE_SCHEMA = 'log' AND TABLE_NAME = 'TestSchema_1' "
        "AND COLUMN_NAME <> 'id'");
    std::vector<std::string> out;
    for (const auto& r : db.query("SELECT " + *cols[0][0] + " FROM TestSchema_1 ORDER BY uuid")) {
      std::string line;
      for (const auto& v : r) line += (v ? *v : std::string("\\N")) + "\t";
      out.push_back(line);
    }
    return out;
  }

  /// sluice_offsets, as "group/topic/partition=next" lines.
  std::vector<std::string> offsets_table(MariaDb& db) {
    std::vector<std::string> out;
    for (const auto& r : db.query("SELECT consumer_group, topic, kafka_partition, next_offset FROM "
                                  "sluice_offsets ORDER BY 1, 2, 3")) {
      out.push_back(*r[0] + "/" + *r[1] + "/" + *r[2] + "=" + *r[3]);
    }
    return out;
  }

  /// A group's committed offsets in Kafka, per partition (-1001 when none).
  std::vector<int64_t> committed(const std::string& group) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    EXPECT_NE(rk, nullptr) << err;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions_);
    for (int32_t p = 0; p < partitions_; ++p) {
      rd_kafka_topic_partition_list_add(list, topic_.c_str(), p);
    }
    EXPECT_EQ(rd_kafka_committed(rk, list, 20000), RD_KAFKA_RESP_ERR_NO_ERROR);
    std::vector<int64_t> out(static_cast<size_t>(partitions_), -1001);
    for (int i = 0; i < list->cnt; ++i) {
      out[static_cast<size_t>(list->elems[i].partition)] = list->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    return out;
  }

  bool table_exists(const std::string& name) {
    return db_->scalar(
               "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'log' "
               "AND TABLE_NAME = '" +
               name + "'") == 1;
  }

  /// The database is lost; the dump is restored in its place.
  void restore(const std::string& dump) {
    db_->exec("DROP DATABASE log");
    db_->exec("CREATE DATABASE log");
    db_->exec("USE log");  // this session's database was the one dropped
    db_->load(dump);
  }

  void expect_partition(const nlohmann::json& j, int32_t p, int64_t from, int64_t to) {
    const auto& part = j["partitions"][static_cast<size_t>(p)];
    EXPECT_EQ(part["partition"], p);
    EXPECT_EQ(part["from"], from) << part.dump();
    EXPECT_EQ(part["to"], to) << part.dump();
    EXPECT_EQ(part["covered"]["from"], from) << part.dump();
    EXPECT_EQ(part["covered"]["to"], to) << part.dump();
  }

  void stop(std::unique_ptr<Process>& sluice) {
    sluice->signal(SIGTERM);
    ASSERT_EQ(sluice->wait(60s), 0) << sluice->log();
  }
};

TEST_F(ReplayTest, AfterARestoreFromADumpAReplayFromATimeRefillsTheTablesRowForRow) {
  // The head of the log is an hour old: before the window the replay is asked for.
  produce_at(100, wall_ms() - 3'600'000);
  auto sluice = start_written(200);
  ASSERT_FALSE(HasFailure());
  const int64_t dumped_at = wall_ms();
  db_->dump(dir_.file("backup.sql"));  // last night's backup: 300 events per partition
  produce(300);
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  stop(sluice);
  const auto originals = rows_without_id(*db_);
  ASSERT_EQ(originals.size(), 600u * 4);
  const auto group_offsets = committed(group_);

  restore(dir_.file("backup.sql"));
  ASSERT_EQ(rows(), 300 * 4);
  const auto restored_offsets = offsets_table(*db_);

  // From a few minutes before the dump: the 200 events after the old head are there already,
  // the 300 after the dump are missing.
  std::string out;
  ASSERT_EQ(replay({"--topic", topic_, "--from-time", iso8601(dumped_at - 180'000), "--json"}, out),
            0)
      << out;
  auto j = summary(out);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["outcome"], "complete");
  EXPECT_EQ(j["read"], 500 * 4);
  EXPECT_EQ(j["written"], 300 * 4);
  EXPECT_EQ(j["already_present"], 200 * 4);
  EXPECT_EQ(j["dead_lettered"], 0);
  EXPECT_EQ(j["expired"].size(), 0u);
  ASSERT_EQ(j["tables"].size(), 1u);
  EXPECT_EQ(j["tables"][0]["table"], "TestSchema_1");
  EXPECT_EQ(j["tables"][0]["read"], 500 * 4);
  EXPECT_EQ(j["tables"][0]["written"], 300 * 4);
  EXPECT_EQ(j["tables"][0]["already_present"], 200 * 4);
  for (int32_t p = 0; p < partitions_; ++p) expect_partition(j, p, 100, 600);

  EXPECT_EQ(rows_without_id(*db_), originals) << "the restored table is not the original";
  verify_exact();  // each event once, in offset order within each partition
  EXPECT_EQ(offsets_table(*db_), restored_offsets) << "sluice_offsets moved";
  EXPECT_EQ(committed(group_), group_offsets) << "the group's offsets moved";
  EXPECT_EQ(committed("sluice-replay"), std::vector<int64_t>(4, -1001))
      << "the replay committed offsets under a group";

  // Again: everything is there, nothing is written.
  ASSERT_EQ(replay({"--topic", topic_, "--from-time", iso8601(dumped_at - 180'000), "--json"}, out),
            0)
      << out;
  j = summary(out);
  EXPECT_EQ(j["read"], 500 * 4);
  EXPECT_EQ(j["written"], 0);
  EXPECT_EQ(j["already_present"], 500 * 4);
  EXPECT_EQ(rows_without_id(*db_), originals);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
}

TEST_F(ReplayTest, AReplayWaitsForTheFleetsResumeAndReadsNoFasterThanItsRate) {
  auto sluice = start_written_then_paused(100, "maintenance");
  ASSERT_FALSE(HasFailure());
  std::string out;
  // A pause means nothing writes to MariaDB: a replay too, unless told.
  EXPECT_EQ(replay({"--topic", topic_, "--from-offset", "0"}, out), 5) << out;
  EXPECT_NE(out.find("the fleet is paused (\"maintenance\""), std::string::npos) << out;
  EXPECT_EQ(replay({"--topic", topic_, "--from-offset", "0", "--dry-run"}, out), 0)
      << "a dry run writes nothing: " << out;
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  // Capped at 200 events a second, 400 events take at least about two seconds (a lower
  // bound: a slow machine only makes it longer).
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(replay({"--topic", topic_, "--from-offset", "0", "--max-rate", "200", "--json"}, out),
            0)
      << out;
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, 1800ms) << out;
  EXPECT_NE(out.find("reading at most 200 events/s"), std::string::npos) << out;
  EXPECT_GT(summary(out)["held_back_s"].value("max_rate", 0.0), 1.0) << out;
  EXPECT_EQ(summary(out)["already_present"], 100 * 4) << out;
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "again"}, out), 0) << out;
  EXPECT_EQ(replay({"--topic", topic_, "--from-offset", "0", "--during-pause", "--json"}, out), 0)
      << out;
  EXPECT_EQ(summary(out)["already_present"], 100 * 4) << out;
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  stop(sluice);
  verify_exact();
}

TEST_F(ReplayTest, AfterARestoreAReplayOfASpoolExportRefillsTheTablesRowForRow) {
  auto sluice = start_written(200);
  ASSERT_FALSE(HasFailure());
  db_->dump(dir_.file("backup.sql"));
  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "maintenance"}, out), 0) << out;
  produce(300);  // spooled
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["spool"]["events"] == 300 * 4; }, 60s));
  stop(sluice);
  ASSERT_EQ(run_command({binary_dir() + "/main/sluice", "spool", "export", "--config", config(),
                         "-o", dir_.file("spool.jsonl")},
                        out),
            0)
      << out;
  sluice = start_sluice(dir_, config(), "sluice-again.log");
  ASSERT_TRUE(wait_until([&] { return status(*sluice)["state"] == "paused"; }, 60s));
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  stop(sluice);
  const auto originals = rows_without_id(*db_);
  ASSERT_EQ(originals.size(), 500u * 4);

  restore(dir_.file("backup.sql"));
  const auto restored_offsets = offsets_table(*db_);
  ASSERT_EQ(replay({"--from-file", dir_.file("spool.jsonl"), "--json"}, out), 0) << out;
  auto j = summary(out);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["source"], "file");
  EXPECT_EQ(j["read"], 300 * 4);
  EXPECT_EQ(j["written"], 300 * 4);
  EXPECT_EQ(j["already_present"], 0);
  for (int32_t p = 0; p < partitions_; ++p) {
    // Each event keeps its Kafka position: offsets 200..499 of each partition.
    const auto& part = j["partitions"][static_cast<size_t>(p)];
    EXPECT_EQ(part["topic"], topic_);
    EXPECT_EQ(part["covered"]["from"], 200);
    EXPECT_EQ(part["covered"]["to"], 500);
  }
  EXPECT_EQ(rows_without_id(*db_), originals);
  verify_exact();
  EXPECT_EQ(offsets_table(*db_), restored_offsets);

  ASSERT_EQ(replay({"--from-file", dir_.file("spool.jsonl"), "--json"}, out), 0) << out;
  j = summary(out);
  EXPECT_EQ(j["written"], 0);
  EXPECT_EQ(j["already_present"], 300 * 4);
  EXPECT_EQ(rows_without_id(*db_), originals);
}

TEST_F(ReplayTest, ACapsuleDumpIsReplayedOnceAndItsBadLinesAreDeadLetteredOnceMarkedAsReplayed) {
  // A JSON-lines dump of capsules as they were in Kafka: 50 events, 20 of them stored already,
  // three bad lines and a blank one.
  std::ofstream first(dir_.file("first.jsonl"));
  std::ofstream dump(dir_.file("dump.jsonl"));
  std::vector<std::string> reasons;
  for (uint64_t s = 0; s < 50; ++s) {
    const auto line = EventFactory::good(3, 1, 0, s);
    if (s < 20) first << line << "\n";
    dump << line << "\n";
    if (s % 20 == 10 || s == 49) {
      std::string reason;
      dump << EventFactory::bad(static_cast<int>(reasons.size()) * 3, s, reason) << "\n";
      reasons.push_back(reason);
    }
  }
  dump << "\n";
  first.close();
  dump.close();
  std::string out;
  ASSERT_EQ(replay({"--from-file", dir_.file("first.jsonl"), "--topic", "el_dump"}, out), 0) << out;
  ASSERT_EQ(rows(), 20);

  ASSERT_EQ(replay({"--from-file", dir_.file("dump.jsonl"), "--topic", "el_dump", "--json"}, out),
            7)  // complete, with dead letters
      << out;
  auto j = summary(out);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["read"], 53);
  EXPECT_EQ(j["written"], 30);
  EXPECT_EQ(j["already_present"], 20);
  EXPECT_EQ(j["dead_lettered"], 3);
  EXPECT_EQ(rows(), 50);
  const auto letters = db_->query(
      "SELECT topic, kafka_partition, kafka_offset, reason FROM sluice_dead_letter "
      "ORDER BY kafka_offset");
  ASSERT_EQ(letters.size(), 3u);
  // Offsets are line numbers: the bad lines follow events 10, 30 and 49.
  const int64_t lines[] = {12, 33, 53};
  for (size_t i = 0; i < letters.size(); ++i) {
    EXPECT_EQ(*letters[i][0], "el_dump");
    EXPECT_EQ(*letters[i][1], "0");
    EXPECT_EQ(std::stoll(*letters[i][2]), lines[i]);
    EXPECT_TRUE(letters[i][3]->starts_with(reasons[i])) << *letters[i][3];
    EXPECT_TRUE(letters[i][3]->ends_with(" (sluice replay)")) << *letters[i][3];
  }
  EXPECT_FALSE(table_exists("sluice_offsets")) << "a replay has no business with sluice_offsets";

  // Again: nothing written, no dead letter twice.
  ASSERT_EQ(replay({"--from-file", dir_.file("dump.jsonl"), "--topic", "el_dump", "--json"}, out),
            0)
      << out;
  j = summary(out);
  EXPECT_EQ(j["written"], 0);
  EXPECT_EQ(j["dead_lettered"], 0);
  EXPECT_EQ(j["already_present"], 53);
  EXPECT_EQ(rows(), 50);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 3);
}

TEST_F(ReplayTest, ATableWithoutAUniqueKeyOnUuidIsRefusedNamingTheFix) {
  std::ofstream dump(dir_.file("dump.jsonl"));
  for (uint64_t s = 0; s < 10; ++s) dump << EventFactory::good(3, 1, 0, s) << "\n";
  dump.close();
  std::string out;
  ASSERT_EQ(replay({"--from-file", dir_.file("dump.jsonl"), "--topic", "el_dump"}, out), 0) << out;
  // A DBA recreated the table without it (or it came from an older consumer).
  db_->exec("ALTER TABLE TestSchema_1 DROP INDEX ix_uuid");
  const int code = replay({"--from-file", dir_.file("dump.jsonl"), "--topic", "el_dump"}, out);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("ADD UNIQUE KEY ix_uuid (uuid)"), std::string::npos) << out;
  EXPECT_EQ(rows(), 10) << "written twice";
}

TEST_F(ReplayTest, TwoReplaysAtOnceRecordEachDeadLetterOnce) {
  // Many bad lines among good ones, so that the two replays' batches interleave.
  std::ofstream dump(dir_.file("dump.jsonl"));
  int bad = 0;
  for (uint64_t s = 0; s < 6000; ++s) {
    dump << EventFactory::good(3, 1, 0, s) << "\n";
    if (s % 10 == 0) {
      std::string reason;
      dump << EventFactory::bad(0, s, reason) << "\n";
      ++bad;
    }
  }
  dump.close();
  const std::string cfg = config();
  std::string out1, out2;
  int code1 = -1, code2 = -1;
  std::thread first([&] {
    code1 = replay({"--from-file", dir_.file("dump.jsonl"), "--topic", "el_dump"}, out1, cfg);
  });
  code2 = replay({"--from-file", dir_.file("dump.jsonl"), "--topic", "el_dump"}, out2, cfg);
  first.join();
  EXPECT_TRUE(code1 == 0 || code1 == 7) << out1;
  EXPECT_TRUE(code2 == 0 || code2 == 7) << out2;
  EXPECT_EQ(rows(), 6000);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), bad);
  EXPECT_EQ(db_->scalar("SELECT COUNT(DISTINCT kafka_offset) FROM sluice_dead_letter"), bad);
}

TEST_F(ReplayTest, WhileTheServiceRunsIntoTheSameTablesNothingIsDuplicatedOrLostAndNoOffsetMoves) {
  auto sluice = start_written(400);
  ASSERT_FALSE(HasFailure());
  // An operator deletes rows by mistake.
  db_->exec("DELETE FROM TestSchema_1 WHERE id % 3 = 0");
  const int64_t deleted = 400 * 4 - rows();
  ASSERT_GT(deleted, 400);
  // The service goes on with new events while the replay runs.
  std::thread more([&] {
    for (int i = 0; i < 10; ++i) {
      produce(40);
      std::this_thread::sleep_for(100ms);
    }
  });
  std::string out;
  const int code =
      replay({"--topic", topic_, "--from-offset", "0", "--to-offset", "400", "--json"}, out);
  more.join();
  ASSERT_EQ(code, 0) << out;
  const auto j = summary(out);
  EXPECT_EQ(j["read"], 400 * 4);
  EXPECT_EQ(j["written"], deleted);
  EXPECT_EQ(j["already_present"], 400 * 4 - deleted);
  ASSERT_TRUE(wait_for_all()) << sluice->log();

  // Nothing lost, nothing twice (the re-inserted rows have new ids: read in uuid order, which
  // is each partition's sequence order).
  EXPECT_EQ(EventFactory::exact_fault(db_->query("SELECT uuid FROM TestSchema_1 ORDER BY uuid"),
                                      static_cast<uint32_t>(partitions_), seq_[0]),
            "");
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0)
      << "the service met a row of the replay";
  // sluice_offsets holds the service's group only, exactly at the end of each partition.
  std::vector<std::string> expected;
  for (int32_t p = 0; p < partitions_; ++p) {
    expected.push_back(group_ + "/" + topic_ + "/" + std::to_string(p) + "=" +
                       std::to_string(cluster_->watermarks(topic_, p).second));
  }
  EXPECT_EQ(offsets_table(*db_), expected);
  EXPECT_EQ(committed("sluice-replay"), std::vector<int64_t>(4, -1001));
  stop(sluice);
  std::vector<int64_t> ends;
  for (int32_t p = 0; p < partitions_; ++p) ends.push_back(cluster_->watermarks(topic_, p).second);
  EXPECT_EQ(committed(group_), ends) << "the group's offsets are the service's";
}

TEST_F(ReplayTest, ARangeThatPartlyExpiredSaysExactlyWhichOffsetsItCouldNotRead) {
  produce(300);
  cluster_->delete_records(topic_, 0, 100);
  cluster_->delete_records(topic_, 1, 250);
  std::string out;
  ASSERT_EQ(replay({"--topic", topic_, "--from-offset", "50", "--json"}, out), 6) << out;
  const auto j = summary(out);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["outcome"], "complete");
  EXPECT_EQ(j["written"], 200 + 50 + 250 + 250);
  ASSERT_EQ(j["expired"].size(), 2u) << j["expired"].dump();
  EXPECT_EQ(j["expired"][0],
            nlohmann::json(
                {{"topic", topic_}, {"partition", 0}, {"from", 50}, {"to", 100}, {"offsets", 50}}));
  EXPECT_EQ(
      j["expired"][1],
      nlohmann::json(
          {{"topic", topic_}, {"partition", 1}, {"from", 50}, {"to", 250}, {"offsets", 200}}));
  expect_partition(j, 0, 100, 300);
  expect_partition(j, 1, 250, 300);
  expect_partition(j, 2, 50, 300);
  EXPECT_EQ(rows(), 750);

  // The text summary names them too (and exits 6 again: the range still lacks them).
  ASSERT_EQ(replay({"--topic", topic_, "--from-offset", "50"}, out), 6) << out;
  EXPECT_NE(out.find("EXPIRED FROM KAFKA"), std::string::npos) << out;
  EXPECT_NE(out.find(topic_ + "/0 offsets [50, 100): 50 offset(s)"), std::string::npos) << out;
  EXPECT_NE(out.find(topic_ + "/1 offsets [50, 250): 200 offset(s)"), std::string::npos) << out;
}

TEST_F(ReplayTest, ADryRunWritesNothingAndCountsWhatWouldBeWritten) {
  produce(100);
  std::string out;
  ASSERT_EQ(replay({"--topic", topic_, "--from-offset", "0", "--dry-run", "--json"}, out), 0)
      << out;
  auto j = summary(out);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(j["written"], 400);
  EXPECT_EQ(j["already_present"], 0);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                        "'log'"),
            0)
      << "a dry run created a table";

  ASSERT_EQ(replay({"--topic", topic_, "--from-offset", "0", "--partition", "0", "--partition", "2",
                    "--json"},
                   out),
            0)
      << out;
  EXPECT_EQ(summary(out)["written"], 200);
  ASSERT_EQ(replay({"--topic", topic_, "--from-offset", "0", "--dry-run", "--json"}, out), 0)
      << out;
  j = summary(out);
  EXPECT_EQ(j["written"], 200);
  EXPECT_EQ(j["already_present"], 200);
  EXPECT_EQ(rows(), 200);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
  EXPECT_FALSE(table_exists("sluice_offsets"));

  // Only another schema: everything is read and skipped.
  ASSERT_EQ(replay({"--topic", topic_, "--from-offset", "0", "--schema", "NavigationTiming",
                    "--dry-run", "--json"},
                   out),
            0)
      << out;
  j = summary(out);
  EXPECT_EQ(j["read"], 400);
  EXPECT_EQ(j["skipped"], 400);
  EXPECT_EQ(j["written"], 0);
}

TEST_F(ReplayTest, ARangeWiderThanTheBoundIsRefusedWithoutConfirmAfterSayingWhatItWouldDo) {
  const auto cfg = config("", "", nullptr, "replay:\n  confirm_above_events: 100\n");
  produce(50);
  std::string out;
  ASSERT_EQ(replay({"--topic", topic_, "--from-offset", "0"}, out, cfg), 5) << out;
  EXPECT_NE(out.find("partitions 0-3 of " + topic_ + ", about 200 event(s), into database log on"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(topic_ + "/2  offsets [0, 50)  50 event(s)"), std::string::npos) << out;
  EXPECT_NE(out.find("refused"), std::string::npos) << out;
  EXPECT_NE(out.find("--confirm"), std::string::npos) << out;
  EXPECT_FALSE(table_exists("TestSchema_1")) << "a refused replay wrote";

  ASSERT_EQ(replay({"--topic", topic_, "--from-offset", "0", "--dry-run"}, out, cfg), 0) << out;
  ASSERT_EQ(replay({"--topic", topic_, "--from-offset", "0", "--confirm"}, out, cfg), 0) << out;
  EXPECT_EQ(rows(), 200);
}

TEST_F(ReplayTest, BadArgumentsAreRefusedWithAClearErrorAndANonZeroExit) {
  produce(5);
  std::ofstream(dir_.file("bad.yaml")) << "kafka:\n  topics: [x]\nreplay:\n"
                                       << "  confirm_above_events: many\n";
  const std::string cfg = config();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--from-offset", "0"}, "--topic is required"},
      {{"--topic", topic_}, "exactly one start"},
      {{"--topic", topic_, "--from-offset", "0", "--from-time", "2024-01-01T00:00:00Z"},
       "exactly one start"},
      {{"--topic", topic_, "--from-offset", "0", "--to-offset", "5", "--to-time",
        "2024-01-01T00:00:00Z"},
       "at most one end"},
      {{"--topic", topic_, "--from-offset", "10", "--to-offset", "5"},
       "--to-offset 5 is before --from-offset 10"},
      {{"--topic", topic_, "--from-time", "yesterday"}, "not an ISO-8601 date-time"},
      {{"--topic", topic_, "--from-time", "2024-01-02T00:00:00Z", "--to-time",
        "2024-01-01T00:00:00Z"},
       "is before --from-time"},
      {{"--topic", topic_, "--from-offset", "-3"}, "must not be negative"},
      {{"--topic", "el_no_such_topic", "--from-offset", "0"},
       "Kafka has no topic el_no_such_topic"},
      {{"--topic", topic_, "--from-offset", "0", "--partition", "9"},
       "has no partition 9 (it has 0-3)"},
      {{"--from-file", dir_.file("missing.jsonl")}, "cannot read"},
      {{"--from-file", dir_.file("bad.yaml"), "--from-offset", "0"}, "replays the whole file"},
  };
  for (const auto& [args, message] : cases) {
    std::string out;
    EXPECT_EQ(replay(args, out, cfg), 2) << out;
    EXPECT_NE(out.find(message), std::string::npos) << "expected '" << message << "' in: " << out;
  }
  std::string out;
  EXPECT_EQ(replay({"--topic", topic_, "--from-offset", "0"}, out, dir_.file("bad.yaml")), 2);
  EXPECT_NE(out.find("bad.yaml:4: replay.confirm_above_events: expected an integer"),
            std::string::npos)
      << out;
  EXPECT_FALSE(table_exists("TestSchema_1"));
}

}  // namespace
}  // namespace sluice::testing
