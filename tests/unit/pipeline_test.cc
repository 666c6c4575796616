// The pipeline's state machine — running, paused, draining, outage, and the transitions
// between them — driven round by round over fakes of Kafka, MariaDB and the spool, with a manual
// clock. Writers are real threads. Every test asserts the exact outcome (each offset stored
// once, in offset order) and, after every round, invariant 1: Kafka never holds a committed
// offset for an event that is neither in the database nor synced in the spool.

#include "ingest/pipeline.h"

#include <gtest/gtest.h>

#include <future>
#include <numeric>
#include <set>

#include "testing/fake_schema_source.h"
#include "testing/fakes.h"
#include "testing/harness.h"

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;
using storage::Batch;
using namespace testing;  // the fakes (testing/fakes.h) and EventFactory
using Mode = FakeDatabase::Mode;

constexpr int32_t kPartitions = 2;
const std::string kTopic = "eventlogging_t";

class PipelineTest : public ::testing::Test {
 protected:
  PipelineTest() {
    config_.kafka.topics = {kTopic};
    config_.kafka.group_id = "g";
    config_.mariadb.writers = 2;
    config_.batch.max_rows = 10;
    config_.batch.max_delay_ms = 100;
    config_.spool.path = "(memory)";
    config_.schemas_path = testing::source_dir() + "/schemas";
    std::vector<testing::PartitionKey> all;
    for (int32_t p = 0; p < kPartitions; ++p) all.emplace_back(kTopic, p);
    kafka_.set_assignment(all);
  }

  ~PipelineTest() override {
    db_.hold_writes(false);
    db_.set_mode(Mode::kUp);
    if (pipeline_) pipeline_->shutdown();
    if (spool_ != nullptr) {
      EXPECT_EQ(spool_->contract_violations(), 0) << "offsets spooled twice";
    }
  }

  /// Builds and starts a pipeline over the fakes; `spool` defaults to an empty one.
  Status start(std::unique_ptr<MemorySpool> spool = nullptr) {
    if (!spool) spool = std::make_unique<MemorySpool>();
    spool_ = spool.get();
    PipelineParts parts;
    parts.source = [this](SourceHandler handler) -> Result<std::unique_ptr<EventSource>> {
      auto source = std::make_unique<FakeSource>(kafka_, std::move(handler));
      source_ = source.get();
      ++sources_made_;
      return std::unique_ptr<EventSource>(std::move(source));
    };
    parts.sinks = [this](const MariaDbConfig& m) {
      return std::make_unique<FakeSession>(m.host == "new-primary" ? new_primary_ : db_,
                                           lease_.get());
    };
    parts.lease = lease_.get();
    parts.spool = std::move(spool);
    parts.fleet = &fleet_;
    parts.schemas = std::move(repository_);
    pipeline_ = std::make_unique<Pipeline>(config_, std::move(parts), clock_);
    return pipeline_->start();
  }

  /// A process killed at this instant: nothing is flushed, committed or closed. The spool a
  /// restart finds holds only what was synced.
  std::unique_ptr<MemorySpool> crash() {
    EXPECT_EQ(spool_->contract_violations(), 0) << "offsets spooled twice";
    auto survivor = spool_->crash_copy();
    pipeline_.reset();
    source_ = nullptr;
    spool_ = nullptr;
    return survivor;
  }

  /// Produces `n` good events to every partition, continuing each partition's sequence.
  void produce(int n) {
    for (int i = 0; i < n; ++i) {
      for (int32_t p = 0; p < kPartitions; ++p) {
        kafka_.produce(kTopic, p,
                       EventFactory::good(3, 0, static_cast<uint32_t>(p), produced_[p]++));
      }
    }
  }

  /// Steps the pipeline (time moving `tick` per round) until `done` holds, or 10 s of real time.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds tick = 10ms) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      pipeline_->step(1ms);
      clock_.advance(tick);
      check_kafka_commits_durable();
      if (::testing::Test::HasFailure()) return false;
    }
    return done();
  }

  void run_rounds(int n, std::chrono::milliseconds tick = 10ms) {
    for (int i = 0; i < n; ++i) {
      pipeline_->step(1ms);
      clock_.advance(tick);
      check_kafka_commits_durable();
    }
  }

  /// Invariant 1, checked after every round: the group's committed offset never covers an event
  /// that is not in MariaDB — not even one synced in the spool, so that another instance taking
  /// the partition over from the group's offset can never skip an event held only in a spool.
  void check_kafka_commits_durable() {
    const auto& commits = kafka_.commits();
    for (; commits_checked_ < commits.size(); ++commits_checked_) {
      const auto& c = commits[commits_checked_];
      const int64_t in_db =
          std::max(db_.next_offset(c.partition.first, c.partition.second),
                   new_primary_.next_offset(c.partition.first, c.partition.second));
      ASSERT_LE(c.offset, std::max<int64_t>(in_db, 0))
          << "Kafka offset " << c.offset << " committed for " << c.partition.first << "/"
          << c.partition.second << " but MariaDB holds only up to " << in_db;
    }
  }

  std::string state() { return std::string(to_string(pipeline_->status().state)); }

  bool all_stored() {
    for (int32_t p = 0; p < kPartitions; ++p) {
      if (db_.next_offset(kTopic, p) != static_cast<int64_t>(produced_[p])) return false;
    }
    return true;
  }

  bool spool_holds_everything_unstored() {
    for (int32_t p = 0; p < kPartitions; ++p) {
      for (int64_t o = std::max<int64_t>(db_.next_offset(kTopic, p), 0);
           o < static_cast<int64_t>(produced_[p]); ++o) {
        if (!spool_->holds(kTopic, p, o)) return false;
      }
    }
    return true;
  }

  size_t stored_count() {
    size_t n = 0;
    for (int32_t p = 0; p < kPartitions; ++p) n += db_.stored(kTopic, p).size();
    return n;
  }

  /// Every offset stored exactly once, in offset order, and nothing else.
  void expect_exact() {
    for (int32_t p = 0; p < kPartitions; ++p) {
      const auto stored = db_.stored(kTopic, p);
      std::vector<int64_t> want(produced_[p]);
      std::iota(want.begin(), want.end(), 0);
      EXPECT_EQ(stored, want) << "partition " << p;
    }
  }

  Status wait(std::future<Status>& f) {
    EXPECT_TRUE(run_until([&] { return f.wait_for(0s) == std::future_status::ready; }));
    return f.wait_for(0s) == std::future_status::ready ? f.get() : Status::error("not ready");
  }

  Status pause(const std::string& reason = "maintenance") {
    auto f = pipeline_->request_pause(reason);
    return wait(f);
  }
  Status resume() {
    auto f = pipeline_->request_resume();
    return wait(f);
  }

  Config config_;
  ManualClock clock_;
  FakeKafka kafka_;
  FakeDatabase db_;
  FakeDatabase new_primary_;  ///< where a retarget to host "new-primary" writes
  MemorySpool* spool_ = nullptr;
  FakeSource* source_ = nullptr;
  std::unique_ptr<Pipeline> pipeline_;
  uint64_t produced_[kPartitions] = {};
  size_t commits_checked_ = 0;
  testing::FakeFleetClaims fleet_;
  std::unique_ptr<WriteLease> lease_;  ///< set by a test before start(): the fleet's lease
  int sources_made_ = 0;  ///< consumers the pipeline built

  /// A schema repository for the pipeline start() makes (and a cache folder for it). Down, it
  /// fails as the real one does (backoff on the test's clock), or with `news_at_every_ask` it
  /// finishes a fetch at every ask — as a repository busy answering other revisions does,
  /// each answer waking every partition that waits.
  testing::FakeSchemaSource* use_repository(bool down, bool news_at_every_ask = false) {
    config_.schema_repository.cache_path = cache_.path();
    auto repo = news_at_every_ask ? std::make_unique<testing::FakeSchemaSource>()
                                  : std::make_unique<testing::FakeSchemaSource>(clock_);
    auto* out = repo.get();
    out->set_down(down);
    repository_ = std::move(repo);
    return out;
  }
  std::unique_ptr<SchemaSource> repository_;  ///< set by use_repository before start()
  testing::TempDir cache_;
};

