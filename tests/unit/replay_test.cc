// The pure parts of `sluice replay`: how --from/--to and Kafka's answers become each
// partition's range (and what of it expired), the ledger's accounting, and the engine over an
// input of its own and FakeReplaySession (the replay sink's contract: a uuid once per table, a
// dead letter once per position, nothing in sluice_offsets).

#include "ingest/replay.h"

#include <gtest/gtest.h>
#include <mysqld_error.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "ingest/writer.h"
#include "storage/mariadb_sink.h"
#include "testing/fake_schema_source.h"
#include "testing/fakes.h"
#include "testing/harness.h"

namespace sluice::ingest {
namespace {

using storage::WriteOutcome;
using testing::EventFactory;
using testing::FakeEventTables;
using testing::FakeReplaySession;

PartitionFacts facts(int32_t p, int64_t low, int64_t high, int64_t from_t = -1, int64_t to_t = -1) {
  return {p, low, high, from_t, to_t};
}

// --- resolve_ranges ----------------------------------------------------------------------------

TEST(ResolveRanges, AnOffsetRangeEndsAtTheLogEndAsItIsNow) {
  auto r = resolve_ranges("t", ReplayBound::offset(10), {}, {facts(0, 0, 100), facts(1, 0, 5)});
  ASSERT_TRUE(r) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].from, 10);
  EXPECT_EQ((*r)[0].to, 100);
  EXPECT_EQ((*r)[0].events(), 90);
  EXPECT_EQ((*r)[0].expired_to, (*r)[0].expired_from);
  // A start past the log end: nothing to read, nothing expired.
  EXPECT_EQ((*r)[1].events(), 0);
  EXPECT_EQ((*r)[1].expired_to, (*r)[1].expired_from);
}

TEST(ResolveRanges, AToOffsetIsExclusiveAndCappedAtTheLogEnd) {
  auto r = resolve_ranges("t", ReplayBound::offset(0), ReplayBound::offset(40),
                          {facts(0, 0, 100), facts(1, 0, 30)});
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].to, 40);
  EXPECT_EQ((*r)[1].to, 30);
}

TEST(ResolveRanges, OffsetsBelowTheLogStartAreExpiredAndNotRead) {
  auto r = resolve_ranges("t", ReplayBound::offset(50), ReplayBound::offset(200),
                          {facts(0, 100, 300), facts(1, 250, 300), facts(2, 0, 300)});
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].expired_from, 50);
  EXPECT_EQ((*r)[0].expired_to, 100);
  EXPECT_EQ((*r)[0].from, 100);
  EXPECT_EQ((*r)[0].to, 200);
  // The whole asked range expired: [50, 200), nothing to read.
  EXPECT_EQ((*r)[1].expired_from, 50);
  EXPECT_EQ((*r)[1].expired_to, 200);
  EXPECT_EQ((*r)[1].events(), 0);
  EXPECT_EQ((*r)[2].expired_to, (*r)[2].expired_from);
  EXPECT_EQ((*r)[2].from, 50);
}

TEST(ResolveRanges, TimesUseKafkasOffsetsForTimes) {
  // Partition 0: the time falls inside the log; 1: after every event; 2: before the start of a
  // log that no longer starts at 0 — older events of the window may have expired.
  auto r = resolve_ranges(
      "t", ReplayBound::time_ms(1000), ReplayBound::time_ms(2000),
      {facts(0, 0, 100, 30, 70), facts(1, 0, 100, -1, -1), facts(2, 40, 100, 40, -1)});
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].from, 30);
  EXPECT_EQ((*r)[0].to, 70);
  EXPECT_FALSE((*r)[0].may_have_expired);
  EXPECT_EQ((*r)[1].events(), 0);
  EXPECT_EQ((*r)[2].from, 40);
  EXPECT_EQ((*r)[2].to, 100);
  EXPECT_TRUE((*r)[2].may_have_expired);
  EXPECT_EQ((*r)[2].expired_to, (*r)[2].expired_from) << "no offset is known to have expired";
}

