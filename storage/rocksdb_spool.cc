#include "storage/rocksdb_spool.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <nlohmann/json.hpp>

namespace sluice::storage {
namespace {

constexpr char kEventPrefix = 'e';
constexpr std::string_view kPauseKey = "m/pause";

void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}
void put_be64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}
uint64_t get_be(std::string_view s, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v = (v << 8) | static_cast<unsigned char>(s[pos + static_cast<size_t>(i)]);
  return v;
}

void append_partition_prefix(std::string& k, std::string_view topic, int32_t partition) {
  k.push_back(kEventPrefix);
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

void append_key(std::string& k, std::string_view topic, int32_t partition, int64_t offset) {
  append_partition_prefix(k, topic, partition);
  put_be64(k, static_cast<uint64_t>(offset) ^ 0x8000000000000000ull);
}

int64_t value_timestamp(std::string_view value) {
  return static_cast<int64_t>(get_be(value, 0, 8) ^ 0x8000000000000000ull);
}

/// Parses an event key; false for keys of other kinds.
bool parse_key(std::string_view key, std::string& topic, int32_t& partition, int64_t& offset) {
  if (key.size() < 1 + 1 + 4 + 8 || key[0] != kEventPrefix) return false;
  const size_t nul = key.find('\0', 1);
  if (nul == std::string_view::npos || key.size() != nul + 1 + 4 + 8) return false;
  topic.assign(key.substr(1, nul - 1));
  partition = static_cast<int32_t>(static_cast<uint32_t>(get_be(key, nul + 1, 4)) ^ 0x80000000u);
  offset = static_cast<int64_t>(get_be(key, nul + 5, 8) ^ 0x8000000000000000ull);
  return true;
}

/// Value: 8-byte big-endian timestamp (sign flipped) then the payload.
void encode_value(std::string& v, int64_t timestamp_ms, std::string_view payload) {
  v.clear();
  put_be64(v, static_cast<uint64_t>(timestamp_ms) ^ 0x8000000000000000ull);
  v.append(payload);
}

Status from(const rocksdb::Status& st, const std::string& what) {
  if (st.ok()) return Status::ok();
  return Status::error(what + ": " + st.ToString());
}

}  // namespace

std::string spool_key(std::string_view topic, int32_t partition, int64_t offset) {
  std::string k;
  append_key(k, topic, partition, offset);
  return k;
}

RocksDbSpool::RocksDbSpool(std::unique_ptr<rocksdb::DB> db, std::string path)
    : db_(std::move(db)),
      path_(std::move(path)),
      pending_(std::make_unique<rocksdb::WriteBatch>()) {}

RocksDbSpool::~RocksDbSpool() = default;

Result<std::unique_ptr<Spool>> RocksDbSpool::open(const std::string& path) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  // Records arrive in key order per partition and leave the same way: a queue. Small
  // memtables and level compaction keep reclaiming the space of released ranges.
  options.write_buffer_size = 32 << 20;
  options.max_write_buffer_number = 2;
  options.compression = rocksdb::kLZ4Compression;
  options.max_open_files = 256;
  rocksdb::DB* raw = nullptr;
  const auto st = rocksdb::DB::Open(options, path, &raw);
  if (!st.ok()) {
    return Status::error("cannot open the spool at " + path + ": " + st.ToString() +
                         ". The spool may hold events that are nowhere else: it is never "
                         "discarded automatically. Inspect or move it aside by hand.");
  }
  std::unique_ptr<RocksDbSpool> spool(new RocksDbSpool(std::unique_ptr<rocksdb::DB>(raw), path));
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
  int64_t offset = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    const std::string_view value(it->value().data(), it->value().size());
    if (key == kPauseKey) {
      const auto j = nlohmann::json::parse(value, nullptr, false);
      if (j.is_object())
        pause = PauseRecord{j.value("reason", ""), j.value("since_ms", int64_t{0})};
      continue;
    }
    if (!parse_key(key, topic, partition, offset)) {
      return Status::error("spool at " + path_ + " holds a key Sluice did not write; refusing it");
    }
    if (value.size() < 8) {
      return Status::error("spool at " + path_ + " holds a truncated record at " + topic + "/" +
                           std::to_string(partition) + "@" + std::to_string(offset));
    }
    auto& p = parts[{topic, partition}];
    if (p.events == 0) {
      p.first_offset = offset;
      p.oldest_timestamp_ms = value_timestamp(value);
    }
    p.last_offset = offset;
    ++p.events;
    p.bytes += key.size() + value.size();
  }
  if (!it->status().ok()) return from(it->status(), "reading the spool at " + path_);
  std::lock_guard lock(mu_);
  partitions_ = std::move(parts);
  pause_ = std::move(pause);
  return Status::ok();
}

