// The fleet: what an instance knows of the others from the control topic (FleetView), and
// fleets of several instances over one in-memory topic, each on a host of its own — its own
// manual clock (monotonic and wall time both off the others'), its own link to the topic that
// can be cut one way or both, and a stand-in for its pipeline — stepped by the test, so every
// run is the same run. What they must keep: an instance writes only while its lease holds; a
// pause answers only once every instance is quiet or can no longer write; no two hosts' clocks
// are ever compared; records not signed with the fleet's key change nothing.

#include "fleet/fleet.h"

#include <gtest/gtest.h>

#include <deque>
#include <mutex>

#include "testing/fakes.h"

namespace sluice::fleet {
namespace {

using namespace std::chrono_literals;
using testing::FakeControlChannel;
using testing::FakeControlTopic;
using Steady = Clock::time_point;

InstanceRecord record(const std::string& id, bool quiet = false, const std::string& applied = "",
                      int64_t lease_ms = 10'000, uint64_t seq = 1) {
  InstanceRecord r;
  r.id = id;
  r.state = quiet ? "paused" : "running";
  r.quiet = quiet;
  r.applied = applied;
  r.incarnation = id + "-run";
  r.seq = seq;
  r.lease_ms = lease_ms;
  return r;
}

Target target(bool paused, const std::string& id, uint64_t epoch = 1) {
  Target t;
  t.paused = paused;
  t.id = id;
  t.by = "a";
  t.epoch = epoch;
  return t;
}

// --- FleetView --------------------------------------------------------------------------------

class FleetViewTest : public ::testing::Test {
 protected:
  void instance(const InstanceRecord& r) {
    view_.apply(instance_key(r.id), encode(r), offset_++, false, now_);
  }
  /// One of this host's own records read back: the clock in the topic.
  void own() { view_.apply(std::string(kProbeKey), "{}", offset_++, true, now_); }
  void set_target(const Target& t, bool own = true) {
    view_.apply(std::string(kTargetKey), encode(t), offset_++, own, now_);
  }

