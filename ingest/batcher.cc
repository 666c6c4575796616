#include "ingest/batcher.h"

#include <algorithm>

#include "common/assert.h"
#include "ingest/decoder.h"

namespace sluice::ingest {

Batcher::Batcher(std::string topic, int32_t partition, BatchLimits limits, const Clock& clock,
                 storage::TableRowsPool* pool)
    : limits_(limits), clock_(clock), pool_(pool) {
  batch_.topic = std::move(topic);
  batch_.partition = partition;
}

void Batcher::reset(int64_t offset, uint64_t generation) {
  storage::Batch fresh;
  fresh.topic = std::move(batch_.topic);
  fresh.partition = batch_.partition;
  fresh.generation = generation;
  batch_ = std::move(fresh);
  next_ = offset;
}

void Batcher::open_if_empty(int64_t offset) {
  if (batch_.events != 0) return;
  opened_at_ = clock_.now();
  // The first batch of a partition whose start was unknown begins at its first event.
  batch_.base_offset = next_ >= 0 ? next_ : offset;
}

storage::TableRows& Batcher::rows_for(const storage::TableLayout* table) {
  for (auto& t : batch_.tables) {
    if (t.table == table) return t;
  }
  if (pool_ != nullptr) return batch_.tables.emplace_back(pool_->take(table));
  auto& t = batch_.tables.emplace_back();
  t.table = table;
  return t;
}

void Batcher::added(int64_t offset, size_t bytes) {
  // A batch is one partition's events over [base, end), in offset order: the compare-and-set
  // of sluice_offsets and the split of a refused batch both rely on it.
  SLUICE_ASSERT(offset >= next_, "{}/{}: event at offset {} added after offset {}",
                batch_.topic, batch_.partition, offset, next_ - 1);
  open_if_empty(offset);
  batch_.events += 1;
  batch_.bytes += bytes;
  batch_.end_offset = offset + 1;
  next_ = offset + 1;
}

void Batcher::row_added(storage::TableRows& rows, int64_t offset, size_t bytes_before) {
  rows.offsets.push_back(offset);
  rows.ends.push_back(static_cast<uint32_t>(rows.data.size()));
  added(offset, rows.data.size() - bytes_before + sizeof(int64_t) + sizeof(uint32_t));
}

void Batcher::add_decoded(const storage::TableLayout* table, const Decoder& decoder,
                          int64_t offset) {
  auto& rows = rows_for(table);
  const size_t before = rows.data.size();
  decoder.encode_row(rows.data);
  rows.max_timestamp = std::max(rows.max_timestamp, decoder.timestamp());
  row_added(rows, offset, before);
}

void Batcher::add_dead_letter(int64_t offset, std::string reason, std::string payload) {
  const size_t bytes = reason.size() + payload.size() + sizeof(storage::DeadLetter);
  batch_.dead_letters.push_back({offset, std::move(reason), std::move(payload)});
  added(offset, bytes);
}

void Batcher::add_gap(int64_t from, int64_t to, std::string where) {
  SLUICE_ASSERT(from >= next_ && to > from, "{}/{}: a gap [{}, {}) added after offset {}",
                batch_.topic, batch_.partition, from, to, next_ - 1);
  auto d = storage::DeadLetter::kafka_gap(from, to, std::move(where));
  const size_t bytes = d.reason.size() + d.gap_where.size() + sizeof(storage::DeadLetter);
  batch_.dead_letters.push_back(std::move(d));
  // The batch covers the whole range: written alone (the partition may wait after it for a
  // range another spool holds), it moves sluice_offsets past it.
  open_if_empty(from);
  batch_.events += 1;
  batch_.bytes += bytes;
  batch_.end_offset = to;
  next_ = to;
}

bool Batcher::full() const {
  return batch_.events >= limits_.max_rows || batch_.bytes >= limits_.max_bytes;
}

bool Batcher::due() const { return !empty() && clock_.now() - opened_at_ >= limits_.max_delay; }

std::optional<Clock::time_point> Batcher::deadline() const {
  if (empty()) return std::nullopt;
  return opened_at_ + limits_.max_delay;
}

storage::Batch Batcher::take() {
  storage::Batch out = std::move(batch_);
  batch_ = storage::Batch{};
  batch_.topic = out.topic;
  batch_.partition = out.partition;
  batch_.generation = out.generation;
  return out;
}

}  // namespace sluice::ingest
