// OffsetJumps alone: the facts a cursor resolves an out-of-line offset on (the broker's log
// start through the source seam, the fleet's claims) and what it records of the answer — a
// kafka_gap dead letter in the partition's batch, the counter, status — over FakeKafka's
// consumer and FakeFleetClaims.

#include "ingest/offset_jumps.h"

#include <gtest/gtest.h>

#include "testing/fakes.h"

namespace sluice::ingest {
namespace {

using testing::FakeFleetClaims;
using testing::FakeKafka;
using testing::FakeSource;

const std::string kTopic = "t";

class OffsetJumpsTest : public ::testing::Test {
 protected:
  OffsetJumpsTest() {
    for (int i = 0; i < 40; ++i) kafka_.produce(kTopic, 0, "{}");
    StartPlan plan;
    plan.fetch = plan.floor = 10;
    plan.database_known = true;
    plan.source = StartSource::kDatabase;  // MariaDB holds [.., 10): what expires is lost
    cursor_.start(plan, std::nullopt, true);
  }

  /// The batch the cursor would hand a writer now.
  storage::Batch batch() { return cursor_.batcher().take(); }

  ManualClock clock_;
  FakeKafka kafka_;
  FakeSource source_{kafka_, {}};
  FakeFleetClaims fleet_;
  PipelineStats stats_;
  StatusBoard board_{clock_};
  PartitionCursor cursor_{kTopic, 0, BatchLimits{}, clock_, nullptr};
};

TEST_F(OffsetJumpsTest, AJumpOverExpiredOffsetsIsRecordedOnceAsAGapInTheBatchAndStatus) {
  OffsetJumps jumps(nullptr, stats_, board_);
  kafka_.expire_below(kTopic, 0, 25);
  ASSERT_EQ(cursor_.take(25, false, false), Take::kJump);
  EXPECT_EQ(jumps.jump(cursor_, 25, source_), Take::kBatch);
  EXPECT_EQ(stats_.expired_offsets.load(), 15u);
  const auto b = batch();
  ASSERT_EQ(b.dead_letters.size(), 1u);
  EXPECT_EQ(b.dead_letters[0].offset, 10);
  EXPECT_NE(b.dead_letters[0].reason.find("kafka_gap"), std::string::npos)
      << b.dead_letters[0].reason;
  const auto gaps = board_.snapshot().gaps;
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].from, 10);
  EXPECT_EQ(gaps[0].to, 25);
}

TEST_F(OffsetJumpsTest, AJumpKafkaStillHasIsNeverAGapAndABrokerThatCannotSayIsNeverGuessed) {
  OffsetJumps jumps(nullptr, stats_, board_);
  ASSERT_EQ(cursor_.take(15, false, false), Take::kJump);
  kafka_.fail_next(FakeKafka::Call::kWatermarks, 1);
  EXPECT_EQ(jumps.jump(cursor_, 15, source_), Take::kDrop) << "the broker could not be asked";
  EXPECT_TRUE(cursor_.wants_seek());
  cursor_.sought();
  ASSERT_EQ(cursor_.take(15, false, false), Take::kJump);
  EXPECT_EQ(jumps.jump(cursor_, 15, source_), Take::kDrop) << "looked at twice before believed";
  cursor_.sought();
  jumps.recheck(cursor_, 15, source_);  // Kafka still has [10, 15): offsets without records
  EXPECT_EQ(cursor_.take(15, false, false), Take::kBatch);
  EXPECT_EQ(stats_.expired_offsets.load(), 0u);
  EXPECT_TRUE(board_.snapshot().gaps.empty());
}

TEST_F(OffsetJumpsTest, TheRepeatedJumpIsForgottenWhenRetentionTookItsOffsetsMeanwhile) {
  OffsetJumps jumps(nullptr, stats_, board_);
  ASSERT_EQ(cursor_.take(15, false, false), Take::kJump);
  ASSERT_EQ(jumps.jump(cursor_, 15, source_), Take::kDrop);
  cursor_.sought();
  kafka_.expire_below(kTopic, 0, 13);
  jumps.recheck(cursor_, 15, source_);
  ASSERT_EQ(cursor_.take(15, false, false), Take::kJump) << "seen again, verified afresh";
  EXPECT_EQ(jumps.jump(cursor_, 15, source_), Take::kDrop);
  EXPECT_EQ(stats_.expired_offsets.load(), 3u) << "[10, 13) expired";
}

TEST_F(OffsetJumpsTest, WhatAnotherSpoolClaimsIsWaitedForAndUnknownClaimsClaimEverything) {
  OffsetJumps jumps(&fleet_, stats_, board_);
  fleet_.set_knows_claims(false);
  EXPECT_EQ(jumps.first_claimed(cursor_, 10, 30), 10) << "not known yet: all of it may be";
  fleet_.set_knows_claims(true);
  fleet_.claim(kTopic, 0, 20, 29);
  EXPECT_EQ(jumps.first_claimed(cursor_, 10, 30), 20);
  kafka_.expire_below(kTopic, 0, 30);
  ASSERT_EQ(cursor_.take(30, false, false), Take::kJump);
  EXPECT_EQ(jumps.jump(cursor_, 30, source_), Take::kDrop);
  EXPECT_EQ(cursor_.mode(), PartitionMode::kWaiting);
  EXPECT_EQ(stats_.expired_offsets.load(), 10u) << "[10, 20) is nobody's";
}

TEST_F(OffsetJumpsTest, ARewoundLogIsCountedOnlyBelowEverythingFetched) {
  OffsetJumps jumps(nullptr, stats_, board_);
  for (int64_t o = 10; o < 20; ++o) {
    ASSERT_EQ(cursor_.take(o, false, false), Take::kBatch);
    cursor_.batcher().add_dead_letter(o, "x", "");
  }
  jumps.stale(cursor_, 12);  // delivered again (a prefetch after a seek): normal
  EXPECT_EQ(stats_.rewound_messages.load(), 0u);
  jumps.stale(cursor_, 3);
  jumps.stale(cursor_, 4);
  EXPECT_EQ(stats_.rewound_messages.load(), 2u);
}

}  // namespace
}  // namespace sluice::ingest