TEST_F(PipelineTest, RunningStoresEveryEventOnceInOrderAndCommitsKafkaAfterTheDatabase) {
  ASSERT_TRUE(start());
  produce(25);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  ASSERT_TRUE(run_until(
      [&] { return kafka_.committed(kTopic, 0) == 25 && kafka_.committed(kTopic, 1) == 25; }));
  EXPECT_EQ(state(), "running");
  EXPECT_EQ(spool_->commits(), 0) << "a running pipeline has no reason to touch the spool";
}

TEST_F(PipelineTest, PauseAnswersOnlyOnceTheOpenTransactionEndedAndLeavesNoConnection) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  db_.hold_writes(true);
  produce(10);
  ASSERT_TRUE(run_until([&] { return db_.writes_waiting(); }));
  auto paused = pipeline_->request_pause("security update");
  run_rounds(50);
  EXPECT_NE(paused.wait_for(0s), std::future_status::ready)
      << "pause answered while a transaction was open";
  EXPECT_GE(db_.open_transactions(), 1);
  db_.hold_writes(false);
  ASSERT_TRUE(wait(paused));
  EXPECT_EQ(db_.open_transactions(), 0);
  EXPECT_EQ(db_.connections(), 0);
  EXPECT_EQ(state(), "paused");
  EXPECT_EQ(pipeline_->status().pause_reason, "security update");
  ASSERT_TRUE(spool_->pause());
  EXPECT_EQ(spool_->pause()->reason, "security update");

  // Paused means quiet: events go to the spool, and nothing opens a connection.
  const int writes = db_.writes_attempted();
  produce(20);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  run_rounds(100);
  EXPECT_EQ(db_.writes_attempted(), writes);
  EXPECT_EQ(db_.connections(), 0);
  EXPECT_EQ(db_.probes(), 1) << "only the start-up probe";
  EXPECT_TRUE(pause()) << "pause is idempotent";
}

TEST_F(PipelineTest, ALeaseThatRunsOutCommitsNothingMoreClosesEverySessionAndFetchesNothing) {
  lease_ = std::make_unique<WriteLease>(clock_);
  lease_->renew(clock_.now() + 10s);
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  db_.hold_writes(true);
  produce(10);
  ASSERT_TRUE(run_until([&] { return db_.writes_waiting(); }));
  const size_t before = stored_count();
  clock_.advance(11s);  // cut off from the fleet: the lease runs out under an open transaction
  db_.hold_writes(false);
  run_rounds(50);
  EXPECT_EQ(stored_count(), before) << "committed after the lease had run out";
  EXPECT_EQ(state(), "fleet_unreachable");
  EXPECT_EQ(db_.open_transactions(), 0);
  EXPECT_EQ(db_.connections(), 0);
  // Nothing new is spooled either: its claim could not reach the fleet. Kafka keeps it.
  const uint64_t spooled = spool_->totals().events;
  produce(10);
  const int writes = db_.writes_attempted();
  const int probes = db_.probes();
  run_rounds(100, 100ms);
  EXPECT_EQ(db_.writes_attempted(), writes) << "a write tried while fenced";
  EXPECT_EQ(db_.probes(), probes) << "MariaDB probed while fenced";
  EXPECT_EQ(db_.connections(), 0);
  EXPECT_EQ(spool_->totals().events, spooled) << "spooled while the fleet could not be told";
  EXPECT_TRUE(pipeline_->status().fetch_paused);
  lease_->renew(clock_.now() + 10s);  // heard again
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  EXPECT_TRUE(run_until([&] { return state() == "running"; }));
}

TEST_F(PipelineTest, AResumeToAnotherServerThanTheFleetsWritesNothingHere) {
  ASSERT_TRUE(start());
  produce(3);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause());
  produce(5);
  // The fleet writes to another server (by its @@server_uid) than this endpoint reaches.
  auto resumed = pipeline_->request_resume("uid-of-the-new-primary");
  ASSERT_TRUE(wait(resumed));
  run_rounds(50, 100ms);
  EXPECT_EQ(state(), "outage");
  EXPECT_NE(pipeline_->status().outage_error.find("not the fleet's server"), std::string::npos)
      << pipeline_->status().outage_error;
  EXPECT_EQ(stored_count(), 3u * kPartitions) << "written to a server that is not the fleet's";
  // The fleet's server is this one after all: the next resume names it.
  ASSERT_TRUE(pause());
  auto again = pipeline_->request_resume(db_.identity());
  ASSERT_TRUE(wait(again));
  ASSERT_TRUE(run_until([&] { return all_stored(); }, 100ms));
  expect_exact();
}

