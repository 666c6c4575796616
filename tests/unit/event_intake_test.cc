// EventIntake alone: an event becomes a row or a dead letter in its partition's batch, in
// offset order, or — its schema revision still being fetched — nothing yet, with the reason
// and the time worth asking again; never a dead letter for a repository that cannot answer.

#include "ingest/event_intake.h"

#include <gtest/gtest.h>

#include "testing/fake_schema_source.h"
#include "testing/harness.h"

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;
using testing::EventFactory;
using Outcome = EventIntake::Outcome;

constexpr int64_t kTimestampMs = 1'700'000'000'000;

class EventIntakeTest : public ::testing::Test {
 protected:
  EventIntakeTest() { batcher_.reset(0, 1); }

  Outcome append(int64_t offset, const std::string& payload) {
    return intake_.append(batcher_, "t", 0, offset, kTimestampMs, payload);
  }

  ManualClock clock_;
  testing::TempDir cache_;
  EventIntake intake_{testing::source_dir() + "/schemas", clock_};
  Batcher batcher_{"t", 0, BatchLimits{}, clock_};
};

TEST_F(EventIntakeTest, RowsAndDeadLettersLandInTheBatchInOffsetOrder) {
  EXPECT_EQ(append(0, EventFactory::good(3, 0, 0, 0)), Outcome::kRow);
  EXPECT_EQ(append(1, "{\"not\": \"a capsule\""), Outcome::kDeadLetter);
  EXPECT_FALSE(intake_.reason().empty());
  EXPECT_EQ(append(2, EventFactory::good(3, 0, 0, 1)), Outcome::kRow);
  const auto batch = batcher_.take();
  EXPECT_EQ(batch.base_offset, 0);
  EXPECT_EQ(batch.end_offset, 3);
  EXPECT_EQ(batch.events, 3u);
  ASSERT_EQ(batch.dead_letters.size(), 1u);
  EXPECT_EQ(batch.dead_letters[0].offset, 1);
  EXPECT_EQ(batch.dead_letters[0].payload, "{\"not\": \"a capsule\"");
  EXPECT_FALSE(intake_.schema_news()) << "no repository: never news";
}

TEST_F(EventIntakeTest, ARevisionStillBeingFetchedAddsNothingThenBecomesARow) {
  testing::FakeSchemaSource repository(clock_);
  repository.put("Remote", 1, EventFactory::test_schema_document());
  intake_.use_repository(&repository, cache_.path());
  const std::string event = EventFactory::renamed("Remote", 1, 0, 0, 0);
  EXPECT_EQ(append(0, event), Outcome::kWaitsForSchema);
  EXPECT_NE(intake_.reason().find("Remote"), std::string::npos) << intake_.reason();
  EXPECT_EQ(batcher_.next_offset(), 0) << "nothing added";
  const auto now = clock_.now();
  EXPECT_EQ(intake_.wait_until(now, 100ms, 5s), now + 5s) << "a fetch under way: its news";
  EXPECT_FALSE(intake_.schema_news());
  EXPECT_EQ(append(0, event), Outcome::kRow) << "answered: asked again, a row";
  EXPECT_TRUE(intake_.schema_news());
  EXPECT_FALSE(intake_.schema_news()) << "news once";
  const auto batch = batcher_.take();
  EXPECT_EQ(batch.events, 1u);
  EXPECT_TRUE(batch.dead_letters.empty());
}

TEST_F(EventIntakeTest, ARepositoryThatCannotAnswerIsWaitedForUntilItsRetryNeverDeadLettered) {
  testing::FakeSchemaSource repository(clock_);
  repository.set_down(true);
  intake_.use_repository(&repository, cache_.path());
  const std::string event = EventFactory::renamed("Remote", 2, 0, 0, 0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(append(0, event), Outcome::kWaitsForSchema);
    const auto now = clock_.now();
    const auto until = intake_.wait_until(now, 100ms, 60s);
    EXPECT_GT(until, now + 100ms) << "the repository's backoff, not a busy loop";
    EXPECT_LE(until, now + 60s);
    clock_.advance(std::chrono::duration_cast<std::chrono::milliseconds>(until - now));
  }
  EXPECT_EQ(batcher_.next_offset(), 0);
  repository.set_down(false);
  repository.put("Remote", 2, EventFactory::test_schema_document());
  Outcome outcome = Outcome::kWaitsForSchema;
  for (int i = 0; i < 3 && outcome == Outcome::kWaitsForSchema; ++i) outcome = append(0, event);
  EXPECT_EQ(outcome, Outcome::kRow);
  EXPECT_TRUE(batcher_.take().dead_letters.empty());
}

}  // namespace
}  // namespace sluice::ingest
