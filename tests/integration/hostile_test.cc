// Integration tests of hostile input and careless administration: the real `sluice` binary
// against a private mariadbd and the test broker. Events an attacker or a DBA can make fail —
// oversized reasons, bytes that are not UTF-8, a table of another layout, a NOT NULL column added
// mid-stream, grants revoked and restored, a row that always exceeds max_statement_time — each
// ends with every good event written exactly once, in partition order, and every bad one
// dead-lettered at its offset with a clear reason, with no manual action. A stream of distinct
// hostile names leaves the memory flat.

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "testing/harness.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTopic = "eventlogging_h";
constexpr int32_t kPartitions = 2;
constexpr size_t kReasonColumnBytes = 1024;  // sluice_dead_letter.reason is VARBINARY(1024)

class HostileTest : public ::testing::Test {
 protected:
  struct Bad {
    int32_t partition;
    size_t index;  ///< position among the messages produced to the partition
    std::string payload;
    std::string reason_prefix;
    std::string reason_has;  ///< a part the reason must contain ("" for none)
    bool payload_as_sent;    ///< the dead letter's payload is the message, byte for byte
  };

  void SetUp() override {
    db_ = std::make_unique<MariaDb>(dir_.file("mariadb"));
    broker_ = std::make_unique<Broker>(
        std::vector<std::string>{std::string(kTopic) + ":" + std::to_string(kPartitions)},
        dir_.path());
    producer_ = std::make_unique<Producer>(broker_->bootstrap(), "zstd");
  }

  std::string config(const std::string& mariadb_lines = "", int max_rows = 200) {
    return write_config(dir_, broker_->bootstrap(), *db_, {kTopic}, "h",
                        {.extra_yaml = "batch:\n  max_rows: " + std::to_string(max_rows) +
                                       "\n  max_delay_ms: 100\n",
                         .mariadb_lines = mariadb_lines});
  }

  /// A good event of schema `which` (see EventFactory); `edit` may alter its JSON.
  void good(int32_t p, int which = 3, const std::function<void(std::string&)>& edit = {}) {
    const uint64_t seq = seq_[p]++;
    std::string event = EventFactory::good(which, 1, static_cast<uint32_t>(p), seq);
    if (edit) edit(event);
    producer_->produce(kTopic, p, event);
    rows_[EventFactory::table(which)].insert(
        EventFactory::uuid_for(1, static_cast<uint32_t>(p), seq));
    ++produced_[p];
  }

  /// A message that must end as a dead letter whose reason starts with `prefix`.
  void bad(int32_t p, const std::string& payload, const std::string& prefix,
           const std::string& has = "", bool payload_as_sent = true) {
    producer_->produce(kTopic, p, payload);
    bad_.push_back({p, produced_[p]++, payload, prefix, has, payload_as_sent});
  }

  /// A good event of TestSchema that a DBA's change will make the database refuse: it counts
  /// as bad (dead-lettered with `prefix`), and its sequence number is used up.
  void refused(int32_t p, const std::string& prefix, const std::string& has,
               const std::function<void(std::string&)>& edit = {}) {
    const uint64_t seq = seq_[p]++;
    std::string event = EventFactory::good(3, 1, static_cast<uint32_t>(p), seq);
    if (edit) edit(event);
    bad(p, event, prefix, has, false);
  }

  int64_t produced_total() const {
    int64_t total = 0;
    for (const auto& [key, offsets] : producer_->offsets()) total += offsets.back() + 1;
    return total;
  }

  bool wait_for_all(std::chrono::seconds timeout = 120s) {
    producer_->flush();
    const int64_t want = produced_total();
    return wait_until(
        [&] {
          try {
            return db_->scalar("SELECT COALESCE(SUM(next_offset), 0) FROM sluice_offsets") == want;
          } catch (const std::exception&) {
            return false;
          }
        },
        timeout);
  }

  int64_t table_rows(const std::string& table) { return db_->table_rows(table); }