TEST(ResolveRanges, RefusesAnEndBeforeTheStartANegativeOffsetAndNoStart) {
  EXPECT_FALSE(resolve_ranges("t", ReplayBound::offset(10), ReplayBound::offset(5), {}));
  EXPECT_FALSE(resolve_ranges("t", ReplayBound::time_ms(10), ReplayBound::time_ms(5), {}));
  EXPECT_FALSE(resolve_ranges("t", ReplayBound::offset(-1), {}, {}));
  EXPECT_FALSE(resolve_ranges("t", {}, ReplayBound::offset(5), {}));
}

// --- ReplayLedger ------------------------------------------------------------------------------

WriteReport committed(const std::string& topic, int32_t p, int64_t base, int64_t end,
                      std::vector<WriteReport::Table> tables, std::vector<int64_t> present = {}) {
  WriteReport r;
  r.topic = topic;
  r.partition = p;
  r.base_offset = base;
  r.end_offset = end;
  r.outcome = WriteOutcome::kCommitted;
  r.tables = std::move(tables);
  r.dead_letters_present = std::move(present);
  return r;
}

TEST(ReplayLedger, CountsEachTableAndCoversOnlyWhatIsDurable) {
  ReplayLedger ledger;
  auto& p = ledger.expect({"t", 0, 10, 20});
  auto& a = ledger.table("A_1");
  auto& b = ledger.table("B_1");
  for (int64_t o = 10; o < 14; ++o) ledger.read(p, o, a, false);
  ledger.read(p, 14, b, true);  // a dead letter of B_1
  ledger.dispatched(p, 15);
  for (int64_t o = 15; o < 18; ++o) ledger.read(p, o, a, false);
  ledger.skipped(p, 18);
  EXPECT_EQ(p.covered_end(), 10) << "nothing is durable yet";

  // Of the first batch, 3 rows written and 1 present; the dead letter was recorded already.
  ASSERT_TRUE(ledger.reported(committed("t", 0, 10, 15, {{"A_1", 3, -1, 1}}, {14})));
  EXPECT_EQ(p.covered_end(), 15) << "the open batch starts at 15";
  EXPECT_EQ(a.written, 3u);
  EXPECT_EQ(a.already_present, 1u);
  EXPECT_EQ(b.already_present, 1u);
  EXPECT_EQ(b.dead_lettered, 0u);

  ledger.dispatched(p, 19);
  ASSERT_TRUE(ledger.reported(committed("t", 0, 15, 19, {{"A_1", 3, -1, 0}})));
  ledger.finished(p);
  EXPECT_EQ(p.covered_end(), 20) << "offset 19 held no event";
  const auto totals = ledger.totals();
  EXPECT_EQ(totals.read, 8u);
  EXPECT_EQ(totals.written, 6u);
  EXPECT_EQ(totals.already_present, 2u);
  EXPECT_EQ(ledger.read(), 9u);
  EXPECT_EQ(ledger.skipped(), 1u);
  EXPECT_EQ(ledger.durable(), 9u);
  EXPECT_EQ(ledger.expected(), 10u);
}

TEST(ReplayLedger, ABatchNotWrittenStopsWhatIsCoveredAndKeepsTheError) {
  ReplayLedger ledger;
  auto& p = ledger.expect({"t", 0, 0, 100});
  auto& a = ledger.table("A_1");
  for (int64_t o = 0; o < 10; ++o) ledger.read(p, o, a, false);
  ledger.dispatched(p, 10);
  for (int64_t o = 10; o < 20; ++o) ledger.read(p, o, a, false);
  ledger.dispatched(p, 20);
  for (int64_t o = 20; o < 25; ++o) ledger.read(p, o, a, false);
  ASSERT_TRUE(ledger.reported(committed("t", 0, 0, 10, {{"A_1", 10, -1, 0}})));
  WriteReport failed = committed("t", 0, 10, 20, {});
  failed.outcome = WriteOutcome::kFailed;
  failed.error = {1045, "Access denied"};
  EXPECT_FALSE(ledger.reported(failed));
  EXPECT_NE(ledger.error().find("[10, 20) not written: "), std::string::npos) << ledger.error();
  ledger.dropped_open(p);
  ledger.finished(p);
  EXPECT_EQ(p.covered_end(), 10);
  EXPECT_EQ(a.written, 10u);
}

