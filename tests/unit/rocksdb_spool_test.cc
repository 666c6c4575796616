#include "storage/rocksdb_spool.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "testing/harness.h"

namespace sluice::storage {
namespace {

std::unique_ptr<Spool> open_spool(const std::string& path) {
  auto s = RocksDbSpool::open(path);
  EXPECT_TRUE(s.is_ok()) << s.status().message();
  return s.is_ok() ? std::move(s).value() : nullptr;
}

TEST(RocksDbSpool, KeysSortByTopicPartitionOffsetIncludingLargeValues) {
  EXPECT_LT(spool_key("a", 0, 5), spool_key("a", 0, 6));
  EXPECT_LT(spool_key("a", 0, 255), spool_key("a", 0, 256));
  EXPECT_LT(spool_key("a", 0, 1LL << 40), spool_key("a", 1, 0));
  EXPECT_LT(spool_key("a", 9, 0), spool_key("a", 10, 0));
  EXPECT_LT(spool_key("a", 1, 0), spool_key("ab", 0, 0));
}

TEST(RocksDbSpool, StagedEventsAreInvisibleUntilCommittedThenReadInOffsetOrder) {
  testing::TempDir dir;
  auto spool = open_spool(dir.file("spool"));
  ASSERT_TRUE(spool);
  for (int64_t offset : {12, 10, 11}) {
    spool->append("t", 0, offset, 1000 + offset, "event-" + std::to_string(offset));
  }
  spool->append("t", 1, 3, 5, "other partition");
  EXPECT_EQ(spool->staged(), 4u);
  EXPECT_EQ(spool->totals().events, 0u);
  ASSERT_TRUE(spool->commit().is_ok());
  EXPECT_EQ(spool->totals().events, 4u);
  SpoolChunk out;
  ASSERT_TRUE(spool->read("t", 0, 0, 100, out).is_ok());
  ASSERT_EQ(out.events.size(), 3u);
  EXPECT_EQ(out.events[0].offset, 10);
  EXPECT_EQ(out.events[0].payload, "event-10");
  EXPECT_EQ(out.events[0].timestamp_ms, 1010);
  EXPECT_EQ(out.events[2].offset, 12);
  ASSERT_TRUE(spool->read("t", 0, 11, 1, out).is_ok());
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].offset, 11);
  const auto p = spool->partition("t", 0);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first_offset, 10);
  EXPECT_EQ(p->last_offset, 12);
  EXPECT_EQ(p->events, 3u);
}

TEST(RocksDbSpool, ReleaseDeletesBelowAnOffsetAndReclaimsAccounting) {
  testing::TempDir dir;
  auto spool = open_spool(dir.file("spool"));
  ASSERT_TRUE(spool);
  for (int64_t o = 0; o < 100; ++o) spool->append("t", 2, o, o, std::string(100, 'x'));
  ASSERT_TRUE(spool->commit().is_ok());
  const auto before = spool->totals().bytes;
  ASSERT_TRUE(spool->release("t", 2, 60).is_ok());
  SpoolChunk out;
  ASSERT_TRUE(spool->read("t", 2, 0, 1000, out).is_ok());
  ASSERT_EQ(out.events.size(), 40u);
  EXPECT_EQ(out.events.front().offset, 60);
  EXPECT_EQ(spool->partition("t", 2)->first_offset, 60);
  EXPECT_EQ(spool->partition("t", 2)->oldest_timestamp_ms, 60);
  EXPECT_LT(spool->totals().bytes, before);
  ASSERT_TRUE(spool->release("t", 2, 100).is_ok());
  EXPECT_FALSE(spool->partition("t", 2));
  EXPECT_EQ(spool->totals().events, 0u);
  EXPECT_EQ(spool->totals().bytes, 0u);
}

TEST(RocksDbSpool, ReopenRestoresEventsAccountingAndThePauseRecord) {
  testing::TempDir dir;
  {
    auto spool = open_spool(dir.file("spool"));
    ASSERT_TRUE(spool);
    for (int64_t o = 5; o < 25; ++o) spool->append("topic.a", 3, o, 42, "p");
    ASSERT_TRUE(spool->commit().is_ok());
    spool->append("topic.a", 3, 25, 42, "never committed");
    ASSERT_TRUE(spool->set_pause(PauseRecord{"schema patch", 1700000000000}).is_ok());
  }
  auto spool = open_spool(dir.file("spool"));
  ASSERT_TRUE(spool);
  const auto p = spool->partition("topic.a", 3);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first_offset, 5);
  EXPECT_EQ(p->last_offset, 24);
  EXPECT_EQ(p->events, 20u);
  ASSERT_TRUE(spool->pause());
  EXPECT_EQ(spool->pause()->reason, "schema patch");
  EXPECT_EQ(spool->pause()->since_ms, 1700000000000);
  ASSERT_TRUE(spool->set_pause(std::nullopt).is_ok());
  spool.reset();
  EXPECT_FALSE(open_spool(dir.file("spool"))->pause());
}

TEST(RocksDbSpool, CorruptSpoolStopsStartUpWithAClearMessageAndIsNotDiscarded) {
  testing::TempDir dir;
  const std::string path = dir.file("spool");
  {
    auto spool = open_spool(path);
    ASSERT_TRUE(spool);
    spool->append("t", 0, 1, 1, "precious");
    ASSERT_TRUE(spool->commit().is_ok());
  }
  // Damage the manifest pointer.
  std::ofstream(path + "/CURRENT", std::ios::trunc) << "MANIFEST-999999\n";
  auto broken = RocksDbSpool::open(path);
  ASSERT_FALSE(broken.is_ok());
  EXPECT_NE(broken.status().message().find("cannot open the spool at " + path), std::string::npos);
  EXPECT_NE(broken.status().message().find("never discarded"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(path + "/CURRENT"));  // left as it was
}

TEST(RocksDbSpool, UnreadableFolderIsAnError) {
  testing::TempDir dir;
  std::ofstream(dir.file("file")) << "not a folder";
  EXPECT_FALSE(RocksDbSpool::open(dir.file("file") + "/spool").is_ok());
}

}  // namespace
}  // namespace sluice::storage