  FleetView view_{"self", 30s};
  Steady now_ = Steady(1h);
  int64_t offset_ = 0;
};

TEST_F(FleetViewTest, RecordsRoundTripAndTombstonesRemoveThem) {
  InstanceRecord r = record("a", true, "x1");
  r.partitions = {{"t", 0}, {"t", 3}};
  r.spooled = {{"t", 3, 100, 199, 100}};
  r.mariadb = "db1:3306 as sluice";
  instance(r);
  Target t = target(true, "x1");
  t.reason = "maintenance";
  set_target(t);
  ASSERT_EQ(view_.instances().size(), 1u);
  EXPECT_EQ(view_.instances().at("a").spooled.at(0).last, 199);
  EXPECT_EQ(view_.instances().at("a").partitions.size(), 2u);
  EXPECT_EQ(view_.instances().at("a").mariadb, "db1:3306 as sluice");
  EXPECT_EQ(view_.instances().at("a").lease_ms, 10'000);
  ASSERT_TRUE(view_.target());
  EXPECT_TRUE(view_.target()->paused);
  EXPECT_EQ(view_.target()->reason, "maintenance");
  view_.apply("instance/a", std::nullopt, offset_++, false, now_);
  EXPECT_TRUE(view_.instances().empty());
  view_.apply("instance/b", std::string("{not json"), offset_++, false, now_);
  view_.apply("nonsense", std::string("{}"), offset_++, false, now_);
  EXPECT_EQ(view_.unreadable(), 2u);
  instance(record("c"));
  view_.apply("instance/c", forgotten_value("c"), offset_++, false, now_);
  EXPECT_TRUE(view_.instances().empty()) << "a signed 'forgotten' record removes it too";
}

TEST_F(FleetViewTest, AnInstanceIsLiveWhileItsLeaseMayRunByThisHostsClockAlone) {
  InstanceRecord b = record("b");
  b.wall_ms = 1;  // its wall clock is nonsense: nothing here reads it
  instance(b);
  EXPECT_TRUE(view_.live("b", now_)) << "the newest record there is";
  EXPECT_EQ(view_.silent_for("b", now_), 0ms);
  own();  // b's record was in the topic by now
  now_ += 14'999ms;
  EXPECT_TRUE(view_.live("b", now_)) << "its lease and the grace have not run out";
  now_ += 1ms;
  EXPECT_FALSE(view_.live("b", now_));
  EXPECT_EQ(view_.silent_for("b", now_), 15s);
  instance(b);  // heard again (the same run may repeat a record: it counts only if newer)
  EXPECT_FALSE(view_.live("b", now_)) << "a record that does not count up is a replay";
  b.seq = 2;
  instance(b);
  EXPECT_TRUE(view_.live("b", now_));
  InstanceRecord stopped = record("s", true, "", 10'000);
  stopped.state = "stopped";
  instance(stopped);
  EXPECT_FALSE(view_.live("s", now_)) << "for status and a resume; a pause trusts no such word";
}

TEST_F(FleetViewTest, APauseCountsASilentInstanceOnlyOnceItsLeaseSinceBeforeThePauseHasRunOut) {
  instance(record("b"));
  own();
  now_ += 2s;
  set_target(target(true, "p1"));  // b's last record before the pause: in the topic by 0 s
  EXPECT_EQ(view_.pending("p1", true, now_), std::vector<std::string>{"b"});
  // b goes on writing records without having read the pause (it cannot hear): they prove
  // nothing, since its lease was renewed at most by a record from before the pause.
  for (int i = 0; i < 12; ++i) {
    now_ += 1s;
    InstanceRecord later = record("b", false, "", 10'000, 2 + i);
    instance(later);
    own();
    EXPECT_FALSE(view_.heard_since_target("b") && view_.pending("p1", true, now_).empty());
  }
  now_ = Steady(1h) + 14'999ms;
  EXPECT_EQ(view_.pending("p1", true, now_), std::vector<std::string>{"b"});
  now_ += 1ms;
  EXPECT_TRUE(view_.pending("p1", true, now_).empty())
      << "its lease (10 s) and the grace (5 s) since before the pause have run out";
}

TEST_F(FleetViewTest, APauseIsDoneAtOnceForInstancesThatSayTheyAreQuiet) {
  instance(record("a"));
  instance(record("b"));
  own();
  set_target(target(true, "p1"));
  instance(record("a", true, "p1", 10'000, 2));
  instance(record("b", false, "p1", 10'000, 2));  // applied, still closing
  EXPECT_EQ(view_.pending("p1", true, now_), std::vector<std::string>{"b"});
  EXPECT_TRUE(view_.pending("p1", false, now_).empty()) << "a resume needs no quiet";
  instance(record("b", true, "p1", 10'000, 3));
  EXPECT_TRUE(view_.pending("p1", true, now_).empty());
}

TEST_F(FleetViewTest, AnInstanceFirstHeardOfAfterThePauseHoldsNothingUp) {
  own();
  set_target(target(true, "p1"));
  instance(record("late"));  // it read the pause before it could renew a lease: never wrote
  EXPECT_TRUE(view_.pending("p1", true, now_).empty());
}

TEST_F(FleetViewTest, AVersionWithoutLeasesIsWaitedForUntilTheInstanceTimeout) {
  instance(record("old", false, "", /*lease_ms=*/0));
  own();
  set_target(target(true, "p1"));
  now_ += 29s;
  EXPECT_EQ(view_.pending("p1", true, now_), std::vector<std::string>{"old"});
  now_ += 1s;
  EXPECT_TRUE(view_.pending("p1", true, now_).empty());
}

TEST_F(FleetViewTest, AnOldTargetWrittenAgainDoesNotFlipTheFleet) {
  set_target(target(true, "p1", 1), false);
  set_target(target(false, "r1", 2), false);
  set_target(target(true, "p1", 1), false);  // replayed: the same id
  EXPECT_FALSE(view_.target()->paused);
  Target stale = target(true, "p0", 1);  // an older one never seen here (compacted away)
  set_target(stale, false);
  EXPECT_FALSE(view_.target()->paused);
  EXPECT_EQ(view_.replayed(), 2u);
  set_target(target(true, "p2", 3), false);
  EXPECT_TRUE(view_.target()->paused);
}

TEST_F(FleetViewTest, OnlyWhatAnotherSpoolHoldsIsClaimedAndThatCountsWhetherItIsLiveOrNot) {
  InstanceRecord gone = record("gone");  // dead for ages: its disk may come back
  gone.spooled = {{"t", 2, 500, 899, 400}};
  instance(gone);
  InstanceRecord self = record("self");
  self.spooled = {{"t", 1, 0, 99, 100}};
  instance(self);
  own();
  now_ += 1h;
  EXPECT_EQ(view_.first_claimed("t", 2, 100, 600), 500) << "[100, 500) is nobody's";
  EXPECT_EQ(view_.first_claimed("t", 2, 600, 700), 600);
  EXPECT_EQ(view_.first_claimed("t", 2, 899, 900), 899);
  EXPECT_FALSE(view_.first_claimed("t", 2, 900, 1000));
  EXPECT_FALSE(view_.first_claimed("t", 2, 0, 500));
  EXPECT_FALSE(view_.first_claimed("t", 1, 0, 100)) << "its own spool is not 'elsewhere'";
}

TEST_F(FleetViewTest, OnlyAStoppedOrLongSilentInstanceMayBeForgotten) {
  instance(record("cut"));
  InstanceRecord stopped = record("stopped", true);
  stopped.state = "stopped";
  instance(stopped);
  own();
  EXPECT_FALSE(view_.forgettable("self", now_)) << "nor itself";
  EXPECT_FALSE(view_.forgettable("nobody", now_));
  EXPECT_FALSE(view_.forgettable("stopped", now_)) << "its lease may not have run out yet";
  now_ += 15s;
  EXPECT_TRUE(view_.forgettable("stopped", now_));
  EXPECT_FALSE(view_.forgettable("cut", now_)) << "merely cut off for a moment";
  now_ += 15s;
  EXPECT_TRUE(view_.forgettable("cut", now_)) << "silent for the instance timeout (30 s)";
}

TEST_F(FleetViewTest, WhatAnyoneCanWriteIsBounded) {
  FleetView small("self", 30s, {.max_record_bytes = 4096, .max_instances = 2,
                                .max_spooled_ranges = 3});
  small.apply("instance/big", std::string(5000, ' '), 0, false, now_);
  small.apply("instance/a", encode(record("a")), 1, false, now_);
  small.apply("instance/b", encode(record("b")), 2, false, now_);
  small.apply("instance/c", encode(record("c")), 3, false, now_);
  InstanceRecord many = record("a", false, "", 10'000, 2);
  many.spooled.assign(4, {"t", 0, 0, 1, 2});
  small.apply("instance/a", encode(many), 4, false, now_);
  EXPECT_EQ(small.instances().size(), 2u);
  EXPECT_TRUE(small.instances().at("a").spooled.empty());
  EXPECT_EQ(small.over_limits(), 3u);
}

// --- Fleets on hosts of their own ---------------------------------------------------------------

/// A stand-in for one instance's pipeline: its gate paused or not, quiet once a pause has been
/// applied (unless held open by `set_closing`), held until released or told.
class FakeInstance final : public LocalInstance {
 public:
  InstanceRecord describe() override {
    std::lock_guard lock(mu_);
    InstanceRecord r;
    r.state = held_ ? "starting" : paused_ ? "paused" : "running";
    r.quiet = held_ || (paused_ && !closing_);
    r.spooled = spooled_;
    r.server = server_;
    return r;
  }
  std::future<Status> pause(const std::string& reason, bool local) override {
    std::lock_guard lock(mu_);
    held_ = false;
    paused_ = true;
    local_ = local;
    reason_ = reason;
    ++pauses_;
    return ready();
  }
  std::future<Status> resume(const std::string& server) override {
    std::lock_guard lock(mu_);
    held_ = false;
    paused_ = false;
    local_ = false;
    expected_server_ = server;
    ++resumes_;
    return ready();
  }
  std::future<Status> release() override {
    std::lock_guard lock(mu_);
    held_ = false;
    ++releases_;
    return ready();
  }
  std::optional<std::string> local_pause() override {
    std::lock_guard lock(mu_);
    if (paused_ && local_) return reason_;
    return std::nullopt;
  }
  void set_closing(bool closing) {
    std::lock_guard lock(mu_);
    closing_ = closing;
  }
  /// The @@server_uid its pipeline last saw ("" unknown).
  void set_server(std::string server) {
    std::lock_guard lock(mu_);
    server_ = std::move(server);
  }
  std::string expected_server() {
    std::lock_guard lock(mu_);
    return expected_server_;
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
  bool quiet() {
    std::lock_guard lock(mu_);
    return held_ || (paused_ && !closing_);
  }
  int releases() {
    std::lock_guard lock(mu_);
    return releases_;
  }
  int resumes() {
    std::lock_guard lock(mu_);
    return resumes_;
  }
  std::string reason() {
    std::lock_guard lock(mu_);
    return reason_;
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
  bool local_ = false;
  bool closing_ = false;
  int pauses_ = 0, resumes_ = 0, releases_ = 0;
  std::string reason_;
  std::string server_;
  std::string expected_server_;
  std::vector<SpooledRange> spooled_;
};

/// One host: its clock (monotonic and wall time off the others' by its own amounts), its link
/// to the topic, its pipeline's stand-in, its lease, its fleet.
struct Host {
  Host(const std::string& id, FakeControlTopic& topic, std::chrono::milliseconds skew,
       RecordSigner signer, const std::string& mariadb)
      : clock(1h + skew, skew), lease(clock) {
    auto link = std::make_unique<FakeControlChannel>(topic);
    channel = link.get();
    fleet = std::make_unique<Fleet>(FleetOptions{.instance_id = id,
                                                 .heartbeat = 1000ms,
                                                 .lease = 10'000ms,
                                                 .instance_timeout = 30'000ms,
                                                 .version = "test",
                                                 .mariadb = mariadb},
                                    std::move(link), lease, std::move(signer), clock);
    fleet->attach(instance);
  }
  /// Writing: released or resumed, not paused, and the lease holds.
  bool writing() { return !instance.held() && !instance.paused() && lease.valid(); }

  ManualClock clock;
  WriteLease lease;
  FakeInstance instance;
  FakeControlChannel* channel = nullptr;
  std::unique_ptr<Fleet> fleet;
};

class FleetTest : public ::testing::Test {
 protected:
  Host& join(const std::string& id, std::chrono::milliseconds skew = 0ms,
             const std::string& mariadb = "db1:3306 as sluice") {
    auto signer = key_.empty() ? RecordSigner() : RecordSigner::with_secret(key_).value();
    return *hosts_.emplace_back(
        std::make_unique<Host>(id, topic_, skew, std::move(signer), mariadb));
  }
  /// Every host takes one round, then every clock moves `tick`; the invariant is checked.
  void step(int rounds = 1, std::chrono::milliseconds tick = 100ms) {
    for (int i = 0; i < rounds; ++i) {
      for (auto& h : hosts_) {
        if (h->fleet) h->fleet->step(0ms);
      }
      for (auto& h : hosts_) h->clock.advance(tick);
    }
  }
  /// Steps until `done` (at most `limit` of simulated time).
  bool until(const std::function<bool()>& done, std::chrono::milliseconds limit = 60s) {
    for (auto t = 0ms; t < limit; t += 100ms) {
      if (done()) return true;
      step();
    }
    return done();
  }
  /// Runs a pause or resume through `by` until it answers, checking after every round that
  /// an answer never comes while some instance can still write.
  Status request(Host& by, bool pause, std::chrono::milliseconds timeout = 60s,
                 const std::string& reason = "maintenance") {
    auto r = by.fleet->begin(pause, reason, timeout);
    if (!r) return r.status();
    for (;;) {
      if (auto done = by.fleet->check(*r)) {
        if (*done && pause) {
          for (auto& h : hosts_) {
            EXPECT_FALSE(h->writing()) << "the pause answered while an instance could write";
          }
        }
        return *done;
      }
      step();
    }
  }

  FakeControlTopic topic_;
  std::string key_;
  std::deque<std::unique_ptr<Host>> hosts_;
};

TEST_F(FleetTest, AStartIsReleasedOnlyOnceTheInstanceHasReadItsOwnRecordBack) {
  Host& a = join("a");
  a.channel->cut(/*reads=*/false, /*writes=*/true);  // it reads, but its records go nowhere
  step(50);
  EXPECT_TRUE(a.fleet->caught_up());
  EXPECT_TRUE(a.instance.held()) << "released before its own record was in the topic";
  EXPECT_FALSE(a.lease.valid());
  a.channel->cut(false, false);
  ASSERT_TRUE(until([&] { return !a.instance.held(); }));
  EXPECT_EQ(a.instance.releases(), 1);
  EXPECT_TRUE(a.lease.valid());
}

TEST_F(FleetTest, OnePauseQuietsEveryInstanceBeforeItAnswers) {
  Host& a = join("a");
  Host& b = join("b", 90s);
  Host& c = join("c", -90s);
  ASSERT_TRUE(until([&] { return a.writing() && b.writing() && c.writing(); }));
  b.instance.set_closing(true);  // b's pause waits for a transaction to end
  auto r = a.fleet->begin(true, "maintenance", 60s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(until([&] { return a.instance.paused() && b.instance.paused() && c.instance.paused(); }));
  step(20);
  EXPECT_FALSE(a.fleet->check(*r)) << "answered while an instance was not quiet";
  b.instance.set_closing(false);
  ASSERT_TRUE(until([&] { return a.fleet->check(*r).has_value(); }));
  EXPECT_TRUE(*a.fleet->check(*r)) << a.fleet->check(*r)->message();
  // The same target on every instance, and resume likewise, through another.
  EXPECT_TRUE(request(b, false));
  EXPECT_TRUE(until([&] { return a.writing() && b.writing() && c.writing(); }));
}

TEST_F(FleetTest, APauseThatCannotQuietAnInstanceSaysWhich) {
  Host& a = join("a");
  Host& b = join("b");
  ASSERT_TRUE(until([&] { return a.writing() && b.writing(); }));
  b.instance.set_closing(true);
  const Status st = request(a, true, 2s);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("not every instance is quiet within 2 s: b (closing"),
            std::string::npos)
      << st.message();
}

TEST_F(FleetTest, AnInstanceCutOffFromTheTopicStopsWritingWithinItsLease) {
  Host& a = join("a");
  Host& b = join("b", 2min);
  ASSERT_TRUE(until([&] { return a.writing() && b.writing(); }));
  b.channel->cut(true, true);
  step(95);  // 9.5 s
  EXPECT_TRUE(b.writing()) << "a lease of 10 s holds for 10 s";
  step(15);
  EXPECT_FALSE(b.lease.valid()) << "still writing 11 s after it last heard the fleet";
  EXPECT_TRUE(a.writing());
  b.channel->cut(false, false);
  ASSERT_TRUE(until([&] { return b.writing(); })) << "heard again: it writes again";
}

TEST_F(FleetTest, APauseCountsAnInstanceCutOffBothWaysOnlyOnceItsLeaseHasRunOut) {
  Host& a = join("a");
  Host& b = join("b", -2min);
  ASSERT_TRUE(until([&] { return a.writing() && b.writing(); }));
  b.channel->cut(true, true);
  const auto asked = a.clock.now();
  EXPECT_TRUE(request(a, true));  // checks b cannot write when it answers
  const auto waited = a.clock.now() - asked;
  EXPECT_GE(waited, 10s) << "answered before b's lease could have run out";
  EXPECT_LE(waited, 16s + 1s) << "the lease (10 s), the grace (5 s) and a heartbeat at most";
  EXPECT_FALSE(b.instance.paused()) << "it never heard the pause";
  // Healed, it reads the pause before it could write again.
  b.channel->cut(false, false);
  ASSERT_TRUE(until([&] { return b.instance.paused() && b.lease.valid(); }));
  for (int i = 0; i < 50; ++i) {
    step();
    ASSERT_FALSE(b.writing());
  }
}

TEST_F(FleetTest, AnInstanceThatSpeaksButCannotHearIsCountedByItsLeaseNotItsWords) {
  Host& a = join("a");
  Host& b = join("b");
  ASSERT_TRUE(until([&] { return a.writing() && b.writing(); }));
  b.channel->cut(/*reads=*/true, /*writes=*/false);  // its heartbeats go on arriving
  EXPECT_TRUE(request(a, true));
  EXPECT_FALSE(b.lease.valid());
  EXPECT_FALSE(b.instance.paused());
}

TEST_F(FleetTest, AnInstanceThatHearsButCannotSpeakAppliesThePauseAndStopsWriting) {
  Host& a = join("a");
  Host& b = join("b");
  ASSERT_TRUE(until([&] { return a.writing() && b.writing(); }));
  b.channel->cut(/*reads=*/false, /*writes=*/true);
  EXPECT_TRUE(request(a, true));
  EXPECT_TRUE(b.instance.paused()) << "it read the pause";
}

TEST_F(FleetTest, AStartingInstanceIsCountedByAPauseBeforeItCanWrite) {
  Host& a = join("a");
  ASSERT_TRUE(until([&] { return a.writing(); }));
  Host& c = join("c");
  c.fleet->step(0ms);  // c's first record is in the topic; c has not read it back yet
  auto r = a.fleet->begin(true, "schema patch", 60s);
  ASSERT_TRUE(r);
  for (;;) {
    ASSERT_FALSE(c.writing()) << "c wrote before it had read the pause";
    if (auto done = a.fleet->check(*r)) {
      ASSERT_TRUE(*done) << done->message();
      break;
    }
    step();
  }
  EXPECT_TRUE(c.instance.paused());
  EXPECT_EQ(c.instance.releases(), 0);
}

TEST_F(FleetTest, AnInstanceJoiningAPausedFleetStartsPausedAndTheTargetOutlivesRestarts) {
  Host& a = join("a");
  ASSERT_TRUE(until([&] { return a.writing(); }));
  ASSERT_TRUE(request(a, true, 5s, "schema patch"));
  a.fleet->stop();
  hosts_.clear();  // every instance stopped; the target stays in the topic
  Host& a2 = join("a");
  Host& b = join("b");
  ASSERT_TRUE(until([&] { return a2.instance.paused() && b.instance.paused(); }));
  EXPECT_EQ(a2.instance.releases() + b.instance.releases(), 0)
      << "released before reading the fleet's target";
  EXPECT_EQ(b.instance.reason(), "schema patch");
  ASSERT_TRUE(request(b, false));
  EXPECT_TRUE(until([&] { return a2.writing() && b.writing(); }));
}

TEST_F(FleetTest, ARequestBeforeTheTopicIsReadIsRefusedNotPublishedUnderAStaleEpoch) {
  // A restarted instance asked to resume before it has read the fleet topic: a target numbered
  // from nothing would lose to the pause already there, and the resume would fail as if
  // another request had come after it.
  Host& a = join("a");
  ASSERT_TRUE(until([&] { return a.writing(); }));
  ASSERT_TRUE(request(a, true, 5s, "kernel upgrade"));
  a.fleet->stop();
  hosts_.clear();
  Host& a2 = join("a");
  auto early = a2.fleet->begin(false, "", 5s);
  ASSERT_FALSE(early) << "published before the fleet's state was known";
  EXPECT_NE(early.status().message().find("has not been read yet"), std::string::npos)
      << early.status().message();
  ASSERT_TRUE(until([&] { return a2.instance.paused(); }));
  EXPECT_TRUE(request(a2, false)) << "a resume once the topic is read";
  EXPECT_TRUE(until([&] { return a2.writing(); }));
}

TEST_F(FleetTest, ClocksTwoMinutesApartChangeNothing) {
  Host& a = join("a", 2min);
  Host& b = join("b", -2min);
  Host& c = join("c", 0ms);
  ASSERT_TRUE(until([&] { return a.writing() && b.writing() && c.writing(); }));
  for (int i = 0; i < 3; ++i) {
    const auto asked = b.clock.now();
    ASSERT_TRUE(request(b, true));
    EXPECT_LT(b.clock.now() - asked, 2s) << "an instance with a skewed clock was waited for";
    ASSERT_TRUE(request(a, false));
  }
  const auto status = c.fleet->status_json();
  for (const auto& i : status["instances"]) EXPECT_TRUE(i["live"].get<bool>()) << i.dump();
}

TEST_F(FleetTest, OfTwoProcessesWithOneInstanceIdTheOneWhoseRecordsCameLaterStops) {
  Host& older = join("a", 1min);
  ASSERT_TRUE(until([&] { return older.writing(); }));
  Host& younger = join("a", -1min);  // its wall clock says it started long before: no matter
  ASSERT_TRUE(until([&] { return !younger.fleet->conflict().is_ok(); }));
  EXPECT_NE(younger.fleet->conflict().message().find("kafka.instance_id 'a'"), std::string::npos)
      << younger.fleet->conflict().message();
  EXPECT_FALSE(younger.lease.valid());
  step(20);
  EXPECT_TRUE(older.fleet->conflict()) << older.fleet->conflict().message();
  // The older one knows the group's fencings come from the later one: it joins again each time.
  EXPECT_TRUE(older.fleet->outlives_a_later_twin());
  EXPECT_FALSE(younger.fleet->outlives_a_later_twin());
}

TEST_F(FleetTest, ARestartedInstanceIsNotItsOwnDuplicate) {
  Host& first = join("a");
  ASSERT_TRUE(until([&] { return first.writing(); }));
  hosts_.clear();  // a crash: no last record; its last heartbeat is read by the next run
  Host& again = join("a");
  ASSERT_TRUE(until([&] { return again.writing(); }));
  step(20);
  EXPECT_TRUE(again.fleet->conflict()) << again.fleet->conflict().message();
  EXPECT_FALSE(again.fleet->outlives_a_later_twin());
}

TEST_F(FleetTest, AnotherInstancesSpoolCountsUntilItIsForgottenWhichNeedsLongSilence) {
  Host& a = join("a");
  Host& b = join("b");
  b.instance.set_spooled({{"t", 4, 1000, 1999, 1000}});
  ASSERT_TRUE(until([&] { return a.fleet->first_claimed("t", 4, 1500, 1600).has_value(); }));
  EXPECT_FALSE(a.fleet->forget("b")) << "a live instance cannot be forgotten";
  b.channel->cut(true, true);  // partitioned, not dead
  step(150);
  EXPECT_TRUE(a.fleet->first_claimed("t", 4, 1500, 1600)) << "its spool still counts";
  const Status early = a.fleet->forget("b");
  EXPECT_FALSE(early) << "forgotten 15 s after its last word: it may merely be cut off";
  step(160);  // 31 s of silence
  ASSERT_TRUE(a.fleet->forget("b"));
  ASSERT_TRUE(until([&] { return !a.fleet->first_claimed("t", 4, 1500, 1600); }));
  EXPECT_FALSE(a.fleet->forget("a")) << "nor itself";
}

TEST_F(FleetTest, AResumeIsRefusedWhileInstancesWriteToDifferentServers) {
  Host& a = join("a", 0ms, "db1:3306 as sluice");
  Host& b = join("b", 0ms, "db1:3306 as sluice");
  ASSERT_TRUE(until([&] { return a.writing() && b.writing(); }));
  ASSERT_TRUE(request(a, true));
  a.fleet->set_endpoint("db2:3306 as sluice");  // a failover: only a was retargeted
  step(30);
  const Status refused = request(a, false);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("b writes to db1:3306 as sluice"), std::string::npos)
      << refused.message();
  EXPECT_TRUE(a.instance.paused() && b.instance.paused());
  // Even a resume from an instance of the old server's side does not send b there alone.
  ASSERT_FALSE(request(b, false));
  b.fleet->set_endpoint("db2:3306 as sluice");
  step(30);
  ASSERT_TRUE(request(b, false));
  EXPECT_TRUE(until([&] { return a.writing() && b.writing(); }));
}

TEST_F(FleetTest, EndpointsNamedDifferentlyOnTwoHostsAreOneServerByItsOwnIdentity) {
  Host& a = join("a", 0ms, "db1.example:3306 as sluice");
  Host& b = join("b", 0ms, "10.0.0.7:3306 as sluice");  // the same server, by address
  a.instance.set_server("uid-of-db1");
  b.instance.set_server("uid-of-db1");
  ASSERT_TRUE(until([&] { return a.writing() && b.writing(); }));
  ASSERT_TRUE(request(a, true));
  ASSERT_TRUE(request(b, false));
  EXPECT_TRUE(until([&] { return a.writing() && b.writing(); }));
  EXPECT_EQ(a.instance.expected_server(), "uid-of-db1") << "the pipeline checks it on connect";
  // A failover: b is retargeted (its server unknown until it connects), a is not.
  ASSERT_TRUE(request(a, true));
  b.fleet->set_endpoint("db2.example:3306 as sluice");
  b.instance.set_server("");
  step(30);
  const Status refused = request(b, false);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("a writes to db1.example:3306"), std::string::npos)
      << refused.message();
}

TEST_F(FleetTest, ARunningTargetNamingAnotherServerIsNotApplied) {
  Host& a = join("a", 0ms, "db2:3306 as sluice");
  Host& b = join("b", 0ms, "db1:3306 as sluice");
  b.channel->cut(true, true);  // b is away while the resume is decided
  ASSERT_TRUE(until([&] { return a.writing(); }));
  ASSERT_TRUE(request(a, true));
  step(200);
  ASSERT_TRUE(request(a, false)) << "b is not live: not asked";
  b.channel->cut(false, false);
  step(100);
  EXPECT_FALSE(b.writing()) << "it would write to a server that is not the fleet's";
  EXPECT_NE(b.fleet->status_json().value("not_applied", "").find("db2:3306"), std::string::npos);
  b.fleet->set_endpoint("db2:3306 as sluice");
  EXPECT_TRUE(until([&] { return b.writing(); }));
}

TEST_F(FleetTest, ALocalPauseIsAdoptedByTheFleetOnceTheTopicIsBack) {
  Host& a = join("a");
  Host& b = join("b");
  ASSERT_TRUE(until([&] { return a.writing() && b.writing(); }));
  topic_.set_reachable(false);  // Kafka is down for everyone
  ASSERT_TRUE(a.fleet->pause_locally("failover", 1s));
  EXPECT_FALSE(a.writing());
  step(150);
  EXPECT_FALSE(b.writing()) << "b cannot hear the fleet: its lease runs out";
  topic_.set_reachable(true);
  ASSERT_TRUE(until([&] { return a.fleet->status_json()["target"].is_object(); }));
  step(50);
  EXPECT_EQ(a.fleet->status_json()["target"]["state"], "paused");
  EXPECT_NE(a.fleet->status_json()["target"]["reason"].get<std::string>().find("failover"),
            std::string::npos);
  EXPECT_TRUE(b.instance.paused()) << "the fleet adopted a's pause";
  for (int i = 0; i < 30; ++i) {
    step();
    ASSERT_FALSE(a.writing() || b.writing());
  }
  ASSERT_TRUE(request(b, false));
  EXPECT_TRUE(until([&] { return a.writing() && b.writing(); }));
}

TEST_F(FleetTest, RecordsNotSignedWithTheFleetsKeyChangeNothing) {
  key_ = "a-secret-of-at-least-16-bytes";
  Host& a = join("a");
  Host& b = join("b");
  ASSERT_TRUE(until([&] { return a.writing() && b.writing(); }));
  // An outsider who can write to the topic: an unsigned pause, a pause signed with another
  // key, a tombstone forgetting b, a forged record of b saying it is quiet.
  topic_.append({"target", encode(target(true, "forged-1", 99))});
  const auto other = RecordSigner::with_secret("another-secret-of-16-bytes").value();
  topic_.append({"target", other.seal("target", encode(target(true, "forged-2", 99)))});
  topic_.append({"instance/b", std::nullopt});
  // A record signed for one key does not pass for another.
  topic_.append({"target", RecordSigner::with_secret(key_).value().seal(
                               "instance/b", encode(target(true, "forged-3", 99)))});
  step(30);
  EXPECT_TRUE(a.writing() && b.writing());
  EXPECT_EQ(a.fleet->status_json()["records_rejected"], 4);
  EXPECT_EQ(a.fleet->status_json()["instances"].size(), 2u);
  ASSERT_TRUE(request(a, true));
  EXPECT_TRUE(b.instance.paused()) << "signed records are read";
  // A signed target written again by someone who copied it: ignored.
  const auto copied = topic_.read(0);
  for (const auto& rec : copied) {
    if (rec.key == "target" && rec.value && rec.value->starts_with("hmac")) {
      ASSERT_TRUE(request(a, false));
      topic_.append(rec);
      step(30);
      EXPECT_TRUE(a.writing() && b.writing()) << "a replayed pause flipped the fleet";
      break;
    }
  }
}

}  // namespace
}  // namespace sluice::fleet
