#include "ingest/writer.h"

#include <errmsg.h>
#include <gtest/gtest.h>
#include <mysqld_error.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "storage/mariadb_sink.h"
#include "storage/table_layout.h"

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;
using storage::Batch;
using storage::DbStatus;
using storage::WriteOutcome;
using storage::WriteResult;

/// What the fake database holds: the offsets row per partition, rows and dead letters in
/// commit order, and every transaction's range.
struct FakeDb {
  std::mutex mu;
  std::map<std::pair<std::string, int32_t>, int64_t> next;
  std::vector<int64_t> rows;                         ///< offsets of committed rows
  std::vector<storage::DeadLetter> letters;          ///< committed dead letters
  std::vector<std::pair<int64_t, int64_t>> commits;  ///< [base, end) of each transaction
  int writes = 0;
};

/// A sink over FakeDb with the sluice_offsets compare-and-set, refusing whatever `refuse` says.
class FakeSink final : public storage::BatchSink {
 public:
  FakeSink(FakeDb& db, std::function<DbStatus(const Batch&)> refuse)
      : db_(db), refuse_(std::move(refuse)) {}
  WriteResult write(Batch& b) override {
    std::lock_guard lock(db_.mu);
    ++db_.writes;
    WriteResult r;
    const auto key = std::make_pair(b.topic, b.partition);
    const int64_t next = db_.next.contains(key) ? db_.next[key] : b.base_offset;
    if (next >= b.end_offset) {
      r.outcome = WriteOutcome::kAlreadyApplied;
      r.db_next_offset = next;
      return r;
    }
    if (next < b.base_offset) {
      r.outcome = WriteOutcome::kBehind;
      r.db_next_offset = next;
      return r;
    }
    if (next > b.base_offset) b.trim_before(next);
    if (auto st = refuse_(b); !st.is_ok()) {
      r.error = st;
      r.failed_table = b.tables.empty() ? "" : b.tables[0].table->name();
      return r;
    }
    for (const auto& t : b.tables) {
      db_.rows.insert(db_.rows.end(), t.offsets.begin(), t.offsets.end());
      r.rows += t.rows();
    }
    db_.letters.insert(db_.letters.end(), b.dead_letters.begin(), b.dead_letters.end());
    r.dead_letters = b.dead_letters.size();
    db_.commits.emplace_back(b.base_offset, b.end_offset);
    db_.next[key] = b.end_offset;
    r.outcome = WriteOutcome::kCommitted;
    return r;
  }
  DbStatus probe() override { return {}; }
  DbStatus read_offsets(const std::string&, std::map<int32_t, int64_t>& out) override {
    out.clear();
    return {};
  }
  void disconnect() override {}

 private:
  FakeDb& db_;
  std::function<DbStatus(const Batch&)> refuse_;
};

bool holds(const Batch& b, int64_t offset) {
  for (const auto& t : b.tables) {
    if (std::find(t.offsets.begin(), t.offsets.end(), offset) != t.offsets.end()) return true;
  }
  return false;
}

class WriterTest : public ::testing::Test {
 protected:
  /// A batch of `rows` rows of table T_1 at offsets [base, base + rows), plus a dead letter at
  /// each offset of `letters` (which then holds no row).
  Batch batch(int64_t base, int64_t rows, std::set<int64_t> letters = {}) {
    Batch b;
    b.topic = "t";
    b.partition = 0;
    b.base_offset = base;
    b.end_offset = base + rows;
    storage::TableRows t;
    t.table = &table_;
    for (int64_t o = base; o < base + rows; ++o) {
      if (letters.contains(o)) {
        b.dead_letters.push_back({o, "wrong_type: event.x: expected integer, got string", "{}"});
      } else {
        t.data += "row" + std::to_string(o) + "\n";
        t.offsets.push_back(o);
        t.ends.push_back(static_cast<uint32_t>(t.data.size()));
      }
      ++b.events;
    }
    b.tables.push_back(std::move(t));
    return b;
  }

