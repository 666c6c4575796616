#include "storage/rocksdb_spool.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <spdlog/sinks/ostream_sink.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

#include "common/logging.h"
#include "storage/spool_block.h"
#include "testing/harness.h"

namespace sluice::storage {
namespace {

std::unique_ptr<Spool> open_spool(const std::string& path) {
  auto s = RocksDbSpool::open(path);
  EXPECT_TRUE(s.is_ok()) << s.status().message();
  return s.is_ok() ? std::move(s).value() : nullptr;
}

std::vector<int64_t> offsets_of(const Spool& spool, const std::string& topic, int32_t partition,
                                int64_t from, size_t max = 100'000) {
  SpoolChunk chunk;
  EXPECT_TRUE(spool.read(topic, partition, from, max, chunk).is_ok());
  std::vector<int64_t> out;
  for (const auto& e : chunk.events) out.push_back(e.offset);
  return out;
}

std::vector<int64_t> range(int64_t from, int64_t to) {
  std::vector<int64_t> v;
  for (int64_t o = from; o < to; ++o) v.push_back(o);
  return v;
}

TEST(RocksDbSpool, BlockKeysSortByTopicPartitionOffsetIncludingLargeValues) {
  EXPECT_LT(spool_block_key("a", 0, 5), spool_block_key("a", 0, 6));
  EXPECT_LT(spool_block_key("a", 0, 255), spool_block_key("a", 0, 256));
  EXPECT_LT(spool_block_key("a", 0, 1LL << 40), spool_block_key("a", 1, 0));
  EXPECT_LT(spool_block_key("a", 9, 0), spool_block_key("a", 10, 0));
  EXPECT_LT(spool_block_key("a", 1, 0), spool_block_key("ab", 0, 0));
}

TEST(RocksDbSpool, StagedEventsAreInvisibleUntilCommittedThenReadInOffsetOrder) {
  testing::TempDir dir;
  auto spool = open_spool(dir.file("spool"));
  ASSERT_TRUE(spool);
  for (int64_t offset : {10, 11, 12}) {
    spool->append("t", 0, offset, 1000 + offset, "event-" + std::to_string(offset));
  }
  spool->append("t", 1, 3, 5, "other partition");
  EXPECT_EQ(spool->staged(), 4u);
  EXPECT_EQ(spool->totals().events, 0u);
  EXPECT_TRUE(offsets_of(*spool, "t", 0, 0).empty());
  ASSERT_TRUE(spool->commit().is_ok());
  EXPECT_EQ(spool->staged(), 0u);
  EXPECT_EQ(spool->totals().events, 4u);
  SpoolChunk out;
  ASSERT_TRUE(spool->read("t", 0, 0, 100, out).is_ok());
  ASSERT_EQ(out.events.size(), 3u);
  EXPECT_EQ(out.events[0].offset, 10);
  EXPECT_EQ(out.events[0].payload, "event-10");
  EXPECT_EQ(out.events[0].timestamp_ms, 1010);
  EXPECT_EQ(out.events[2].offset, 12);
  EXPECT_EQ(out.events[2].payload, "event-12");
  ASSERT_TRUE(spool->read("t", 0, 11, 1, out).is_ok());
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].offset, 11);
  const auto p = spool->partition("t", 0);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first_offset, 10);
  EXPECT_EQ(p->last_offset, 12);
  EXPECT_EQ(p->events, 3u);
  EXPECT_EQ(offsets_of(*spool, "t", 1, 0), std::vector<int64_t>{3});
}

