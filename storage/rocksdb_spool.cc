#include "storage/rocksdb_spool.h"

#include <lz4.h>
#include <rocksdb/db.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/logging.h"
#include "storage/spool_block.h"

namespace sluice::storage {
namespace {

constexpr char kBlockPrefix = 'b';
constexpr std::string_view kPauseKey = "m/pause";

using namespace spool_block;  // the block format and its byte helpers (spool_block.h)

constexpr const char* kCorruptHint =
    "Stop the service; `sluice spool discard --path DIR --corrupt` lists corrupt blocks, and "
    "with --confirm copies each aside and removes it: the offsets it held are then read again "
    "from Kafka (what Kafka no longer has is recorded as a kafka_gap dead letter)";

void append_partition_prefix(std::string& k, std::string_view topic, int32_t partition) {
  k.push_back(kBlockPrefix);
  k.append(topic);
  k.push_back('\0');
  put_be32(k, static_cast<uint32_t>(partition) ^ 0x80000000u);
}

std::string partition_prefix(std::string_view topic, int32_t partition) {
  std::string k;
  k.reserve(topic.size() + 6);
  append_partition_prefix(k, topic, partition);
  return k;
}

/// Parses a block key; false for keys of other kinds.
bool parse_key(std::string_view key, std::string& topic, int32_t& partition, int64_t& first) {
  if (key.size() < 1 + 1 + 4 + 8 || key[0] != kBlockPrefix) return false;
  const size_t nul = key.find('\0', 1);
  if (nul == std::string_view::npos || key.size() != nul + 1 + 4 + 8) return false;
  topic.assign(key.substr(1, nul - 1));
  partition = static_cast<int32_t>(static_cast<uint32_t>(get_be(key, nul + 1, 4)) ^ 0x80000000u);
  first = get_signed(key, nul + 5);
  return true;
}

int64_t key_first_offset(std::string_view key) { return get_signed(key, key.size() - 8); }

Status from(const rocksdb::Status& st, const std::string& what) {
  if (st.ok()) return Status::ok();
  return Status::error(what + ": " + st.ToString());
}

std::string_view view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

std::string mib(uint64_t bytes) {
  return std::to_string((bytes + (1 << 19)) >> 20) + " MiB";
}

}  // namespace

/// Hears RocksDB's background errors (a flush or a compaction that failed or hit the space
/// limit): the spool then refuses writes until Resume() succeeds.
class RocksDbSpool::ErrorListener final : public rocksdb::EventListener {
 public:
  void OnBackgroundError(rocksdb::BackgroundErrorReason /*reason*/,
                         rocksdb::Status* error) override {
    if (error == nullptr || error->ok()) return;
    std::lock_guard lock(mu_);
    error_ = error->ToString();
  }
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override {
    if (!info.new_bg_error.ok()) return;
    std::lock_guard lock(mu_);
    error_.clear();
  }
  std::string error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  void clear() {
    std::lock_guard lock(mu_);
    error_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::string error_;
};

std::string spool_block_key(std::string_view topic, int32_t partition, int64_t first_offset) {
  std::string k = partition_prefix(topic, partition);
  put_signed(k, first_offset);
  return k;
}

RocksDbSpool::RocksDbSpool(std::unique_ptr<rocksdb::DB> db, std::string path,
                           std::shared_ptr<ErrorListener> errors)
    : db_(std::move(db)), path_(std::move(path)), errors_(std::move(errors)) {}

RocksDbSpool::~RocksDbSpool() = default;

namespace {

/// The size of the filesystem `path` is on (0 when it cannot be told).
uint64_t disk_size(const std::string& path) {
  struct statvfs vfs {};
  if (statvfs(path.c_str(), &vfs) != 0) return 0;
  return static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
}

rocksdb::Options spool_options() {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  // Blocks arrive in key order per partition and leave the same way: a queue. Blocks are
  // compressed already; level compaction reclaims released ranges.
  // Memtables are most of the spool's memory: blocks are compressed, so 32 MiB holds some
  // 150,000 events.
  options.write_buffer_size = 32 << 20;
  options.max_write_buffer_number = 2;
  options.compression = rocksdb::kNoCompression;
  options.max_open_files = 256;
  rocksdb::BlockBasedTableOptions table;
  table.checksum = rocksdb::kXXH3;  // cheaper than the CRC32c Debian's build computes in software
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

/// The RocksDB database of an existing spool, without the accounting (the offline tools).
Result<std::unique_ptr<rocksdb::DB>> open_existing(const std::string& path) {
  auto options = spool_options();
  options.create_if_missing = false;
  rocksdb::DB* raw = nullptr;
  if (const auto st = rocksdb::DB::Open(options, path, &raw); !st.ok()) {
    return Status::error("cannot open the spool at " + path + ": " + st.ToString());
  }
  return std::unique_ptr<rocksdb::DB>(raw);
}

}  // namespace

Result<std::unique_ptr<Spool>> RocksDbSpool::open(const std::string& path) {
  auto options = spool_options();
  // On a small disk, small memtables: each one becomes a table file at its flush, which the
  // disk must have room for (room_for).
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (const uint64_t size = disk_size(path); size > 0) {
    options.write_buffer_size =
        std::clamp<size_t>(static_cast<size_t>(size / 16), 1 << 20, options.write_buffer_size);
    // RocksDB reserves 4 MiB for its MANIFEST and a memtable's worth for each write-ahead log
    // file up front (fallocate): on a small disk that is most of it, and none of it counted.
    options.manifest_preallocation_size =
        std::clamp<size_t>(static_cast<size_t>(size / 256), 64 << 10, 4 << 20);
    if (size < (1ULL << 30)) options.allow_fallocate = false;
  }
  auto errors = std::make_shared<ErrorListener>();
  options.listeners.push_back(errors);
  rocksdb::DB* raw = nullptr;
  const auto st = rocksdb::DB::Open(options, path, &raw);
  if (!st.ok()) {
    return Status::error("cannot open the spool at " + path + ": " + st.ToString() +
                         ". The spool may hold events that are nowhere else: it is never "
                         "discarded automatically. Inspect or move it aside by hand.");
  }
  std::unique_ptr<RocksDbSpool> spool(
      new RocksDbSpool(std::unique_ptr<rocksdb::DB>(raw), path, errors));
  if (auto rebuilt = spool->rebuild_accounting(); !rebuilt) return rebuilt;
  return std::unique_ptr<Spool>(std::move(spool));
}

Status RocksDbSpool::rebuild_accounting() {
  std::map<PartitionKey, SpoolPartition> parts;
  std::optional<PauseRecord> pause;
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  std::string topic;
  int32_t partition = 0;
  int64_t first = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string_view key = view(it->key());
    const std::string_view value = view(it->value());
    if (key == kPauseKey) {
      const auto j = nlohmann::json::parse(value, nullptr, false);
      if (j.is_object()) {
        pause = PauseRecord{j.value("reason", ""), j.value("since_ms", int64_t{0}),
                            j.value("local", false)};
      }
      continue;
    }
    if (!parse_key(key, topic, partition, first)) {
      return Status::error("spool at " + path_ +
                           " holds a key Sluice did not write (or of another format); "
                           "refusing it");
    }
    BlockHeader h;
    if (!parse_header(value, h) || h.last_offset < first) {
      return Status::error("spool at " + path_ + " holds a corrupt block at " + topic + "/" +
                           std::to_string(partition) + "@" + std::to_string(first) + ". " +
                           kCorruptHint);
    }
    auto& p = parts[{topic, partition}];
    if (p.events == 0) {
      p.first_offset = first;
      p.oldest_timestamp_ms = h.oldest_timestamp_ms;
    }
    p.last_offset = h.last_offset;
    p.events += h.events;
    p.bytes += key.size() + value.size();
  }
  if (!it->status().ok()) return from(it->status(), "reading the spool at " + path_);
  std::lock_guard lock(mu_);
  partitions_ = std::move(parts);
  hidden_.clear();
  pause_ = std::move(pause);
  return Status::ok();
}

void RocksDbSpool::append(const std::string& topic, int32_t partition, int64_t offset,
                          int64_t timestamp_ms, std::string_view payload) {
  // Events of one partition come in runs: look the block up only when the partition changes.
  if (last_staged_ == nullptr || last_staged_partition_ != partition ||
      last_staged_topic_ != topic) {
    last_staged_ = &staged_[{topic, partition}];
    last_staged_topic_ = topic;
    last_staged_partition_ = partition;
  }
  Staged& s = *last_staged_;
  // The Spool contract: a partition is appended in increasing offsets. An offset it already
  // holds is the same event again: overlapping blocks would hand it to the drain twice.
  int64_t highest = s.events > 0 ? s.last_offset : -1;
  if (highest < 0) {
    std::lock_guard lock(mu_);
    const auto it = partitions_.find({topic, partition});
    if (it != partitions_.end()) highest = it->second.last_offset;
  }
  if (offset <= highest) {
    uint64_t suppressed = 0;
    if (duplicate_log_.allow(suppressed)) {
      logger("spool")->error(
          "{}/{}@{} is already spooled (up to {}): not spooled again; this is a bug ({} similar "
          "suppressed)",
          topic, partition, offset, highest, suppressed);
    }
    return;
  }
  if (s.events == 0) {
    s.first_offset = offset;
    s.first_timestamp_ms = timestamp_ms;
  }
  s.last_offset = offset;
  ++s.events;
  put_signed(s.body, offset);
  put_signed(s.body, timestamp_ms);
  put_be32(s.body, static_cast<uint32_t>(payload.size()));
  s.body.append(payload);
  ++staged_events_;
  staged_raw_bytes_ += kEventHeaderSize + payload.size();
}

uint64_t RocksDbSpool::staged_bytes() const {
  if (committed_raw_bytes_ == 0) return staged_raw_bytes_;  // no ratio seen yet: assume none
  return static_cast<uint64_t>(static_cast<double>(staged_raw_bytes_) *
                               static_cast<double>(committed_stored_bytes_) /
                               static_cast<double>(committed_raw_bytes_));
}

void RocksDbSpool::encode_block(const Staged& s, std::string& value) {
  value.clear();
  value.push_back(static_cast<char>(kFormatLz4));
  put_be32(value, s.events);
  put_signed(value, s.last_offset);
  put_signed(value, s.first_timestamp_ms);
  put_be32(value, static_cast<uint32_t>(s.body.size()));
  const int bound = LZ4_compressBound(static_cast<int>(s.body.size()));
  value.resize(kHeaderSize + static_cast<size_t>(bound));
  const int n = LZ4_compress_default(s.body.data(), value.data() + kHeaderSize,
                                     static_cast<int>(s.body.size()), bound);
  if (n <= 0 || static_cast<size_t>(n) >= s.body.size()) {
    value[0] = static_cast<char>(kFormatRaw);  // incompressible: store it as it is
    value.resize(kHeaderSize);
    value.append(s.body);
  } else {
    value.resize(kHeaderSize + static_cast<size_t>(n));
  }
}

Status RocksDbSpool::commit() {
  if (staged_events_ == 0) return Status::ok();
  std::vector<std::pair<const PartitionKey*, const Staged*>> blocks;
  size_t raw_bytes = 0;
  for (const auto& [key, s] : staged_) {
    if (s.events == 0) continue;
    blocks.emplace_back(&key, &s);
    raw_bytes += s.body.size();
  }
  if (values_.size() < blocks.size()) values_.resize(blocks.size());
  // Compression is most of a commit's CPU: with several partitions staged, a helper thread
  // compresses half of the blocks. (The ingest thread waits here anyway, and while Sluice is
  // paused MariaDB leaves the second core idle.)
  constexpr size_t kParallelFrom = 64 * 1024;
  const size_t split = blocks.size() >= 2 && raw_bytes >= kParallelFrom ? blocks.size() / 2 : 0;
  std::thread helper;
  if (split > 0) {
    helper = std::thread([&] {
      for (size_t i = split; i < blocks.size(); ++i) encode_block(*blocks[i].second, values_[i]);
    });
  }
  for (size_t i = 0; i < (split > 0 ? split : blocks.size()); ++i) {
    encode_block(*blocks[i].second, values_[i]);
  }
  if (helper.joinable()) helper.join();
  rocksdb::WriteBatch batch;
  std::vector<uint64_t> sizes(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto& [key, s] = blocks[i];
    const std::string block_key = spool_block_key(key->first, key->second, s->first_offset);
    batch.Put(block_key, values_[i]);
    sizes[i] = block_key.size() + values_[i].size();
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto st = ready_to_write(batch.GetDataSize()); !st) return st;  // still staged
  const auto st = db_->Write(wo, &batch);
  write_failed_ = !st.ok();
  if (!st.ok()) return from(st, "writing to the spool at " + path_);  // still staged
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < blocks.size(); ++i) {
      const auto& [key, s] = blocks[i];
      auto& p = partitions_[*key];
      if (p.events == 0) {
        p.first_offset = s->first_offset;
        p.oldest_timestamp_ms = s->first_timestamp_ms;
      }
      p.last_offset = s->last_offset;
      p.events += s->events;
      p.bytes += sizes[i];
      committed_stored_bytes_ += sizes[i];
    }
  }
  committed_raw_bytes_ += staged_raw_bytes_;
  staged_raw_bytes_ = 0;
  // Keep each partition's buffer (its capacity is the next block's) but not its events.
  constexpr size_t kKeptCapacity = 8 << 20;
  for (auto& [key, s] : staged_) {
    s.body.clear();
    if (s.body.capacity() > kKeptCapacity) s.body.shrink_to_fit();
    s.events = 0;
  }
  staged_events_ = 0;
  return Status::ok();
}