  void start(std::function<DbStatus(const Batch&)> refuse,
             const Clock& clock = SystemClock::instance(),
             Execution execution = Execution::kThread) {
    writer_ = std::make_unique<Writer>(
        0, std::make_unique<FakeSink>(db_, std::move(refuse)),
        [this](WriteReport&& r) {
          std::lock_guard lock(mu_);
          reports_.push_back(std::move(r));
          cv_.notify_all();
        },
        clock, RetryLimit{}, nullptr, execution);
  }

  bool wait_reports(size_t n, std::chrono::seconds timeout = 30s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return reports_.size() >= n; });
  }

  int64_t next_offset() {
    std::lock_guard lock(db_.mu);
    return db_.next[std::make_pair(std::string("t"), int32_t{0})];
  }

  storage::TableLayout table_{"T_1", {}};
  FakeDb db_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WriteReport> reports_;
  std::unique_ptr<Writer> writer_;
};

TEST_F(WriterTest, RefusedRowsAreIsolatedDeadLetteredAndTheRestWrittenInOffsetOrder) {
  // Rows 137 and 180 are refused by the database (a value too long for a DBA's narrower
  // column, say); the batch also carries a decoder dead letter at 150.
  start([](const Batch& b) -> DbStatus {
    if (holds(b, 137) || holds(b, 180)) return {ER_DATA_TOO_LONG, "Data too long for column"};
    return {};
  });
  writer_->push(batch(100, 100, {150}));
  ASSERT_TRUE(wait_reports(1));
  writer_->stop(false);
  ASSERT_EQ(reports_.size(), 1u);  // one report for the batch, however many parts it took
  const auto& r = reports_[0];
  EXPECT_EQ(r.outcome, WriteOutcome::kCommitted);
  EXPECT_EQ(r.base_offset, 100);
  EXPECT_EQ(r.end_offset, 200);
  EXPECT_EQ(r.rows, 97u);
  EXPECT_EQ(r.dead_letters, 3u);
  ASSERT_EQ(r.tables.size(), 1u);
  EXPECT_EQ(r.tables[0].rows, 97u);
  std::map<std::string, uint64_t> classes(r.dead_letter_classes.begin(),
                                          r.dead_letter_classes.end());
  EXPECT_EQ(classes["db_refused"], 2u);
  EXPECT_EQ(classes["wrong_type"], 1u);

  // Every row once, in offset order; the offsets row at the end; transactions contiguous.
  std::vector<int64_t> expected;
  for (int64_t o = 100; o < 200; ++o) {
    if (o != 137 && o != 180 && o != 150) expected.push_back(o);
  }
  EXPECT_EQ(db_.rows, expected);
  EXPECT_EQ(next_offset(), 200);
  int64_t at = 100;
  for (const auto& [base, end] : db_.commits) {
    EXPECT_EQ(base, at);
    at = end;
  }
  EXPECT_EQ(at, 200);
  std::map<int64_t, std::string> letters;
  for (const auto& d : db_.letters) letters[d.offset] = d.reason;
  ASSERT_EQ(letters.size(), 3u);
  EXPECT_EQ(letters[137],
            "db_refused: T_1: MariaDB error 1406 (bad_row): Data too long for column");
  EXPECT_EQ(letters[180].rfind("db_refused: T_1: ", 0), 0u);
  EXPECT_EQ(letters[150].rfind("wrong_type: ", 0), 0u);
  EXPECT_FALSE(writer_->state().failing);
  EXPECT_EQ(writer_->state().errors_by_class[static_cast<size_t>(storage::DbErrorClass::kBadRow)],
            static_cast<uint64_t>(db_.writes - static_cast<int>(db_.commits.size())));
}