TEST_F(PipelineTest, RetargetIsRefusedUnlessPausedAndThenTheResumeWritesToTheNewServer) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  MariaDbConfig moved = config_.mariadb;
  moved.host = "new-primary";
  auto refused = pipeline_->request_retarget(moved);
  const Status st = wait(refused);
  EXPECT_FALSE(st);
  EXPECT_NE(st.message().find("sluice pause"), std::string::npos) << st.message();
  produce(1);
  ASSERT_TRUE(run_until([&] { return all_stored(); })) << "a refused retarget changes nothing";

  ASSERT_TRUE(pause());
  produce(10);  // spooled while paused
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  new_primary_.copy_from(db_);  // a replica, caught up, promoted during the pause
  auto moved_ok = pipeline_->request_retarget(moved);
  ASSERT_TRUE(wait(moved_ok));
  EXPECT_EQ(pipeline_->status().mariadb, "sluice@new-primary:3306");
  run_rounds(50);
  EXPECT_EQ(new_primary_.connections(), 0) << "paused: the new server is not touched yet";
  EXPECT_EQ(new_primary_.writes_attempted(), 0);

  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] {
    return new_primary_.next_offset(kTopic, 0) == 16 && new_primary_.next_offset(kTopic, 1) == 16;
  }));
  for (int32_t p = 0; p < kPartitions; ++p) {
    // The old server kept what it had; the new one got exactly the rest, in order.
    EXPECT_EQ(db_.next_offset(kTopic, p), 6);
    const auto moved_rows = new_primary_.stored(kTopic, p);
    ASSERT_EQ(moved_rows.size(), 16u);
    for (size_t i = 0; i < moved_rows.size(); ++i) EXPECT_EQ(moved_rows[i], int64_t(i));
  }
  EXPECT_EQ(db_.connections(), 0);
}

TEST_F(PipelineTest, TheGroupOffsetFollowsOnlyWhatMariaDbHoldsNeverTheSpool) {
  ASSERT_TRUE(start());
  produce(3);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(run_until(
      [&] { return kafka_.committed(kTopic, 0) == 3 && kafka_.committed(kTopic, 1) == 3; }));
  ASSERT_TRUE(pause());
  produce(10);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  run_rounds(300, 10ms);
  // Spooled and synced, yet not committed to the group: a new owner trusting the group's
  // offset must not skip events that only this spool holds.
  EXPECT_EQ(kafka_.committed(kTopic, 0), 3);
  EXPECT_EQ(kafka_.committed(kTopic, 1), 3);
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  ASSERT_TRUE(run_until(
      [&] { return kafka_.committed(kTopic, 0) == 13 && kafka_.committed(kTopic, 1) == 13; }));
}

TEST_F(PipelineTest, ASpoolThatCannotSyncHoldsEventsStagedAndLosesNothing) {
  ASSERT_TRUE(start());
  produce(3);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause());
  spool_->fail_commits(true);  // the disk cannot sync
  produce(10);
  run_rounds(200);
  EXPECT_FALSE(spool_->holds(kTopic, 0, 3));
  EXPECT_GT(spool_->staged(), 0u);
  spool_->fail_commits(false);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
}

TEST_F(PipelineTest, ResumeDrainsTheSpoolInOffsetOrderAheadOfLiveEvents) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause());
  produce(40);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  db_.hold_writes(true);  // keep the drain busy so live events arrive in the middle of it
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return db_.writes_waiting(); }));
  EXPECT_EQ(state(), "draining");
  produce(15);  // live events: they must queue behind the spooled ones
  run_rounds(20);
  db_.hold_writes(false);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  ASSERT_TRUE(run_until([&] { return state() == "running" && spool_->totals().events == 0; }));
  produce(5);  // and then events flow directly again
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
}

TEST_F(PipelineTest, PauseDuringDrainKeepsEveryLiveEventThatArrivesWhileClosing) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause());
  produce(40);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  db_.hold_writes(true);
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return db_.writes_waiting(); }));
  auto paused = pipeline_->request_pause("second window");
  // The gate is closing (a transaction is open); live events keep arriving meanwhile.
  for (int i = 0; i < 5; ++i) {
    produce(2);
    run_rounds(5);
  }
  EXPECT_NE(paused.wait_for(0s), std::future_status::ready);
  db_.hold_writes(false);
  ASSERT_TRUE(wait(paused));
  EXPECT_EQ(state(), "paused");
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  ASSERT_TRUE(run_until([&] { return state() == "running"; }));
}

TEST_F(PipelineTest, PauseRightAfterADrainCaughtUpKeepsTheSpooledTailInsteadOfSpoolingItTwice) {
  config_.mariadb.writers = 1;  // batches queue behind the one being written
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause());
  produce(25);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  db_.hold_writes(true);
  ASSERT_TRUE(resume());
  // Every spooled event is batched and the partitions flow directly again, but their last
  // batches are still queued: the spool still holds those events.
  ASSERT_TRUE(run_until([&] { return state() == "running" && db_.writes_waiting(); }));
  ASSERT_GT(spool_->totals().events, 0u);
  auto paused = pipeline_->request_pause("again");
  run_rounds(10);
  db_.hold_writes(false);
  ASSERT_TRUE(wait(paused));
  produce(10);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  EXPECT_EQ(spool_->contract_violations(), 0) << "offsets spooled twice";
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
}

TEST_F(PipelineTest, OutageSpoolsProbesWithBackoffAndDrainsByItselfWhenTheServerReturns) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  db_.set_mode(Mode::kDown);
  produce(20);
  ASSERT_TRUE(run_until([&] { return state() == "outage"; }));
  EXPECT_NE(pipeline_->status().outage_error.find("outage"), std::string::npos)
      << pipeline_->status().outage_error;
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  // Ten minutes of outage: probes back off to one every 30 s or so, never one per round.
  const int probes_before = db_.probes();
  run_rounds(600, 1000ms);
  const int probes = db_.probes() - probes_before;
  EXPECT_GE(probes, 10);
  EXPECT_LE(probes, 60) << "probing is not backing off";
  EXPECT_EQ(state(), "outage");
  EXPECT_EQ(db_.connections(), 0);
  produce(5);
  db_.set_mode(Mode::kUp);
  ASSERT_TRUE(run_until([&] { return all_stored(); }, 1000ms));
  expect_exact();
  ASSERT_TRUE(run_until([&] { return state() == "running"; }));
  EXPECT_EQ(pipeline_->status().outage_error, "");
}

TEST_F(PipelineTest, OutageDuringDrainRewindsAndDrainsAgainExactly) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause());
  produce(60);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return stored_count() >= 40; }));
  db_.hold_writes(true);
  ASSERT_TRUE(run_until([&] { return db_.writes_waiting(); }));
  db_.set_mode(Mode::kDown);  // the held transaction loses its connection
  produce(10);
  ASSERT_TRUE(run_until([&] { return state() == "outage"; }));
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  db_.hold_writes(false);
  db_.set_mode(Mode::kUp);
  ASSERT_TRUE(run_until([&] { return all_stored(); }, 1000ms));
  expect_exact();
  ASSERT_TRUE(run_until([&] { return state() == "running"; }));
}

TEST_F(PipelineTest, ReadOnlyServerGetsNoRowAndWritableAgainDrainsInOrder) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  db_.set_mode(Mode::kReadOnly);
  produce(20);
  ASSERT_TRUE(run_until([&] { return state() == "outage"; }));
  EXPECT_NE(pipeline_->status().outage_error.find("read"), std::string::npos);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  run_rounds(100, 1000ms);
  EXPECT_EQ(stored_count(), 10u) << "a row was written to a read-only server";
  db_.set_mode(Mode::kUp);
  ASSERT_TRUE(run_until([&] { return all_stored(); }, 1000ms));
  expect_exact();
}

