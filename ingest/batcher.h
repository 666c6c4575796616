#pragma once
/// Builds the batches of one Kafka partition. A batch closes when it reaches `max_rows` rows or
/// `max_bytes` bytes, or when its first event has waited `max_delay` — the last by the clock, so
/// a quiet partition still flushes on time. Each batch starts where the previous one ended, so
/// the ranges [base, end) of a partition's batches are contiguous.
/// Thread safety: owned by the ingest thread.

#include <chrono>
#include <optional>

#include "common/clock.h"
#include "storage/batch.h"

namespace sluice::ingest {

class Decoder;

struct BatchLimits {
  size_t max_rows = 5000;
  size_t max_bytes = 8 * 1024 * 1024;
  std::chrono::milliseconds max_delay{500};
};

class Batcher {
 public:
  /// `pool`, when given, supplies the row buffers of new batches (it must outlive the Batcher).
  Batcher(std::string topic, int32_t partition, BatchLimits limits, const Clock& clock,
          storage::TableRowsPool* pool = nullptr);

  /// Starts the partition at `offset` (the next offset expected), dropping any open batch.
  void reset(int64_t offset, uint64_t generation);
  /// The next offset the partition expects, or -1 before the first event when unknown.
  int64_t next_offset() const { return next_; }

  /// The rows of `table` in the open batch, to append one encoded row to; then call `added`.
  storage::TableRows& rows_for(const storage::TableLayout* table);
  /// Records that the event at `offset` was appended (as a row or a dead letter), with the
  /// number of bytes it added.
  void added(int64_t offset, size_t bytes);
  /// Appends a dead letter for `offset` and records it.
  void add_dead_letter(int64_t offset, std::string reason, std::string payload);
  /// Appends the dead letter of a kafka_gap: offsets [from, to) lost upstream.
  void add_gap(int64_t from, int64_t to, std::string where);
  /// Records the row appended to `rows` (its end position) for `offset`.
  void row_added(storage::TableRows& rows, int64_t offset, size_t bytes_before);
  /// Appends the row of `decoder`'s last successful decode, bound for `table`, at `offset`.
  void add_decoded(const storage::TableLayout* table, const Decoder& decoder, int64_t offset);

  bool empty() const { return batch_.events == 0; }
  /// Memory the open batch holds.
  size_t bytes() const { return batch_.bytes; }
  bool full() const;
  /// True when the open batch's first event has waited max_delay.
  bool due() const;
  /// When the open batch becomes due, if it holds anything.
  std::optional<Clock::time_point> deadline() const;
  /// Closes the open batch and returns it; the next one starts at its end.
  storage::Batch take();

 private:
  void open_if_empty(int64_t offset);

  BatchLimits limits_;
  const Clock& clock_;
  storage::TableRowsPool* pool_;
  storage::Batch batch_;
  Clock::time_point opened_at_{};
  int64_t next_ = -1;
};

/// The open batches of many partitions share one memory budget. Read round-robin, their batches
/// would all fill at once — a burst the writers cannot take, then nothing; over the budget the
/// fullest goes, so batches flow steadily and memory stays bounded whatever the partition
/// count. While the open batches of `items` (`batcher_of(item)`) together exceed `budget`,
/// hands the fullest to `dispatch`, which empties its batcher.
template <typename Items, typename BatcherOf, typename Dispatch>
void dispatch_fullest_over(size_t budget, Items& items, BatcherOf batcher_of, Dispatch dispatch) {
  size_t open = 0;
  for (auto& item : items) open += batcher_of(item).bytes();
  while (open > budget) {
    decltype(&*items.begin()) fullest = nullptr;
    for (auto& item : items) {
      if (fullest == nullptr || batcher_of(item).bytes() > batcher_of(*fullest).bytes()) {
        fullest = &item;
      }
    }
    if (fullest == nullptr || batcher_of(*fullest).empty()) return;
    open -= batcher_of(*fullest).bytes();
    dispatch(*fullest);
  }
}

}  // namespace sluice::ingest