TEST_F(WriterTest, RowsRefusedInASplitAreReportedUnderTheirTable) {
  // A replay's summary counts every event under its table: the row MariaDB refused is one of
  // T_1's dead letters, not a row written.
  start([](const Batch& b) -> DbStatus {
    if (holds(b, 5)) return {ER_DATA_TOO_LONG, "Data too long for column 'event_a' at row 1"};
    return {};
  });
  writer_->push(batch(0, 16, {9}));
  ASSERT_TRUE(wait_reports(1));
  writer_->stop(false);
  ASSERT_EQ(reports_[0].outcome, WriteOutcome::kCommitted);
  ASSERT_EQ(reports_[0].tables.size(), 1u);
  EXPECT_EQ(reports_[0].tables[0].rows, 14u);
  ASSERT_EQ(reports_[0].table_dead_letters.size(), 1u) << "the decoder's dead letter is not one";
  EXPECT_EQ(reports_[0].table_dead_letters[0].name, "T_1");
  EXPECT_EQ(reports_[0].table_dead_letters[0].dead_lettered, 1u);
  EXPECT_EQ(reports_[0].dead_letters, 2u);
}

TEST_F(WriterTest, AStatementThatAlwaysTimesOutIsSplitDownToTheSlowRow) {
  start([](const Batch& b) -> DbStatus {
    if (holds(b, 42)) return {ER_STATEMENT_TIMEOUT, "Query execution was interrupted"};
    return {};
  });
  writer_->push(batch(0, 64));
  ASSERT_TRUE(wait_reports(1));
  writer_->stop(false);
  EXPECT_EQ(reports_[0].outcome, WriteOutcome::kCommitted);
  EXPECT_EQ(reports_[0].rows, 63u);
  ASSERT_EQ(db_.letters.size(), 1u);
  EXPECT_EQ(db_.letters[0].offset, 42);
  EXPECT_NE(db_.letters[0].reason.find("1969"), std::string::npos) << db_.letters[0].reason;
  EXPECT_EQ(next_offset(), 64);
}

TEST_F(WriterTest, ADuplicatePrimaryKeyThatRepeatsEndsAsADeadLetterNotAnEndlessRetry) {
  // A table whose primary key is not Sluice's auto-increment id (uuid, from an older consumer)
  // answers a stored uuid with a duplicate on 'PRIMARY' on every attempt. Retried as a deadlock,
  // the batch would never be written; the writer must find the row and dead-letter it.
  start([](const Batch& b) -> DbStatus {
    if (!holds(b, 42)) return {};
    std::string uuid;
    return storage::classify_load_warning(
        "T_1", std::to_string(ER_DUP_ENTRY),
        "Duplicate entry '0123456789abcdef0123456789abcdef' for key 'PRIMARY'", uuid);
  });
  writer_->push(batch(0, 64));
  writer_->push(batch(64, 8));
  ASSERT_TRUE(wait_reports(2)) << "the batch is retried forever";
  writer_->stop(false);
  EXPECT_EQ(reports_[0].outcome, WriteOutcome::kCommitted);
  EXPECT_EQ(reports_[0].rows, 63u);
  EXPECT_EQ(reports_[1].outcome, WriteOutcome::kCommitted);
  ASSERT_EQ(db_.letters.size(), 1u);
  EXPECT_EQ(db_.letters[0].offset, 42);
  EXPECT_EQ(db_.letters[0].reason.rfind("db_refused: T_1: MariaDB error 1062", 0), 0u)
      << db_.letters[0].reason;
  EXPECT_NE(db_.letters[0].reason.find("for key 'PRIMARY'"), std::string::npos);
  EXPECT_EQ(next_offset(), 72);
  EXPECT_FALSE(writer_->state().failing);
}