TEST(RocksDbSpool, ReadsStartAnywhereInsideABlockAndAcrossBlocks) {
  testing::TempDir dir;
  auto spool = open_spool(dir.file("spool"));
  ASSERT_TRUE(spool);
  // Three commits: blocks [0, 100), [100, 250), [250, 260).
  for (auto [from, to] : {std::pair{0, 100}, {100, 250}, {250, 260}}) {
    // Appended, not `"p" + std::to_string(o)`: GCC 12 at -O2 reports a false -Wrestrict in
    // the string insert that expression inlines (GCC bug 105651).
    for (int64_t o = from; o < to; ++o) {
      std::string payload = "p";
      payload += std::to_string(o);
      spool->append("t", 7, o, o, payload);
    }
    ASSERT_TRUE(spool->commit().is_ok());
  }
  EXPECT_EQ(offsets_of(*spool, "t", 7, 0), range(0, 260));
  EXPECT_EQ(offsets_of(*spool, "t", 7, 99), range(99, 260));
  EXPECT_EQ(offsets_of(*spool, "t", 7, 100), range(100, 260));
  EXPECT_EQ(offsets_of(*spool, "t", 7, 180, 50), range(180, 230));
  EXPECT_EQ(offsets_of(*spool, "t", 7, 259), std::vector<int64_t>{259});
  EXPECT_TRUE(offsets_of(*spool, "t", 7, 260).empty());
  EXPECT_TRUE(offsets_of(*spool, "t", 6, 0).empty());
  EXPECT_TRUE(offsets_of(*spool, "t", 8, 0).empty());
  SpoolChunk chunk;
  ASSERT_TRUE(spool->read("t", 7, 180, 2, chunk).is_ok());
  EXPECT_EQ(chunk.events[1].payload, "p181");
}

TEST(RocksDbSpool, ReleaseInsideABlockCountsOnlyWhatIsLeftAndReclaimsWholeBlocks) {
  testing::TempDir dir;
  auto spool = open_spool(dir.file("spool"));
  ASSERT_TRUE(spool);
  for (auto [from, to] : {std::pair{0, 100}, {100, 200}}) {
    for (int64_t o = from; o < to; ++o) spool->append("t", 2, o, 1000 + o, std::string(100, 'x'));
    ASSERT_TRUE(spool->commit().is_ok());
  }
  const auto before = spool->totals().bytes;
  ASSERT_TRUE(spool->release("t", 2, 60).is_ok());  // inside the first block
  EXPECT_EQ(spool->partition("t", 2)->events, 140u);
  EXPECT_EQ(spool->partition("t", 2)->first_offset, 60);
  EXPECT_EQ(spool->partition("t", 2)->oldest_timestamp_ms, 1060);
  EXPECT_EQ(spool->totals().bytes, before) << "a block is reclaimed only when all of it goes";
  EXPECT_EQ(offsets_of(*spool, "t", 2, 60), range(60, 200));
  ASSERT_TRUE(spool->release("t", 2, 50).is_ok());  // behind: nothing changes
  EXPECT_EQ(spool->partition("t", 2)->events, 140u);
  ASSERT_TRUE(spool->release("t", 2, 130).is_ok());  // past the first block, into the second
  EXPECT_EQ(spool->partition("t", 2)->events, 70u);
  EXPECT_EQ(spool->partition("t", 2)->first_offset, 130);
  EXPECT_LT(spool->totals().bytes, before);
  EXPECT_EQ(offsets_of(*spool, "t", 2, 0), range(100, 200)) << "the first block is gone";
  ASSERT_TRUE(spool->release("t", 2, 200).is_ok());
  EXPECT_FALSE(spool->partition("t", 2));
  EXPECT_EQ(spool->totals().events, 0u);
  EXPECT_EQ(spool->totals().bytes, 0u);
  EXPECT_TRUE(offsets_of(*spool, "t", 2, 0).empty());
  // The partition starts over cleanly.
  spool->append("t", 2, 200, 1, "again");
  ASSERT_TRUE(spool->commit().is_ok());
  EXPECT_EQ(spool->partition("t", 2)->events, 1u);
  EXPECT_EQ(offsets_of(*spool, "t", 2, 0), std::vector<int64_t>{200});
}

