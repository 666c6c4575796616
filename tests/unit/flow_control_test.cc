// Flow control alone, over the fake Kafka: a failed seek, pause or resume is never taken as
// done, a partition assigned again is told again whatever Kafka still holds from before, and a
// partition with lag that stops moving is sought again.

#include "ingest/flow_control.h"

#include <gtest/gtest.h>

#include "testing/fakes.h"

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;
using testing::FakeKafka;
using testing::FakeSource;

class FlowControlTest : public ::testing::Test {
 protected:
  FlowControlTest() {
    kafka_.set_assignment({{"t", 0}, {"t", 1}});
    for (int i = 0; i < 20; ++i) {
      kafka_.produce("t", 0, "x");
      kafka_.produce("t", 1, "x");
    }
    SourceHandler handler{[this](std::vector<TopicPartition>& tps) {
                            for (auto& tp : tps) {
                              auto c = std::make_unique<PartitionCursor>(
                                  tp.topic, tp.partition, BatchLimits{}, clock_, nullptr);
                              StartPlan plan;
                              plan.fetch = plan.floor = 0;
                              plan.database_known = true;
                              c->start(plan, std::nullopt, true);
                              tp.offset = 0;
                              cursors_[{tp.topic, tp.partition}] = std::move(c);
                              flow_.assigned({tp.topic, tp.partition});
                            }
                          },
                          [this](const std::vector<TopicPartition>& tps) {
                            for (const auto& tp : tps) {
                              cursors_.erase({tp.topic, tp.partition});
                              flow_.revoked({tp.topic, tp.partition});
                            }
                          }};
    source_ = std::make_unique<FakeSource>(kafka_, std::move(handler));
    poll();
  }

  void poll() {
    std::vector<SourceMessage> out;
    ASSERT_TRUE(source_->poll(0ms, 0, out));
  }

  ManualClock clock_;
  FakeKafka kafka_;
  FlowControl flow_{1000, clock_, 5s, 15s};
  Cursors cursors_;
  std::unique_ptr<FakeSource> source_;
};

TEST_F(FlowControlTest, AFailedSeekIsNotTakenAsDone) {
  PartitionCursor& c = *cursors_[{"t", 0}];
  ASSERT_EQ(c.take(0, false, true), Take::kDrop);  // dropped: wants a seek back to 0
  ASSERT_TRUE(c.wants_seek());
  kafka_.fail_next(FakeKafka::Call::kSeek, 2);
  flow_.apply(*source_, cursors_, 0, false);
  EXPECT_TRUE(c.wants_seek()) << "a seek that failed was taken as done";
  flow_.apply(*source_, cursors_, 0, false);
  EXPECT_TRUE(c.wants_seek());
  flow_.apply(*source_, cursors_, 0, false);
  EXPECT_FALSE(c.wants_seek());
}

TEST_F(FlowControlTest, AFailedPauseOrResumeIsRetriedUntilKafkaDidIt) {
  ASSERT_TRUE(flow_.holding(2000));  // the in-flight bound is reached: hold...
  clock_.advance(6s);                // ...and it stays so: MariaDB is stuck
  ASSERT_FALSE(flow_.holding(2000));
  kafka_.fail_next(FakeKafka::Call::kPause, 1);
  flow_.apply(*source_, cursors_, 2000, false);
  EXPECT_TRUE(flow_.fetch_paused());
  EXPECT_TRUE(source_->fetching("t", 0)) << "the pause failed";
  flow_.apply(*source_, cursors_, 2000, false);
  EXPECT_FALSE(source_->fetching("t", 0));
  EXPECT_FALSE(source_->fetching("t", 1));
  kafka_.fail_next(FakeKafka::Call::kResume, 1);
  flow_.apply(*source_, cursors_, 0, false);
  EXPECT_FALSE(flow_.fetch_paused());
  EXPECT_FALSE(source_->fetching("t", 0)) << "the resume failed";
  flow_.apply(*source_, cursors_, 0, false);
  EXPECT_TRUE(source_->fetching("t", 0));
  EXPECT_TRUE(source_->fetching("t", 1));
}

TEST_F(FlowControlTest, APartitionRevokedWhilePausedIsResumedWhenItComesBack) {
  ASSERT_TRUE(flow_.holding(2000));
  clock_.advance(6s);
  ASSERT_FALSE(flow_.holding(2000));
  flow_.apply(*source_, cursors_, 2000, false);
  ASSERT_FALSE(source_->fetching("t", 1));
  kafka_.set_assignment({{"t", 0}});  // partition 1 goes away while paused...
  poll();
  flow_.apply(*source_, cursors_, 0, false);  // ...fetching resumes for what is left...
  ASSERT_TRUE(source_->fetching("t", 0));
  kafka_.set_assignment({{"t", 0}, {"t", 1}});  // ...and partition 1 comes back, still paused
  poll();                                       // inside Kafka (as librdkafka keeps it)
  flow_.apply(*source_, cursors_, 0, false);
  EXPECT_TRUE(source_->fetching("t", 1)) << "a partition stays paused in Kafka, silently";
}

TEST_F(FlowControlTest, APartitionWithLagThatStopsMovingIsSoughtAgain) {
  PartitionCursor& c = *cursors_[{"t", 0}];
  flow_.apply(*source_, cursors_, 0, false);
  const uint64_t seeks = c.seeks();
  for (int i = 0; i < 14; ++i) {
    clock_.advance(1s);
    flow_.apply(*source_, cursors_, 0, false);
    ASSERT_FALSE(c.wants_seek()) << "too early: " << i;
  }
  clock_.advance(2s);
  flow_.apply(*source_, cursors_, 0, false);  // sought again in this very call
  EXPECT_FALSE(c.wants_seek());
  EXPECT_EQ(c.seeks(), seeks + 1) << "no seek happened";
}

}  // namespace
}  // namespace sluice::ingest