TEST_F(PipelineTest, ResumeDuringOutageWaitsForTheServerThenDrains) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause());
  db_.set_mode(Mode::kDown);
  produce(20);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  ASSERT_TRUE(resume()) << "resume succeeds; the drain waits for the server";
  ASSERT_TRUE(run_until([&] { return state() == "outage"; }));
  EXPECT_FALSE(spool_->pause()) << "the operator's pause is over, even though MariaDB is down";
  db_.set_mode(Mode::kUp);
  ASSERT_TRUE(run_until([&] { return all_stored(); }, 1000ms));
  expect_exact();
  ASSERT_TRUE(run_until([&] { return state() == "running"; }));
}

TEST_F(PipelineTest, PauseDuringOutageHoldsAfterTheServerReturnsUntilResumed) {
  db_.set_mode(Mode::kDown);
  ASSERT_TRUE(start()) << "a server down at start-up is an outage, not a failure";
  produce(10);
  ASSERT_TRUE(run_until([&] { return state() == "outage" && spool_holds_everything_unstored(); }));
  ASSERT_TRUE(pause("failover"));
  EXPECT_EQ(state(), "paused");
  db_.set_mode(Mode::kUp);
  const int probes = db_.probes();
  run_rounds(300, 1000ms);
  EXPECT_EQ(state(), "paused");
  EXPECT_EQ(db_.probes(), probes) << "a paused service does not probe";
  EXPECT_EQ(db_.connections(), 0);
  EXPECT_EQ(stored_count(), 0u);
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
}

TEST_F(PipelineTest, RestartedWhilePausedStaysPausedAndNeverConnects) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause("schema patch"));
  produce(10);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  const int probes = db_.probes();
  ASSERT_TRUE(start(crash()));
  EXPECT_EQ(state(), "paused");
  produce(10);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  run_rounds(100, 1000ms);
  EXPECT_EQ(db_.probes(), probes);
  EXPECT_EQ(db_.connections(), 0);
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
}

TEST_F(PipelineTest, CrashWithEventsStagedButNotSyncedLosesNothing) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause());
  produce(20);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  spool_->fail_commits(true);
  produce(7);  // consumed and staged, never synced: Kafka must not count them as done
  run_rounds(50);
  ASSERT_GT(spool_->staged(), 0u);
  ASSERT_TRUE(start(crash()));
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
}

TEST_F(PipelineTest, CrashWhileDrainingRestartsFromTheSpoolAndFinishesExactly) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause());
  produce(60);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return stored_count() >= 50; }));
  ASSERT_LT(stored_count(), 130u) << "the crash came too late";
  ASSERT_TRUE(start(crash()));
  ASSERT_TRUE(run_until([&] { return state() == "draining"; }));
  produce(10);  // live events go behind what is left in the spool
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  ASSERT_TRUE(run_until([&] { return state() == "running" && spool_->totals().events == 0; }));
}

// A spool that cannot write (a full disk, an I/O error) is treated like a full one: fetching
// stops for everything that would go to it, so what waits in memory is bounded by one poll;
// status and stats say why; writes are retried (not every round) until the disk takes them.
TEST_F(PipelineTest, ASpoolThatCannotWriteStopsFetchingSaysWhyAndRecoversByItself) {
  ASSERT_TRUE(start());
  ASSERT_TRUE(pause());
  spool_->fail_commits(true);     // no space left on the spool's disk
  for (int i = 0; i < 10; ++i) {  // events keep arriving
    produce(300);
    run_rounds(30);
  }
  const auto s = pipeline_->status();
  EXPECT_NE(s.spool_error, "") << "status says why";
  EXPECT_TRUE(s.fetch_paused);
  EXPECT_FALSE(source_->fetching(kTopic, 0));
  EXPECT_FALSE(source_->fetching(kTopic, 1));
  EXPECT_GT(pipeline_->stats().spool_write_errors.load(), 0U);
  EXPECT_LT(pipeline_->stats().spool_write_errors.load(), 300U / 10U)
      << "retried at a bounded rate, not every round";
  EXPECT_LE(spool_->staged(), 600U) << "fetching went on into a spool that cannot write";
  spool_->fail_commits(false);  // space again
  ASSERT_TRUE(run_until([&] { return pipeline_->status().spool_error.empty(); }, 100ms));
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }, 100ms));
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
}

// A spool block that cannot be read stops only its own partition's drain, says so once in the
// log and in that partition's status, and the others drain on.
TEST_F(PipelineTest, AnUnreadableSpoolBlockStopsOnlyItsPartitionAndShowsInItsStatus) {
  ASSERT_TRUE(start());
  ASSERT_TRUE(pause());
  produce(20);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  spool_->fail_reads(kTopic, 0, "spool at /x: corrupt block at t/0@0");
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return db_.stored(kTopic, 1).size() == 20; }));
  run_rounds(50);
  EXPECT_TRUE(db_.stored(kTopic, 0).empty()) << "nothing past an unreadable block";
  const auto s = pipeline_->status();
  ASSERT_EQ(s.partitions.size(), 2U);
  for (const auto& p : s.partitions) {
    EXPECT_EQ(p.spool_error.empty(), p.partition != 0) << p.partition << ": " << p.spool_error;
  }
  spool_->fail_reads(kTopic, 0, "");  // repaired (the block removed, the service restarted)
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  EXPECT_TRUE(run_until([&] { return pipeline_->status().partitions[0].spool_error.empty(); }));
}

TEST_F(PipelineTest, FullSpoolStopsFetchingAndFetchingResumesAsItDrains) {
  config_.spool.max_bytes = 20'000;  // a few dozen events
  ASSERT_TRUE(start());
  ASSERT_TRUE(pause());
  produce(200);
  ASSERT_TRUE(run_until([&] { return pipeline_->status().spool_full; }));
  EXPECT_TRUE(pipeline_->status().fetch_paused);
  EXPECT_FALSE(source_->fetching(kTopic, 0));
  run_rounds(50);
  // Bounded: at most one event past the limit, however much one poll round brought in.
  EXPECT_LT(spool_->totals().bytes, 20'000u + 1'000u) << "fetching went on into a full spool";
  EXPECT_LT(spool_->totals().events, 100u);
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  EXPECT_TRUE(run_until([&] { return !pipeline_->status().spool_full; }));
}