Status RocksDbSpool::read(const std::string& topic, int32_t partition, int64_t from_offset,
                          size_t max_events, SpoolChunk& out) const {
  out.clear();
  if (max_events == 0) return Status::ok();
  const std::string prefix = partition_prefix(topic, partition);
  const std::string start = spool_block_key(topic, partition, from_offset);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  // The block holding `from` starts at or before it; if that block ends before `from`, the
  // next one is the first to read.
  it->SeekForPrev(start);
  if (!it->Valid() || !view(it->key()).starts_with(prefix)) it->Seek(start);
  std::vector<std::pair<size_t, size_t>> ranges;  // payload position and size in out.bytes
  BlockHeader h;
  std::string_view body;
  for (; it->Valid() && out.events.size() < max_events; it->Next()) {
    const std::string_view key = view(it->key());
    if (!key.starts_with(prefix)) break;
    const std::string_view value = view(it->value());
    if (!parse_header(value, h) || !block_body(value, h, scratch_, body)) {
      return Status::error("spool at " + path_ + ": corrupt block at " + topic + "/" +
                           std::to_string(partition) + "@" + std::to_string(key_first_offset(key)) +
                           ": this partition's drain stops here. " + kCorruptHint);
    }
    if (h.last_offset < from_offset) continue;
    const bool ok = for_each_event(body, [&](int64_t offset, int64_t ts, std::string_view p) {
      if (offset < from_offset) return true;
      ranges.emplace_back(out.bytes.size(), p.size());
      out.bytes.append(p);
      out.events.push_back({offset, ts, {}});
      return out.events.size() < max_events;
    });
    if (!ok) return Status::error("spool at " + path_ + ": malformed block body");
  }
  // Views are taken once the buffer has stopped growing.
  for (size_t i = 0; i < ranges.size(); ++i) {
    out.events[i].payload = std::string_view(out.bytes).substr(ranges[i].first, ranges[i].second);
  }
  return from(it->status(), "reading the spool at " + path_);
}