TEST(ReplayLedger, RowsDeadLetteredWhileWritingCountUnderTheirTable) {
  // MariaDB refused one row of A_1 (the writer split the batch and dead-lettered it), and a
  // replay before had already recorded the dead letter of another: every event read has one
  // outcome, under its own table.
  ReplayLedger ledger;
  auto& p = ledger.expect({"t", 0, 0, 10});
  auto& a = ledger.table("A_1");
  for (int64_t o = 0; o < 10; ++o) ledger.read(p, o, a, false);
  ledger.dispatched(p, 10);
  WriteReport r = committed("t", 0, 0, 10, {{"A_1", 8, -1, 0}});
  r.table_dead_letters.push_back({"A_1", 1, 1});
  ASSERT_TRUE(ledger.reported(r));
  ledger.finished(p);
  EXPECT_EQ(a.written, 8u);
  EXPECT_EQ(a.dead_lettered, 1u);
  EXPECT_EQ(a.already_present, 1u);
  EXPECT_EQ(a.outcomes(), a.read);
  EXPECT_EQ(ledger.durable(), 10u);
  EXPECT_EQ(p.covered_end(), 10);
}

TEST(ReplayLedger, ExpiredRangesThatTouchAreOneRange) {
  ReplayLedger ledger;
  auto& p = ledger.expect({"t", 0, 100, 300, 50, 100});
  ledger.expired(p, 100, 120);
  ledger.expired(p, 200, 210);
  ASSERT_EQ(p.expired.size(), 2u);
  EXPECT_EQ(p.expired[0], std::make_pair(int64_t{50}, int64_t{120}));
  EXPECT_EQ(p.expired[1], std::make_pair(int64_t{200}, int64_t{210}));
  EXPECT_TRUE(ledger.any_expired());
}

// --- Writer under a RetryLimit (how a replay's writers end) ------------------------------------

/// Answers each write with the next scripted error code (0: committed), then commits.
class ScriptedSink final : public storage::BatchSink {
 public:
  explicit ScriptedSink(std::deque<unsigned int> script) : script_(std::move(script)) {}
  storage::WriteResult write(storage::Batch&) override {
    std::lock_guard lock(mu_);
    ++writes_;
    storage::WriteResult r;
    r.outcome = WriteOutcome::kCommitted;
    if (!script_.empty()) {
      const unsigned int code = script_.front();
      script_.pop_front();
      if (code != 0) {
        r.outcome = WriteOutcome::kFailed;
        r.error = {code, "scripted"};
      }
    }
    return r;
  }
  storage::DbStatus probe() override { return {}; }
  storage::DbStatus read_offsets(const std::string&, std::map<int32_t, int64_t>&) override {
    return {};
  }
  void disconnect() override {}
  int writes() const {
    std::lock_guard lock(mu_);
    return writes_;
  }

 private:
  mutable std::mutex mu_;
  std::deque<unsigned int> script_;
  int writes_ = 0;
};

/// A writer over a ScriptedSink with a retry limit of 2; collects the reports.
struct LimitedWriter {
  explicit LimitedWriter(std::deque<unsigned int> script) {
    auto sink = std::make_unique<ScriptedSink>(std::move(script));
    sink_ = sink.get();
    writer = std::make_unique<Writer>(
        0, std::move(sink),
        [this](WriteReport&& r) {
          {
            std::lock_guard lock(mu);
            reports.push_back(std::move(r));
          }
          cv.notify_all();
        },
        SystemClock::instance(), RetryLimit{2});
  }
  void push(int64_t base, int64_t end) {
    storage::Batch b;
    b.topic = "t";
    b.base_offset = base;
    b.end_offset = end;
    writer->push(std::move(b));
  }
  bool wait_for(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(20), [&] { return reports.size() >= n; });
  }

  ScriptedSink* sink_ = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<WriteReport> reports;  // guarded by mu
  std::unique_ptr<Writer> writer;    // last: stopped before the rest goes
};