TEST_F(PipelineTest, TheDrainKeepsToItsRateUntilTheSpoolIsEmpty) {
  config_.drain.max_rate = 100;  // events per second
  ASSERT_TRUE(start());
  ASSERT_TRUE(pause());
  produce(100);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  ASSERT_TRUE(resume());
  run_rounds(100);  // one second
  const auto stored = db_.stored(kTopic, 0).size() + db_.stored(kTopic, 1).size();
  EXPECT_GT(stored, 0u);
  EXPECT_LE(stored, 100u + 10u) << "a second at 100 events/s (and one chunk)";
  EXPECT_EQ(state(), "draining");
  EXPECT_EQ(pipeline_->status().drain.limiting, "max_rate");
  EXPECT_EQ(pipeline_->status().drain.rate_limit, 100);
  ASSERT_TRUE(run_until([&] { return all_stored(); }, 100ms));
  expect_exact();
}

TEST_F(PipelineTest, ASpoolNearItsLimitDrainsWhateverLimitsTheDrain) {
  config_.spool.max_bytes = 20'000;  // a few dozen events
  config_.drain.max_rate = 1;        // a day to drain them, were it followed
  ASSERT_TRUE(start());
  ASSERT_TRUE(pause());
  produce(200);
  ASSERT_TRUE(run_until([&] { return pipeline_->status().spool_full; }));
  ASSERT_TRUE(resume());
  bool lifted = false;
  ASSERT_TRUE(run_until([&] {
    lifted = lifted || pipeline_->status().drain.limiting == "spool_pressure";
    return all_stored();
  }));
  EXPECT_TRUE(lifted);
  expect_exact();
}

TEST_F(PipelineTest, TransientErrorsAreRetriedWithoutLeavingRunning) {
  ASSERT_TRUE(start());
  db_.fail_next_writes_transiently(5);
  produce(30);
  std::set<std::string> states;
  ASSERT_TRUE(run_until([&] {
    states.insert(state());
    return all_stored();
  }));
  expect_exact();
  EXPECT_EQ(states, std::set<std::string>{"running"});
  EXPECT_EQ(spool_->commits(), 0);
}

// --- Failover to a server that lags, restores, expiry -------------------------------------------

TEST_F(PipelineTest, FailoverToAServerThatLagsRefillsFromKafkaBeforeTheSpoolDrains) {
  ASSERT_TRUE(start());
  produce(13);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause());
  produce(20);  // spooled while paused
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  // The new primary is a replica that lags: it has only the first 5 events of each partition.
  new_primary_.copy_from(db_);
  for (int32_t p = 0; p < kPartitions; ++p) new_primary_.truncate(kTopic, p, 5);
  MariaDbConfig moved = config_.mariadb;
  moved.host = "new-primary";
  auto retargeted = pipeline_->request_retarget(moved);
  ASSERT_TRUE(wait(retargeted));
  ASSERT_TRUE(resume());
  produce(4);  // live events arrive behind the spool
  ASSERT_TRUE(run_until([&] {
    return new_primary_.next_offset(kTopic, 0) == 37 && new_primary_.next_offset(kTopic, 1) == 37;
  }));
  for (int32_t p = 0; p < kPartitions; ++p) {
    std::vector<int64_t> want(37);
    std::iota(want.begin(), want.end(), 0);
    EXPECT_EQ(new_primary_.stored(kTopic, p), want) << "partition " << p;
  }
  ASSERT_TRUE(run_until([&] { return state() == "running" && spool_->totals().events == 0; }));
  EXPECT_GE(pipeline_->stats().refilled.load(), 16u) << "offsets 5..12 came again from Kafka";
}

TEST_F(PipelineTest, ARestoreFromABackupWhileRunningIsFilledAgainFromKafka) {
  ASSERT_TRUE(start());
  produce(30);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  // A DBA restores last night's dump: the partitions' rows and offsets go back to 10.
  for (int32_t p = 0; p < kPartitions; ++p) db_.truncate(kTopic, p, 10);
  produce(10);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
}

TEST_F(PipelineTest, ARestoreFromBeforeTheOffsetsRowExistedIsFilledFromTheStartNotSkipped) {
  ASSERT_TRUE(start());
  produce(30);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  // The dump was taken before Sluice first wrote these partitions: no row, no events. The next
  // batch (from 30) must not create the row there, which would leave [0, 30) out for ever.
  for (int32_t p = 0; p < kPartitions; ++p) db_.forget_partition(kTopic, p);
  produce(10);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  EXPECT_EQ(db_.dead_letters(), 0u);
}

TEST_F(PipelineTest, AStartFromTheLogStartWaitsForWhatAnotherSpoolHoldsBelowIt) {
  // A topic that appeared during a long pause: another instance spooled it from offset 0, and
  // Kafka's retention has since moved the log start to 5. Starting from the earliest offset
  // must not create the partition's row at 5, which would make that spool release [0, 5).
  produce(10);
  for (int32_t p = 0; p < kPartitions; ++p) {
    kafka_.expire_below(kTopic, p, 5);
    fleet_.claim(kTopic, p, 0, 9);
  }
  ASSERT_TRUE(start());
  ASSERT_TRUE(run_until([&] {
    for (const auto& p : pipeline_->status().partitions) {
      if (p.mode != "waiting") return false;
    }
    return true;
  }));
  run_rounds(50, 100ms);
  for (int32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(db_.next_offset(kTopic, p), -1) << "written past what another spool holds";
  }
  // That instance drained it (here: written by hand, as it would under the compare-and-set).
  for (int32_t p = 0; p < kPartitions; ++p) {
    Batch b;
    b.topic = kTopic;
    b.partition = p;
    b.base_offset = 0;
    b.end_offset = 10;
    FakeSession other(db_);
    ASSERT_EQ(other.write(b).outcome, storage::WriteOutcome::kCommitted);
  }
  fleet_.clear();
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }, 100ms));
  for (int32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(db_.stored(kTopic, p).size(), 5u) << "[10, 15) written once";
  }
  EXPECT_EQ(db_.dead_letters(), 0u);
}

TEST_F(PipelineTest, AFreshStartBeforeTheFleetIsReadWaitsThenBeginsAtTheLogStartLosingNothing) {
  // A new deployment on a topic whose log starts at 5, the fleet topic not read yet: nothing
  // may be declared lost or skipped until it is known that no spool holds [0, 5). Then the
  // partition simply begins at 5: those events were never Sluice's.
  produce(10);
  for (int32_t p = 0; p < kPartitions; ++p) kafka_.expire_below(kTopic, p, 5);
  fleet_.set_knows_claims(false);
  ASSERT_TRUE(start());
  run_rounds(50, 100ms);
  for (int32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(db_.next_offset(kTopic, p), -1) << "written before the claims were known";
  }
  fleet_.set_knows_claims(true);
  ASSERT_TRUE(run_until(
      [&] {
        for (int32_t p = 0; p < kPartitions; ++p) {
          if (db_.next_offset(kTopic, p) != 10) return false;
        }
        return true;
      },
      100ms));
  for (int32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(db_.stored(kTopic, p), (std::vector<int64_t>{5, 6, 7, 8, 9}));
  }
  EXPECT_EQ(db_.dead_letters(), 0u) << "a gap recorded for what was never Sluice's";
  EXPECT_EQ(pipeline_->stats().expired_offsets.load(), 0u);
}