TEST(RocksDbSpool, ReopenRestoresBlocksAccountingAndThePauseRecord) {
  testing::TempDir dir;
  {
    auto spool = open_spool(dir.file("spool"));
    ASSERT_TRUE(spool);
    for (int64_t o = 5; o < 25; ++o) spool->append("topic.a", 3, o, 42, "p");
    ASSERT_TRUE(spool->commit().is_ok());
    for (int64_t o = 25; o < 30; ++o) spool->append("topic.a", 3, o, 43, "q");
    ASSERT_TRUE(spool->commit().is_ok());
    ASSERT_TRUE(spool->release("topic.a", 3, 10).is_ok());  // inside the first block
    spool->append("topic.a", 3, 30, 44, "never committed");
    ASSERT_TRUE(spool->set_pause(PauseRecord{"schema patch", 1700000000000}).is_ok());
  }
  auto spool = open_spool(dir.file("spool"));
  ASSERT_TRUE(spool);
  const auto p = spool->partition("topic.a", 3);
  ASSERT_TRUE(p);
  // The partial release is forgotten with the process: those events count (and drain) again.
  EXPECT_EQ(p->first_offset, 5);
  EXPECT_EQ(p->last_offset, 29);
  EXPECT_EQ(p->events, 25u);
  EXPECT_EQ(offsets_of(*spool, "topic.a", 3, 0), range(5, 30));
  ASSERT_TRUE(spool->pause());
  EXPECT_EQ(spool->pause()->reason, "schema patch");
  EXPECT_EQ(spool->pause()->since_ms, 1700000000000);
  ASSERT_TRUE(spool->set_pause(std::nullopt).is_ok());
  spool.reset();
  EXPECT_FALSE(open_spool(dir.file("spool"))->pause());
}

TEST(RocksDbSpool, IncompressibleAndEmptyPayloadsRoundTrip) {
  testing::TempDir dir;
  auto spool = open_spool(dir.file("spool"));
  ASSERT_TRUE(spool);
  std::mt19937_64 rng(7);
  std::vector<std::string> payloads;
  for (int i = 0; i < 50; ++i) {
    std::string p(static_cast<size_t>(i * 40), '\0');
    for (auto& c : p) c = static_cast<char>(rng());
    payloads.push_back(p);
    spool->append("t", 0, i, i, p);
  }
  ASSERT_TRUE(spool->commit().is_ok());
  SpoolChunk chunk;
  ASSERT_TRUE(spool->read("t", 0, 0, 100, chunk).is_ok());
  ASSERT_EQ(chunk.events.size(), 50u);
  for (size_t i = 0; i < 50; ++i) EXPECT_EQ(chunk.events[i].payload, payloads[i]) << i;
}

TEST(RocksDbSpool, AnOffsetAlreadySpooledIsRefusedSoNoEventCanDrainTwice) {
  testing::TempDir dir;
  auto spool = open_spool(dir.file("spool"));
  ASSERT_TRUE(spool);
  for (int64_t o = 0; o < 10; ++o) spool->append("t", 0, o, o, "first");
  ASSERT_TRUE(spool->commit().is_ok());
  spool->append("t", 0, 5, 5, "again, committed before");
  spool->append("t", 0, 10, 10, "new");
  spool->append("t", 0, 10, 10, "again, staged before");
  ASSERT_TRUE(spool->commit().is_ok());
  EXPECT_EQ(offsets_of(*spool, "t", 0, 0), range(0, 11));
  EXPECT_EQ(spool->partition("t", 0)->events, 11u);
}

TEST(RocksDbSpool, StagedBytesEstimateLearnsTheCompressionRatio) {
  testing::TempDir dir;
  auto spool = open_spool(dir.file("spool"));
  ASSERT_TRUE(spool);
  const std::string event = testing::EventFactory::navigation_timing(1, 0, 1);
  for (int64_t o = 0; o < 500; ++o) spool->append("t", 0, o, o, event);
  EXPECT_GE(spool->staged_bytes(), 500 * event.size()) << "no ratio known before a commit";
  ASSERT_TRUE(spool->commit().is_ok());
  const uint64_t stored = spool->totals().bytes;
  EXPECT_LT(stored, 500 * event.size() / 3) << "blocks of JSON compress";
  for (int64_t o = 500; o < 1000; ++o) spool->append("t", 0, o, o, event);
  const uint64_t estimate = spool->staged_bytes();
  EXPECT_GT(estimate, stored / 2);
  EXPECT_LT(estimate, stored * 2);
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

/// Three blocks of partition 0 (offsets 0-9, 10-19, 20-29) and one of partition 1.
void spool_three_blocks(const std::string& path) {
  auto spool = open_spool(path);
  ASSERT_TRUE(spool);
  for (int64_t block = 0; block < 3; ++block) {
    for (int64_t o = block * 10; o < block * 10 + 10; ++o) {
      spool->append("t", 0, o, 1, "event " + std::to_string(o));
    }
    if (block == 0) spool->append("t", 1, 0, 1, "other");
    ASSERT_TRUE(spool->commit().is_ok());
  }
}

/// Rewrites the stored value of the block of t/0 that starts at `first` with `damage` applied.
void damage_block(const std::string& path, int64_t first,
                  const std::function<void(std::string&)>& damage) {
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  const std::string key = spool_block_key("t", 0, first);
  std::string value;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), key, &value).ok());
  damage(value);
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, value).ok());
}