Status RocksDbSpool::release(const std::string& topic, int32_t partition, int64_t below) {
  {
    std::lock_guard lock(mu_);
    const auto it = partitions_.find({topic, partition});
    // Releases only move forward; below the first counted event there is nothing to do.
    if (it == partitions_.end() || below <= it->second.first_offset) return Status::ok();
  }
  // Whole blocks below `below` go; the block `below` falls into stays until a later release.
  const std::string prefix = partition_prefix(topic, partition);
  uint64_t gone_events = 0, gone_bytes = 0, hidden = 0;
  std::optional<int64_t> keep_from;  // first key offset that stays
  int64_t next_first = -1, next_oldest = -1;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    BlockHeader h;
    std::string_view body;
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      const std::string_view key = view(it->key());
      if (!key.starts_with(prefix)) break;
      const std::string_view value = view(it->value());
      if (!parse_header(value, h)) return Status::error("spool at " + path_ + ": corrupt block");
      if (h.last_offset < below) {
        gone_events += h.events;
        gone_bytes += key.size() + value.size();
        continue;
      }
      const int64_t block_first = key_first_offset(key);
      keep_from = block_first;
      next_first = block_first;
      next_oldest = h.oldest_timestamp_ms;
      if (block_first < below) {
        if (!block_body(value, h, scratch_, body)) {
          return Status::error("spool at " + path_ + ": corrupt block");
        }
        (void)for_each_event(body, [&](int64_t offset, int64_t ts, std::string_view) {
          if (offset < below) {
            ++hidden;
            return true;
          }
          next_first = offset;
          next_oldest = ts;
          return false;
        });
      }
      break;
    }
    if (!it->status().ok()) return from(it->status(), "reading the spool at " + path_);
  }
  if (gone_events > 0) {
    std::string end = keep_from ? spool_block_key(topic, partition, *keep_from)
                                : spool_block_key(topic, partition, INT64_MAX);
    if (!keep_from) end.push_back('\xff');  // past the last possible block of the partition
    if (auto st = ready_to_write(end.size() * 2); !st) return st;
    const auto st = db_->DeleteRange(rocksdb::WriteOptions(), db_->DefaultColumnFamily(),
                                     spool_block_key(topic, partition, INT64_MIN), end);
    write_failed_ = !st.ok();
    if (!st.ok()) return from(st, "releasing spooled events at " + path_);
  }
  std::lock_guard lock(mu_);
  const auto it = partitions_.find({topic, partition});
  if (it == partitions_.end()) return Status::ok();
  uint64_t& hidden_before = hidden_[{topic, partition}];
  if (!keep_from) {
    partitions_.erase(it);
    hidden_.erase({topic, partition});
    return Status::ok();
  }
  // On disk: the counted events plus those hidden in the first block by an earlier release.
  // What counts now: every block from keep_from, minus the events of its first block below
  // `below`. Bytes shrink by whole blocks only.
  auto& p = it->second;
  p.events = p.events + hidden_before - gone_events - hidden;
  p.bytes -= std::min(p.bytes, gone_bytes);
  p.first_offset = next_first;
  p.oldest_timestamp_ms = next_oldest;
  hidden_before = hidden;
  return Status::ok();
}