TEST_F(WriterTest, ADuplicatePrimaryKeyThatPassesOnRetryWritesTheWholeBatch) {
  // Two writers on one table: InnoDB handed an auto-increment id out twice, once. Written again,
  // the batch passes whole; no event is dead-lettered for a race.
  std::atomic<int> collisions{1};
  start([&](const Batch&) -> DbStatus {
    if (collisions.fetch_sub(1) <= 0) return {};
    std::string uuid;
    return storage::classify_load_warning("T_1", std::to_string(ER_DUP_ENTRY),
                                          "Duplicate entry '1207' for key 'PRIMARY'", uuid);
  });
  writer_->push(batch(0, 64));
  ASSERT_TRUE(wait_reports(1));
  writer_->stop(false);
  EXPECT_EQ(reports_[0].outcome, WriteOutcome::kCommitted);
  EXPECT_EQ(reports_[0].rows, 64u);
  EXPECT_TRUE(db_.letters.empty());
  EXPECT_EQ(db_.commits.size(), 1u);
  EXPECT_EQ(next_offset(), 64);
}

TEST_F(WriterTest, AWholeBatchOfRefusedRowsEndsAsDeadLettersNeverBlocking) {
  start([](const Batch& b) -> DbStatus {
    if (!b.tables.empty()) return {ER_NO_DEFAULT_FOR_FIELD, "Field 'x' doesn't have a default"};
    return {};
  });
  writer_->push(batch(0, 16));
  writer_->push(batch(16, 16));
  ASSERT_TRUE(wait_reports(2));
  writer_->stop(false);
  EXPECT_TRUE(db_.rows.empty());
  EXPECT_EQ(db_.letters.size(), 32u);
  EXPECT_EQ(next_offset(), 32);
  for (const auto& r : reports_) EXPECT_EQ(r.dead_letters, 16u);
}

TEST_F(WriterTest, AFailingWriterSaysWhereAndWhyUntilItRecovers) {
  std::atomic<int> refusals{5};
  start([&](const Batch&) -> DbStatus {
    if (refusals.fetch_sub(1) > 0) {
      return {ER_TABLEACCESS_DENIED_ERROR, "INSERT command denied to user 'sluice'"};
    }
    return {};
  });
  writer_->push(batch(0, 10));
  ASSERT_TRUE(wait_reports(1));
  // Failing from the third attempt on; then it recovered.
  EXPECT_FALSE(writer_->state().failing);
  EXPECT_EQ(writer_->state().errors_by_class[static_cast<size_t>(storage::DbErrorClass::kFatal)],
            5u);
  EXPECT_EQ(reports_[0].outcome, WriteOutcome::kCommitted);
  EXPECT_EQ(db_.rows.size(), 10u);
  writer_->stop(false);
}

TEST_F(WriterTest, FailingStateNamesThePartitionTheTableAndTheError) {
  start([](const Batch&) -> DbStatus {
    return {ER_TABLEACCESS_DENIED_ERROR, "INSERT command denied to user 'sluice'"};
  });
  writer_->push(batch(0, 10));
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!writer_->state().failing && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  const auto s = writer_->state();
  ASSERT_TRUE(s.failing);
  EXPECT_EQ(s.partition, "t/0");
  EXPECT_EQ(s.table, "T_1");
  EXPECT_NE(s.last_error.find("1142"), std::string::npos);
  EXPECT_GT(s.since_ms, 0);
  EXPECT_GE(s.attempts, static_cast<uint64_t>(Writer::kFailingAfter));
  writer_->quiesce();  // a pause gives the batch up: reported once, as dropped
  ASSERT_TRUE(wait_reports(1));
  writer_->stop(true);
  EXPECT_EQ(reports_.size(), 1u);
  EXPECT_EQ(reports_[0].outcome, WriteOutcome::kFailed);
  EXPECT_TRUE(db_.rows.empty());
}

TEST_F(WriterTest, OutagesAreHandedBackNotSplit) {
  start([](const Batch&) -> DbStatus { return {CR_SERVER_LOST, "Lost connection"}; });
  writer_->push(batch(0, 10));
  ASSERT_TRUE(wait_reports(1));
  writer_->stop(true);
  EXPECT_EQ(reports_[0].outcome, WriteOutcome::kFailed);
  EXPECT_EQ(reports_[0].error.code, static_cast<unsigned>(CR_SERVER_LOST));
  EXPECT_TRUE(db_.letters.empty());
  EXPECT_EQ(db_.writes, Writer::kOutageAttempts);
}