TEST_F(PipelineTest, ExpiredWhilePausedAndStoppedIsRecordedAsAGapAndNothingElseIsLost) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pause("long maintenance"));
  ASSERT_TRUE(run_until(
      [&] { return kafka_.committed(kTopic, 0) == 5 && kafka_.committed(kTopic, 1) == 5; }));
  auto survivor = crash();  // stopped for days, still paused
  produce(20);
  for (int32_t p = 0; p < kPartitions; ++p) kafka_.expire_below(kTopic, p, 15);
  ASSERT_TRUE(start(std::move(survivor)));
  EXPECT_EQ(state(), "paused");
  ASSERT_TRUE(
      run_until([&] { return spool_->holds(kTopic, 0, 24) && spool_->holds(kTopic, 1, 24); }));
  ASSERT_TRUE(resume());
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  for (int32_t p = 0; p < kPartitions; ++p) {
    // 0..4 written before; [5, 15) expired unread: one kafka_gap dead letter at 5; then 15..24.
    std::vector<int64_t> want = {0, 1, 2, 3, 4, 5};
    for (int64_t o = 15; o < 25; ++o) want.push_back(o);
    EXPECT_EQ(db_.stored(kTopic, p), want) << "partition " << p;
    const auto reasons = db_.dead_letter_reasons(kTopic, p);
    ASSERT_EQ(reasons.size(), 1u);
    EXPECT_NE(reasons.at(5).find("kafka_gap: offsets [5, 15)"), std::string::npos) << reasons.at(5);
  }
  EXPECT_EQ(pipeline_->stats().expired_offsets.load(), 20u);
  EXPECT_EQ(pipeline_->status().gaps.size(), 2u);
}

TEST_F(PipelineTest, AnExpiredRangeAnotherSpoolMayHoldWaitsInsteadOfBeingDeclaredLost) {
  for (int32_t p = 0; p < kPartitions; ++p) fleet_.claim(kTopic, p, 0, 1000);
  produce(10);
  for (int32_t p = 0; p < kPartitions; ++p) kafka_.expire_below(kTopic, p, 4);
  // sluice_offsets says 2: offsets 2 and 3 are gone from Kafka, and another spool claims them.
  for (int32_t p = 0; p < kPartitions; ++p) {
    Batch b;
    b.topic = kTopic;
    b.partition = p;
    b.base_offset = 0;
    b.end_offset = 2;
    FakeSession seed(db_);
    ASSERT_EQ(seed.write(b).outcome, storage::WriteOutcome::kCommitted);
  }
  ASSERT_TRUE(start());
  run_rounds(100, 100ms);
  EXPECT_EQ(db_.next_offset(kTopic, 0), 2) << "declared lost while a spool may hold it";
  EXPECT_TRUE(run_until([&] { return pipeline_->status().partitions[0].mode == "waiting"; }));
  // It stays waiting, quietly: it looks at the claim again, not at Kafka.
  const uint64_t seeks = kafka_.seeks(kTopic, 0);
  for (int i = 0; i < 100; ++i) {
    run_rounds(1, 100ms);
    ASSERT_EQ(pipeline_->status().partitions[0].mode, "waiting") << "round " << i;
  }
  EXPECT_EQ(kafka_.seeks(kTopic, 0), seeks) << "it went to Kafka again, claim unchanged";
  fleet_.clear();  // that instance is gone for good and its spool declared lost
  ASSERT_TRUE(run_until([&] { return all_stored(); }, 100ms));
  EXPECT_NE(db_.dead_letter_reasons(kTopic, 0).at(2).find("kafka_gap: offsets [2, 4)"),
            std::string::npos);
}

// --- Kafka's own behaviour: jumps, markers, failing calls, rebalances ----------------------------

TEST_F(PipelineTest, AJumpKafkaStillHasIsReadAgainNotSkipped) {
  ASSERT_TRUE(start());
  produce(3);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  kafka_.lose_next_fetch(kTopic, 0, 4);  // the fetcher skips 4 offsets once
  produce(10);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  EXPECT_EQ(db_.dead_letters(), 0u);
}

TEST_F(PipelineTest, APartitionThatStopsMovingWithLagIsSoughtAgainNotLeftStalled) {
  ASSERT_TRUE(start());
  produce(3);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  kafka_.lose_next_fetch(kTopic, 0, 2);  // the last two events are lost by a fetch...
  produce(2);                            // ...and nothing comes after them to tell
  run_rounds(20, 100ms);
  ASSERT_TRUE(run_until([&] { return all_stored(); }, 1000ms)) << "stalled silently";
  expect_exact();
}

TEST_F(PipelineTest, OffsetsHoldingNoRecordsAreCoveredAfterASecondLook) {
  ASSERT_TRUE(start());
  produce(3);
  for (int32_t p = 0; p < kPartitions; ++p) {
    kafka_.produce_marker(kTopic, p);  // transaction markers: offsets without records
    kafka_.produce_marker(kTopic, p);
  }
  for (int i = 0; i < 4; ++i) {
    for (int32_t p = 0; p < kPartitions; ++p) {
      kafka_.produce(kTopic, p, EventFactory::good(3, 0, static_cast<uint32_t>(p), 100 + i));
    }
  }
  ASSERT_TRUE(run_until(
      [&] { return db_.next_offset(kTopic, 0) == 9 && db_.next_offset(kTopic, 1) == 9; }));
  for (int32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(db_.stored(kTopic, p), (std::vector<int64_t>{0, 1, 2, 5, 6, 7, 8}));
  }
  EXPECT_EQ(db_.dead_letters(), 0u) << "offsets without records are not lost events";
}

// Found by the model (seed 4006450): the fetcher had already stepped over a marker when its
// fetch went wrong, and the fetch after the seek back went wrong from the marker itself. Both
// lost the same record and delivered the same jump, so the second look "confirmed" offsets
// holding no records and the record was lost with no kafka_gap. Faults are independent: the
// fake Kafka never loses the same records twice in a row, however its fetches start.
TEST_F(PipelineTest, AFetchGoneWrongAfterAMarkerIsNotTakenForMarkers) {
  ASSERT_TRUE(start());
  produce(3);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  kafka_.produce_marker(kTopic, 0);  // offset 3 holds no record...
  run_rounds(3);                     // ...and the fetcher steps over it
  for (int i = 0; i < 3; ++i) {      // records 4, 5, 6
    kafka_.produce(kTopic, 0, EventFactory::good(3, 0, 0, 100 + i));
  }
  kafka_.lose_next_fetch(kTopic, 0, 1);  // from 4: record 4 skipped, 5 delivered
  run_rounds(1);
  kafka_.lose_next_fetch(kTopic, 0, 2);  // from 3 after the seek back: again record 4 skipped
  ASSERT_TRUE(run_until([&] { return db_.next_offset(kTopic, 0) == 7; }));
  EXPECT_EQ(db_.stored(kTopic, 0), (std::vector<int64_t>{0, 1, 2, 4, 5, 6}));
  EXPECT_EQ(db_.dead_letters(), 0u);
}

