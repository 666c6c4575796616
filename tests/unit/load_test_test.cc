// Unit tests of the bench engine: synthetic events are valid for every shipped schema, and a
// load test delivers every event exactly once, in offset order, through writers and sessions
// (fakes of the database here; tests/integration/bench_test.cc runs it against mariadbd).

#include "loadtest/load_test.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "ingest/decoder.h"
#include "loadtest/synthetic_events.h"
#include "testing/fakes.h"
#include "testing/harness.h"

namespace sluice::loadtest {
namespace {

using ingest::Decoder;
using ingest::Schema;
using ingest::SchemaRegistry;


TEST(SyntheticEventsTest, EveryShippedSchemaGetsValidDistinctEvents) {
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  Decoder decoder(registry);
  size_t schemas = 0;
  for (const auto& dir : std::filesystem::directory_iterator(registry.root())) {
    if (!dir.is_directory()) continue;
    for (const auto& file : std::filesystem::directory_iterator(dir.path())) {
      // Capsule schemas: <Name>/<revision>.json (test/click/ holds Event Platform versions).
      if (file.path().extension() != ".json") continue;
      std::string error;
      const Schema* schema = registry.find(dir.path().filename().string(),
                                           std::stoll(file.path().stem().string()), error);
      ASSERT_NE(schema, nullptr) << error;
      ++schemas;
      SyntheticEvents events(*schema, 7);
      std::set<std::string> uuids;
      for (uint64_t seq = 0; seq < 200; ++seq) {
        std::string capsule, reason;
        events.append(seq, capsule);
        ASSERT_EQ(decoder.decode(capsule, -1, reason), schema) << reason << "\n" << capsule;
        uuids.insert(std::string(decoder.uuid()));
      }
      EXPECT_EQ(uuids.size(), 200u) << schema->name;
    }
  }
  EXPECT_GE(schemas, 4u);
}

TEST(LoadTestTest, EveryEventIsWrittenOnceInOffsetOrderAcrossWriters) {
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  std::string error;
  const Schema* schema = registry.find("NavigationTiming", 15485142, error);
  ASSERT_NE(schema, nullptr) << error;
  const storage::TableLayout table("sluice_bench_x", schema->table->event_columns());
  testing::FakeDatabase db;
  LoadTest load(
      registry, *schema, table, [&] { return std::make_unique<testing::FakeSession>(db); },
      1 << 20);
  uint64_t last_progress = 0;
  const auto r = load.run(300, 3, 10'000, [&](uint64_t done) {
    EXPECT_GE(done, last_progress);
    last_progress = done;
  });
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.rows, 10'000u);
  EXPECT_EQ(last_progress, 10'000u);
  EXPECT_GE(r.batches, 10'000u / 300);
  EXPECT_LE(r.batch_p50_ms, r.batch_p99_ms);
  // Six partitions; event i went to partition (i / 300) % 6, at consecutive offsets.
  uint64_t total = 0;
  for (int32_t p = 0; p < 6; ++p) {
    const auto stored = db.stored("sluice-bench-1", p);
    for (size_t i = 0; i < stored.size(); ++i) ASSERT_EQ(stored[i], static_cast<int64_t>(i));
    total += stored.size();
  }
  EXPECT_EQ(total, 10'000u);

  // A second run writes under its own topic: nothing collides with the first.
  const auto again = load.run(1000, 1, 2000);
  EXPECT_EQ(again.error, "");
  EXPECT_EQ(db.next_offset("sluice-bench-2", 0), 1000);
}

TEST(LoadTestTest, ADatabaseThatRefusesIsReportedNotHung) {
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  std::string error;
  const Schema* schema = registry.find("NavigationTiming", 15485142, error);
  ASSERT_NE(schema, nullptr) << error;
  testing::FakeDatabase db;
  db.set_mode(testing::FakeDatabase::Mode::kDown);
  LoadTest load(
      registry, *schema, *schema->table, [&] { return std::make_unique<testing::FakeSession>(db); },
      1 << 20);
  const auto r = load.run(100, 2, 1000);
  EXPECT_NE(r.error, "");
  EXPECT_EQ(r.rows, 0u);
}

}  // namespace
}  // namespace sluice::loadtest
