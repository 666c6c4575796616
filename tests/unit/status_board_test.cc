#include "ingest/status_board.h"

#include <gtest/gtest.h>

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;

TEST(StatusBoardTest, KeepsItsOwnRecordsAcrossSnapshotsAndAStopStaysAStop) {
  ManualClock clock;
  StatusBoard board(clock);
  EXPECT_EQ(board.snapshot().state, ServiceState::kStarting);
  for (int64_t i = 0; i < 150; ++i) board.add_gap("t", 0, i * 10, i * 10 + 3);
  board.add_tables({{"A_1", 5, 100, 0}, {"B_1", 2, 50, 0}});
  board.add_tables({{"A_1", 1, 90, 0}});
  board.consumed("t");
  board.consumed("t");
  PipelineStatus next;
  next.state = ServiceState::kRunning;
  next.spool_events = 7;
  board.publish(next);
  auto s = board.snapshot();
  EXPECT_EQ(s.state, ServiceState::kRunning);
  EXPECT_EQ(s.spool_events, 7u);
  ASSERT_EQ(s.gaps.size(), 100u) << "the most recent hundred";
  EXPECT_EQ(s.gaps.front().from, 500);
  EXPECT_EQ(s.gaps.back().lost, 3);
  ASSERT_EQ(s.tables.size(), 2u);
  EXPECT_EQ(s.tables[0].table, "A_1");
  EXPECT_EQ(s.tables[0].rows_inserted, 6u);
  EXPECT_EQ(s.tables[0].max_timestamp, 100);
  EXPECT_EQ(s.consumed_by_topic.at("t"), 2u);

  board.set_stopping();
  board.publish(next);
  EXPECT_EQ(board.snapshot().state, ServiceState::kStopping) << "a stopping pipeline stays so";
}

TEST(StatusBoardTest, PublishesAtMostFourTimesASecondUnlessForced) {
  ManualClock clock;
  StatusBoard board(clock);
  EXPECT_TRUE(board.due(false));
  EXPECT_FALSE(board.due(false));
  EXPECT_TRUE(board.due(true));
  clock.advance(249ms);
  EXPECT_FALSE(board.due(false));
  clock.advance(1ms);
  EXPECT_TRUE(board.due(false));
}

TEST(StatusBoardTest, ServerNotesNameTheAutoIncLockModeOnlyWhereItHoldsWritersBack) {
  ManualClock clock;
  StatusBoard board(clock);
  MariaDbConfig m;
  m.writers = 2;
  m.insert_method = InsertMethod::kLoadData;
  EXPECT_TRUE(board.server_notes(-1, m).empty()) << "unknown yet";
  ASSERT_EQ(board.server_notes(1, m).size(), 1u);
  EXPECT_NE(board.server_notes(1, m)[0].find("innodb_autoinc_lock_mode = 1"), std::string::npos);
  EXPECT_TRUE(board.server_notes(2, m).empty());
  m.writers = 1;
  EXPECT_TRUE(board.server_notes(0, m).empty()) << "one writer takes no turns";
  board.publish({});
  EXPECT_TRUE(board.snapshot().mariadb_notes.empty());
}

}  // namespace
}  // namespace sluice::ingest
