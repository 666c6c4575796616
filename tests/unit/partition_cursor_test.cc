// One partition's state machine, driven directly: its modes, positions and the decisions it
// hands the pipeline (take, drop, seek, jump), with no I/O around it.

#include "ingest/partition_cursor.h"

#include <gtest/gtest.h>

namespace sluice::ingest {
namespace {

class PartitionCursorTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  PartitionCursor cursor_{"t", 0, BatchLimits{}, clock_, nullptr};

  static std::optional<storage::SpoolPartition> spool(int64_t first, int64_t last) {
    storage::SpoolPartition p;
    p.first_offset = first;
    p.last_offset = last;
    p.events = static_cast<uint64_t>(last - first + 1);
    return p;
  }
  static StartPlan plan(int64_t fetch, int64_t floor, bool known) {
    StartPlan p;
    p.fetch = fetch;
    p.floor = floor;
    p.database_known = known;
    return p;
  }
  /// Takes `n` messages from `from` on, expecting `want` for each.
  void take(int64_t from, int n, Take want) {
    for (int64_t o = from; o < from + n; ++o) {
      ASSERT_EQ(cursor_.take(o, false, false), want) << "offset " << o;
      if (want == Take::kBatch) cursor_.batcher().add_dead_letter(o, "x", "");
      if (want == Take::kSpool) cursor_.spooled(o, -1);
    }
  }
};

TEST_F(PartitionCursorTest, DirectTakesEveryOffsetInOrderAndIgnoresStaleOnes) {
  cursor_.start(plan(10, 10, true), std::nullopt, true);
  EXPECT_EQ(cursor_.mode(), PartitionMode::kDirect);
  take(10, 5, Take::kBatch);
  EXPECT_EQ(cursor_.take(12, false, false), Take::kStale);
  EXPECT_EQ(cursor_.fetch_next(), 15);
}

TEST_F(PartitionCursorTest, OnlyAMessageBelowEverythingFetchedFromIsARewoundLog) {
  cursor_.start(plan(10, 10, true), std::nullopt, true);
  take(10, 20, Take::kBatch);
  // Delivered again from where the assignment started (a resume of a partition that was not
  // paused, in librdkafka before 2.4): stale, and normal.
  EXPECT_EQ(cursor_.take(10, false, false), Take::kStale);
  EXPECT_FALSE(cursor_.rewound(10));
  // Below anything this assignment fetched from: the log was rewound (a recreated topic).
  EXPECT_EQ(cursor_.take(3, false, false), Take::kStale);
  EXPECT_TRUE(cursor_.rewound(3));
  // A seek lower down (MariaDB behind) makes what lies above it normal again.
  cursor_.behind(2, cursor_.generation());
  EXPECT_FALSE(cursor_.rewound(3));
  EXPECT_TRUE(cursor_.rewound(1));
}

TEST_F(PartitionCursorTest, ADroppedMessageWantsASeekBackBeforeAnythingMoreIsTaken) {
  cursor_.start(plan(10, 10, true), std::nullopt, true);
  take(10, 2, Take::kBatch);
  EXPECT_EQ(cursor_.take(12, false, /*fetch_paused=*/true), Take::kDrop);
  EXPECT_TRUE(cursor_.wants_seek());
  EXPECT_EQ(cursor_.take(13, false, false), Take::kDrop) << "not before the seek";
  cursor_.sought();
  EXPECT_EQ(cursor_.fetch_next(), 12);
  take(12, 1, Take::kBatch);
}

TEST_F(PartitionCursorTest, AnAssumedFloorGivesWayToWhatMariaDbSays) {
  // Assigned again with nothing known (no sluice_offsets row yet, no group offset, no spool):
  // the floor is only assumed to be where Kafka's log starts. A batch of the previous
  // assignment, still in a writer, then commits below it: MariaDB holds up to 17, not 37 —
  // the group must not be told 37.
  cursor_.start(plan(37, 37, false), std::nullopt, true);
  cursor_.written(17, 17);
  EXPECT_TRUE(cursor_.database_known());
  EXPECT_EQ(cursor_.floor(), 17);
  // Once known, a floor only rises with what is written.
  cursor_.written(12, 12);
  EXPECT_EQ(cursor_.floor(), 17);
}

TEST_F(PartitionCursorTest, AnAssignmentFromTheEarliestOffsetNeverSeesItsLogAsRewound) {
  // Assigned at "the earliest offset" while the broker cannot say where that is: Kafka delivers
  // from the log's start. MariaDB then says it holds up to 12, and the partition reads on from
  // there; what the first fetch still delivers below 12 is stale, not a recreated topic.
  cursor_.start(plan(-1, -1, false), std::nullopt, true);
  ASSERT_EQ(cursor_.take(0, false, false), Take::kJump);
  (void)cursor_.resolve_jump(0, -1, std::nullopt);  // the broker could not be asked: look again
  cursor_.learned_database(12);
  EXPECT_EQ(cursor_.fetch_next(), 12);
  EXPECT_EQ(cursor_.take(3, false, false), Take::kStale);
  EXPECT_FALSE(cursor_.rewound(3));
}

TEST_F(PartitionCursorTest, ClosingHaltsDirectPartitionsAndRewindsThemToTheFloor) {
  cursor_.start(plan(10, 10, true), std::nullopt, true);
  take(10, 5, Take::kBatch);
  cursor_.written(12, -1);  // MariaDB has [10, 12); [12, 15) was in flight and is dropped
  cursor_.gate_closing();
  EXPECT_EQ(cursor_.mode(), PartitionMode::kHalted);
  EXPECT_EQ(cursor_.take(15, false, false), Take::kDrop);
  cursor_.gate_closed();
  EXPECT_EQ(cursor_.mode(), PartitionMode::kSpooling);
  EXPECT_EQ(cursor_.fetch_next(), 12);
  EXPECT_TRUE(cursor_.wants_seek());
  cursor_.sought();
  take(12, 3, Take::kSpool);
  EXPECT_EQ(cursor_.spool_first(), 12);
  EXPECT_EQ(cursor_.spool_end(), 15);
}

TEST_F(PartitionCursorTest, OpeningDrainsTheSpoolWhileKafkaAppendsBehindItThenGoesDirect) {
  cursor_.start(plan(20, 10, true), spool(10, 19), true);
  EXPECT_EQ(cursor_.mode(), PartitionMode::kDraining);
  EXPECT_EQ(cursor_.drain_next(), 10);
  EXPECT_EQ(cursor_.fetch_next(), 20);
  take(20, 2, Take::kSpool);  // live events go behind the spooled ones
  cursor_.spool_synced_all();
  for (int64_t o = 10; o < 22; ++o) cursor_.drained(o);
  EXPECT_TRUE(cursor_.advance());
  EXPECT_EQ(cursor_.mode(), PartitionMode::kDirect);
  take(22, 1, Take::kBatch);
}

TEST_F(PartitionCursorTest, MariaDbBehindTheSpoolRefillsFromKafkaThenDrains) {
  // The spool holds [100, 120); a server that lags has only up to 40.
  cursor_.start(plan(120, 100, false), spool(100, 119), true);
  EXPECT_EQ(cursor_.mode(), PartitionMode::kDraining);
  const uint64_t generation = cursor_.generation();
  ASSERT_TRUE(cursor_.behind(40, generation));
  EXPECT_EQ(cursor_.mode(), PartitionMode::kRefill);
  EXPECT_EQ(cursor_.floor(), 40);
  EXPECT_EQ(cursor_.refill_end(), 100);
  EXPECT_EQ(cursor_.fetch_next(), 40);
  EXPECT_TRUE(cursor_.wants_seek());
  EXPECT_EQ(cursor_.batcher().next_offset(), 40);
  EXPECT_FALSE(cursor_.behind(10, generation)) << "a report of the old stream says nothing";
  cursor_.sought();
  take(40, 60, Take::kBatch);
  EXPECT_TRUE(cursor_.advance());
  EXPECT_EQ(cursor_.mode(), PartitionMode::kDraining);
  EXPECT_EQ(cursor_.drain_next(), 100);
  EXPECT_EQ(cursor_.fetch_next(), 120) << "Kafka goes on after the spool";
  EXPECT_TRUE(cursor_.wants_seek());
}

TEST_F(PartitionCursorTest, AnExpiredRangeDuringARefillIsAGapUpToTheSpool) {
  cursor_.start(plan(120, 40, true), spool(100, 119), true);
  ASSERT_EQ(cursor_.mode(), PartitionMode::kRefill);
  cursor_.sought();
  ASSERT_EQ(cursor_.take(130, false, false), Take::kJump);  // Kafka's log now starts at 130
  const auto out = cursor_.resolve_jump(130, 130, std::nullopt);
  EXPECT_EQ(out.expired_from, 40);
  EXPECT_EQ(out.expired_to, 100) << "the spool holds [100, 120)";
  EXPECT_EQ(cursor_.mode(), PartitionMode::kDraining);
  EXPECT_EQ(cursor_.drain_next(), 100);
}

TEST_F(PartitionCursorTest, AJumpKafkaStillHasIsLookedAtTwiceBeforeItIsBelieved) {
  cursor_.start(plan(10, 10, true), std::nullopt, true);
  ASSERT_EQ(cursor_.take(15, false, false), Take::kJump);
  auto out = cursor_.resolve_jump(15, /*log_start=*/0, std::nullopt);
  EXPECT_EQ(out.take, Take::kDrop);
  EXPECT_TRUE(cursor_.wants_seek());
  EXPECT_EQ(cursor_.fetch_next(), 10);
  cursor_.sought();
  // The same jump after the seek back: offsets [10, 15) hold no records.
  EXPECT_EQ(cursor_.take(15, false, false), Take::kBatch);
  EXPECT_EQ(cursor_.fetch_next(), 16);
}

/// The same jump seen again after the seek back, but retention took the offsets meanwhile:
/// the caller, asking where the log starts now, forgets the verification, and the jump is
/// resolved again — as a gap, not as offsets holding no records. (Found by the model sweep.)
TEST_F(PartitionCursorTest, AJumpSeenAgainAfterItsOffsetsExpiredIsAGapNotOffsetsWithoutRecords) {
  cursor_.start(plan(10, 10, true), std::nullopt, true);
  take(10, 2, Take::kBatch);
  ASSERT_EQ(cursor_.take(15, false, false), Take::kJump);
  (void)cursor_.resolve_jump(15, /*log_start=*/0, std::nullopt);
  cursor_.sought();
  ASSERT_TRUE(cursor_.repeats_jump(15));
  EXPECT_FALSE(cursor_.repeats_jump(16)) << "another jump is not the one verified";
  // Kafka's log starts at 14 now: [12, 14) expired between the two looks.
  cursor_.forget_jump();
  EXPECT_FALSE(cursor_.repeats_jump(15));
  ASSERT_EQ(cursor_.take(15, false, false), Take::kJump);
  const auto out = cursor_.resolve_jump(15, /*log_start=*/14, std::nullopt);
  EXPECT_EQ(out.expired_from, 12);
  EXPECT_EQ(out.expired_to, 14);
}

/// What the spool holds beyond what the cursor counted — staged when the cursor let it go
/// (MariaDB had passed it), then MariaDB moved back by a restore — is kept when the gate
/// closes: spooling goes on after it, never appending an offset twice. (Found by the sweep.)
TEST_F(PartitionCursorTest, ClosingSpoolsAfterWhatTheSpoolHoldsEvenIfTheCursorLetItGo) {
  cursor_.start(plan(57, 57, true), std::nullopt, true);  // direct: MariaDB has [.., 57)
  cursor_.learned_database(2);                            // a restore: MariaDB back at 2
  ASSERT_EQ(cursor_.fetch_next(), 2);
  cursor_.gate_closing();
  cursor_.spool_holds(47, 57, 47);  // [47, 57) staged, not yet synced
  cursor_.gate_closed();
  EXPECT_EQ(cursor_.mode(), PartitionMode::kSpooling);
  EXPECT_EQ(cursor_.fetch_next(), 57) << "after what the spool holds, not from the floor";
  cursor_.sought();
  take(57, 2, Take::kSpool);  // the cursor's own check (no offset spooled twice) holds
  // Reopened: [2, 47) comes again from Kafka first, then the spool drains.
  cursor_.spool_synced_all();
  cursor_.gate_opened();
  EXPECT_EQ(cursor_.mode(), PartitionMode::kRefill);
  EXPECT_EQ(cursor_.fetch_next(), 2);
}

TEST_F(PartitionCursorTest, AJumpIsNeverBelievedWhenTheBrokerCannotBeAsked) {
  cursor_.start(plan(10, 10, true), std::nullopt, true);
  ASSERT_EQ(cursor_.take(15, false, false), Take::kJump);
  const auto out = cursor_.resolve_jump(15, -1, std::nullopt);
  EXPECT_EQ(out.take, Take::kDrop);
  EXPECT_EQ(out.expired_from, out.expired_to);
  EXPECT_EQ(cursor_.fetch_next(), 10);
  EXPECT_TRUE(cursor_.wants_seek());
}

TEST_F(PartitionCursorTest, AnExpiredRangeAnotherSpoolClaimsMakesThePartitionWait) {
  cursor_.start(plan(10, 10, true), std::nullopt, true);
  ASSERT_EQ(cursor_.take(30, false, false), Take::kJump);
  const auto out = cursor_.resolve_jump(30, 30, /*first_claimed=*/10);
  EXPECT_EQ(out.take, Take::kDrop);
  EXPECT_EQ(out.expired_from, out.expired_to) << "nothing declared lost";
  EXPECT_EQ(cursor_.mode(), PartitionMode::kWaiting);
  EXPECT_EQ(cursor_.waiting_from(), 10);
  EXPECT_EQ(cursor_.waiting_to(), 30);
  // The other instance drained it: MariaDB is past the range.
  cursor_.learned_database(30);
  EXPECT_EQ(cursor_.mode(), PartitionMode::kDirect);
  EXPECT_EQ(cursor_.fetch_next(), 30);
}

TEST_F(PartitionCursorTest, OnlyWhatNoSpoolClaimsIsDeclaredLostAndTheRestIsWaitedFor) {
  // MariaDB (a replica promoted in a failover) is at 10; Kafka starts at 30; another instance's
  // spool holds [20, ...]. [10, 20) is nobody's: recorded lost at once, so that MariaDB reaches
  // 20 and that spool can drain — it waits for MariaDB to reach its first offset.
  cursor_.start(plan(10, 10, true), std::nullopt, true);
  ASSERT_EQ(cursor_.take(30, false, false), Take::kJump);
  const auto out = cursor_.resolve_jump(30, 30, /*first_claimed=*/20);
  EXPECT_EQ(out.take, Take::kDrop);
  EXPECT_EQ(out.expired_from, 10);
  EXPECT_EQ(out.expired_to, 20);
  EXPECT_EQ(cursor_.mode(), PartitionMode::kWaiting);
  EXPECT_EQ(cursor_.waiting_from(), 20);
  EXPECT_EQ(cursor_.waiting_to(), 30);
  cursor_.written(20, 20);  // the gap's dead letter is in
  EXPECT_EQ(cursor_.mode(), PartitionMode::kWaiting) << "[20, 30) is still claimed";
  cursor_.learned_database(25);  // the other spool drains
  cursor_.learned_database(30);
  EXPECT_EQ(cursor_.mode(), PartitionMode::kDirect);
  EXPECT_EQ(cursor_.fetch_next(), 30);
}

TEST_F(PartitionCursorTest, AnOrphanRecordsTheUnclaimedPartOfAHoleSoTheOtherSpoolCanDrain) {
  cursor_.start(plan(20, 10, true), spool(10, 19), true);
  cursor_.become_orphan();
  // Draining, it finds its next event at 18: [10, 18) expired, and another spool holds 15 on.
  const auto out = cursor_.resolve_spool_hole(18, 18, /*first_claimed=*/15);
  EXPECT_EQ(out.expired_from, 10);
  EXPECT_EQ(out.expired_to, 15);
  EXPECT_EQ(cursor_.mode(), PartitionMode::kOrphan);
  EXPECT_EQ(cursor_.drain_next(), 15);
}

TEST_F(PartitionCursorTest, ASpoolMariaDbHasPassedIsReleasedAndKafkaGoesOnFromMariaDb) {
  cursor_.start(plan(20, 10, false), spool(10, 19), true);
  cursor_.learned_database(50);  // another owner wrote further
  EXPECT_EQ(cursor_.mode(), PartitionMode::kDirect);
  EXPECT_EQ(cursor_.fetch_next(), 50);
  EXPECT_FALSE(cursor_.spool_holds_events()) << "all of it is MariaDB's: released";
}

TEST_F(PartitionCursorTest, APauseRightAfterADrainCaughtUpKeepsTheSpooledTail) {
  cursor_.start(plan(20, 10, true), spool(10, 19), true);
  cursor_.spool_synced_all();
  for (int64_t o = 10; o < 20; ++o) cursor_.drained(o);
  ASSERT_TRUE(cursor_.advance());  // direct, but [10, 20) is not in MariaDB yet
  take(20, 3, Take::kBatch);
  cursor_.gate_closing();
  cursor_.gate_closed();
  EXPECT_EQ(cursor_.fetch_next(), 20) << "Kafka from after the spool: nothing spooled twice";
  EXPECT_EQ(cursor_.spool_first(), 10);
}

TEST_F(PartitionCursorTest, AnOrphanWhoseFloorPassesItsDrainGoesOnFromTheFloor) {
  // Found by the fleet model: a batch of the partition, still in a writer when it became an
  // orphan, commits afterwards. The spool releases what lies below the new floor; a drain
  // still reading from the old position would meet a hole there for ever.
  cursor_.start(plan(30, 10, true), spool(10, 29), true);
  cursor_.become_orphan();
  ASSERT_EQ(cursor_.drain_next(), 10);
  cursor_.written(16, 16);
  EXPECT_TRUE(cursor_.advance());
  EXPECT_EQ(cursor_.mode(), PartitionMode::kOrphan);
  EXPECT_EQ(cursor_.drain_next(), 16);
}

TEST_F(PartitionCursorTest, AnOrphanDrainsFromMariaDbsPositionInsideItsSpool) {
  cursor_.start(plan(20, 10, true), spool(10, 19), true);
  cursor_.written(14, -1);
  cursor_.become_orphan();
  EXPECT_EQ(cursor_.mode(), PartitionMode::kOrphan);
  EXPECT_EQ(cursor_.drain_next(), 14);
  EXPECT_EQ(cursor_.take(20, false, false), Take::kDrop) << "not ours to read from Kafka";
  EXPECT_FALSE(cursor_.orphan_done());
  cursor_.learned_database(25);
  EXPECT_TRUE(cursor_.orphan_done());
}

TEST_F(PartitionCursorTest, AnOrphanStoppedAtAHoleOnlyItsOwnerCanFillLooksAtMariaDbAgain) {
  // Found by the fleet model (seed 1004551): an orphan's spool had let a range go while
  // MariaDB held it (a lagging server since moved MariaDB back); its drain met that hole,
  // which only the partition's owner can fill, and nothing made it look at MariaDB again:
  // its floor stayed inside its spool for ever, its events long written by the owner.
  cursor_.start(plan(30, 10, true), spool(10, 29), true);
  cursor_.learned_database(12);
  cursor_.become_orphan();
  ASSERT_EQ(cursor_.drain_next(), 12);
  EXPECT_FALSE(cursor_.waits_for_owner());
  const auto out = cursor_.resolve_spool_hole(20, /*log_start=*/0, std::nullopt);
  EXPECT_EQ(out.take, Take::kDrop);
  EXPECT_EQ(cursor_.mode(), PartitionMode::kOrphan);
  EXPECT_TRUE(cursor_.waits_for_owner()) << "MariaDB must be asked again";
  cursor_.learned_database(40);
  EXPECT_FALSE(cursor_.waits_for_owner());
  EXPECT_TRUE(cursor_.orphan_done());
}

TEST_F(PartitionCursorTest, TheDrainReadsADrainingPartitionOrAnOrphanInsideItsSpoolUnlessHeld) {
  cursor_.start(plan(120, 100, true), spool(100, 119), true);
  ASSERT_EQ(cursor_.mode(), PartitionMode::kDraining);
  EXPECT_TRUE(cursor_.drains_now());
  cursor_.hold(100, clock_.now() + std::chrono::seconds(1), "schema_pending: x");
  EXPECT_FALSE(cursor_.drains_now()) << "its next event waits for its schema";
  ASSERT_TRUE(cursor_.release_hold(clock_.now(), /*news=*/true));
  EXPECT_TRUE(cursor_.drains_now());
  cursor_.become_orphan();
  EXPECT_TRUE(cursor_.drains_now()) << "MariaDB stands inside its spool";
  EXPECT_FALSE(cursor_.orphan_stuck());
  cursor_.learned_database(90);  // a restore: MariaDB below the spool
  EXPECT_FALSE(cursor_.drains_now()) << "only the owner can fill [90, 100)";
  EXPECT_TRUE(cursor_.orphan_stuck()) << "it looks at MariaDB again";
}

TEST_F(PartitionCursorTest, APartitionReadingKafkaIsNeverDrained) {
  cursor_.start(plan(10, 10, true), std::nullopt, true);
  EXPECT_FALSE(cursor_.drains_now());
  EXPECT_FALSE(cursor_.orphan_stuck());
}

}  // namespace
}  // namespace sluice::ingest