TEST_F(PipelineTest, FailingSeeksPausesAndResumesAreRetriedAndLoseNothing) {
  config_.batch.max_bytes = 1024;  // the in-flight bound is reached quickly
  ASSERT_TRUE(start());
  db_.hold_writes(true);
  produce(100);
  ASSERT_TRUE(run_until([&] { return db_.writes_waiting(); }));
  kafka_.fail_next(FakeKafka::Call::kPause, 3);
  run_rounds(20, 1000ms);  // MariaDB stays stuck: fetching is paused (after three failures)
  ASSERT_TRUE(run_until([&] { return pipeline_->status().fetch_paused; }));
  ASSERT_TRUE(run_until([&] { return !source_->fetching(kTopic, 0); }));
  kafka_.fail_next(FakeKafka::Call::kSeek, 3);
  kafka_.fail_next(FakeKafka::Call::kResume, 3);
  db_.hold_writes(false);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  EXPECT_TRUE(
      run_until([&] { return source_->fetching(kTopic, 0) && source_->fetching(kTopic, 1); }));
  produce(5);  // and what comes next is read from exactly where each partition stood
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
}

TEST_F(PipelineTest, ARebalanceWhilePausedForBackpressureLeavesNoPartitionPausedInKafka) {
  for (auto protocol : {FakeKafka::Protocol::kCooperative, FakeKafka::Protocol::kEager}) {
    SCOPED_TRACE(protocol == FakeKafka::Protocol::kEager ? "eager" : "cooperative");
    if (pipeline_) pipeline_->shutdown();
    pipeline_.reset();
    kafka_ = FakeKafka();
    db_.copy_from(FakeDatabase());
    std::fill(std::begin(produced_), std::end(produced_), 0);
    commits_checked_ = 0;
    kafka_.set_protocol(protocol);
    kafka_.set_assignment({{kTopic, 0}});
    config_.batch.max_bytes = 1024;
    ASSERT_TRUE(start());
    db_.hold_writes(true);
    produce(100);
    ASSERT_TRUE(run_until([&] { return db_.writes_waiting(); }));
    run_rounds(20, 1000ms);
    ASSERT_TRUE(run_until([&] { return !source_->fetching(kTopic, 0); }));
    // A rebalance: the topic grows a partition (or another member comes and goes).
    kafka_.set_assignment({{kTopic, 0}, {kTopic, 1}});
    run_rounds(5);
    db_.hold_writes(false);
    produce(20);
    ASSERT_TRUE(run_until([&] { return all_stored(); }))
        << "a partition still paused in Kafka stalls silently";
    expect_exact();
  }
}

TEST_F(PipelineTest, ACooperativeRebalanceMidBatchHandsPartitionsOverExactly) {
  ASSERT_TRUE(start());
  produce(25);
  run_rounds(3);
  // Another instance joins the group (its own pipeline, sharing Kafka and MariaDB).
  MemorySpool other_spool;
  Config other_config = config_;
  other_config.kafka.instance_id = "sluice-2";
  PipelineParts parts;
  parts.source = [this](SourceHandler handler) -> Result<std::unique_ptr<EventSource>> {
    return std::unique_ptr<EventSource>(
        std::make_unique<FakeSource>(kafka_, std::move(handler), "sluice-2"));
  };
  parts.sinks = [this](const MariaDbConfig&) { return std::make_unique<FakeSession>(db_); };
  parts.spool = std::make_unique<MemorySpool>();
  Pipeline other(other_config, std::move(parts), clock_);
  ASSERT_TRUE(other.start());
  produce(25);
  ASSERT_TRUE(run_until([&] {
    other.step(1ms);
    return all_stored();
  }));
  expect_exact();
  EXPECT_NE(kafka_.owner({kTopic, 0}), kafka_.owner({kTopic, 1})) << "one partition each";
  other.shutdown();
}

TEST_F(PipelineTest, AsyncCommitsCountOnlyOnceAcknowledgedAndRefusedOnesAreSentAgain) {
  ASSERT_TRUE(start());
  kafka_.fail_next(FakeKafka::Call::kCommit, 2);
  produce(12);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(run_until([&] {
    const auto parts = pipeline_->status().partitions;
    return kafka_.committed(kTopic, 0) == 12 && kafka_.committed(kTopic, 1) == 12 &&
           parts.size() == 2 && parts[0].kafka_committed == 12 && parts[1].kafka_committed == 12;
  }));
}

TEST_F(PipelineTest, AFatalConsumerErrorStopsTheLoopWithTheReason) {
  ASSERT_TRUE(start());
  produce(3);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  source_->fail_fatally("FENCED_INSTANCE_ID");
  run_rounds(2);
  ASSERT_FALSE(pipeline_->failed());
  EXPECT_NE(pipeline_->failed().message().find("FENCED_INSTANCE_ID"), std::string::npos);
}

TEST_F(PipelineTest, AMemberFencedAfterItsSessionExpiredJoinsAgainAndLosesNothing) {
  ASSERT_TRUE(start());
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  // A broker away for longer than the session: the group dropped this member, and its next
  // request is fenced — fatal for that consumer.
  kafka_.expire_live_session("sluice-1");
  produce(5);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  ASSERT_TRUE(pipeline_->failed()) << pipeline_->failed().message();
  EXPECT_EQ(sources_made_, 2) << "no new consumer joined";
  expect_exact();
}

TEST_F(PipelineTest, FencedAgainAndAgainStopsNamingTheInstanceId) {
  ASSERT_TRUE(start());
  produce(2);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  for (int i = 0; i < 4 && pipeline_->failed(); ++i) {
    kafka_.expire_live_session("sluice-1");
    run_rounds(5);
  }
  ASSERT_FALSE(pipeline_->failed());
  EXPECT_NE(pipeline_->failed().message().find("same kafka.instance_id"), std::string::npos)
      << pipeline_->failed().message();
}

