// The spool as the pipeline uses it, driven directly over the in-memory spool: the limit, a disk
// that cannot write (retried on the clock), the write lease, blocks that cannot be read, and the
// drain's turns.

#include "ingest/spool_lane.h"

#include <gtest/gtest.h>

#include "testing/fakes.h"

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;

class SpoolLaneTest : public ::testing::Test {
 protected:
  SpoolLaneTest() {
    for (int32_t p = 0; p < 3; ++p) {
      auto c = std::make_unique<PartitionCursor>("t", p, BatchLimits{}, clock_, nullptr);
      StartPlan plan;
      plan.fetch = 0;
      plan.floor = 0;
      plan.database_known = true;
      c->start(plan, std::nullopt, /*gate_open=*/false);  // spooling
      cursors_.emplace(PartitionKey{"t", p}, std::move(c));
    }
  }
  PartitionCursor& cursor(int32_t p) { return *cursors_.at({"t", p}); }

  ManualClock clock_;
  testing::MemorySpool spool_;
  SpoolLane lane_{spool_, 1000, clock_};
  Cursors cursors_;
};

TEST_F(SpoolLaneTest, TheSpoolTakesNothingMoreOnceAtItsLimitUntilItHasRoomAgain) {
  const std::string payload(300, 'x');
  EXPECT_FALSE(lane_.update_full(true));
  for (int64_t o = 0; o < 3; ++o) lane_.stage(cursor(0), o, -1, payload);
  EXPECT_FALSE(lane_.full()) << "900 bytes of 1000";
  lane_.stage(cursor(0), 3, -1, payload);
  EXPECT_TRUE(lane_.full()) << "no more this round once the limit is reached";
  EXPECT_EQ(lane_.commit(cursors_), 0u);
  EXPECT_TRUE(lane_.update_full(true));
  EXPECT_TRUE(lane_.at_limit());
  EXPECT_TRUE(lane_.past(0.75));
  ASSERT_TRUE(spool_.release("t", 0, 3));  // MariaDB took the first three
  EXPECT_EQ(lane_.commit(cursors_), 0u);
  EXPECT_FALSE(lane_.update_full(true));
  EXPECT_FALSE(lane_.at_limit());
  EXPECT_FALSE(lane_.past(0.75));
}

TEST_F(SpoolLaneTest, WithoutTheWriteLeaseNothingNewIsSpooled) {
  EXPECT_TRUE(lane_.update_full(false));
  EXPECT_FALSE(lane_.at_limit()) << "not at its limit: full for the fleet's sake";
  EXPECT_FALSE(lane_.update_full(true));
}

TEST_F(SpoolLaneTest, ADiskThatCannotWriteIsTriedAgainEverySecondAndKeepsWhatIsStaged) {
  lane_.stage(cursor(1), 0, -1, "event");
  spool_.fail_commits(true);
  EXPECT_EQ(lane_.commit(cursors_), 1u);
  EXPECT_FALSE(lane_.error().is_ok());
  EXPECT_TRUE(lane_.update_full(true)) << "what would be spooled waits in Kafka";
  const int tried = spool_.commits();
  EXPECT_EQ(lane_.commit(cursors_), 0u) << "not tried again within the second";
  EXPECT_EQ(spool_.commits(), tried);
  clock_.advance(SpoolLane::kRetry);
  EXPECT_EQ(lane_.commit(cursors_), 1u) << "tried again, failing again";
  spool_.fail_commits(false);
  clock_.advance(SpoolLane::kRetry);
  EXPECT_EQ(lane_.commit(cursors_), 0u);
  EXPECT_TRUE(lane_.error().is_ok());
  EXPECT_TRUE(spool_.holds("t", 1, 0)) << "the staged event survived the failed writes";
  EXPECT_FALSE(lane_.update_full(true));
}

TEST_F(SpoolLaneTest, AnUnreadableBlockIsSaidOnceAndKeptUntilItReadsAgain) {
  lane_.stage(cursor(2), 0, -1, "event");
  ASSERT_EQ(lane_.commit(cursors_), 0u);
  spool_.fail_reads("t", 2, "block 0..0 does not decode");
  bool changed = false;
  EXPECT_EQ(lane_.read({"t", 2}, cursor(2), 10, changed), nullptr);
  EXPECT_TRUE(changed);
  EXPECT_EQ(lane_.read({"t", 2}, cursor(2), 10, changed), nullptr);
  EXPECT_FALSE(changed) << "said once";
  EXPECT_EQ(lane_.read_errors().at({"t", 2}), "block 0..0 does not decode");
  spool_.fail_reads("t", 2, "");
  const auto* chunk = lane_.read({"t", 2}, cursor(2), 10, changed);
  ASSERT_NE(chunk, nullptr);
  EXPECT_TRUE(changed);
  EXPECT_TRUE(lane_.read_errors().empty());
  ASSERT_EQ(chunk->events.size(), 1u);
  EXPECT_EQ(chunk->events[0].payload, "event");
}

TEST_F(SpoolLaneTest, EachRoundTheDrainStartsOnePartitionFurther) {
  std::vector<int32_t> firsts;
  for (int round = 0; round < 4; ++round) {
    const auto& order = lane_.drain_order(cursors_);
    ASSERT_EQ(order.size(), 3u);
    firsts.push_back(order.front()->first.second);
  }
  EXPECT_EQ(firsts, (std::vector<int32_t>{0, 1, 2, 0}));
}

}  // namespace
}  // namespace sluice::ingest
