#include "storage/batch.h"

#include <fmt/format.h>

#include <algorithm>

namespace sluice::storage {

DeadLetter DeadLetter::kafka_gap(int64_t from, int64_t to, std::string where) {
  DeadLetter d;
  d.offset = from;
  d.reason = fmt::format(
      "kafka_gap: offsets [{}, {}) expired from Kafka before Sluice read them{}: {} event(s) "
      "lost upstream",
      from, to, where, to - from);
  d.gap_end = to;
  d.gap_where = std::move(where);
  return d;
}

void Batch::trim_before(int64_t offset) {
  for (auto& t : tables) {
    const auto keep = std::lower_bound(t.offsets.begin(), t.offsets.end(), offset);
    const size_t drop = static_cast<size_t>(keep - t.offsets.begin());
    if (drop == 0) continue;
    const uint32_t cut = t.ends[drop - 1];
    t.data.erase(0, cut);
    t.offsets.erase(t.offsets.begin(), keep);
    t.ends.erase(t.ends.begin(), t.ends.begin() + static_cast<std::ptrdiff_t>(drop));
    for (auto& e : t.ends) e -= cut;
    events -= drop;
  }
  std::erase_if(tables, [](const TableRows& t) { return t.offsets.empty(); });
  for (auto& d : dead_letters) {
    if (d.offset < offset && d.gap_end > offset)
      d = DeadLetter::kafka_gap(offset, d.gap_end, d.gap_where);
  }
  const auto before = dead_letters.size();
  std::erase_if(dead_letters, [&](const DeadLetter& d) { return d.offset < offset; });
  events -= before - dead_letters.size();
  base_offset = offset;
}

int64_t Batch::middle_offset() const {
  std::vector<int64_t> offsets;
  offsets.reserve(events);
  for (const auto& t : tables) offsets.insert(offsets.end(), t.offsets.begin(), t.offsets.end());
  for (const auto& d : dead_letters) offsets.push_back(d.offset);
  if (offsets.size() < 2) return -1;
  const auto middle = offsets.begin() + static_cast<std::ptrdiff_t>(offsets.size() / 2);
  std::nth_element(offsets.begin(), middle, offsets.end());
  return *middle;
}

Batch Batch::split_at(int64_t offset) {
  Batch tail;
  tail.topic = topic;
  tail.partition = partition;
  tail.generation = generation;
  tail.origin = origin;
  tail.base_offset = offset;
  tail.end_offset = end_offset;
  for (auto& t : tables) {
    const auto cut = std::lower_bound(t.offsets.begin(), t.offsets.end(), offset);
    const size_t keep = static_cast<size_t>(cut - t.offsets.begin());
    if (keep == t.rows()) continue;
    TableRows moved;
    moved.table = t.table;
    moved.max_timestamp = t.max_timestamp;
    const uint32_t at = keep == 0 ? 0 : t.ends[keep - 1];
    moved.data.assign(t.data, at, std::string::npos);
    moved.offsets.assign(cut, t.offsets.end());
    moved.ends.reserve(t.rows() - keep);
    for (size_t i = keep; i < t.rows(); ++i) moved.ends.push_back(t.ends[i] - at);
    t.data.resize(at);
    t.offsets.resize(keep);
    t.ends.resize(keep);
    tail.events += moved.rows();
    tail.bytes += moved.data.size();
    tail.tables.push_back(std::move(moved));
  }
  std::erase_if(tables, [](const TableRows& t) { return t.offsets.empty(); });
  for (auto& d : dead_letters) {
    if (d.offset < offset) continue;
    tail.bytes += d.reason.size() + d.payload.size();
    tail.dead_letters.push_back(std::move(d));
    ++tail.events;
  }
  std::erase_if(dead_letters, [&](const DeadLetter& d) { return d.offset >= offset; });
  events -= tail.events;
  bytes -= std::min(bytes, tail.bytes);
  end_offset = offset;
  return tail;
}

void Batch::dead_letter_table(size_t index, const std::string& reason) {
  TableRows& t = tables[index];
  uint32_t start = 0;
  for (size_t i = 0; i < t.rows(); ++i) {
    dead_letters.push_back(
        {t.offsets[i], reason, t.data.substr(start, t.ends[i] - start - 1), t.table});  // no LF
    start = t.ends[i];
  }
  tables.erase(tables.begin() + static_cast<std::ptrdiff_t>(index));
  std::stable_sort(dead_letters.begin(), dead_letters.end(),
                   [](const DeadLetter& a, const DeadLetter& b) { return a.offset < b.offset; });
}

TableRows TableRowsPool::take(const TableLayout* table) {
  TableRows rows;
  if (!spare_.empty()) {
    rows = std::move(spare_.back());
    spare_.pop_back();
  }
  rows.table = table;
  return rows;
}

void TableRowsPool::give(TableRows&& rows) {
  if (spare_.size() >= max_kept_ || rows.data.capacity() > max_capacity_) return;
  rows.table = nullptr;
  rows.data.clear();
  rows.offsets.clear();
  rows.ends.clear();
  rows.max_timestamp = -1;
  spare_.push_back(std::move(rows));
}

}  // namespace sluice::storage
