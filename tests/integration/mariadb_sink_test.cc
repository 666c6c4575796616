// Integration tests of the MariaDB adapter alone (no Kafka, no `sluice` process) against a
// private mariadbd: LOAD DATA LOCAL serves only Sluice's own in-memory batch, dead letters of any
// bytes round-trip, tables of another layout are found once and their rows dead-lettered, a
// session that lost a privilege is replaced once the grant is back, and a duplicate on a primary
// key other than Sluice's id is told apart from a stored uuid.

#include "storage/mariadb_sink.h"

#include <gtest/gtest.h>
#include <mysqld_error.h>

#include <atomic>
#include <fstream>
#include <optional>
#include <thread>

#include "storage/mariadb_connection.h"
#include "storage/row_format.h"
#include "storage/table_layout.h"
#include "testing/harness.h"

namespace sluice::testing {
namespace {

using storage::Batch;
using storage::ColumnType;
using storage::TableLayout;
using storage::WriteOutcome;

class SinkTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = std::make_unique<MariaDb>(dir_.file("mariadb")); }

  MariaDbConfig config() const {
    MariaDbConfig c;
    c.socket = db_->socket();
    c.user = "sluice";
    c.password = db_->password();
    c.database = "log";
    return c;
  }

  /// A batch of partition 0 over [base, base + n): rows of `table` at the offsets not in
  /// `letters`, dead letters (reason, payload) at those.
  Batch batch(const TableLayout& table, int64_t base, int64_t n,
              const std::map<int64_t, std::pair<std::string, std::string>>& letters = {},
              int32_t partition = 0) {
    Batch b;
    b.topic = "t";
    b.partition = partition;
    b.base_offset = base;
    b.end_offset = base + n;
    storage::TableRows rows;
    rows.table = &table;
    for (int64_t o = base; o < base + n; ++o) {
      ++b.events;
      if (auto it = letters.find(o); it != letters.end()) {
        b.dead_letters.push_back({o, it->second.first, it->second.second});
        continue;
      }
      char uuid[33];
      std::snprintf(uuid, sizeof uuid, "%08x%024llx", static_cast<unsigned>(partition),
                    static_cast<unsigned long long>(o + 1));
      storage::RowEncoder e(rows.data);
      e.plain(uuid);
      e.plain("20240101000000");
      e.null();
      if (table.shape() == storage::TableShape::kCapsule) {
        e.text("enwiki");
        e.null();
        e.null();
      }
      for (size_t i = 0; i < table.event_columns().size(); ++i) e.text("v" + std::to_string(o));
      e.end_row();
      rows.offsets.push_back(o);
      rows.ends.push_back(static_cast<uint32_t>(rows.data.size()));
    }
    if (!rows.offsets.empty()) b.tables.push_back(std::move(rows));
    return b;
  }

  TempDir dir_;
  std::unique_ptr<MariaDb> db_;
  const TableLayout table_{"Sink_1", {{"event_a", ColumnType::kString}}};
};

TEST_F(SinkTest, LoadDataServesOnlyItsOwnInMemoryBatchAndNeverReadsAFile) {
  std::unique_ptr<storage::MariaDbConnection> conn;
  ASSERT_TRUE(storage::MariaDbConnection::open(config(), conn).is_ok());
  ASSERT_TRUE(conn->exec("CREATE TABLE f (a VARBINARY(200))").is_ok());
  const std::string secret = dir_.file("secret");
  std::ofstream(secret) << "password-do-not-send\n";

  auto ok = conn->load_data("LOAD DATA LOCAL INFILE 'sluice-batch' INTO TABLE f", "sluice-batch",
                            "from-memory\n");
  ASSERT_TRUE(ok.is_ok()) << ok.describe();
  // A request for another name during Sluice's own load: refused, nothing read.
  auto other = conn->load_data("LOAD DATA LOCAL INFILE '" + secret + "' INTO TABLE f",
                               "sluice-batch", "from-memory\n");
  EXPECT_FALSE(other.is_ok());
  EXPECT_NE(other.message.find("refused the server's request for local file"), std::string::npos)
      << other.describe();
  // A request outside load_data (the server may ask on any statement): refused too.
  auto unarmed = conn->exec("LOAD DATA LOCAL INFILE '" + secret + "' INTO TABLE f");
  EXPECT_FALSE(unarmed.is_ok());
  EXPECT_NE(unarmed.message.find(secret), std::string::npos) << unarmed.describe();
  // The session is still usable, and only the in-memory row arrived.
  std::vector<std::vector<std::optional<std::string>>> rows;
  ASSERT_TRUE(conn->query("SELECT a FROM f", rows).is_ok());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(*rows[0][0], "from-memory");
}