  /// Every good event once, in partition order; every bad one dead-lettered at its offset with
  /// its reason, no reason longer than the column; sluice_offsets at each partition's end.
  void verify_exact() {
    for (const auto& [table, uuids] : rows_) {
      std::set<std::string> stored;
      std::map<uint32_t, uint64_t> last_seq;
      for (const auto& r : db_->query("SELECT uuid FROM `" + table + "` ORDER BY id")) {
        EXPECT_TRUE(stored.insert(*r[0]).second) << "duplicate row " << *r[0] << " in " << table;
        uint32_t t = 0, p = 0;
        uint64_t seq = 0;
        EventFactory::parse_uuid(*r[0], t, p, seq);
        if (last_seq.contains(p)) {
          EXPECT_LT(last_seq[p], seq) << "order broken in " << table;
        }
        last_seq[p] = seq;
      }
      EXPECT_TRUE(stored == uuids)
          << table << ": " << stored.size() << " rows stored, " << uuids.size() << " expected";
    }
    std::map<std::pair<int32_t, int64_t>, std::pair<std::string, std::string>> letters;
    for (const auto& r : db_->query("SELECT kafka_partition, kafka_offset, reason, payload FROM "
                                    "sluice_dead_letter ORDER BY id")) {
      EXPECT_TRUE(letters
                      .emplace(std::make_pair(std::stoi(*r[0]), std::stoll(*r[1])),
                               std::make_pair(*r[2], r[3].value_or("")))
                      .second)
          << "two dead letters at " << *r[0] << "@" << *r[1];
    }
    EXPECT_EQ(letters.size(), bad_.size());
    for (const auto& b : bad_) {
      const int64_t offset = producer_->offsets().at({kTopic, b.partition}).at(b.index);
      const auto it = letters.find({b.partition, offset});
      ASSERT_NE(it, letters.end()) << "no dead letter at " << b.partition << "@" << offset
                                   << " (expected " << b.reason_prefix << ")";
      const auto& [reason, payload] = it->second;
      EXPECT_EQ(reason.rfind(b.reason_prefix, 0), 0u) << "at " << offset << ": " << reason;
      if (!b.reason_has.empty()) {
        EXPECT_NE(reason.find(b.reason_has), std::string::npos)
            << "at " << offset << ": '" << reason << "' lacks '" << b.reason_has << "'";
      }
      EXPECT_LE(reason.size(), kReasonColumnBytes);
      if (b.payload_as_sent) {
        EXPECT_TRUE(payload == b.payload) << "payload changed at " << offset;
      }
    }
    for (const auto& [key, offsets] : producer_->offsets()) {
      EXPECT_EQ(db_->scalar("SELECT next_offset FROM sluice_offsets WHERE kafka_partition = " +
                            std::to_string(key.second)),
                offsets.back() + 1)
          << "partition " << key.second;
    }
  }

  nlohmann::json status(const Process& sluice) {
    std::string url;
    EXPECT_TRUE(wait_until([&] { return !(url = admin_url(sluice)).empty(); }, 10s));
    std::string out;
    if (run_command({binary_dir() + "/main/sluice", "status", "--json", "--admin", url}, out) !=
        0) {
      return nlohmann::json();
    }
    return nlohmann::json::parse(out, nullptr, false);
  }

  std::string metrics(const Process& sluice) {
    const std::string url = admin_url(sluice);
    const auto port = url.substr(url.rfind(':') + 1);
    const std::string reply = raw_exchange(
        std::stoi(port), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    return reply;
  }

  void kill_sluice_sessions() {
    for (const auto& r :
         db_->query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'sluice'")) {
      try {
        db_->exec("KILL CONNECTION " + *r[0]);
      } catch (const std::exception&) {
        // The session ended between the list and the kill.
      }
    }
  }

  TempDir dir_;
  std::unique_ptr<MariaDb> db_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<Producer> producer_;
  std::map<int32_t, uint64_t> seq_;
  std::map<int32_t, size_t> produced_;
  std::map<std::string, std::set<std::string>> rows_;  ///< table -> uuids expected there
  std::vector<Bad> bad_;
};

std::string capsule(const std::string& schema, const std::string& event,
                    const std::string& uuid = "0123456789abcdef0123456789abcdef") {
  return R"({"schema":")" + schema + R"(","revision":1,"uuid":")" + uuid +
         R"(","wiki":"enwiki","event":)" + event + "}";
}

