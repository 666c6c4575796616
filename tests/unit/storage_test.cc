#include <errmsg.h>
#include <gtest/gtest.h>
#include <mysqld_error.h>

#include "storage/batch.h"
#include "storage/db_error.h"
#include "storage/mariadb_sink.h"
#include "storage/row_format.h"
#include "storage/table_layout.h"

namespace sluice::storage {
namespace {

TEST(RowFormat, EscapesEverySpecialByteAndReadsBack) {
  std::string out;
  RowEncoder e(out);
  const std::string tricky = std::string("tab\there\nnl\\bs\rcr") + '\0' + "nul";
  e.text(tricky);
  e.null();
  e.integer(-42);
  e.number(0.1);
  e.boolean(true);
  e.text("\\N");  // the text "\N", not NULL
  e.end_row();
  EXPECT_EQ(out, "tab\\there\\nnl\\\\bs\\rcr\\0nul\t\\N\t-42\t0.1\t1\t\\\\N\n");
  std::vector<std::pair<bool, std::string>> fields;
  std::string scratch;
  for_each_field(std::string_view(out).substr(0, out.size() - 1), scratch,
                 [&](bool is_null, std::string_view v) { fields.emplace_back(is_null, v); });
  ASSERT_EQ(fields.size(), 6u);
  EXPECT_EQ(fields[0].second, tricky);
  EXPECT_TRUE(fields[1].first);
  EXPECT_EQ(fields[2].second, "-42");
  EXPECT_FALSE(fields[5].first);
  EXPECT_EQ(fields[5].second, "\\N");
}

TEST(Batch, TrimBeforeDropsTheAppliedPrefixOfEveryTable) {
  TableLayout a("A_1", {}), b("B_1", {});
  Batch batch;
  batch.base_offset = 10;
  batch.end_offset = 16;
  auto add = [](TableRows& t, int64_t offset, const std::string& row) {
    t.data += row + "\n";
    t.offsets.push_back(offset);
    t.ends.push_back(static_cast<uint32_t>(t.data.size()));
  };
  batch.tables.resize(2);
  batch.tables[0].table = &a;
  batch.tables[1].table = &b;
  add(batch.tables[0], 10, "a10");
  add(batch.tables[1], 11, "b11");
  add(batch.tables[0], 12, "a12");
  add(batch.tables[0], 14, "a14");
  batch.dead_letters.push_back({13, "x", ""});
  batch.dead_letters.push_back({15, "y", ""});
  batch.events = 6;

  batch.trim_before(13);
  EXPECT_EQ(batch.base_offset, 13);
  ASSERT_EQ(batch.tables.size(), 1u);  // B had only offset 11
  EXPECT_EQ(batch.tables[0].data, "a14\n");
  EXPECT_EQ(batch.tables[0].offsets, (std::vector<int64_t>{14}));
  EXPECT_EQ(batch.tables[0].ends, (std::vector<uint32_t>{4}));
  EXPECT_EQ(batch.dead_letters.size(), 2u);
  EXPECT_EQ(batch.events, 3u);
}

TEST(Batch, TrimBeforeNarrowsAGapReachingPastIt) {
  // An earlier owner's batch wrote [17, 33) of what this one records lost as [17, 37): the
  // rest, [33, 37), is still lost and must stay recorded.
  Batch batch;
  batch.base_offset = 17;
  batch.end_offset = 40;
  batch.dead_letters.push_back(DeadLetter::kafka_gap(17, 37, " while spooled"));
  batch.dead_letters.push_back(DeadLetter::kafka_gap(37, 38, ""));
  batch.events = 2;
  batch.trim_before(33);
  ASSERT_EQ(batch.dead_letters.size(), 2u);
  EXPECT_EQ(batch.dead_letters[0].offset, 33);
  EXPECT_EQ(batch.dead_letters[0].gap_end, 37);
  EXPECT_EQ(batch.dead_letters[0].reason,
            "kafka_gap: offsets [33, 37) expired from Kafka before Sluice read them while "
            "spooled: 4 event(s) lost upstream");
  EXPECT_EQ(batch.events, 2u);
  // Past its end, a gap goes like any other dead letter.
  batch.trim_before(38);
  EXPECT_TRUE(batch.dead_letters.empty());
  EXPECT_EQ(batch.events, 0u);
}

TEST(DbError, ClassifiesOnce) {
  EXPECT_EQ(classify_db_error(ER_LOCK_DEADLOCK), DbErrorClass::kTransient);
  EXPECT_EQ(classify_db_error(ER_LOCK_WAIT_TIMEOUT), DbErrorClass::kTransient);
  EXPECT_EQ(classify_db_error(CR_SERVER_GONE_ERROR), DbErrorClass::kOutage);
  EXPECT_EQ(classify_db_error(CR_SERVER_LOST), DbErrorClass::kOutage);
  EXPECT_EQ(classify_db_error(CR_CONNECTION_ERROR), DbErrorClass::kOutage);
  EXPECT_EQ(classify_db_error(ER_CON_COUNT_ERROR), DbErrorClass::kOutage);
  EXPECT_EQ(classify_db_error(ER_CONNECTION_KILLED), DbErrorClass::kOutage);
  EXPECT_EQ(classify_db_error(ER_SERVER_SHUTDOWN), DbErrorClass::kOutage);
  EXPECT_EQ(classify_db_error(ER_OPTION_PREVENTS_STATEMENT), DbErrorClass::kReadOnly);
  EXPECT_EQ(classify_db_error(ER_READ_ONLY_MODE), DbErrorClass::kReadOnly);
  EXPECT_EQ(classify_db_error(ER_DATA_TOO_LONG), DbErrorClass::kBadRow);
  EXPECT_EQ(classify_db_error(ER_ACCESS_DENIED_ERROR), DbErrorClass::kFatal);
  EXPECT_EQ(classify_db_error(ER_BAD_DB_ERROR), DbErrorClass::kFatal);
}

TEST(TableRowsPool, ReusesCapacityButKeepsOnlyABoundedNumberOfModestBuffers) {
  TableRowsPool pool(2, 1 << 20);
  TableRows rows = pool.take(nullptr);
  rows.data.assign(100'000, 'x');
  rows.offsets.assign(10, 1);
  rows.ends.assign(10, 1);
  rows.max_timestamp = 5;
  const auto* buffer = rows.data.data();
  pool.give(std::move(rows));
  ASSERT_EQ(pool.kept(), 1u);
  const TableRows again = pool.take(nullptr);
  EXPECT_EQ(again.data.data(), buffer) << "the grown buffer is reused";
  EXPECT_TRUE(again.data.empty());
  EXPECT_TRUE(again.offsets.empty());
  EXPECT_TRUE(again.ends.empty());
  EXPECT_EQ(again.max_timestamp, -1);

  TableRows huge;
  huge.data.reserve(4 << 20);
  pool.give(std::move(huge));
  EXPECT_EQ(pool.kept(), 0u) << "a buffer past max_capacity is freed, not kept";
  for (int i = 0; i < 5; ++i) pool.give(TableRows{});
  EXPECT_EQ(pool.kept(), 2u);
}

Batch three_tables_batch(const TableLayout& a, const TableLayout& b) {
  Batch batch;
  batch.topic = "t";
  batch.partition = 3;
  batch.generation = 9;
  batch.base_offset = 10;
  batch.end_offset = 20;
  batch.tables.resize(2);
  batch.tables[0].table = &a;
  batch.tables[1].table = &b;
  auto add = [](TableRows& t, int64_t offset) {
    t.data += "r" + std::to_string(offset) + "\n";
    t.offsets.push_back(offset);
    t.ends.push_back(static_cast<uint32_t>(t.data.size()));
  };
  for (int64_t o : {10, 12, 13, 17}) add(batch.tables[0], o);
  for (int64_t o : {11, 18}) add(batch.tables[1], o);
  batch.dead_letters.push_back({14, "x", "p14"});
  batch.dead_letters.push_back({19, "y", "p19"});
  batch.events = 8;  // offsets 15 and 16 hold no record
  return batch;
}

TEST(Batch, SplitAtKeepsBothHalvesContiguousAndEveryEventOnce) {
  TableLayout a("A_1", {}), b("B_1", {});
  Batch head = three_tables_batch(a, b);
  const int64_t middle = head.middle_offset();
  EXPECT_EQ(middle, 14);  // the fifth of eight events
  Batch tail = head.split_at(middle);
  EXPECT_EQ(head.base_offset, 10);
  EXPECT_EQ(head.end_offset, 14);
  EXPECT_EQ(tail.base_offset, 14);
  EXPECT_EQ(tail.end_offset, 20);
  EXPECT_EQ(tail.topic, "t");
  EXPECT_EQ(tail.partition, 3);
  EXPECT_EQ(tail.generation, 9u);
  EXPECT_EQ(head.events, 4u);
  EXPECT_EQ(tail.events, 4u);
  ASSERT_EQ(head.tables.size(), 2u);
  EXPECT_EQ(head.tables[0].data, "r10\nr12\nr13\n");
  EXPECT_EQ(head.tables[1].data, "r11\n");
  EXPECT_TRUE(head.dead_letters.empty());
  ASSERT_EQ(tail.tables.size(), 2u);
  EXPECT_EQ(tail.tables[0].data, "r17\n");
  EXPECT_EQ(tail.tables[0].ends, (std::vector<uint32_t>{4}));
  EXPECT_EQ(tail.tables[1].offsets, (std::vector<int64_t>{18}));
  ASSERT_EQ(tail.dead_letters.size(), 2u);
  EXPECT_EQ(tail.dead_letters[0].payload, "p14");

  // Down to single events, then nothing to split.
  Batch one = tail.split_at(tail.middle_offset());
  while (one.events > 1) one = one.split_at(one.middle_offset());
  EXPECT_EQ(one.middle_offset(), -1);
}

TEST(Batch, DeadLetterTableTurnsItsRowsIntoDeadLettersInOffsetOrder) {
  TableLayout a("A_1", {}), b("B_1", {});
  Batch batch = three_tables_batch(a, b);
  batch.dead_letter_table(0, "table_mismatch: A_1: column `dt` is missing");
  ASSERT_EQ(batch.tables.size(), 1u);
  EXPECT_EQ(batch.tables[0].table, &b);
  ASSERT_EQ(batch.dead_letters.size(), 6u);
  std::vector<int64_t> offsets;
  for (const auto& d : batch.dead_letters) offsets.push_back(d.offset);
  EXPECT_EQ(offsets, (std::vector<int64_t>{10, 12, 13, 14, 17, 19}));
  EXPECT_EQ(batch.dead_letters[0].payload, "r10");
  EXPECT_EQ(batch.dead_letters[0].reason, "table_mismatch: A_1: column `dt` is missing");
  EXPECT_EQ(batch.events, 8u);
}

std::vector<ExistingColumn> sluice_columns(const TableLayout& layout) {
  std::vector<ExistingColumn> out = {{"id", "bigint", false, false, true},
                                     {"uuid", "char", false, false, false},
                                     {"timestamp", "varbinary"},
                                     {"dt", "datetime"},
                                     {"wiki", "varbinary"},
                                     {"webHost", "varbinary"},
                                     {"userAgent", "varbinary"}};
  for (const auto& c : layout.event_columns()) {
    out.push_back({c.name, std::string(sql_type(c.type)).substr(0, sql_type(c.type).find('(')),
                   true, false, false});
    for (auto& ch : out.back().data_type) ch = static_cast<char>(std::tolower(ch));
  }
  return out;
}

TEST(TableLayout, ATableSluiceCreatedMatchesAndOneOfAnotherLayoutIsNamedByItsColumn) {
  const TableLayout layout("S_1", {{"event_flag", ColumnType::kBoolean},
                                   {"event_n", ColumnType::kInteger},
                                   {"event_x", ColumnType::kNumber},
                                   {"event_s", ColumnType::kString}});
  auto cols = sluice_columns(layout);
  EXPECT_EQ(check_layout(layout, cols), "");

  // Names compare case-insensitively; narrower types of the same family are taken.
  auto same = cols;
  same[8].name = "EVENT_N";
  same[8].data_type = "int";
  same[10].data_type = "varchar";
  EXPECT_EQ(check_layout(layout, same), "");
  // Extra columns that fill themselves are fine.
  same.push_back({"note", "varchar", true, false, false});
  same.push_back({"added", "int", false, true, false});
  same.push_back({"v", "int", false, false, true});
  EXPECT_EQ(check_layout(layout, same), "");

  auto missing = cols;
  missing.erase(missing.begin() + 3);
  EXPECT_EQ(check_layout(layout, missing), "column `dt` is missing");
  auto wrong = cols;
  wrong[9].data_type = "varbinary";
  EXPECT_EQ(check_layout(layout, wrong),
            "column `event_x` is varbinary, where Sluice writes DOUBLE");
  auto not_null = cols;
  not_null.push_back({"legacy_id", "int", false, false, false});
  EXPECT_EQ(check_layout(layout, not_null),
            "column `legacy_id` is NOT NULL without a default: Sluice cannot fill it");
}

TEST(DbError, LayoutAndValueRefusalsSplitTheBatchAndAccessDeniedReconnects) {
  for (unsigned code : {ER_BAD_FIELD_ERROR, ER_NO_DEFAULT_FOR_FIELD, ER_DUP_ENTRY,
                        ER_CONSTRAINT_FAILED, ER_TOO_BIG_ROWSIZE, ER_WRONG_VALUE_COUNT_ON_ROW}) {
    EXPECT_EQ(classify_db_error(code), DbErrorClass::kBadRow) << code;
  }
  EXPECT_TRUE(reconnect_after(ER_TABLEACCESS_DENIED_ERROR));
  EXPECT_TRUE(reconnect_after(ER_DBACCESS_DENIED_ERROR));
  EXPECT_TRUE(reconnect_after(CR_SERVER_LOST));
  EXPECT_TRUE(reconnect_after(ER_OPTION_PREVENTS_STATEMENT));
  EXPECT_FALSE(reconnect_after(ER_LOCK_DEADLOCK));
  EXPECT_FALSE(reconnect_after(ER_DATA_TOO_LONG));
  EXPECT_FALSE(reconnect_after(ER_BAD_DB_ERROR));
  EXPECT_TRUE(repeated_means_bad_batch(ER_STATEMENT_TIMEOUT));
  EXPECT_FALSE(repeated_means_bad_batch(ER_LOCK_WAIT_TIMEOUT));
}

TEST(DbError, ADuplicatePrimaryKeyIsRetriedOnlyWhileItDoesNotRepeat) {
  // The load IGNOREs a stored uuid (key ix_uuid) and names it; a duplicate on the primary key is
  // no stored uuid: retried, but split once it repeats, so it can never be retried forever.
  std::string uuid;
  const std::string dup = std::to_string(ER_DUP_ENTRY);
  EXPECT_TRUE(
      classify_load_warning(
          "T_1", dup, "Duplicate entry '0123456789abcdef0123456789abcdef' for key 'ix_uuid'", uuid)
          .is_ok());
  EXPECT_EQ(uuid, "0123456789abcdef0123456789abcdef");

  const auto primary =
      classify_load_warning("T_1", dup, "Duplicate entry '1207' for key 'PRIMARY'", uuid);
  EXPECT_EQ(primary.code, kDuplicatePrimaryKey);
  EXPECT_EQ(primary.error_class(), DbErrorClass::kTransient);
  EXPECT_TRUE(repeated_means_bad_batch(primary.code));
  EXPECT_NE(primary.describe().find("MariaDB error 1062"), std::string::npos) << primary.describe();
  EXPECT_NE(primary.describe().find("for key 'PRIMARY'"), std::string::npos);
  EXPECT_EQ(
      classify_load_warning("T_1", dup, "Duplicate entry '7' for key 'T_1.PRIMARY'", uuid).code,
      kDuplicatePrimaryKey);

  const auto other =
      classify_load_warning("T_1", dup, "Duplicate entry 'x' for key 'dba_unique'", uuid);
  EXPECT_EQ(other.code, static_cast<unsigned int>(ER_DUP_ENTRY));
  EXPECT_EQ(other.error_class(), DbErrorClass::kBadRow);
  EXPECT_EQ(classify_load_warning("T_1", std::to_string(WARN_DATA_TRUNCATED),
                                  "Data truncated for column 'x' at row 3", uuid)
                .error_class(),
            DbErrorClass::kBadRow);
  EXPECT_FALSE(repeated_means_bad_batch(ER_LOCK_DEADLOCK));
}

}  // namespace
}  // namespace sluice::storage