void RocksDbSpool::append(const std::string& topic, int32_t partition, int64_t offset,
                          int64_t timestamp_ms, std::string_view payload) {
  key_.clear();
  append_key(key_, topic, partition, offset);
  encode_value(value_, timestamp_ms, payload);
  pending_->Put(key_, value_);
  ++staged_;
  auto& p = staged_accounting_[{topic, partition}];
  if (p.events == 0 || offset < p.first_offset) {
    p.first_offset = offset;
    p.oldest_timestamp_ms = timestamp_ms;
  }
  p.last_offset = std::max(p.last_offset, offset);
  ++p.events;
  p.bytes += key_.size() + value_.size();
}

Status RocksDbSpool::commit() {
  if (staged_ == 0) return Status::ok();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const auto st = db_->Write(wo, pending_.get());
  if (!st.ok()) return from(st, "writing to the spool at " + path_);
  pending_->Clear();
  staged_ = 0;
  std::lock_guard lock(mu_);
  for (auto& [key, staged] : staged_accounting_) {
    auto& p = partitions_[key];
    if (p.events == 0 || staged.first_offset < p.first_offset) {
      p.first_offset = staged.first_offset;
      p.oldest_timestamp_ms = staged.oldest_timestamp_ms;
    }
    p.last_offset = std::max(p.last_offset, staged.last_offset);
    p.events += staged.events;
    p.bytes += staged.bytes;
  }
  staged_accounting_.clear();
  return Status::ok();
}

Status RocksDbSpool::read(const std::string& topic, int32_t partition, int64_t from_offset,
                          size_t max_events, SpoolChunk& out) const {
  out.clear();
  const std::string prefix = partition_prefix(topic, partition);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  std::string t;
  int32_t p = 0;
  int64_t offset = 0;
  std::vector<std::pair<size_t, size_t>> ranges;  // payload position and size in out.bytes
  for (it->Seek(spool_key(topic, partition, from_offset));
       it->Valid() && out.events.size() < max_events; it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(prefix) || !parse_key(key, t, p, offset)) break;
    const std::string_view value(it->value().data(), it->value().size());
    ranges.emplace_back(out.bytes.size(), value.size() - 8);
    out.bytes.append(value.substr(8));
    out.events.push_back({offset, value_timestamp(value), {}});
  }
  // Views are taken once the buffer has stopped growing.
  for (size_t i = 0; i < ranges.size(); ++i) {
    out.events[i].payload = std::string_view(out.bytes).substr(ranges[i].first, ranges[i].second);
  }
  return from(it->status(), "reading the spool at " + path_);
}

Status RocksDbSpool::release(const std::string& topic, int32_t partition, int64_t below) {
  // Count what goes, for the accounting, then delete the range in one tombstone.
  uint64_t events = 0, bytes = 0;
  int64_t next_first = -1, next_oldest = -1;
  {
    const std::string prefix = partition_prefix(topic, partition);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    std::string t;
    int32_t p = 0;
    int64_t offset = 0;
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      const std::string_view key(it->key().data(), it->key().size());
      if (!key.starts_with(prefix) || !parse_key(key, t, p, offset)) break;
      if (offset >= below) {
        next_first = offset;
        next_oldest = value_timestamp(std::string_view(it->value().data(), it->value().size()));
        break;
      }
      ++events;
      bytes += it->key().size() + it->value().size();
    }
    if (!it->status().ok()) return from(it->status(), "reading the spool at " + path_);
  }
  if (events == 0) return Status::ok();
  const auto st =
      db_->DeleteRange(rocksdb::WriteOptions(), db_->DefaultColumnFamily(),
                       spool_key(topic, partition, INT64_MIN), spool_key(topic, partition, below));
  if (!st.ok()) return from(st, "releasing spooled events at " + path_);
  std::lock_guard lock(mu_);
  auto it = partitions_.find({topic, partition});
  if (it == partitions_.end()) return Status::ok();
  auto& part = it->second;
  part.events -= std::min(part.events, events);
  part.bytes -= std::min(part.bytes, bytes);
  if (part.events == 0) {
    partitions_.erase(it);
  } else {
    part.first_offset = next_first;
    part.oldest_timestamp_ms = next_oldest;
  }
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

Status RocksDbSpool::set_pause(const std::optional<PauseRecord>& record) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status st;
  if (record) {
    st =
        db_->Put(wo, std::string(kPauseKey),
                 nlohmann::json{{"reason", record->reason}, {"since_ms", record->since_ms}}.dump());
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

}  // namespace sluice::storage
