// The fleet: what an instance knows of the others from the control topic (FleetView), and
// Fleets of several instances over one in-memory topic, each with a stand-in for its pipeline:
// one pause for all that answers only once every live instance is quiet, a new instance joining
// a paused fleet, instances gone silent, forgotten hosts, and what other spools hold.

#include "fleet/fleet.h"

#include <gtest/gtest.h>

#include <mutex>

#include "testing/fakes.h"

namespace sluice::fleet {
namespace {

using namespace std::chrono_literals;
using testing::FakeControlChannel;
using testing::FakeControlTopic;

InstanceRecord record(const std::string& id, int64_t wall_ms, bool quiet = false,
                      const std::string& applied = "") {
  InstanceRecord r;
  r.id = id;
  r.state = quiet ? "paused" : "running";
  r.quiet = quiet;
  r.applied = applied;
  r.wall_ms = wall_ms;
  return r;
}

TEST(FleetViewTest, RecordsRoundTripAndTombstonesRemoveThem) {
  FleetView view(10s);
  const auto now = std::chrono::steady_clock::now();
  InstanceRecord r = record("a", 1000, true, "x1");
  r.partitions = {{"t", 0}, {"t", 3}};
  r.spooled = {{"t", 3, 100, 199, 100}};
  view.apply(instance_key("a"), encode(r), now);
  view.apply(kTargetKey, encode(Target{true, "maintenance", 5, "a", "x1"}), now);
  ASSERT_EQ(view.instances().size(), 1u);
  EXPECT_EQ(view.instances().at("a").spooled.at(0).last, 199);
  EXPECT_EQ(view.instances().at("a").partitions.size(), 2u);
  ASSERT_TRUE(view.target());
  EXPECT_TRUE(view.target()->paused);
  EXPECT_EQ(view.target()->reason, "maintenance");
  view.apply("instance/a", std::nullopt, now);
  EXPECT_TRUE(view.instances().empty());
  view.apply("instance/b", std::string("{not json"), now);
  view.apply("nonsense", std::string("{}"), now);
  EXPECT_EQ(view.unreadable(), 2u);
}

TEST(FleetViewTest, AnInstanceIsLiveOnlyWhileItsRecordsAreFreshHereAndByItsOwnClock) {
  FleetView view(10s, 30s);
  const auto now = std::chrono::steady_clock::now();
  const int64_t wall = 1'000'000'000;
  view.apply(instance_key("fresh"), encode(record("fresh", wall - 1000)), now);
  view.apply(instance_key("old"), encode(record("old", wall - 3'600'000)), now);  // read at start
  view.apply(instance_key("late"), encode(record("late", wall - 1000)), now - 11s);
  InstanceRecord stopped = record("stopped", wall);
  stopped.state = "stopped";
  view.apply(instance_key("stopped"), encode(stopped), now);
  EXPECT_TRUE(view.live("fresh", now, wall));
  EXPECT_FALSE(view.live("old", now, wall)) << "a record written an hour ago, read just now";
  EXPECT_FALSE(view.live("late", now, wall)) << "no heartbeat read for 11 s";
  EXPECT_FALSE(view.live("stopped", now, wall));
}

TEST(FleetViewTest, APauseIsDoneOnlyWhenEveryLiveInstanceAppliedItAndIsQuiet) {
  FleetView view(10s);
  const auto now = std::chrono::steady_clock::now();
  const int64_t wall = 1'000'000'000;
  view.apply(instance_key("a"), encode(record("a", wall, true, "p1")), now);
  view.apply(instance_key("b"), encode(record("b", wall, false, "p1")), now);  // still closing
  view.apply(instance_key("c"), encode(record("c", wall - 3'600'000)), now);   // gone
  EXPECT_EQ(view.pending("p1", true, now, wall), std::vector<std::string>{"b"});
  EXPECT_TRUE(view.pending("p1", false, now, wall).empty()) << "a resume needs no quiet";
  view.apply(instance_key("b"), encode(record("b", wall, true, "p1")), now);
  EXPECT_TRUE(view.pending("p1", true, now, wall).empty());
}

TEST(FleetViewTest, WhatAnotherSpoolHoldsCountsWhetherItsInstanceIsLiveOrNot) {
  FleetView view(10s);
  const auto now = std::chrono::steady_clock::now();
  InstanceRecord gone = record("gone", 0);  // dead for ages: its disk may come back
  gone.spooled = {{"t", 2, 500, 899, 400}};
  view.apply(instance_key("gone"), encode(gone), now);
  InstanceRecord self = record("self", 0);
  self.spooled = {{"t", 1, 0, 99, 100}};
  view.apply(instance_key("self"), encode(self), now);
  EXPECT_TRUE(view.claimed_elsewhere("self", "t", 2, 100, 600));
  EXPECT_TRUE(view.claimed_elsewhere("self", "t", 2, 899, 900));
  EXPECT_FALSE(view.claimed_elsewhere("self", "t", 2, 900, 1000));
  EXPECT_FALSE(view.claimed_elsewhere("self", "t", 2, 0, 500));
  EXPECT_FALSE(view.claimed_elsewhere("self", "t", 1, 0, 100))
      << "its own spool is not 'elsewhere'";
}

/// A stand-in for one instance's pipeline: its gate paused or not, quiet once a pause has been
/// applied (after `closing` has passed), held until released or told.
class FakeInstance {
 public:
  LocalInstance local() {
    return {[this] {
              std::lock_guard lock(mu_);
              InstanceRecord r;
              r.state = held_ ? "starting" : paused_ ? "paused" : "running";
              r.quiet = held_ || (paused_ && quiet_);
              r.spooled = spooled_;
              return r;
            },
            [this](const std::string& reason) {
              std::lock_guard lock(mu_);
              held_ = false;
              paused_ = true;
              reason_ = reason;
              ++pauses_;
              return ready();
            },
            [this] {
              std::lock_guard lock(mu_);
              held_ = false;
              paused_ = false;
              ++resumes_;
              return ready();
            },
            [this] {
              std::lock_guard lock(mu_);
              held_ = false;
              ++releases_;
              return ready();
            }};
  }
  void set_quiet(bool quiet) {
    std::lock_guard lock(mu_);
    quiet_ = quiet;
  }
  void set_spooled(std::vector<SpooledRange> s) {
    std::lock_guard lock(mu_);
    spooled_ = std::move(s);
  }
  bool paused() {
    std::lock_guard lock(mu_);
    return paused_;
  }
  bool held() {
    std::lock_guard lock(mu_);
    return held_;
  }
  int releases() {
    std::lock_guard lock(mu_);
    return releases_;
  }