TEST_F(HostileTest, OversizedReasonsAndBytesThatAreNotUtf8NeverBlockAPartition) {
  auto sluice = start_sluice(dir_, config());
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
  for (int i = 0; i < 200; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) {
      good(p, i % 4);
      if (i == 10) {
        // A field name that would forge a log line of its own in a text-format log.
        bad(p,
            capsule(
                "TestSchema",
                R"({"value":"v","seq":1,"forged\n2026-01-01 00:00:00.000 error [admin] pwned":1})"),
            "unexpected_field: event.forged\n2026");
      }
      if (i == 50) {
        // A 2,000-byte field name the schema does not declare: the reason names it, cut.
        bad(p,
            capsule("TestSchema", R"({"value":"v","seq":1,")" + std::string(2000, 'f') + R"(":1})"),
            "unexpected_field: event.ffff", "…");
      }
      if (i == 80) {
        // A schema name of 1,000 characters (not a valid name) and one of 180 (valid, unknown).
        bad(p, capsule(std::string(1000, 'S'), "{}"), "unknown_schema: ", "…");
        bad(p, capsule(std::string(180, 'Q'), "{}"), "unknown_schema: ");
        // Text longer than its column, multi-byte characters at the cut.
        bad(p, capsule("TestSchema", R"({"value":")" + std::string(3000, 'x') + R"(","seq":1})"),
            "too_long: event.value");
        bad(p,
            capsule("TestSchema", R"({"value":"v","seq":1,")" + std::string(700, 'k') + "é" +
                                      std::string(400, 'k') + R"(":1})"),
            "unexpected_field: event.kkk", "…");
      }
      if (i == 120) {
        bad(p, "\xff\xfe{\"not\": json \xc3\x28", "malformed_json: ");  // invalid UTF-8
        bad(p, all_bytes, "malformed_json: ");
        bad(p, capsule("TestSchema", "{\"value\":\"caf\xe9\",\"seq\":1}"), "malformed_json: ");
      }
      if (i == 160) {
        // Numbers no column can hold: the value is invalid, the JSON is not.
        bad(p, capsule("TestSchema", R"({"value":"v","seq":1,"ratio":1e400})"), "invalid_value: ");
        bad(p, capsule("TestSchema", R"({"value":"v","seq":18446744073709551616})"),
            "invalid_value: ");
      }
    }
  }
  ASSERT_TRUE(wait_for_all(90s)) << sluice->log();
  verify_exact();
  // Untrusted text in a text-format log never starts a line of its own.
  const std::string log = sluice->log();
  EXPECT_EQ(log.find("\n2026-01-01 00:00:00.000 error [admin] pwned"), std::string::npos) << log;
  EXPECT_NE(log.find("forged\\n2026-01-01"), std::string::npos) << log;
}

TEST_F(HostileTest, ExistingTablesOfAnotherLayoutAreDeadLetteredNamingTheColumn) {
  // What the old consumer left behind: one table without a column Sluice writes, one with a
  // column Sluice cannot fill (NOT NULL, no default). Neither may block the partition, and
  // neither is altered or written to.
  db_->exec(
      "CREATE TABLE SaveTiming_15396492 (id INT AUTO_INCREMENT PRIMARY KEY, uuid CHAR(32), "
      "timestamp VARBINARY(14), wiki VARBINARY(1024), webHost VARBINARY(1024), userAgent "
      "VARBINARY(1024), event_saveTiming BIGINT, event_mediaWikiVersion VARBINARY(1024))");
  db_->exec(
      "CREATE TABLE EditConflict_8860941 (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, "
      "uuid CHAR(32), timestamp VARBINARY(14), dt DATETIME, wiki VARBINARY(1024), webHost "
      "VARBINARY(1024), userAgent VARBINARY(1024), event_namespace BIGINT, event_pageId "
      "BIGINT, event_revId BIGINT, event_userId BIGINT, event_title VARBINARY(1024), "
      "event_userText VARBINARY(1024), legacy_id INT NOT NULL)");
  auto sluice = start_sluice(dir_, config());
  for (int i = 0; i < 150; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) {
      const int which = i % 3 == 0 ? 3 : (i % 3 == 1 ? 1 : 2);
      if (which == 3) {
        good(p, 3);
        continue;
      }
      const uint64_t seq = seq_[p]++;
      // The dead letter carries the row as Sluice would have loaded it (a LOAD DATA line).
      bad(p, EventFactory::good(which, 1, static_cast<uint32_t>(p), seq),
          "table_mismatch: " + EventFactory::table(which) + ": ",
          which == 1 ? "`dt`" : "`legacy_id`", false);
    }
  }
  ASSERT_TRUE(wait_for_all(90s)) << sluice->log();
  verify_exact();
  EXPECT_EQ(table_rows("SaveTiming_15396492"), 0);
  EXPECT_EQ(table_rows("EditConflict_8860941"), 0);
}