/// Inline, a writer does nothing until it is run, one piece of work at a time, and a retry is
/// due when the injected clock reaches it: what a simulation needs to replay a run exactly.
TEST_F(WriterTest, InlineItRunsOnePieceAtATimeAndRetriesWhenTheClockSaysSo) {
  ManualClock clock;
  clock.set_seed(7);
  int refusals = 2;
  start(
      [&](const Batch&) -> DbStatus {
        if (refusals > 0) {
          --refusals;
          return {CR_SERVER_LOST, "Lost connection to server during query"};
        }
        return {};
      },
      clock, Execution::kInline);
  EXPECT_EQ(writer_->run_once(), Writer::Ran::kIdle);
  writer_->push(batch(0, 10));
  writer_->push(batch(10, 10));
  EXPECT_EQ(db_.writes, 0) << "nothing runs until it is run";
  EXPECT_TRUE(writer_->next_is_statement());
  EXPECT_EQ(writer_->run_once(), Writer::Ran::kWorked);  // refused: backing off
  EXPECT_EQ(db_.writes, 1);
  EXPECT_EQ(writer_->run_once(), Writer::Ran::kWaiting);
  EXPECT_FALSE(writer_->next_is_statement());
  EXPECT_EQ(db_.writes, 1) << "the retry waits for the clock";
  clock.advance(1s);  // the quick backoff is at most a second
  EXPECT_EQ(writer_->run_once(), Writer::Ran::kWorked);  // refused again
  EXPECT_EQ(db_.writes, 2);
  clock.advance(1s);
  EXPECT_EQ(writer_->run_once(), Writer::Ran::kWorked);  // written
  ASSERT_EQ(reports_.size(), 1u);
  EXPECT_EQ(reports_[0].outcome, WriteOutcome::kCommitted);
  EXPECT_EQ(writer_->run_once(), Writer::Ran::kWorked);
  ASSERT_EQ(reports_.size(), 2u);
  EXPECT_EQ(next_offset(), 20);
  EXPECT_TRUE(writer_->idle());

  // Quiesced while a batch backs off: the batch is given up at the next piece of work, then
  // the session is closed.
  refusals = 1;
  writer_->push(batch(20, 10));
  EXPECT_EQ(writer_->run_once(), Writer::Ran::kWorked);  // refused
  writer_->quiesce();
  EXPECT_FALSE(writer_->next_is_statement());
  EXPECT_EQ(writer_->run_once(), Writer::Ran::kWorked);  // given up, no statement
  ASSERT_EQ(reports_.size(), 3u);
  EXPECT_EQ(reports_[2].outcome, WriteOutcome::kFailed);
  EXPECT_TRUE(reports_[2].error.is_ok()) << "dropped for the pause, not an error";
  EXPECT_FALSE(writer_->quiet());
  EXPECT_EQ(writer_->run_once(), Writer::Ran::kWorked);  // the disconnect
  EXPECT_TRUE(writer_->quiet());
  EXPECT_EQ(writer_->run_once(), Writer::Ran::kIdle);
  EXPECT_EQ(db_.writes, 5);

  // Stopped with a batch queued: reported dropped, never written.
  writer_->unquiesce();
  writer_->push(batch(20, 10));
  writer_->stop(false);
  ASSERT_EQ(reports_.size(), 4u);
  EXPECT_EQ(reports_[3].outcome, WriteOutcome::kFailed);
  EXPECT_EQ(writer_->run_once(), Writer::Ran::kStopped);
  EXPECT_EQ(db_.writes, 5);
}

}  // namespace
}  // namespace sluice::ingest