TEST(RocksDbSpool, ACorruptBodyStopsItsPartitionsDrainWithWhereAndWhatToDo) {
  testing::TempDir dir;
  const std::string path = dir.file("spool");
  spool_three_blocks(path);
  damage_block(path, 10, [](std::string& v) { v.resize(v.size() - 3); });  // cut short
  auto spool = open_spool(path);  // headers are intact: it opens
  ASSERT_TRUE(spool);
  SpoolChunk chunk;
  const auto st = spool->read("t", 0, 5, 100, chunk);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("corrupt block at t/0@10"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("sluice spool discard --path DIR --corrupt"), std::string::npos);
  EXPECT_EQ(offsets_of(*spool, "t", 1, 0), std::vector<int64_t>{0}) << "other partitions read";
}

TEST(RocksDbSpool, CorruptBlocksAreFoundCopiedAsideAndRemovedLeavingAHole) {
  testing::TempDir dir;
  const std::string path = dir.file("spool");
  spool_three_blocks(path);
  damage_block(path, 10, [](std::string& v) { v.resize(3); });  // the header itself
  auto refused = RocksDbSpool::open(path);
  ASSERT_FALSE(refused.is_ok()) << "the accounting cannot count a block it cannot read";
  EXPECT_NE(refused.status().message().find("corrupt block at t/0@10"), std::string::npos);
  EXPECT_NE(refused.status().message().find("--corrupt"), std::string::npos);

  auto found = RocksDbSpool::find_corrupt_blocks(path);
  ASSERT_TRUE(found.is_ok()) << found.status().message();
  ASSERT_EQ(found->size(), 1U);
  EXPECT_EQ((*found)[0].topic, "t");
  EXPECT_EQ((*found)[0].partition, 0);
  EXPECT_EQ((*found)[0].first_offset, 10);
  EXPECT_EQ((*found)[0].next_offset, 20) << "where the lost range ends";
  EXPECT_FALSE((*found)[0].why.empty());

  const std::string aside = dir.file("aside");
  std::filesystem::create_directories(aside);
  ASSERT_TRUE(RocksDbSpool::remove_blocks(path, *found, aside).is_ok());
  std::ifstream copy(aside + "/t-0-10.block", std::ios::binary);
  std::string copied((std::istreambuf_iterator<char>(copy)), std::istreambuf_iterator<char>());
  EXPECT_EQ(copied.size(), 3U) << "the stored bytes, as they were";

  auto spool = open_spool(path);
  ASSERT_TRUE(spool);
  auto expected = range(0, 10);
  for (int64_t o = 20; o < 30; ++o) expected.push_back(o);
  EXPECT_EQ(offsets_of(*spool, "t", 0, 0), expected) << "a hole where the block was";
  EXPECT_EQ(offsets_of(*spool, "t", 1, 0), std::vector<int64_t>{0});
  spool.reset();
  auto again = RocksDbSpool::find_corrupt_blocks(path);
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(again->empty());
}

TEST(RocksDbSpool, AKeySluiceDidNotWriteIsRefusedNotIgnored) {
  testing::TempDir dir;
  const std::string path = dir.file("spool");
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, path, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "something else", "x").ok());
  }
  auto refused = RocksDbSpool::open(path);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("did not write"), std::string::npos);
}

TEST(RocksDbSpool, UnreadableFolderIsAnError) {
  testing::TempDir dir;
  std::ofstream(dir.file("file")) << "not a folder";
  EXPECT_FALSE(RocksDbSpool::open(dir.file("file") + "/spool").is_ok());
}

using namespace spool_block;

