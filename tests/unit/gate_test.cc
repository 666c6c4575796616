// The gate alone, over recorded effects and a manual clock: what each command promises and
// when it answers; outages closed and reopened by Sluice itself.

#include "ingest/gate.h"

#include <errmsg.h>
#include <gtest/gtest.h>
#include <mysqld_error.h>

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;

class RecordedEffects final : public GateEffects {
 public:
  Status record_pause(const std::optional<storage::PauseRecord>& record) override {
    if (refuse_record) return Status::error("spool: No space left on device");
    recorded = record;
    return Status::ok();
  }
  void quiesce() override { ++quiesced; }
  bool quiet() override { return writers_quiet; }
  void closed() override { ++closes; }
  void opened() override { ++opens; }
  storage::DbStatus probe() override {
    ++probes;
    if (refuse_access) return storage::DbStatus{ER_ACCESS_DENIED_ERROR, "Access denied"};
    return database_up ? storage::DbStatus{} : storage::DbStatus{CR_CONNECTION_ERROR, "down"};
  }
  void cancel_writes() override { ++cancels; }
  void retarget(const MariaDbConfig& m) override { retargeted = m.host; }
  void refused(const storage::DbStatus& cause) override { refusals.push_back(cause.describe()); }

  std::optional<storage::PauseRecord> recorded;
  bool refuse_record = false;
  bool writers_quiet = false;
  bool database_up = true;
  bool refuse_access = false;
  std::vector<std::string> refusals;
  int quiesced = 0, closes = 0, opens = 0, probes = 0, cancels = 0;
  std::string retargeted;
};

class GateTest : public ::testing::Test {
 protected:
  static bool ready(std::future<Status>& f) { return f.wait_for(0s) == std::future_status::ready; }

  RecordedEffects effects_;
  ManualClock clock_;
  Gate gate_{effects_, clock_};
};

TEST_F(GateTest, APauseAnswersOnlyOnceTheWritersAreQuiet) {
  auto paused = gate_.submit(Gate::Command::kPause, "security update");
  gate_.step();
  EXPECT_EQ(gate_.state(), Gate::State::kClosing);
  EXPECT_EQ(effects_.quiesced, 1);
  ASSERT_TRUE(effects_.recorded);
  EXPECT_EQ(effects_.recorded->reason, "security update");
  gate_.step();
  EXPECT_FALSE(ready(paused)) << "answered while a transaction may be open";
  effects_.writers_quiet = true;
  gate_.step();
  ASSERT_TRUE(ready(paused));
  EXPECT_TRUE(paused.get());
  EXPECT_EQ(gate_.state(), Gate::State::kClosed);
  EXPECT_EQ(effects_.closes, 1);
  EXPECT_EQ(gate_.closed_state(), ServiceState::kPaused);
  auto again = gate_.submit(Gate::Command::kPause);
  gate_.step();
  ASSERT_TRUE(ready(again)) << "idempotent";
  EXPECT_TRUE(again.get());
}

TEST_F(GateTest, AResumeWaitsWhileAPauseIsStillClosing) {
  auto paused = gate_.submit(Gate::Command::kPause);
  auto resumed = gate_.submit(Gate::Command::kResume);
  gate_.step();
  gate_.step();
  EXPECT_FALSE(ready(resumed));
  effects_.writers_quiet = true;
  gate_.step();  // closes; the resume is taken on the next round
  gate_.step();
  ASSERT_TRUE(ready(paused) && ready(resumed));
  EXPECT_EQ(gate_.state(), Gate::State::kOpen);
  EXPECT_EQ(effects_.closes, 1);
  EXPECT_EQ(effects_.opens, 1);
  EXPECT_FALSE(effects_.recorded);
}

TEST_F(GateTest, ASpoolThatCannotRecordThePauseNeverBlocksIt) {
  // A full spool disk must not keep Sluice writing through a maintenance window: the gate
  // closes all the same (in a fleet, the target in the fleet topic remembers the pause).
  effects_.refuse_record = true;
  auto paused = gate_.submit(Gate::Command::kPause, "disk full");
  gate_.step();
  EXPECT_EQ(gate_.state(), Gate::State::kClosing);
  effects_.writers_quiet = true;
  gate_.step();
  ASSERT_TRUE(ready(paused));
  EXPECT_TRUE(paused.get());
  EXPECT_EQ(gate_.state(), Gate::State::kClosed);
  EXPECT_EQ(gate_.closed_state(), ServiceState::kPaused);
  auto resumed = gate_.submit(Gate::Command::kResume);
  gate_.step();
  ASSERT_TRUE(ready(resumed));
  EXPECT_TRUE(resumed.get()) << "nor the resume";
  EXPECT_TRUE(gate_.open());
}

