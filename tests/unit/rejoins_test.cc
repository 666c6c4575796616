// Rejoins alone: when a fenced consumer joins again, and when the service gives up because
// another running instance uses the same kafka.instance_id.

#include "ingest/rejoins.h"

#include <gtest/gtest.h>

namespace sluice::ingest {
namespace {

const Status kFenced = Status::error("fenced by the group", ErrorKind::kFenced);

TEST(RejoinsTest, AFourthFencingWithinTenMinutesIsADuplicateInstanceNamedInTheError) {
  ManualClock clock;
  Rejoins rejoins(clock, "host-a");
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(rejoins.fenced(kFenced, false).is_ok()) << i;
    clock.advance(std::chrono::minutes(3));
  }
  const Status st = rejoins.fenced(kFenced, false);
  EXPECT_EQ(st.kind(), ErrorKind::kDuplicateInstance);
  EXPECT_NE(st.message().find("fenced 4 times in 10 minutes"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("kafka.instance_id (host-a)"), std::string::npos) << st.message();
}

TEST(RejoinsTest, FencingsOlderThanTheWindowAreForgotten) {
  ManualClock clock;
  Rejoins rejoins(clock, "host-a");
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(rejoins.fenced(kFenced, false).is_ok()) << i;
    clock.advance(std::chrono::minutes(4));  // never a fourth within ten minutes
  }
}

TEST(RejoinsTest, AStoppingTwinsFencingsAreNotCounted) {
  ManualClock clock;
  Rejoins rejoins(clock, "host-a");
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(rejoins.fenced(kFenced, true).is_ok()) << i;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(rejoins.fenced(kFenced, false).is_ok()) << i;
  EXPECT_FALSE(rejoins.fenced(kFenced, false).is_ok());
  // Even then, a stopping twin is expected to fence us: joining again is right.
  EXPECT_TRUE(rejoins.fenced(kFenced, true).is_ok());
}

}  // namespace
}  // namespace sluice::ingest