TEST_F(HostileTest, NotNullColumnAddedMidStreamDeadLettersThatTableUntilItIsFixed) {
  auto sluice = start_sluice(dir_, config());
  for (int i = 0; i < 60; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) good(p, i % 2 ? 3 : 2);
  }
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  db_->exec("ALTER TABLE TestSchema_1 ADD COLUMN dba_note INT NOT NULL");
  for (int i = 0; i < 60; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) {
      if (i % 2) {
        refused(p, "table_mismatch: TestSchema_1: ", "`dba_note`");
      } else {
        good(p, 2);
      }
    }
  }
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  // The DBA notices and fixes the table: rows flow again, with nobody touching Sluice.
  db_->exec("ALTER TABLE TestSchema_1 DROP COLUMN dba_note");
  for (int i = 0; i < 60; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) good(p, i % 2 ? 3 : 2);
  }
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
}

TEST_F(HostileTest, RevokedAndRestoredGrantsRecoverWithoutManualAction) {
  auto sluice = start_sluice(dir_, config());
  for (int i = 0; i < 50; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) good(p);
  }
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  // A DBA revokes INSERT; Sluice's sessions reconnect (here: killed) and lose the privilege.
  db_->set_sluice_grant("INSERT", false);
  kill_sluice_sessions();
  for (int i = 0; i < 50; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) good(p);
  }
  producer_->flush();
  // The failure shows: a writer `failing`, with its table and the server's error, and metrics.
  nlohmann::json s;
  ASSERT_TRUE(wait_until(
      [&] {
        s = status(*sluice);
        if (!s.is_object() || !s.contains("writers")) return false;
        for (const auto& w : s["writers"]) {
          if (w["state"] == "failing" &&
              w["last_error"].get<std::string>().find("1142") != std::string::npos &&
              w["table"] == "TestSchema_1" && w["since_ms"].get<int64_t>() > 0) {
            return true;
          }
        }
        return false;
      },
      60s))
      << s.dump() << sluice->log();
  const std::string m = metrics(*sluice);
  const auto gauge = m.find("\nsluice_writer_failing ");
  ASSERT_NE(gauge, std::string::npos) << m;
  EXPECT_GE(std::stod(m.substr(gauge + 23)), 1.0) << m;
  EXPECT_NE(m.find("sluice_db_errors_total{class=\"fatal\"}"), std::string::npos) << m;

  db_->set_sluice_grant("INSERT", true);
  ASSERT_TRUE(wait_for_all(120s)) << sluice->log();
  verify_exact();
  ASSERT_TRUE(wait_until(
      [&] {
        s = status(*sluice);
        return s.is_object() && s.contains("writers") &&
               std::none_of(s["writers"].begin(), s["writers"].end(),
                            [](const auto& w) { return w["state"] == "failing"; });
      },
      10s))
      << s.dump();
}

TEST_F(HostileTest, ARowThatAlwaysExceedsTheStatementTimeIsIsolatedAndTheRestWritten) {
  auto sluice = start_sluice(dir_, config("  io_timeout_ms: 1000\n"));
  for (int i = 0; i < 20; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) good(p);
  }
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  // One row makes every statement that carries it run for 5 s, far past max_statement_time.
  db_->exec(
      "CREATE TRIGGER slow_row BEFORE INSERT ON TestSchema_1 FOR EACH ROW "
      "BEGIN IF NEW.wiki = 'slowwiki' THEN DO SLEEP(5); END IF; END");
  for (int i = 0; i < 150; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) {
      if (p == 0 && i == 77) {
        refused(p, "db_refused: TestSchema_1: ", "1969",
                [](std::string& e) { e.replace(e.find("\"enwiki\""), 8, "\"slowwiki\""); });
      } else {
        good(p);
      }
    }
  }
  ASSERT_TRUE(wait_for_all(180s)) << sluice->log();
  verify_exact();
}

