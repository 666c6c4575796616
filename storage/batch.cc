#include "storage/batch.h"

#include <algorithm>

namespace sluice::storage {

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
  const auto before = dead_letters.size();
  std::erase_if(dead_letters, [&](const DeadLetter& d) { return d.offset < offset; });
  events -= before - dead_letters.size();
  base_offset = offset;
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