TEST(WriterRetryLimit, DeadlocksAreRetriedUntilTheyPassWhateverTheLimit) {
  // Twice the limit of deadlocks (another writer on the same table), then the write passes.
  LimitedWriter w({ER_LOCK_DEADLOCK, ER_LOCK_DEADLOCK, ER_LOCK_DEADLOCK, ER_LOCK_DEADLOCK});
  w.push(0, 10);
  ASSERT_TRUE(w.wait_for(1));
  std::lock_guard lock(w.mu);
  EXPECT_EQ(w.reports[0].outcome, WriteOutcome::kCommitted) << w.reports[0].error.describe();
  EXPECT_EQ(w.sink_->writes(), 5);
}

TEST(WriterRetryLimit, ABatchGivenUpStopsTheWriterSoNothingIsWrittenPastIt) {
  // A fatal error at once (no retry fixes access denied): the first batch is given up with its
  // error, and the next is reported dropped without an attempt — no hole with rows past it.
  LimitedWriter w({ER_ACCESS_DENIED_ERROR});
  w.push(0, 10);
  w.push(10, 20);
  ASSERT_TRUE(w.wait_for(2));
  std::lock_guard lock(w.mu);
  EXPECT_EQ(w.reports[0].end_offset, 10);
  EXPECT_EQ(w.reports[0].outcome, WriteOutcome::kFailed);
  EXPECT_EQ(w.reports[0].error.code, static_cast<unsigned int>(ER_ACCESS_DENIED_ERROR));
  EXPECT_EQ(w.reports[1].end_offset, 20);
  EXPECT_EQ(w.reports[1].outcome, WriteOutcome::kFailed);
  EXPECT_TRUE(w.reports[1].error.is_ok()) << "dropped, not failed on its own";
  EXPECT_EQ(w.sink_->writes(), 1);
}

TEST(WriterRetryLimit, OtherErrorsAreGivenUpAfterTheLimit) {
  // A bad row (not transient, not fatal) twice: the limit.
  LimitedWriter w({ER_TRUNCATED_WRONG_VALUE_FOR_FIELD, ER_TRUNCATED_WRONG_VALUE_FOR_FIELD});
  w.push(0, 10);
  ASSERT_TRUE(w.wait_for(1));
  std::lock_guard lock(w.mu);
  EXPECT_EQ(w.reports[0].outcome, WriteOutcome::kFailed);
  EXPECT_EQ(w.sink_->writes(), 2);
}

// --- Replay over fakes -------------------------------------------------------------------------

/// Messages handed out in order, a few at a time.
class VectorInput final : public ReplayInput {
 public:
  struct Event {
    std::string topic;
    int32_t partition;
    int64_t offset;
    std::string payload;
  };
  explicit VectorInput(std::vector<Event> events) : events_(std::move(events)) {}
  Status read(std::chrono::milliseconds, size_t max, std::vector<SourceMessage>& out) override {
    out.clear();
    while (out.size() < std::min<size_t>(max, 7) && next_ < events_.size()) {
      const auto& e = events_[next_++];
      out.push_back({e.topic, e.partition, e.offset, -1, e.payload});
    }
    return Status::ok();
  }
  bool done() const override { return next_ >= events_.size(); }

 private:
  std::vector<Event> events_;
  size_t next_ = 0;
};

class ReplayEngineTest : public ::testing::Test {
 protected:
  /// 2 partitions × 30 TestSchema events, a bad one at offset 12 of partition 1, and 5
  /// SaveTiming events at the end of partition 0.
  std::vector<VectorInput::Event> events() {
    std::vector<VectorInput::Event> out;
    for (int64_t o = 0; o < 35; ++o) {
      for (int32_t p = 0; p < 2; ++p) {
        if (o >= 30 && p == 1) continue;
        std::string payload;
        if (p == 1 && o == 12) {
          std::string reason;
          payload = EventFactory::bad(4, 12, reason);
        } else {
          payload = EventFactory::good(o < 30 ? 3 : 1, 1, static_cast<uint32_t>(p),
                                       static_cast<uint64_t>(o));
        }
        out.push_back({"t", p, o, payload});
      }
    }
    return out;
  }