std::optional<SpoolPartition> RocksDbSpool::partition(const std::string& topic,
                                                      int32_t partition) const {
  std::lock_guard lock(mu_);
  const auto it = partitions_.find({topic, partition});
  if (it == partitions_.end()) return std::nullopt;
  return it->second;
}

std::map<PartitionKey, SpoolPartition> RocksDbSpool::partitions() const {
  std::lock_guard lock(mu_);
  return partitions_;
}

SpoolTotals RocksDbSpool::totals() const {
  std::lock_guard lock(mu_);
  return sum_totals(partitions_);
}

Status RocksDbSpool::room_for(uint64_t incoming) {
  struct statvfs vfs {};
  if (statvfs(path_.c_str(), &vfs) != 0) return Status::ok();  // cannot tell: RocksDB will
  const uint64_t free = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  const uint64_t total = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
  uint64_t memtables = 0, tables = 0;
  (void)db_->GetIntProperty("rocksdb.cur-size-all-mem-tables", &memtables);
  (void)db_->GetIntProperty("rocksdb.total-sst-files-size", &tables);
  // A write lands in the write-ahead log now, and with the memtables in a table file at their
  // next flush (the log goes only after it); a compaction may rewrite every table file before
  // it deletes the old ones. Room for all of it, and a margin: the spool uses at most about
  // half of its disk.
  const uint64_t margin = std::max<uint64_t>(1 << 20, total / 50);
  const uint64_t needed = tables + 2 * (memtables + incoming) + margin;
  if (free >= needed) return Status::ok();
  if (reclaim(free, tables, margin)) return room_for(incoming);
  return Status::error("the spool's disk at " + path_ + " has " + mib(free) +
                       " free, less than the " + mib(needed) +
                       " its next write needs (the write-ahead log, the table file its memtables "
                       "become, room to compact the " + mib(tables) +
                       " of table files, a margin): not writing, so that RocksDB never meets a "
                       "full disk; fetching for the spool stops until there is room");
}

