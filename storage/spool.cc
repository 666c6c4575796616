#include "storage/spool.h"

namespace sluice::storage {

SpoolTotals sum_totals(const std::map<PartitionKey, SpoolPartition>& partitions) {
  SpoolTotals t;
  for (const auto& [key, p] : partitions) {
    t.events += p.events;
    t.bytes += p.bytes;
    if (p.oldest_timestamp_ms >= 0 &&
        (t.oldest_timestamp_ms < 0 || p.oldest_timestamp_ms < t.oldest_timestamp_ms)) {
      t.oldest_timestamp_ms = p.oldest_timestamp_ms;
    }
  }
  return t;
}

}  // namespace sluice::storage