  ReplayEnd run(ReplayLedger& ledger, bool dry_run, std::set<std::string, std::less<>> schemas = {},
                const std::atomic<bool>* stop = nullptr) {
    ReplayOptions options;
    options.limits = {8, 1 << 20, std::chrono::hours(1)};
    options.writers = 2;
    options.schemas = std::move(schemas);
    Replay replay(
        registry_,
        [this, dry_run] { return std::make_unique<FakeReplaySession>(tables_, dry_run); }, options);
    VectorInput input(events());
    std::atomic<bool> never{false};
    std::string error;
    const auto end = replay.run(input, ledger, stop != nullptr ? *stop : never, {}, error);
    error_ = error;
    return end;
  }

  SchemaRegistry registry_{testing::source_dir() + "/schemas"};
  FakeEventTables tables_;
  std::string error_;
};

TEST_F(ReplayEngineTest, WritesWhatIsMissingOnceAndASecondRunWritesNothing) {
  // The service stored the first ten events of partition 0 already.
  for (uint64_t s = 0; s < 10; ++s) tables_.store("TestSchema_1", EventFactory::uuid_for(1, 0, s));
  ReplayLedger first;
  ASSERT_EQ(run(first, false), ReplayEnd::kComplete) << error_;
  const auto& t = first.tables().at("TestSchema_1");
  EXPECT_EQ(t.read, 60u);
  EXPECT_EQ(t.written, 49u);
  EXPECT_EQ(t.already_present, 10u);
  EXPECT_EQ(t.dead_lettered, 1u) << "the bad event (wrong_type) counts for its table";
  EXPECT_EQ(first.tables().at("SaveTiming_15396492").written, 5u);
  EXPECT_EQ(tables_.uuids("TestSchema_1").size(), 59u);
  // In offset order within each partition (ids follow insertion order).
  uint64_t last = 0;
  for (const auto& u : tables_.uuids("TestSchema_1")) {
    uint32_t ti = 0, p = 0;
    uint64_t s = 0;
    EventFactory::parse_uuid(u, ti, p, s);
    if (p == 0 && s >= 10) {
      EXPECT_GE(s, last);
      last = s;
    }
  }
  const auto letters = tables_.dead_letters();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters.begin()->first, "t/1@12");
  EXPECT_TRUE(letters.begin()->second.ends_with(" (sluice replay)")) << letters.begin()->second;
  for (const auto& [key, p] : first.partitions()) {
    EXPECT_EQ(p.covered_end(), key.second == 0 ? 35 : 30);
  }

  ReplayLedger second;
  ASSERT_EQ(run(second, false), ReplayEnd::kComplete);
  const auto totals = second.totals();
  EXPECT_EQ(totals.written, 0u);
  EXPECT_EQ(totals.dead_lettered, 0u);
  EXPECT_EQ(totals.already_present, 65u);
  EXPECT_EQ(tables_.uuids("TestSchema_1").size(), 59u);
  EXPECT_EQ(tables_.dead_letters().size(), 1u);
}

TEST_F(ReplayEngineTest, ADryRunCountsTheSameAndWritesNothing) {
  for (uint64_t s = 0; s < 10; ++s) tables_.store("TestSchema_1", EventFactory::uuid_for(1, 0, s));
  ReplayLedger dry;
  ASSERT_EQ(run(dry, true), ReplayEnd::kComplete);
  EXPECT_EQ(dry.totals().written, 54u);
  EXPECT_EQ(dry.totals().already_present, 10u);
  EXPECT_EQ(dry.totals().dead_lettered, 1u);
  EXPECT_EQ(tables_.uuids("TestSchema_1").size(), 10u);
  EXPECT_TRUE(tables_.dead_letters().empty());
}

TEST_F(ReplayEngineTest, OnlyTheSchemasAskedForAreWritten) {
  ReplayLedger ledger;
  ASSERT_EQ(run(ledger, false, {"SaveTiming"}), ReplayEnd::kComplete);
  EXPECT_EQ(ledger.totals().written, 5u);
  EXPECT_EQ(ledger.skipped(), 60u);
  EXPECT_TRUE(tables_.uuids("TestSchema_1").empty());
  EXPECT_TRUE(tables_.dead_letters().empty());
}