TEST_F(PipelineTest, FencedAgainAndAgainByALaterTwinJoinsAgainUntilItStops) {
  // A second process started with this instance id: the group fences the two in turn until
  // the later one reads the fleet topic and stops. The older one must outlive it.
  fleet_.set_later_twin(true);
  ASSERT_TRUE(start());
  produce(2);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  for (int i = 0; i < 8; ++i) {
    kafka_.expire_live_session("sluice-1");
    run_rounds(5);
    ASSERT_TRUE(pipeline_->failed())
        << "fencing " << i + 1 << ": " << pipeline_->failed().message();
  }
  fleet_.set_later_twin(false);
  produce(3);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  // Once it is gone, fencings count again.
  for (int i = 0; i < 4 && pipeline_->failed(); ++i) {
    kafka_.expire_live_session("sluice-1");
    run_rounds(5);
  }
  EXPECT_FALSE(pipeline_->failed());
}

TEST_F(PipelineTest, FatalDatabaseErrorAtStartUpStopsWithTheReason) {
  db_.set_mode(Mode::kAccessDenied);
  const auto st = start();
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("Access denied"), std::string::npos) << st.message();
}

// --- Schemas from a repository ----------------------------------------------------------------

/// An event of `Remote` revision 1 — TestSchema's document, served only by the repository.
std::string remote_event(uint32_t partition, uint64_t seq) {
  return EventFactory::renamed("Remote", 1, 0, partition, seq);
}

TEST_F(PipelineTest, EventsWaitingForTheirSchemaHoldTheirPartitionAndAreNeverDeadLettered) {
  auto* remote = use_repository(/*down=*/true);
  ASSERT_TRUE(start().is_ok());
  // Partition 0 meets the unknown revision after 3 known events; partition 1 knows its own.
  for (uint64_t seq = 0; seq < 3; ++seq) {
    kafka_.produce(kTopic, 0, EventFactory::good(3, 0, 0, produced_[0]++));
  }
  for (int i = 0; i < 5; ++i) kafka_.produce(kTopic, 0, remote_event(0, produced_[0]++));
  produce(4);  // more known events behind them on every partition
  ASSERT_TRUE(run_until([&] {
    return db_.next_offset(kTopic, 0) == 3 && db_.next_offset(kTopic, 1) == 4;
  }));
  run_rounds(300);  // three seconds of a repository that does not answer
  EXPECT_EQ(db_.next_offset(kTopic, 0), 3) << "nothing past the waiting event";
  EXPECT_EQ(db_.dead_letters(), 0u);
  const auto status = pipeline_->status();
  const auto p0 = std::find_if(status.partitions.begin(), status.partitions.end(),
                               [](const auto& p) { return p.partition == 0; });
  ASSERT_NE(p0, status.partitions.end());
  EXPECT_NE(p0->waits_for_schema.find("schema_pending: Remote revision 1"), std::string::npos)
      << p0->waits_for_schema;
  EXPECT_FALSE(status.schemas.reachable);
  EXPECT_EQ(status.schemas.repository, "http://schemas.test");

  remote->put("Remote", 1, EventFactory::test_schema_document());
  remote->set_down(false);
  ASSERT_TRUE(run_until([&] { return all_stored(); }))
      << db_.next_offset(kTopic, 0) << " " << db_.next_offset(kTopic, 1) << " "
      << pipeline_->status().partitions[0].mode << " "
      << pipeline_->status().partitions[0].waits_for_schema;
  expect_exact();
  EXPECT_EQ(db_.dead_letters(), 0u);
  EXPECT_EQ(remote->answers("Remote", 1), 1);
  run_rounds(30);  // the status snapshot is republished every quarter second
  EXPECT_TRUE(pipeline_->status().partitions[0].waits_for_schema.empty());
}

TEST_F(PipelineTest, ASpoolDrainWaitsForASchemaAndLiveEventsKeepSpoolingBehindIt) {
  auto* remote = use_repository(/*down=*/true);
  ASSERT_TRUE(start().is_ok());
  ASSERT_TRUE(pause().is_ok());
  for (int i = 0; i < 4; ++i) kafka_.produce(kTopic, 1, remote_event(1, produced_[1]++));
  produce(3);
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  ASSERT_TRUE(resume().is_ok());
  run_rounds(200);
  EXPECT_EQ(db_.next_offset(kTopic, 1), -1) << "the drain holds at its first event";
  produce(2);  // live events of the partition go behind its spool
  run_rounds(100);
  EXPECT_EQ(db_.dead_letters(), 0u);
  remote->put("Remote", 1, EventFactory::test_schema_document());
  remote->set_down(false);
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  expect_exact();
  EXPECT_EQ(db_.dead_letters(), 0u);
}

TEST_F(PipelineTest, ARevisionTheRepositoryDoesNotHaveIsDeadLetteredWithItsUrl) {
  (void)use_repository(/*down=*/false);
  ASSERT_TRUE(start().is_ok());
  produce(2);
  kafka_.produce(kTopic, 1, remote_event(1, produced_[1]++));  // the partition's last event
  ASSERT_TRUE(run_until([&] { return all_stored(); }));
  const auto reasons = db_.dead_letter_reasons(kTopic, 1);
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_EQ(reasons.begin()->second,
            "unknown_revision: Remote revision 1 is not at "
            "http://schemas.test/Remote/1.json (HTTP 404)");
  run_rounds(30);  // the status snapshot is republished every quarter second
  EXPECT_TRUE(pipeline_->status().partitions[1].waits_for_schema.empty())
      << "it waited (the first ask), then was dead-lettered: it waits no more";
}

TEST_F(PipelineTest, ADrainHeldForItsSchemaSpendsNothingOfTheDrainRate) {
  // Partition 1's spool holds events of a revision the repository cannot give yet. Each time it
  // asks again, its drain reads a chunk and stops at the first event: those events were not
  // drained, and partition 0's drain must get the whole rate.
  config_.drain.max_rate = 100;  // events per second
  (void)use_repository(/*down=*/true, /*news_at_every_ask=*/true);
  ASSERT_TRUE(start().is_ok());
  ASSERT_TRUE(pause().is_ok());
  for (int i = 0; i < 2000; ++i) {
    if (i < 100) kafka_.produce(kTopic, 1, remote_event(1, produced_[1]++));
    kafka_.produce(kTopic, 0, EventFactory::good(3, 0, 0, produced_[0]++));
  }
  ASSERT_TRUE(run_until([&] { return spool_holds_everything_unstored(); }));
  ASSERT_TRUE(resume().is_ok());
  run_rounds(2000);  // twenty seconds: partition 1 asks again every five
  const auto stored = db_.stored(kTopic, 0).size();
  EXPECT_GE(stored, 1900u - 100u) << "twenty seconds at 100 events/s, all of it partition 0's";
  EXPECT_EQ(db_.stored(kTopic, 1).size(), 0u);
  EXPECT_EQ(db_.dead_letters(), 0u);
}

}  // namespace
}  // namespace sluice::ingest