TEST_F(HostileTest, ATableLockHeldLongByADbaBlamesNoEventAndEverythingIsWrittenAfterwards) {
  // The statement limit is half a second here: a metadata lock held for 30 s (LOCK TABLES, or
  // an ALTER TABLE's last phase) used to end statement after statement at that limit, and two
  // in a row split the batch down to single events, dead-lettered as db_refused.
  auto sluice = start_sluice(dir_, config("  io_timeout_ms: 1000\n"));
  for (int i = 0; i < 20; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) good(p);
  }
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  Process lock({"mariadb", "-S", db_->socket(), "-u", "root", "log", "-e",
                "LOCK TABLES TestSchema_1 WRITE; SELECT SLEEP(30); UNLOCK TABLES;"},
               dir_.file("lock.log"));
  ASSERT_TRUE(wait_until(
      [&] {
        return db_->scalar(
                   "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE "
                   "'SELECT SLEEP(30)%'") == 1;
      },
      10s));
  for (int i = 0; i < 300; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) good(p);
  }
  producer_->flush();
  ASSERT_TRUE(lock.wait(60s).has_value()) << lock.log();
  ASSERT_TRUE(wait_for_all(120s)) << sluice->log();
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0)
      << "events blamed for a lock\n"
      << sluice->log();
  verify_exact();
}

TEST_F(HostileTest, HundredsOfThousandsOfDistinctHostileNamesLeaveMemoryFlat) {
  auto sluice = start_sluice(dir_, config("", 5000));
  // The first part is three times the others: buffers, pools and the allocator's arenas reach
  // their working size (about 150,000 events here), so what follows measures growth alone.
  constexpr int kParts = 8;
  constexpr int kPerPartitionPerPart = 20000;
  int64_t first_rss = -1, last_rss = -1;
  uint64_t n = 0, letters = 0;
  for (int part = 0; part < kParts; ++part) {
    for (int i = 0; i < kPerPartitionPerPart * (part == 0 ? 3 : 1); ++i) {
      for (int32_t p = 0; p < kPartitions; ++p) {
        const std::string id = std::to_string(n++);
        std::string payload;
        switch (n % 5) {
          case 0:  // a valid, unknown, distinct schema name
            payload = capsule("Unknown" + std::string(150, 'u') + id, "{}");
            break;
          case 1:  // an invalid, distinct name
            payload = capsule("../bad name/" + std::string(300, 'b') + id, "{}");
            break;
          case 2:  // a known schema, a distinct revision it does not have
            payload = R"({"schema":"TestSchema","revision":)" + std::to_string(1000 + n) +
                      R"(,"uuid":"0123456789abcdef0123456789abcdef","wiki":"w","event":{}})";
            break;
          case 3:  // a distinct field name the schema does not declare
            payload = capsule("TestSchema", R"({"value":"v","seq":1,"f)" + std::string(200, 'f') +
                                                id + R"(":1})");
            break;
          default:  // not JSON
            payload = "{" + std::string(100, '[') + id;
            break;
        }
        producer_->produce(kTopic, p, payload);
        ++letters;
      }
    }
    ASSERT_TRUE(wait_for_all(180s)) << sluice->log();
    const int64_t rss = rss_kib(sluice->pid());
    std::cout << "[ measure  ] after " << letters << " hostile events: RSS " << rss / 1024
              << " MiB\n";
    if (part == 0) first_rss = rss;
    last_rss = rss;
  }
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), static_cast<int64_t>(letters));
  EXPECT_EQ(table_rows("TestSchema_1"), 0);
  ASSERT_GT(first_rss, 0);
  // Flat: the last part leaves the process within 32 MiB of where the first one left it.
  EXPECT_LT(last_rss, first_rss + 32 * 1024)
      << "RSS grew from " << first_rss / 1024 << " to " << last_rss / 1024 << " MiB";
}

TEST_F(HostileTest, CheckConfigRefusesSchemasWhoseColumnNamesCollide) {
  for (const auto& [name, body] : std::vector<std::pair<std::string, std::string>>{
           {"Flat", R"({"properties":{"a_b":{"type":"string"},)"
                    R"("a":{"type":"object","properties":{"b":{"type":"integer"}}}}})"},
           {"Case", R"({"properties":{"Value":{"type":"string"},"value":{"type":"string"}}})"}}) {
    const std::string schemas = dir_.file("schemas-" + name);
    std::filesystem::create_directories(schemas + "/" + name);
    std::ofstream(schemas + "/" + name + "/1.json") << body;
    const std::string path = dir_.file("check-" + name + ".yaml");
    std::ofstream(path) << "kafka:\n  topics: [t]\nschemas:\n  path: \"" << schemas << "\"\n";
    std::string out;
    EXPECT_EQ(run_command({binary_dir() + "/main/sluice", "check-config", "--config", path}, out),
              2)
        << out;
    EXPECT_NE(out.find(name == "Flat" ? "event_a_b" : "event_value"), std::string::npos) << out;
    EXPECT_NE(out.find("collide"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace sluice::testing