std::string raw_block(const std::vector<std::pair<int64_t, std::string>>& events,
                      uint32_t claimed_events = 0) {
  std::string body;
  for (const auto& [offset, payload] : events) {
    put_signed(body, offset);
    put_signed(body, 1000 + offset);
    put_be32(body, static_cast<uint32_t>(payload.size()));
    body += payload;
  }
  std::string value(1, static_cast<char>(kFormatRaw));
  put_be32(value, claimed_events ? claimed_events : static_cast<uint32_t>(events.size()));
  put_signed(value, events.empty() ? 0 : events.back().first);
  put_signed(value, 1000);
  put_be32(value, static_cast<uint32_t>(body.size()));
  return value + body;
}

TEST(SpoolBlock, BlocksTheSpoolWritesDecodeBackToTheirEvents) {
  testing::TempDir dir;
  {
    auto spool = open_spool(dir.file("spool"));
    for (int64_t o = 0; o < 50; ++o) {
      spool->append("t", 0, o, 2000 + o, "payload " + std::string(o % 7 * 10, 'x'));
    }
    ASSERT_TRUE(spool->commit().is_ok());
  }
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir.file("spool"), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  it->Seek(spool_block_key("t", 0, 0));
  ASSERT_TRUE(it->Valid());
  std::string scratch;
  std::vector<int64_t> offsets;
  const auto st = decode_block(std::string_view(it->value().data(), it->value().size()), scratch,
                               [&](int64_t offset, int64_t ts, std::string_view p) {
                                 EXPECT_EQ(ts, 2000 + offset);
                                 EXPECT_EQ(p.size(), 8 + static_cast<size_t>(offset % 7 * 10));
                                 offsets.push_back(offset);
                                 return true;
                               });
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_EQ(offsets, range(0, 50));
}

TEST(SpoolBlock, CorruptBlocksAreRefusedWithoutTrustingTheirLengths) {
  std::string scratch;
  auto decode = [&](const std::string& value) {
    return decode_block(value, scratch, [](int64_t, int64_t, std::string_view) { return true; });
  };
  const std::string good = raw_block({{5, "a"}, {6, "bb"}});
  EXPECT_TRUE(decode(good).is_ok());
  EXPECT_FALSE(decode(good.substr(0, kHeaderSize - 1)).is_ok());      // header cut
  EXPECT_FALSE(decode(good.substr(0, good.size() - 1)).is_ok());      // body cut
  EXPECT_FALSE(decode(raw_block({{5, "a"}, {6, "bb"}}, 3)).is_ok());  // count lies
  EXPECT_FALSE(decode(raw_block({{6, "a"}, {5, "bb"}})).is_ok());     // offsets go back
  std::string unknown = good;
  unknown[0] = 7;
  EXPECT_FALSE(decode(unknown).is_ok());
  // An LZ4 block claiming a 4 GiB body from a few stored bytes: refused before allocating.
  std::string huge(1, static_cast<char>(kFormatLz4));
  put_be32(huge, 1);
  put_signed(huge, 1);
  put_signed(huge, 1);
  put_be32(huge, 0xffffffffu);
  huge += "\x10junk";
  EXPECT_FALSE(decode(huge).is_ok());
  EXPECT_LT(scratch.capacity(), 1u << 20);
}

TEST(RocksDbSpool, EachSpoolRateLimitsItsOwnLogLines) {
  // Two spools in one process (tests, `sluice bench`): a duplicate append in the second must
  // be reported even right after one in the first — the limiter is each spool's own.
  std::ostringstream out;
  auto log = logger("spool");
  const auto sinks = log->sinks();
  log->sinks() = {std::make_shared<spdlog::sinks::ostream_sink_mt>(out)};
  testing::TempDir dir;
  for (const char* name : {"a", "b"}) {
    auto spool = open_spool(dir.file(name));
    ASSERT_TRUE(spool);
    spool->append("t", 0, 1, 1, "x");
    spool->append("t", 0, 1, 1, "x again");
  }
  log->sinks() = sinks;
  size_t lines = 0;
  for (size_t at = 0; (at = out.str().find("is already spooled", at)) != std::string::npos; ++at) {
    ++lines;
  }
  EXPECT_EQ(lines, 2u) << out.str();
}

}  // namespace
}  // namespace sluice::storage