TEST_F(GateTest, ALeaseThatRunsOutClosesTheGateUntilItIsRenewed) {
  gate_.lease(false);
  gate_.step();
  EXPECT_EQ(gate_.state(), Gate::State::kClosing);
  EXPECT_EQ(effects_.quiesced, 1);
  clock_.advance(1500ms);
  gate_.step();
  EXPECT_EQ(effects_.cancels, 1) << "writers still busy a second later: their statements go";
  effects_.writers_quiet = true;
  gate_.step();
  EXPECT_EQ(gate_.state(), Gate::State::kClosed);
  EXPECT_EQ(gate_.closed_state(), ServiceState::kFleetUnreachable);
  const int probes = effects_.probes;
  clock_.advance(60s);
  gate_.step();
  EXPECT_EQ(effects_.probes, probes) << "nothing touches MariaDB while fenced";
  gate_.lease(true);
  gate_.step();
  EXPECT_TRUE(gate_.open());
  EXPECT_EQ(effects_.opens, 1);
}

TEST_F(GateTest, APauseWhileFencedHoldsAfterTheLeaseIsRenewedAndAResumeOpensThen) {
  effects_.writers_quiet = true;
  gate_.lease(false);
  gate_.step();
  auto paused = gate_.submit(Gate::Command::kPause, "maintenance");
  gate_.step();
  ASSERT_TRUE(ready(paused));
  gate_.lease(true);
  gate_.step();
  EXPECT_EQ(gate_.state(), Gate::State::kClosed) << "paused: stays closed";
  gate_.lease(false);
  gate_.step();
  auto resumed = gate_.submit(Gate::Command::kResume);
  gate_.step();
  ASSERT_TRUE(ready(resumed));
  EXPECT_EQ(gate_.state(), Gate::State::kClosed) << "fenced: opens only once renewed";
  gate_.lease(true);
  gate_.step();
  EXPECT_TRUE(gate_.open());
}

TEST_F(GateTest, AnOutageClosesByItselfProbesWithBackoffAndReopens) {
  effects_.database_up = false;
  gate_.outage({CR_SERVER_LOST, "Lost connection"});
  EXPECT_EQ(gate_.state(), Gate::State::kClosing);
  effects_.writers_quiet = true;
  gate_.step();
  EXPECT_EQ(gate_.closed_state(), ServiceState::kOutage);
  for (int i = 0; i < 600; ++i) {
    clock_.advance(1s);
    gate_.step();
  }
  EXPECT_GE(effects_.probes, 10);
  EXPECT_LE(effects_.probes, 60) << "probing does not back off";
  effects_.database_up = true;
  for (int i = 0; i < 40 && !gate_.open(); ++i) {
    clock_.advance(1s);
    gate_.step();
  }
  EXPECT_TRUE(gate_.open());
  EXPECT_FALSE(gate_.in_outage());
  EXPECT_EQ(effects_.opens, 1);
}

TEST_F(GateTest, APauseDuringAnOutageHoldsAfterTheServerReturnsUntilResumed) {
  gate_.start_in_outage({CR_CONNECTION_ERROR, "down"});
  auto paused = gate_.submit(Gate::Command::kPause, "failover");
  gate_.step();
  ASSERT_TRUE(ready(paused)) << "already quiet";
  const int probes = effects_.probes;
  for (int i = 0; i < 100; ++i) {
    clock_.advance(1s);
    gate_.step();
  }
  EXPECT_EQ(effects_.probes, probes) << "a paused gate does not probe";
  EXPECT_EQ(gate_.closed_state(), ServiceState::kPaused);
  auto resumed = gate_.submit(Gate::Command::kResume);
  gate_.step();
  ASSERT_TRUE(ready(resumed));
  EXPECT_TRUE(gate_.open()) << "the probe right after the resume found the server up";
}