 private:
  static std::future<Status> ready() {
    std::promise<Status> p;
    p.set_value(Status::ok());
    return p.get_future();
  }
  std::mutex mu_;
  bool held_ = true;
  bool paused_ = false;
  bool quiet_ = true;
  int pauses_ = 0, resumes_ = 0, releases_ = 0;
  std::string reason_;
  std::vector<SpooledRange> spooled_;
};

class FleetTest : public ::testing::Test {
 protected:
  std::unique_ptr<Fleet> join(const std::string& id, FakeInstance& instance) {
    auto fleet =
        std::make_unique<Fleet>(FleetOptions{id, 50ms, 1000ms, "test"},
                                std::make_unique<FakeControlChannel>(topic_), instance.local());
    fleet->start();
    return fleet;
  }
  static bool eventually(const std::function<bool()>& f) {
    for (int i = 0; i < 300; ++i) {
      if (f()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return f();
  }

  FakeControlTopic topic_;
};

TEST_F(FleetTest, WithNoTargetEverSetAHeldStartIsReleased) {
  FakeInstance a;
  auto fleet = join("a", a);
  ASSERT_TRUE(eventually([&] { return !a.held(); }));
  EXPECT_EQ(a.releases(), 1);
  EXPECT_FALSE(a.paused());
}

TEST_F(FleetTest, OnePauseQuietsEveryLiveInstanceBeforeItAnswers) {
  FakeInstance a, b, c;
  auto fa = join("a", a);
  auto fb = join("b", b);
  auto fc = join("c", c);
  ASSERT_TRUE(eventually([&] { return fa->status_json()["instances"].size() == 3; }));
  b.set_quiet(false);  // b's pause waits for a transaction to end
  std::atomic<bool> answered{false};
  Status result;
  std::thread pause([&] {
    result = fa->pause("maintenance", 10s);
    answered = true;
  });
  ASSERT_TRUE(eventually([&] { return a.paused() && b.paused() && c.paused(); }));
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(answered.load()) << "answered while an instance was not quiet";
  b.set_quiet(true);
  pause.join();
  EXPECT_TRUE(result) << result.message();
  // The same target on every instance, and resume likewise.
  ASSERT_TRUE(fb->resume(10s));
  EXPECT_FALSE(a.paused() || b.paused() || c.paused());
}

TEST_F(FleetTest, APauseThatCannotQuietAnInstanceSaysWhich) {
  FakeInstance a, b;
  auto fa = join("a", a);
  auto fb = join("b", b);
  ASSERT_TRUE(eventually([&] { return fa->status_json()["instances"].size() == 2; }));
  b.set_quiet(false);
  const Status st = fa->pause("maintenance", 1s);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("not every instance is quiet within 1 s: b"), std::string::npos)
      << st.message();
}

TEST_F(FleetTest, AnInstanceJoiningAPausedFleetStartsPausedAndTheTargetOutlivesRestarts) {
  FakeInstance a;
  auto fa = join("a", a);
  ASSERT_TRUE(fa->pause("schema patch", 5s));
  fa->stop();
  fa.reset();  // every instance stopped; the target stays in the topic
  FakeInstance a2, b;
  auto fa2 = join("a", a2);
  auto fb = join("b", b);
  ASSERT_TRUE(eventually([&] { return a2.paused() && b.paused(); }));
  EXPECT_EQ(a2.releases() + b.releases(), 0) << "released before reading the fleet's target";
  ASSERT_TRUE(fb->resume(5s));
  EXPECT_FALSE(a2.paused());
}

TEST_F(FleetTest, AnInstanceGoneSilentIsNotWaitedFor) {
  FakeInstance a, b;
  auto fa = join("a", a);
  {
    auto fb = join("b", b);
    ASSERT_TRUE(eventually([&] { return fa->status_json()["instances"].size() == 2; }));
  }  // b stops (its last record says so)
  ASSERT_TRUE(fa->pause("b is gone", 5s));
  // A crashed instance (no last record) drops out once its heartbeat is older than the timeout.
  topic_.append({instance_key("crashed"),
                 encode(record("crashed", SystemClock::instance().wall_ms(), false))});
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(fa->resume(5s));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 500ms) << "a live instance not waited for";
}

TEST_F(FleetTest, OfTwoProcessesWithOneInstanceIdTheOneStartedLaterStops) {
  FakeInstance first, second;
  auto older = join("a", first);
  ASSERT_TRUE(eventually([&] { return older->caught_up(); }));
  std::this_thread::sleep_for(5ms);  // started strictly later
  auto younger = join("a", second);
  ASSERT_TRUE(eventually([&] { return !younger->conflict().is_ok(); }));
  EXPECT_NE(younger->conflict().message().find("kafka.instance_id 'a'"), std::string::npos)
      << younger->conflict().message();
  std::this_thread::sleep_for(200ms);  // several heartbeats of each
  EXPECT_TRUE(older->conflict()) << older->conflict().message();
  // The older one knows the group's fencings come from the later one: it joins again each time.
  EXPECT_TRUE(older->outlives_a_later_twin());
  EXPECT_FALSE(younger->outlives_a_later_twin());
}

TEST_F(FleetTest, ARestartedInstanceIsNotItsOwnDuplicate) {
  FakeInstance a, a2;
  {
    auto first = join("a", a);
    ASSERT_TRUE(eventually([&] { return first->caught_up(); }));
  }
  // A crash: the last heartbeat of the earlier run is still fresh when the next one reads it.
  InstanceRecord crashed = record("a", SystemClock::instance().wall_ms());
  crashed.incarnation = "earlier-run";
  topic_.append({instance_key("a"), encode(crashed)});
  auto again = join("a", a2);
  ASSERT_TRUE(eventually([&] { return again->caught_up(); }));
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(again->conflict()) << again->conflict().message();
  EXPECT_FALSE(again->outlives_a_later_twin());
}

TEST_F(FleetTest, AnotherInstancesSpoolCountsUntilItIsForgotten) {
  FakeInstance a, b;
  b.set_spooled({{"t", 4, 1000, 1999, 1000}});
  auto fa = join("a", a);
  {
    auto fb = join("b", b);
    ASSERT_TRUE(eventually([&] { return fa->claimed_elsewhere("t", 4, 1500, 1600); }));
    EXPECT_FALSE(fa->forget("b")) << "a live instance cannot be forgotten";
  }
  // b's host is lost for good with its spool: still claimed until an operator forgets it.
  EXPECT_TRUE(fa->claimed_elsewhere("t", 4, 1500, 1600));
  // (Once its last record, "stopped", has been read here.)
  ASSERT_TRUE(eventually([&] { return fa->forget("b").is_ok(); }));
  ASSERT_TRUE(eventually([&] { return !fa->claimed_elsewhere("t", 4, 1500, 1600); }));
  EXPECT_FALSE(fa->forget("a")) << "nor itself";
}

}  // namespace
}  // namespace sluice::fleet
