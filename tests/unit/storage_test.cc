#include <errmsg.h>
#include <gtest/gtest.h>
#include <mysqld_error.h>

#include "storage/batch.h"
#include "storage/db_error.h"
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

}  // namespace
}  // namespace sluice::storage

namespace sluice::storage {
namespace {

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

}  // namespace
}  // namespace sluice::storage
