// Invariant 4 as a pure function: where an assigned partition starts, from what the spool,
// sluice_offsets and the group know.

#include "ingest/start_offset.h"

#include <gtest/gtest.h>

namespace sluice::ingest {
namespace {

StartFacts facts(std::optional<StartFacts::Spooled> spool, std::optional<int64_t> database,
                 int64_t group) {
  StartFacts f;
  f.spool = spool;
  f.database = database;
  f.group = group;
  return f;
}

TEST(StartOffsetTest, NothingKnownStartsAtTheEarliestOffsetKafkaHas) {
  const auto plan = decide_start(facts(std::nullopt, std::nullopt, -1));
  EXPECT_EQ(plan.fetch, -1);
  EXPECT_EQ(plan.floor, -1);
  EXPECT_EQ(plan.source, StartSource::kEarliest);
}

TEST(StartOffsetTest, TheEarliestOffsetIsNamedWhenTheBrokerSaidWhereTheLogStarts) {
  auto f = facts(std::nullopt, std::nullopt, -1);
  f.log_start = 4200;
  const auto plan = decide_start(f);
  EXPECT_EQ(plan.fetch, 4200);
  EXPECT_EQ(plan.floor, 4200);
  EXPECT_FALSE(plan.database_known);
  EXPECT_EQ(plan.source, StartSource::kEarliest);
}

TEST(StartOffsetTest, SluiceOffsetsWinsOverTheGroupsOffset) {
  const auto plan = decide_start(facts(std::nullopt, 120, 300));
  EXPECT_EQ(plan.fetch, 120);
  EXPECT_EQ(plan.floor, 120);
  EXPECT_TRUE(plan.database_known);
  EXPECT_EQ(plan.source, StartSource::kDatabase);
}

TEST(StartOffsetTest, TheGroupsOffsetServesOnlyWhenMariaDbHasNoRowOrWasNotAsked) {
  const auto plan = decide_start(facts(std::nullopt, std::nullopt, 300));
  EXPECT_EQ(plan.fetch, 300);
  EXPECT_EQ(plan.floor, 300);
  EXPECT_FALSE(plan.database_known);
  EXPECT_EQ(plan.source, StartSource::kGroup);
}

TEST(StartOffsetTest, TheSpoolGoesOnAfterItsLastEventAndDrainsFromMariaDbsPosition) {
  const auto plan = decide_start(facts(StartFacts::Spooled{100, 199}, 150, 90));
  EXPECT_EQ(plan.fetch, 200);
  EXPECT_EQ(plan.floor, 150);
  EXPECT_TRUE(plan.database_known);
  EXPECT_EQ(plan.release_below, 150) << "MariaDB holds [100, 150) already";
  EXPECT_EQ(plan.source, StartSource::kSpool);
}

TEST(StartOffsetTest, ALowerSluiceOffsetsBelowTheSpoolIsNotIgnored) {
  // A server that lags (a promoted replica, a restore), or offsets that expired while the
  // service was stopped: [40, 100) must come again from Kafka before the spool drains.
  const auto plan = decide_start(facts(StartFacts::Spooled{100, 199}, 40, 200));
  EXPECT_EQ(plan.fetch, 200);
  EXPECT_EQ(plan.floor, 40);
  EXPECT_TRUE(plan.database_known);
  EXPECT_EQ(plan.release_below, 100) << "nothing below the spool's first event to release";
}

TEST(StartOffsetTest, ASpoolMariaDbHasPassedIsStaleAndKafkaGoesOnFromMariaDb) {
  // Another owner wrote past everything spooled here.
  const auto plan = decide_start(facts(StartFacts::Spooled{100, 199}, 500, 500));
  EXPECT_EQ(plan.fetch, 500);
  EXPECT_EQ(plan.floor, 500);
  EXPECT_EQ(plan.release_below, 200);
  EXPECT_EQ(plan.source, StartSource::kDatabase);
}

TEST(StartOffsetTest, WithTheGateClosedTheSpoolsOwnStartIsTheFloorUntilMariaDbTells) {
  const auto plan = decide_start(facts(StartFacts::Spooled{100, 199}, std::nullopt, 90));
  EXPECT_EQ(plan.fetch, 200);
  EXPECT_EQ(plan.floor, 100);
  EXPECT_FALSE(plan.database_known);
  EXPECT_EQ(plan.release_below, -1);
}

}  // namespace
}  // namespace sluice::ingest