bool RocksDbSpool::reclaim(uint64_t free, uint64_t tables, uint64_t margin) {
  // Released ranges leave their table files on disk until a compaction drops them, and a
  // spool that is not written may never compact by itself: compact now when what released
  // ranges hold is most of the table files, and the disk has room for the rest.
  uint64_t live = 0;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, p] : partitions_) live += p.bytes;
  }
  const auto now = std::chrono::steady_clock::now();
  if (tables <= 2 * live + margin || free < live + margin || now < next_reclaim_) return false;
  next_reclaim_ = now + std::chrono::seconds(10);
  rocksdb::CompactRangeOptions options;
  options.exclusive_manual_compaction = false;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  const auto st = db_->CompactRange(options, nullptr, nullptr);
  uint64_t after = 0;
  (void)db_->GetIntProperty("rocksdb.total-sst-files-size", &after);
  logger("spool")->info("compacted the spool to reclaim released events: table files {} -> {}",
                        mib(tables), mib(after));
  return st.ok() && after < tables;
}

Status RocksDbSpool::ready_to_write(uint64_t incoming) {
  // Debian's RocksDB is built with its assertions on, and an I/O error inside its writers — a
  // full disk among them — can abort the process there. So the spool never lets it run out of
  // room: a write that might is refused here, before RocksDB sees it.
  if (auto st = room_for(incoming); !st) return st;
  // After a failed write or a background error (a flush past the space limit) RocksDB refuses
  // every write until the error is cleared; Resume() does so once there is room again.
  if (write_failed_ || !errors_->error().empty()) {
    const std::string why = errors_->error();
    if (const auto r = db_->Resume(); !r.ok()) {
      return from(r, "writing to the spool at " + path_ +
                         (why.empty() ? std::string() : " (after: " + why + ")"));
    }
    errors_->clear();
    write_failed_ = false;
  }
  return Status::ok();
}

