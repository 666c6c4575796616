// OffsetCommitter alone, over FakeKafka's consumer: what reaches the group is MariaDB's
// position only (invariant 1), sent once per change and interval, sent again when refused, and
// counted as committed only once the broker acknowledged it.

#include "ingest/offset_committer.h"

#include <gtest/gtest.h>

#include "testing/fakes.h"

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;
using testing::FakeKafka;
using testing::FakeSource;

const std::string kTopic = "t";

class OffsetCommitterTest : public ::testing::Test {
 protected:
  /// A partition started from `plan`: MariaDB's position known (`known`) at `floor`, or only
  /// assumed (the group's offset, a spool's first event).
  PartitionCursor& add(int32_t partition, int64_t floor, bool known) {
    auto& c = cursors_[{kTopic, partition}];
    c = std::make_unique<PartitionCursor>(kTopic, partition, BatchLimits{}, clock_, nullptr);
    StartPlan plan;
    plan.fetch = plan.floor = floor;
    plan.database_known = known;
    plan.source = known ? StartSource::kDatabase : StartSource::kGroup;
    c->start(plan, std::nullopt, true);
    return *c;
  }

  int64_t committed(int32_t partition) { return kafka_.committed(kTopic, partition); }

  ManualClock clock_;
  FakeKafka kafka_;
  Cursors cursors_;
  OffsetCommitter committer_{clock_, 1s};
  /// Refusals of asynchronous commits reach the committer as the pipeline wires them.
  FakeSource source_{kafka_,
                     {.on_assign = {}, .on_revoke = {}, .on_commit = [this](const std::vector<TopicPartition>& offsets,
                                          const Status& error) {
                       committer_.acknowledged(cursors_, offsets, error);
                     }}};
};

TEST_F(OffsetCommitterTest, OnlyWhatMariaDbHoldsIsCommittedOncePerChangeAndInterval) {
  add(0, 10, true);
  auto& assumed = add(1, 50, false);  // the group's offset, not yet confirmed by MariaDB
  committer_.maybe_commit(source_, cursors_, true);
  EXPECT_EQ(committed(0), 10);
  EXPECT_EQ(committed(1), kOffsetInvalid) << "an assumed position is not committed";
  const auto sent = kafka_.commits().size();
  committer_.maybe_commit(source_, cursors_, true);
  EXPECT_EQ(kafka_.commits().size(), sent) << "nothing changed: nothing sent";

  cursors_.at({kTopic, 0})->written(20, 20);
  assumed.written(60, 60);  // MariaDB now says where partition 1 stands
  clock_.advance(500ms);
  committer_.maybe_commit(source_, cursors_);
  EXPECT_EQ(committed(0), 10) << "within the interval: not yet";
  clock_.advance(500ms);
  committer_.maybe_commit(source_, cursors_);
  EXPECT_EQ(committed(0), 20);
  EXPECT_EQ(committed(1), 60);
}

TEST_F(OffsetCommitterTest, ARefusedCommitIsSentAgainAndCountsOnlyOnceAcknowledged) {
  auto& c = add(0, 10, true);
  kafka_.fail_next(FakeKafka::Call::kCommit, 1);
  committer_.maybe_commit(source_, cursors_, true);
  EXPECT_EQ(committed(0), kOffsetInvalid);
  EXPECT_EQ(c.kafka_committed(), -1);
  committer_.maybe_commit(source_, cursors_, true);  // sent again
  EXPECT_EQ(committed(0), 10);
  EXPECT_EQ(c.kafka_committed(), -1) << "sent, not yet acknowledged";
  committer_.acknowledged(cursors_, {{kTopic, 0, 10}}, Status::ok());
  EXPECT_EQ(c.kafka_committed(), 10);

  // An asynchronous refusal of an older offset does not make a newer one be forgotten.
  c.written(30, 30);
  committer_.maybe_commit(source_, cursors_, true);
  const auto sent = kafka_.commits().size();
  committer_.acknowledged(cursors_, {{kTopic, 0, 10}}, Status::error("kafka commit: refused"));
  committer_.maybe_commit(source_, cursors_, true);
  EXPECT_EQ(kafka_.commits().size(), sent) << "30 is in flight: not sent twice";
  committer_.acknowledged(cursors_, {{kTopic, 0, 30}}, Status::error("kafka commit: refused"));
  committer_.maybe_commit(source_, cursors_, true);
  EXPECT_EQ(kafka_.commits().size(), sent + 1) << "30 refused: sent again";
}

TEST_F(OffsetCommitterTest, CommitNowSaysItOnceMoreAndWaitsForTheAnswer) {
  auto& a = add(0, 10, true);
  auto& orphan = add(1, 40, true);
  orphan.become_orphan();  // no longer this instance's to commit
  committer_.maybe_commit(source_, cursors_, true);
  const auto sent = kafka_.commits().size();
  committer_.commit_now(source_, cursors_);
  EXPECT_EQ(kafka_.commits().size(), sent + 1) << "partition 0 again, the orphan not";
  EXPECT_EQ(a.kafka_committed(), 10) << "a synchronous commit is acknowledged by its answer";
  EXPECT_EQ(committed(1), kOffsetInvalid);
  kafka_.fail_next(FakeKafka::Call::kCommit, 1);
  a.written(15, 15);
  committer_.commit_now(source_, cursors_, {{kTopic, 0}});
  EXPECT_EQ(a.kafka_committed(), 10) << "refused: still the last acknowledged";
  committer_.maybe_commit(source_, cursors_, true);
  EXPECT_EQ(committed(0), 15) << "the refused one goes out with the next round";
}

}  // namespace
}  // namespace sluice::ingest