TEST_F(SinkTest, DeadLettersOfAnyBytesRoundTripExactly) {
  storage::MariaDbSink sink(config(), "g");
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
  const std::map<int64_t, std::pair<std::string, std::string>> letters = {
      {0, {"malformed_json: message: é and a quote ' and a backslash \\", all_bytes}},
      {1, {"malformed_json: message: x", "\xff\xfe{\"not\": json \xc3\x28"}},
      {2, {"malformed_json: message: y", ""}},
      {3, {std::string(5000, 'r'), "z"}},  // a reason past the column: cut, never refused
  };
  Batch b = batch(table_, 0, 5, letters);
  const auto r = sink.write(b);
  ASSERT_EQ(r.outcome, WriteOutcome::kCommitted) << r.error.describe();
  const auto stored =
      db_->query("SELECT kafka_offset, reason, payload FROM sluice_dead_letter ORDER BY id");
  ASSERT_EQ(stored.size(), 4u);
  for (const auto& row : stored) {
    const auto& [reason, payload] = letters.at(std::stoll(*row[0]));
    if (reason.size() <= 1024) {
      EXPECT_EQ(*row[1], reason);
    }
    EXPECT_LE(row[1]->size(), 1024u);
    EXPECT_TRUE(row[2].value_or("") == payload) << "payload changed at " << *row[0];
  }
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM Sink_1"), 1);
}

TEST_F(SinkTest, AMissingOffsetsRowIsCreatedOnlyWhereThePartitionBeganAndOtherwiseIsBehind) {
  storage::MariaDbSink sink(config(), "g");
  // No row: a batch from 40 would leave [0, 40) out unseen. MariaDB is behind, at 0.
  Batch late = batch(table_, 40, 5);
  auto r = sink.write(late);
  ASSERT_EQ(r.outcome, WriteOutcome::kBehind) << r.error.describe();
  EXPECT_EQ(r.db_next_offset, 0);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_offsets"), 0) << "the row was created";
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = "
                        "'Sink_1' AND TABLE_SCHEMA = 'log'") == 0 ||
                db_->scalar("SELECT COUNT(*) FROM Sink_1") == 0,
            true);
  // A partition that began at Kafka's log start (40: nothing below was ever Sluice's) may.
  Batch first = batch(table_, 40, 5);
  first.origin = 40;
  r = sink.write(first);
  ASSERT_EQ(r.outcome, WriteOutcome::kCommitted) << r.error.describe();
  EXPECT_EQ(db_->scalar("SELECT next_offset FROM sluice_offsets"), 45);
  // So may one from offset 0, on another partition.
  Batch zero = batch(table_, 0, 3);
  zero.partition = 1;
  r = sink.write(zero);
  ASSERT_EQ(r.outcome, WriteOutcome::kCommitted) << r.error.describe();
  EXPECT_EQ(db_->scalar("SELECT next_offset FROM sluice_offsets WHERE kafka_partition = 1"), 3);
}