std::string RocksDbSpool::background_error() const { return errors_->error(); }

Status RocksDbSpool::set_pause(const std::optional<PauseRecord>& record) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto room = ready_to_write(256 + (record ? record->reason.size() : 0)); !room) {
    return room;
  }
  rocksdb::Status st;
  if (record) {
    st =
        db_->Put(wo, std::string(kPauseKey),
                 nlohmann::json{{"reason", record->reason},
                                 {"since_ms", record->since_ms},
                                 {"local", record->local}}
                     .dump());
  } else {
    st = db_->Delete(wo, std::string(kPauseKey));
  }
  if (!st.ok()) return from(st, "recording the pause in the spool at " + path_);
  std::lock_guard lock(mu_);
  pause_ = record;
  return Status::ok();
}

std::optional<PauseRecord> RocksDbSpool::pause() const {
  std::lock_guard lock(mu_);
  return pause_;
}

Result<std::vector<CorruptBlock>> RocksDbSpool::find_corrupt_blocks(const std::string& path) {
  auto opened = open_existing(path);
  if (!opened) return opened.status();
  std::unique_ptr<rocksdb::DB> db = std::move(opened).value();
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  std::vector<CorruptBlock> out;
  std::string scratch, topic;
  int32_t partition = 0;
  int64_t first = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string_view key = view(it->key());
    if (key == kPauseKey || !parse_key(key, topic, partition, first)) continue;
    // The block that follows a corrupt one in its partition says where the corrupt range ends.
    if (!out.empty() && out.back().next_offset < 0 && out.back().topic == topic &&
        out.back().partition == partition) {
      out.back().next_offset = first;
    }
    const std::string_view value = view(it->value());
    const Status decoded = spool_block::decode_block(
        value, scratch, [](int64_t, int64_t, std::string_view) { return true; });
    if (decoded) continue;
    out.push_back({topic, partition, first, -1, key.size() + value.size(), decoded.message(),
                   std::string(key)});
  }
  if (!it->status().ok()) return from(it->status(), "reading the spool at " + path);
  return out;
}

Status RocksDbSpool::remove_blocks(const std::string& path, const std::vector<CorruptBlock>& blocks,
                                   const std::string& export_dir) {
  auto opened = open_existing(path);
  if (!opened) return opened.status();
  std::unique_ptr<rocksdb::DB> db = std::move(opened).value();
  rocksdb::WriteBatch batch;
  for (const auto& b : blocks) {
    // First a copy of the stored bytes, for forensics; only then the removal.
    std::string value;
    if (const auto st = db->Get(rocksdb::ReadOptions(), b.key, &value); !st.ok()) {
      return from(st, "reading the block at " + b.topic + "/" + std::to_string(b.partition) + "@" +
                          std::to_string(b.first_offset));
    }
    const std::string file = export_dir + "/" + b.topic + "-" + std::to_string(b.partition) + "-" +
                             std::to_string(b.first_offset) + ".block";
    std::ofstream f(file, std::ios::binary | std::ios::trunc);
    f.write(value.data(), static_cast<std::streamsize>(value.size()));
    f.close();
    if (!f) return Status::error("cannot write " + file);
    batch.Delete(b.key);
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return from(db->Write(wo, &batch), "removing blocks from the spool at " + path);
}

}  // namespace sluice::storage