TEST_F(ReplayEngineTest, AWriteThatFailsStopsTheReplayAndCoversOnlyWhatWasWritten) {
  tables_.fail_next_writes(1);
  ReplayLedger ledger;
  ASSERT_EQ(run(ledger, false), ReplayEnd::kFailed);
  EXPECT_NE(error_.find("Access denied"), std::string::npos) << error_;
  // Whatever was written, each partition's covered range holds exactly the stored events.
  for (const auto& [key, p] : ledger.partitions()) {
    uint64_t stored = 0;
    for (const auto& u : tables_.uuids("TestSchema_1")) {
      uint32_t ti = 0, part = 0;
      uint64_t s = 0;
      EventFactory::parse_uuid(u, ti, part, s);
      if (part == static_cast<uint32_t>(key.second)) {
        EXPECT_LT(static_cast<int64_t>(s), p.covered_end()) << "written past the covered range";
        ++stored;
      }
    }
    const int64_t bad = key.second == 1 && p.covered_end() > 12 ? 1 : 0;
    EXPECT_EQ(static_cast<int64_t>(stored) + bad, std::min<int64_t>(p.covered_end(), 30));
  }
}

TEST_F(ReplayEngineTest, AnEventOfARevisionNotFetchedYetWaitsForTheRepositoryNeverADeadLetter) {
  testing::FakeSchemaSource repo;
  repo.put("Remote", 1, EventFactory::test_schema_document());
  repo.set_down_for(3);
  testing::TempDir cache;
  registry_.use_repository(&repo, cache.path());
  std::vector<VectorInput::Event> events;
  for (int64_t o = 0; o < 20; ++o) {
    events.push_back({"t", 0, o,
                      o % 2 == 0 ? EventFactory::renamed("Remote", 1, 1, 0, o)
                                 : EventFactory::good(3, 1, 0, static_cast<uint64_t>(o))});
  }
  ReplayOptions options;
  options.limits = {8, 1 << 20, std::chrono::hours(1)};
  options.writers = 1;
  Replay replay(
      registry_, [this] { return std::make_unique<FakeReplaySession>(tables_, false); }, options);
  VectorInput input(events);
  std::atomic<bool> never{false};
  std::string error;
  ReplayLedger ledger;
  ASSERT_EQ(replay.run(input, ledger, never, {}, error), ReplayEnd::kComplete) << error;
  EXPECT_EQ(tables_.uuids("Remote_1").size(), 10u);
  EXPECT_EQ(tables_.uuids("TestSchema_1").size(), 10u);
  EXPECT_TRUE(tables_.dead_letters().empty());
  EXPECT_EQ(repo.answers("Remote", 1), 1);
  // Stopped while it waits (the repository down for good): interrupted, the event not read.
  testing::FakeSchemaSource down;
  down.set_down(true);
  SchemaRegistry other(testing::source_dir() + "/schemas");
  other.use_repository(&down, cache.path() + "/other");
  std::atomic<bool> stop{false};
  Replay stopped(
      other, [this] { return std::make_unique<FakeReplaySession>(tables_, false); }, options);
  VectorInput again({{"t", 0, 100, EventFactory::renamed("Elsewhere", 1, 1, 0, 100)}});
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
  });
  ReplayLedger second;
  EXPECT_EQ(stopped.run(again, second, stop, {}, error), ReplayEnd::kInterrupted);
  stopper.join();
  EXPECT_TRUE(tables_.dead_letters().empty());
  EXPECT_EQ(second.totals().read, 0u);
}