TEST_F(SinkTest, AReplayWaitsForTheDeadLetterLockAndDoesNotRecordTwiceWhatWasRecordedMeanwhile) {
  // Another writer (the service, a second replay) holds the partition's dead-letter lock and is
  // about to record offset 2's dead letter.
  db_->exec("SELECT GET_LOCK('" + storage::dead_letter_lock_name("t", 0) + "', 0)");
  storage::MariaDbSink replay(config(), "g", {}, storage::SinkMode::kReplay);
  Batch b = batch(table_, 0, 5, {{2, {"malformed_json: x", "{"}}});
  std::optional<storage::WriteResult> result;
  std::thread writer([&] { result = replay.write(b); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_FALSE(result.has_value()) << "written without the lock";
  db_->exec(
      "INSERT INTO sluice_dead_letter (topic, kafka_partition, kafka_offset, reason, payload, "
      "received_at) VALUES ('t', 0, 2, 'malformed_json: x', '{', UTC_TIMESTAMP(6))");
  db_->exec("SELECT RELEASE_LOCK('" + storage::dead_letter_lock_name("t", 0) + "')");
  writer.join();
  ASSERT_TRUE(result);
  ASSERT_EQ(result->outcome, WriteOutcome::kCommitted) << result->error.describe();
  EXPECT_EQ(result->dead_letters, 0u);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter WHERE kafka_offset = 2"), 1);
}

TEST_F(SinkTest, ATableOfAnotherLayoutIsFoundAndItsRowsDeadLetteredUntilItIsFixed) {
  db_->exec(
      "CREATE TABLE Sink_1 (id INT AUTO_INCREMENT PRIMARY KEY, uuid CHAR(32), "
      "timestamp VARBINARY(14), dt DATETIME, wiki VARBINARY(1024), webHost "
      "VARBINARY(1024), userAgent VARBINARY(1024), event_a VARBINARY(1024), "
      "legacy INT NOT NULL)");
  storage::MariaDbSink sink(config(), "g");
  Batch first = batch(table_, 0, 10);
  auto r = sink.write(first);
  ASSERT_EQ(r.outcome, WriteOutcome::kCommitted) << r.error.describe();
  EXPECT_EQ(r.rows, 0u);
  EXPECT_EQ(r.dead_letters, 10u);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter WHERE reason = "
                        "'table_mismatch: Sink_1: column `legacy` is NOT NULL without a default: "
                        "Sluice cannot fill it'"),
            10);
  // The DBA fixes the table: the next batch is written there.
  db_->exec("ALTER TABLE Sink_1 MODIFY legacy INT NULL");
  Batch second = batch(table_, 10, 10);
  r = sink.write(second);
  ASSERT_EQ(r.outcome, WriteOutcome::kCommitted) << r.error.describe();
  EXPECT_EQ(r.rows, 10u);
  EXPECT_EQ(db_->scalar("SELECT next_offset FROM sluice_offsets"), 20);
}

TEST_F(SinkTest, WritersMeetingANewerVersionAtOnceGrowItsTableOnceAndOldRowsKeepNull) {
  // Each round, a version that adds two fields reaches two writers (two instances' sessions)
  // at the same moment, each with a partition of its own.
  std::vector<storage::Column> columns = {{"a", ColumnType::kString}};
  std::vector<std::unique_ptr<TableLayout>> layouts;
  layouts.push_back(std::make_unique<TableLayout>("Click_1", columns,
                                                  storage::TableShape::kEventPlatform));
  storage::MariaDbSink first(config(), "g");
  Batch b0 = batch(*layouts.back(), 0, 10);
  ASSERT_EQ(first.write(b0).outcome, WriteOutcome::kCommitted);
  storage::MariaDbSink sinks[2] = {{config(), "g"}, {config(), "g"}};
  constexpr int kRounds = 6;
  for (int round = 1; round <= kRounds; ++round) {
    for (const char* field : {"x", "y"}) {
      columns.push_back({field + std::to_string(round), ColumnType::kString});
    }
    layouts.push_back(std::make_unique<TableLayout>("Click_1", columns,
                                                    storage::TableShape::kEventPlatform));
    std::atomic<int> ready{0};
    storage::WriteResult results[2];
    std::vector<std::thread> writers;
    for (int w = 0; w < 2; ++w) {
      writers.emplace_back([&, w] {
        const int64_t base = w == 0 ? round * 10 : (round - 1) * 10;
        Batch b = batch(*layouts.back(), base, 10, {}, w);
        ++ready;
        while (ready < 2) std::this_thread::yield();
        results[w] = sinks[w].write(b);
      });
    }
    for (auto& t : writers) t.join();
    for (const auto& r : results) {
      ASSERT_EQ(r.outcome, WriteOutcome::kCommitted) << round << ": " << r.error.describe();
      EXPECT_EQ(r.rows, 10u);
      EXPECT_EQ(r.dead_letters, 0u);
    }
  }
  // Every column once, in the order they were added; each added by one writer alone.
  const auto cols = db_->query(
      "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'log' AND "
      "TABLE_NAME = 'Click_1' ORDER BY ORDINAL_POSITION");
  ASSERT_EQ(cols.size(), 4 + columns.size());
  for (size_t i = 0; i < columns.size(); ++i) EXPECT_EQ(*cols[4 + i][0], columns[i].name);
  EXPECT_EQ(sinks[0].columns_added() + sinks[1].columns_added(), 2u * kRounds);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM Click_1"), 10 + 2 * 10 * kRounds);
  // The rows before a column was added hold NULL there.
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM Click_1 WHERE x1 IS NULL"), 10);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM Click_1 WHERE x6 IS NULL"), 10 + 2 * 10 * 5);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
}

