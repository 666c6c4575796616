#include "ingest/batcher.h"

#include <gtest/gtest.h>

#include "storage/table_layout.h"

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;

class BatcherTest : public ::testing::Test {
 protected:
  void add_row(Batcher& b, int64_t offset, size_t bytes = 10) {
    auto& rows = b.rows_for(&table_);
    const size_t before = rows.data.size();
    rows.data.append(bytes - 1, 'x');
    rows.data.push_back('\n');
    b.row_added(rows, offset, before);
  }
  storage::TableLayout table_{"T_1", {}};
  ManualClock clock_;
};

TEST_F(BatcherTest, ClosesAtMaxRows) {
  Batcher b("t", 0, {3, 1 << 20, 1000ms}, clock_);
  b.reset(10, 1);
  add_row(b, 10);
  add_row(b, 11);
  EXPECT_FALSE(b.full());
  add_row(b, 12);
  EXPECT_TRUE(b.full());
  auto batch = b.take();
  EXPECT_EQ(batch.base_offset, 10);
  EXPECT_EQ(batch.end_offset, 13);
  EXPECT_EQ(batch.events, 3u);
  EXPECT_EQ(batch.tables.at(0).offsets, (std::vector<int64_t>{10, 11, 12}));
  EXPECT_TRUE(b.empty());
}

TEST_F(BatcherTest, AGapWrittenAloneCoversItsWholeRange) {
  // A partition that records [20, 25) lost and then waits (the rest is another spool's) writes
  // the gap alone: sluice_offsets must move to 25, or that spool waits for MariaDB for ever.
  Batcher b("t", 0, {100, 1 << 20, 1000ms}, clock_);
  b.reset(20, 1);
  b.add_gap(20, 25, "");
  auto alone = b.take();
  EXPECT_EQ(alone.base_offset, 20);
  EXPECT_EQ(alone.end_offset, 25);
  ASSERT_EQ(alone.dead_letters.size(), 1u);
  EXPECT_EQ(alone.dead_letters[0].offset, 20);
  // Followed by the event after it, as when the jump is taken at once.
  b.reset(20, 2);
  b.add_gap(20, 25, "");
  add_row(b, 25);
  auto both = b.take();
  EXPECT_EQ(both.base_offset, 20);
  EXPECT_EQ(both.end_offset, 26);
}

TEST_F(BatcherTest, ClosesAtMaxBytes) {
  Batcher b("t", 0, {1000, 100, 1000ms}, clock_);
  b.reset(0, 1);
  add_row(b, 0, 40);
  EXPECT_FALSE(b.full());
  add_row(b, 1, 80);
  EXPECT_TRUE(b.full());
}

TEST_F(BatcherTest, QuietPartitionBecomesDueAfterMaxDelayWithoutNewEvents) {
  Batcher b("t", 0, {1000, 1 << 20, 500ms}, clock_);
  b.reset(0, 1);
  EXPECT_FALSE(b.due());
  EXPECT_FALSE(b.deadline());
  add_row(b, 0);
  clock_.advance(499ms);
  EXPECT_FALSE(b.due());
  clock_.advance(1ms);
  EXPECT_TRUE(b.due());
  EXPECT_EQ(*b.deadline(), clock_.now());
}

TEST_F(BatcherTest, DelayCountsFromTheFirstEventOfTheBatch) {
  Batcher b("t", 0, {1000, 1 << 20, 500ms}, clock_);
  b.reset(0, 1);
  clock_.advance(10s);  // idle time before the first event does not count
  add_row(b, 0);
  EXPECT_FALSE(b.due());
  clock_.advance(300ms);
  add_row(b, 1);
  clock_.advance(200ms);
  EXPECT_TRUE(b.due());
}

TEST_F(BatcherTest, ConsecutiveBatchesAreContiguousIncludingGapsAndDeadLetters) {
  Batcher b("t", 3, {2, 1 << 20, 500ms}, clock_);
  b.reset(100, 7);
  add_row(b, 100);
  b.add_dead_letter(101, "malformed_json: message", "{");
  auto first = b.take();
  add_row(b, 105);  // offsets 102..104 hold no records
  auto second = b.take();
  EXPECT_EQ(first.base_offset, 100);
  EXPECT_EQ(first.end_offset, 102);
  EXPECT_EQ(first.dead_letters.size(), 1u);
  EXPECT_EQ(first.generation, 7u);
  EXPECT_EQ(second.base_offset, 102);
  EXPECT_EQ(second.end_offset, 106);
  EXPECT_EQ(second.partition, 3);
  EXPECT_EQ(b.next_offset(), 106);
}

TEST_F(BatcherTest, UnknownStartBeginsAtTheFirstEvent) {
  Batcher b("t", 0, {10, 1 << 20, 500ms}, clock_);
  b.reset(-1, 1);
  EXPECT_EQ(b.next_offset(), -1);
  add_row(b, 42);
  EXPECT_EQ(b.take().base_offset, 42);
}

TEST_F(BatcherTest, ResetDropsTheOpenBatch) {
  Batcher b("t", 0, {10, 1 << 20, 500ms}, clock_);
  b.reset(0, 1);
  add_row(b, 0);
  b.reset(50, 2);
  EXPECT_TRUE(b.empty());
  add_row(b, 50);
  auto batch = b.take();
  EXPECT_EQ(batch.base_offset, 50);
  EXPECT_EQ(batch.generation, 2u);
  EXPECT_EQ(batch.events, 1u);
}

TEST(BatcherDeathTest, AnEventBelowTheLastOneStopsTheProcessRatherThanBreakingTheBatch) {
  ManualClock clock;
  Batcher b("t", 3, BatchLimits{}, clock, nullptr);
  b.reset(10, 1);
  b.add_dead_letter(12, "wrong_type: x", "{}");
  EXPECT_DEATH(b.add_dead_letter(11, "wrong_type: x", "{}"),
               "invariant broken at .*batcher.cc.*t/3: event at offset 11 added after offset 12");
}

}  // namespace
}  // namespace sluice::ingest