TEST_F(ReplayEngineTest, AWriteThatFailsWhileAnEventWaitsForItsSchemaEndsTheWait) {
  // A full batch goes to the writer and fails; the next event waits for a repository that is
  // down for good. The replay ends as failed, not waiting until someone stops it.
  testing::FakeSchemaSource down;
  down.set_down(true);
  testing::TempDir cache;
  registry_.use_repository(&down, cache.path());
  tables_.fail_next_writes(1);
  std::vector<VectorInput::Event> events;
  for (int64_t o = 0; o < 8; ++o) {
    events.push_back({"t", 0, o, EventFactory::good(3, 1, 0, static_cast<uint64_t>(o))});
  }
  events.push_back({"t", 0, 8, EventFactory::renamed("Elsewhere", 1, 1, 0, 8)});
  ReplayOptions options;
  options.limits = {8, 1 << 20, std::chrono::hours(1)};
  options.writers = 1;
  options.attempts = 1;
  Replay replay(
      registry_, [this] { return std::make_unique<FakeReplaySession>(tables_, false); }, options);
  VectorInput input(events);
  std::atomic<bool> stop{false}, done{false}, had_to_stop{false};
  std::thread stopper([&] {  // only if the wait never ends by itself
    for (int i = 0; i < 100 && !done.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    had_to_stop = !done.load();
    stop = true;
  });
  std::string error;
  ReplayLedger ledger;
  const auto end = replay.run(input, ledger, stop, {}, error);
  done = true;
  stopper.join();
  EXPECT_FALSE(had_to_stop.load()) << "the replay waited for the schema after its write failed";
  EXPECT_EQ(end, ReplayEnd::kFailed) << error;
  EXPECT_TRUE(tables_.dead_letters().empty());
}

TEST_F(ReplayEngineTest, AStopRequestEndsWithTheCoveredRangesExact) {
  std::atomic<bool> stop{true};
  ReplayLedger ledger;
  ASSERT_EQ(run(ledger, false, {}, &stop), ReplayEnd::kInterrupted);
  EXPECT_EQ(ledger.totals().written, 0u);
  EXPECT_TRUE(tables_.uuids("TestSchema_1").empty());
}

/// Time that passes as it is looked at: the replay's loop moves it without any sleeping.
class TickingClock final : public Clock {
 public:
  time_point now() const override {
    return time_point(std::chrono::milliseconds(ms_.fetch_add(5) + 3'600'000));
  }
  int64_t wall_ms() const override { return 1'700'000'000'000 + ms_.load(); }
  uint64_t seed() const override { return 42; }

 private:
  mutable std::atomic<int64_t> ms_{0};
};

/// A replay follows the replicas as the drain does: one lagging past the bound slows it down
/// (and it still ends with everything written); one within it does not.
TEST_F(ReplayEngineTest, AReplicaLaggingPastTheBoundSlowsTheReplayDown) {
  for (const double lag : {60.0, 1.0}) {
    SCOPED_TRACE(lag);
    FakeEventTables tables;
    TickingClock clock;
    ReplayOptions options;
    options.limits = {8, 1 << 20, std::chrono::hours(1)};
    options.max_replica_lag_s = 5;
    int asked = 0;
    options.replica_lag = [&] {
      ++asked;
      return std::optional<double>(lag);
    };
    Replay replay(
        registry_, [&tables] { return std::make_unique<FakeReplaySession>(tables, false); },
        options, clock);
    std::vector<VectorInput::Event> many;
    for (int64_t o = 0; o < 600; ++o) {
      many.push_back({"t", 0, o, EventFactory::good(3, 1, 0, static_cast<uint64_t>(o))});
    }
    VectorInput input(std::move(many));
    ReplayLedger ledger;
    std::atomic<bool> never{false};
    std::string error;
    ASSERT_EQ(replay.run(input, ledger, never, {}, error), ReplayEnd::kComplete) << error;
    EXPECT_EQ(tables.uuids("TestSchema_1").size(), 600u);
    EXPECT_GT(asked, 0);
    if (lag > 5) {
      EXPECT_EQ(replay.governor().limiting(), DrainGovernor::Limit::kReplicaLag);
      EXPECT_GT(replay.governor().rate(), 0);
      EXPECT_GT(replay.held_back().at("replica_lag"), 0) << "the summary says what held it";
    } else {
      EXPECT_NE(replay.governor().limiting(), DrainGovernor::Limit::kReplicaLag);
      EXPECT_FALSE(replay.held_back().contains("replica_lag"));
    }
  }
}

}  // namespace
}  // namespace sluice::ingest
