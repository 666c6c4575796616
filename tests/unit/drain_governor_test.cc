// The drain's rate controller over a manual clock: unlimited while the database keeps up,
// halved while a replica lags past the bound, cut when commits slow down, rising again by
// steps and lifted once well past anything drained; capped by drain.max_rate; never below
// its floor. And the replica lag it follows, from Sluice's own commits.

#include "ingest/drain_governor.h"

#include <gtest/gtest.h>

#include <limits>

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;
using Limit = DrainGovernor::Limit;

class DrainGovernorTest : public ::testing::Test {
 protected:
  /// One control interval in which the drain committed `events` in batches of 1,000, each
  /// taking `latency` seconds; the allowance is asked at its end (that is when it is decided).
  size_t interval(DrainGovernor& g, size_t events, double latency = 0.01) {
    for (size_t done = 0; done < events; done += 1000) {
      g.committed(std::min<size_t>(1000, events - done), latency);
    }
    clock_.advance(1000ms);
    return g.allowance();
  }

  ManualClock clock_;
};

TEST_F(DrainGovernorTest, UnlimitedWhileTheDatabaseKeepsUp) {
  DrainGovernor g({}, clock_);
  EXPECT_EQ(g.allowance(), std::numeric_limits<size_t>::max());
  for (int i = 0; i < 5; ++i) interval(g, 20'000);
  EXPECT_EQ(g.limiting(), Limit::kNone);
  EXPECT_EQ(g.rate(), 0);
  EXPECT_EQ(g.allowance(), std::numeric_limits<size_t>::max());
  EXPECT_FALSE(g.next_allowance());
  EXPECT_NEAR(g.drained_rate(), 20'000, 1000);
}

TEST_F(DrainGovernorTest, AReplicaPastTheBoundHalvesTheRateDownToTheFloorThenItRecovers) {
  DrainGovernor g({.max_replica_lag_s = 5}, clock_);
  for (int i = 0; i < 4; ++i) interval(g, 20'000);
  g.replica_lag(12.0);
  interval(g, 20'000);
  EXPECT_EQ(g.limiting(), Limit::kReplicaLag);
  const double first = g.rate();
  EXPECT_GT(first, 0);
  EXPECT_LT(first, 20'000 * 0.6) << "halved from what the drain did";
  double last = first;
  for (int i = 0; i < 12; ++i) {
    interval(g, static_cast<size_t>(last));
    EXPECT_LE(g.rate(), last);
    last = g.rate();
  }
  EXPECT_EQ(g.rate(), DrainGovernor::kMinRate) << "a drain always goes on";
  // The replica caught up: the rate rises by steps, then no limit at all.
  g.replica_lag(0.5);
  interval(g, 50);
  EXPECT_GT(g.rate(), DrainGovernor::kMinRate);
  EXPECT_EQ(g.limiting(), Limit::kReplicaLag) << "still below what it was: recovering";
  for (int i = 0; i < 40 && g.rate() > 0; ++i) interval(g, static_cast<size_t>(g.rate()));
  EXPECT_EQ(g.rate(), 0);
  EXPECT_EQ(g.limiting(), Limit::kNone);
}

TEST_F(DrainGovernorTest, TheAllowanceRefillsAtTheRateWithoutBursting) {
  DrainGovernor g({.max_rate = 1000}, clock_);
  EXPECT_EQ(g.limiting(), Limit::kMaxRate);
  clock_.advance(500ms);
  EXPECT_EQ(g.allowance(), 500u);
  g.spent(450);
  EXPECT_EQ(g.allowance(), 0u) << "50 left: less than a tenth of a second's worth";
  ASSERT_TRUE(g.next_allowance());
  EXPECT_EQ(*g.next_allowance() - clock_.now(), 50ms);
  clock_.advance(50ms);
  EXPECT_EQ(g.allowance(), 100u);
  clock_.advance(60s);  // idle for a minute: at most one second's worth
  EXPECT_EQ(g.allowance(), 1000u);
}

TEST_F(DrainGovernorTest, WhileTheLagFallsAfterACutTheRateHolds) {
  DrainGovernor g({.max_replica_lag_s = 5}, clock_);
  for (int i = 0; i < 3; ++i) interval(g, 10'000);
  g.replica_lag(12.0);
  interval(g, 10'000);
  const double cut = g.rate();
  EXPECT_EQ(g.limiting(), Limit::kReplicaLag);
  g.replica_lag(9.0);  // falling: the cut is working, wait
  interval(g, static_cast<size_t>(cut));
  EXPECT_EQ(g.rate(), cut);
  g.replica_lag(9.2);  // no longer falling: cut again
  interval(g, static_cast<size_t>(cut));
  EXPECT_LT(g.rate(), cut);
}

TEST_F(DrainGovernorTest, ASpoolNearItsLimitLiftsTheLimitUntilItIsBackUnder) {
  DrainGovernor g({.max_rate = 1000, .max_replica_lag_s = 5}, clock_);
  g.replica_lag(60.0);
  for (int i = 0; i < 5; ++i) interval(g, 1000);
  EXPECT_EQ(g.limiting(), Limit::kReplicaLag);
  EXPECT_TRUE(g.spool_pressure(true));
  EXPECT_FALSE(g.spool_pressure(true));  // a change is said once
  EXPECT_EQ(g.limiting(), Limit::kSpoolPressure);
  EXPECT_EQ(g.rate(), 0);
  EXPECT_EQ(g.allowance(), std::numeric_limits<size_t>::max());
  EXPECT_FALSE(g.next_allowance());
  EXPECT_TRUE(g.spool_pressure(false));
  EXPECT_FALSE(g.spool_pressure(false));
  EXPECT_EQ(g.limiting(), Limit::kReplicaLag);
  EXPECT_GT(g.rate(), 0);
}

TEST_F(DrainGovernorTest, MaxRateCapsTheRecoveryToo) {
  DrainGovernor g({.max_rate = 2000, .max_replica_lag_s = 5}, clock_);
  for (int i = 0; i < 3; ++i) interval(g, 2000);
  EXPECT_EQ(g.rate(), 2000);
  g.replica_lag(30.0);
  interval(g, 2000);
  EXPECT_EQ(g.rate(), 1000);
  EXPECT_EQ(g.limiting(), Limit::kReplicaLag);
  g.replica_lag(1.0);
  for (int i = 0; i < 30; ++i) interval(g, static_cast<size_t>(g.rate()));
  EXPECT_EQ(g.rate(), 2000);
  EXPECT_EQ(g.limiting(), Limit::kMaxRate);
}

TEST_F(DrainGovernorTest, CommitsThatSlowDownCutTheRate) {
  DrainGovernor g({}, clock_);
  for (int i = 0; i < 5; ++i) interval(g, 10'000, 0.02);
  EXPECT_EQ(g.limiting(), Limit::kNone);
  interval(g, 10'000, 0.2);  // ten times slower once: noise
  EXPECT_EQ(g.limiting(), Limit::kNone);
  interval(g, 10'000, 0.03);  // a little slower, twice: noise too
  interval(g, 10'000, 0.03);
  EXPECT_EQ(g.limiting(), Limit::kNone);
  interval(g, 10'000, 0.2);  // ten times slower, twice in a row: the primary is struggling
  interval(g, 10'000, 0.2);
  EXPECT_EQ(g.limiting(), Limit::kCommitLatency);
  EXPECT_NEAR(g.rate(), 10'000 * 0.67, 1000);
}

TEST_F(DrainGovernorTest, ReplicaLagIsIgnoredWhenNotFollowed) {
  DrainGovernor g({.max_replica_lag_s = 0}, clock_);
  g.replica_lag(1000.0);
  for (int i = 0; i < 3; ++i) interval(g, 10'000);
  EXPECT_EQ(g.limiting(), Limit::kNone);
}

TEST(CommitHistoryTest, AReplicasLagIsTheAgeOfTheOldestCommitItHasNotApplied) {
  CommitHistory h;
  const CommitHistory::Key p0{"t", 0}, p1{"t", 1};
  h.committed(p0, 100, 1'000);
  h.committed(p0, 200, 2'000);
  h.committed(p0, 300, 3'000);
  h.committed(p1, 50, 2'500);
  CommitHistory::ReplicaPositions caught_up{true, 4'000, {{p0, 300}, {p1, 50}}};
  EXPECT_EQ(h.lag({caught_up}), 0.0);
  CommitHistory::ReplicaPositions behind{true, 4'000, {{p0, 100}, {p1, 50}}};
  EXPECT_EQ(h.lag({behind}), 2.0);  // [100, 200) committed at 2 s, read at 4 s
  CommitHistory::ReplicaPositions never{true, 4'000, {}};
  EXPECT_EQ(h.lag({never}), 3.0);  // not even the first commit
  // The worst replica counts; one that cannot be read says nothing.
  EXPECT_EQ(h.lag({caught_up, behind}), 2.0);
  EXPECT_FALSE(h.lag({CommitHistory::ReplicaPositions{}}));
  EXPECT_EQ(h.lag({CommitHistory::ReplicaPositions{}, behind}), 2.0);
}

TEST(CommitHistoryTest, APositionThatWentBackStartsTheHistoryOver) {
  CommitHistory h;
  const CommitHistory::Key p{"t", 0};
  h.committed(p, 100, 1'000);
  h.committed(p, 200, 2'000);
  h.committed(p, 150, 3'000);  // a restore took MariaDB back
  CommitHistory::ReplicaPositions r{true, 5'000, {{p, 100}}};
  EXPECT_EQ(h.lag({r}), 2.0);
  h.trim(4'000);  // the newest stays
  EXPECT_EQ(h.lag({r}), 2.0);
}

}  // namespace
}  // namespace sluice::ingest