TEST_F(GateTest, ARetargetIsRefusedUnlessPausedAndClosed) {
  MariaDbConfig m;
  m.host = "replica-2";
  auto refused = gate_.submit(Gate::Command::kRetarget, "", m);
  gate_.step();
  ASSERT_TRUE(ready(refused));
  EXPECT_FALSE(refused.get());
  EXPECT_EQ(effects_.retargeted, "");
  effects_.writers_quiet = true;
  auto paused = gate_.submit(Gate::Command::kPause);
  gate_.step();
  auto moved = gate_.submit(Gate::Command::kRetarget, "", m);
  gate_.step();
  ASSERT_TRUE(ready(moved));
  EXPECT_TRUE(moved.get());
  EXPECT_EQ(effects_.retargeted, "replica-2");
}

TEST_F(GateTest, StoppingAnswersEveryWaitingCommand) {
  auto paused = gate_.submit(Gate::Command::kPause);
  gate_.step();
  auto resumed = gate_.submit(Gate::Command::kResume);
  gate_.stop("shutting down");
  ASSERT_TRUE(ready(paused) && ready(resumed));
  EXPECT_FALSE(paused.get());
  auto late = gate_.submit(Gate::Command::kPause);
  ASSERT_TRUE(ready(late));
  EXPECT_EQ(late.get().message(), "shutting down");
}

TEST_F(GateTest, AHeldGateLetGoMeetsMariaDbForTheFirstTimeAndOpens) {
  gate_.start_held();
  EXPECT_EQ(gate_.closed_state(), ServiceState::kStarting);
  gate_.step();
  EXPECT_EQ(effects_.probes, 0) << "held means touching nothing";
  auto released = gate_.submit(Gate::Command::kRelease);
  gate_.step();
  ASSERT_TRUE(ready(released));
  EXPECT_EQ(effects_.probes, 1);
  EXPECT_EQ(gate_.state(), Gate::State::kOpen);
  EXPECT_TRUE(effects_.refusals.empty());
}

TEST_F(GateTest, AHeldGateLetGoToAServerThatIsDownProbesAsInAnOutage) {
  gate_.start_held();
  effects_.database_up = false;
  auto released = gate_.submit(Gate::Command::kRelease);
  gate_.step();
  EXPECT_TRUE(gate_.in_outage());
  EXPECT_EQ(gate_.closed_state(), ServiceState::kOutage);
  EXPECT_TRUE(effects_.refusals.empty()) << "a server that is down comes back by itself";
  effects_.database_up = true;
  clock_.advance(1s);
  gate_.step();
  EXPECT_EQ(gate_.state(), Gate::State::kOpen);
}

// As at a start without a fleet: a server that refuses this service (a wrong password, an
// unknown database, a certificate it rejects) needs a person, not a probe every 30 s forever.
TEST_F(GateTest, AHeldGateLetGoToAServerThatRefusesThisServiceSaysSoOnce) {
  gate_.start_held();
  effects_.refuse_access = true;
  auto released = gate_.submit(Gate::Command::kRelease);
  gate_.step();
  ASSERT_EQ(effects_.refusals.size(), 1U);
  EXPECT_NE(effects_.refusals[0].find("Access denied"), std::string::npos);
  clock_.advance(1min);
  gate_.step();
  EXPECT_EQ(effects_.refusals.size(), 1U);
  EXPECT_EQ(gate_.state(), Gate::State::kClosed);
}

// Once it has written, the same refusal (a DBA revoking a grant) is an outage the service
// waits out, as before.
TEST_F(GateTest, ARefusalAfterTheFirstContactIsAnOutage) {
  gate_.start_held();
  auto released = gate_.submit(Gate::Command::kRelease);
  gate_.step();
  ASSERT_EQ(gate_.state(), Gate::State::kOpen);
  effects_.refuse_access = true;
  gate_.outage(storage::DbStatus{ER_ACCESS_DENIED_ERROR, "Access denied"});
  effects_.writers_quiet = true;
  gate_.step();
  clock_.advance(1min);
  gate_.step();
  EXPECT_TRUE(gate_.in_outage());
  EXPECT_TRUE(effects_.refusals.empty());
}

}  // namespace
}  // namespace sluice::ingest
