#include "ingest/writer_pool.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "ingest/batcher.h"
#include "ingest/decoder.h"
#include "ingest/schema.h"
#include "testing/fakes.h"
#include "testing/harness.h"

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;
using storage::WriteOutcome;

class WriterPoolTest : public ::testing::Test {
 protected:
  WriterPool pool(size_t writers) {
    return WriterPool({.writers = writers, .spare_rows = 8, .spare_rows_capacity = 1 << 20},
                      [this] { return std::make_unique<testing::FakeSession>(db_); }, clock_);
  }

  /// A batch of `rows` TestSchema events of a partition, from `offset`.
  storage::Batch batch(WriterPool& p, const std::string& topic, int32_t partition, int64_t offset,
                       int rows) {
    Batcher b(topic, partition, {1000, 1 << 20, 1h}, clock_, &p.rows());
    b.reset(offset, 1);
    std::string reason;
    for (int i = 0; i < rows; ++i) {
      const auto* schema = decoder_.decode(
          testing::EventFactory::good(3, 1, static_cast<uint32_t>(partition),
                                      static_cast<uint64_t>(offset + i)),
          -1, reason);
      EXPECT_NE(schema, nullptr) << reason;
      b.add_decoded(schema->layout(), decoder_, offset + i);
    }
    return b.take();
  }

  /// Takes reports until `n` came back (or a few seconds passed).
  std::vector<WriteReport> reports(WriterPool& p, size_t n) {
    std::vector<WriteReport> out;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
      p.wait_for_report(100ms);
      for (auto& r : p.take_reports()) out.push_back(std::move(r));
    }
    return out;
  }

  SystemClock& clock_ = SystemClock::instance();
  testing::FakeDatabase db_;
  SchemaRegistry registry_{testing::source_dir() + "/schemas"};
  Decoder decoder_{registry_};
};

TEST_F(WriterPoolTest, APartitionAlwaysGoesToOneWriterAndItsBatchesAreWrittenInOrder) {
  auto p = pool(3);
  p.start();
  std::set<size_t> used;
  for (int32_t partition = 0; partition < 12; ++partition) {
    const size_t writer = p.route("t", partition);
    EXPECT_EQ(writer, p.route("t", partition));
    EXPECT_LT(writer, 3u);
    used.insert(writer);
  }
  EXPECT_EQ(used.size(), 3u) << "partitions are spread over every writer";

  size_t pushed_bytes = 0;
  for (int64_t round = 0; round < 5; ++round) {
    for (int32_t partition = 0; partition < 6; ++partition) {
      auto b = batch(p, "t", partition, round * 4, 4);
      pushed_bytes += b.bytes;
      p.push(std::move(b));
    }
  }
  EXPECT_EQ(p.in_flight(), 30u);
  EXPECT_LE(p.in_flight_bytes(), pushed_bytes);
  EXPECT_GT(p.in_flight_bytes(), 0u);
  const auto back = reports(p, 30);
  ASSERT_EQ(back.size(), 30u);
  for (const auto& r : back) EXPECT_EQ(r.outcome, WriteOutcome::kCommitted);
  EXPECT_EQ(p.in_flight(), 0u);
  EXPECT_EQ(p.in_flight_bytes(), 0u);
  EXPECT_GT(p.rows().kept(), 0u) << "the written batches' row buffers come back for reuse";
  for (int32_t partition = 0; partition < 6; ++partition) {
    std::vector<int64_t> want(20);
    for (int64_t i = 0; i < 20; ++i) want[static_cast<size_t>(i)] = i;
    EXPECT_EQ(db_.stored("t", partition), want) << "partition " << partition;
  }
  p.stop(false);
}

TEST_F(WriterPoolTest, AQuiesceDropsWhatIsQueuedAndTheAccountingComesBackToZero) {
  auto p = pool(2);
  p.start();
  db_.hold_writes(true);  // the first batch of each writer waits inside its transaction
  for (int64_t round = 0; round < 4; ++round) {
    for (int32_t partition = 0; partition < 4; ++partition) {
      p.push(batch(p, "t", partition, round * 2, 2));
    }
  }
  EXPECT_EQ(p.in_flight(), 16u);
  p.quiesce();
  db_.hold_writes(false);
  const auto back = reports(p, 16);
  ASSERT_EQ(back.size(), 16u);
  size_t dropped = 0;
  for (const auto& r : back) {
    if (r.outcome == WriteOutcome::kFailed) {
      EXPECT_TRUE(r.error.is_ok()) << "dropped, not failed: " << r.error.describe();
      ++dropped;
    }
  }
  EXPECT_GE(dropped, 12u) << "everything queued behind the batches in progress is dropped";
  EXPECT_EQ(p.in_flight(), 0u);
  EXPECT_EQ(p.in_flight_bytes(), 0u);
  EXPECT_TRUE(testing::wait_until([&] { return p.quiet(); }, 10s))
      << "every writer quiet: nothing in flight, its session closed";
  EXPECT_TRUE(p.idle());
  p.unquiesce();
  p.push(batch(p, "t", 0, 100, 1));
  EXPECT_EQ(reports(p, 1).size(), 1u);
  p.stop(false);
}

}  // namespace
}  // namespace sluice::ingest