TEST_F(SinkTest, ATableThatMayNotGrowFailsTheWriteUntilAlterIsGrantedAndDeadLettersNothing) {
  const TableLayout v1("Click_1", {{"a", ColumnType::kString}},
                       storage::TableShape::kEventPlatform);
  const TableLayout v2("Click_1", {{"a", ColumnType::kString}, {"b", ColumnType::kString}},
                       storage::TableShape::kEventPlatform);
  storage::MariaDbSink sink(config(), "g");
  Batch first = batch(v1, 0, 5);
  ASSERT_EQ(sink.write(first).outcome, WriteOutcome::kCommitted);
  db_->set_sluice_grant("ALTER", false);
  sink.disconnect();
  Batch second = batch(v2, 5, 5);
  const auto refused = sink.write(second);
  ASSERT_EQ(refused.outcome, WriteOutcome::kFailed);
  EXPECT_EQ(refused.error.code, static_cast<unsigned>(ER_TABLEACCESS_DENIED_ERROR));
  EXPECT_EQ(refused.failed_table, "Click_1");
  db_->set_sluice_grant("ALTER", true);
  const auto again = sink.write(second);
  ASSERT_EQ(again.outcome, WriteOutcome::kCommitted) << again.error.describe();
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM Click_1 WHERE b IS NOT NULL"), 5);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
}

TEST_F(SinkTest, ASessionThatLostAPrivilegeIsReplacedOnceTheGrantIsBack) {
  storage::MariaDbSink sink(config(), "g");
  Batch first = batch(table_, 0, 5);
  ASSERT_EQ(sink.write(first).outcome, WriteOutcome::kCommitted);
  db_->set_sluice_grant("INSERT", false);
  sink.disconnect();  // the session ends (a restart, a resume, a killed connection)
  Batch second = batch(table_, 5, 5);
  const auto refused = sink.write(second);
  ASSERT_EQ(refused.outcome, WriteOutcome::kFailed);
  EXPECT_EQ(refused.error.code, static_cast<unsigned>(ER_TABLEACCESS_DENIED_ERROR));
  EXPECT_EQ(refused.failed_table, "Sink_1");
  db_->set_sluice_grant("INSERT", true);
  // Database-level grants apply at the next connect: the sink must have let the old one go.
  const auto again = sink.write(second);
  ASSERT_EQ(again.outcome, WriteOutcome::kCommitted) << again.error.describe();
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM Sink_1"), 10);
}

TEST_F(SinkTest, AStoredUuidRefusedOnAnotherPrimaryKeyIsADuplicatePrimaryKeyNotAStoredUuid) {
  // A table from an older consumer: the uuid is the primary key, there is no ix_uuid. A stored
  // uuid is then refused on 'PRIMARY' at every attempt: the sink must say so (retried while it
  // does not repeat, then split by the writer), neither count it as a stored uuid nor call it a
  // deadlock to retry forever.
  db_->exec(
      "CREATE TABLE Sink_1 (uuid CHAR(32) PRIMARY KEY, timestamp VARBINARY(14), dt DATETIME, "
      "wiki VARBINARY(1024), webHost VARBINARY(1024), userAgent VARBINARY(1024), "
      "event_a VARBINARY(1024))");
  storage::MariaDbSink sink(config(), "g");
  Batch first = batch(table_, 0, 5);
  auto r = sink.write(first);
  ASSERT_EQ(r.outcome, WriteOutcome::kCommitted) << r.error.describe();
  db_->exec("INSERT INTO Sink_1 (uuid, wiki) VALUES ('" + std::string(24, '0') + "00000008', 'x')");
  for (int attempt = 0; attempt < 2; ++attempt) {
    Batch second = batch(table_, 5, 5);  // offset 7 holds uuid ...08
    r = sink.write(second);
    ASSERT_EQ(r.outcome, WriteOutcome::kFailed);
    EXPECT_EQ(r.error.code, storage::kDuplicatePrimaryKey) << r.error.describe();
    EXPECT_TRUE(storage::repeated_means_bad_batch(r.error.code));
    EXPECT_EQ(r.failed_table, "Sink_1");
  }
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM Sink_1"), 6);  // rolled back
  EXPECT_EQ(db_->scalar("SELECT next_offset FROM sluice_offsets"), 5);
  // The part the writer's split isolates without that row is written.
  Batch head = batch(table_, 5, 2);
  r = sink.write(head);
  ASSERT_EQ(r.outcome, WriteOutcome::kCommitted) << r.error.describe();
  EXPECT_EQ(db_->scalar("SELECT next_offset FROM sluice_offsets"), 7);
}

}  // namespace
}  // namespace sluice::testing
