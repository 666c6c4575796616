#pragma once
/// A batch: the events of one Kafka partition over a contiguous offset range [base, end),
/// already decoded and encoded per table, plus the dead letters of that range. It is the unit of
/// one MariaDB transaction. Built on the ingest thread, then moved to a writer thread.

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::storage {

class TableLayout;

/// Longest dead-letter reason, in bytes: sluice_dead_letter.reason is VARBINARY(1024). Every
/// reason is bounded where it is built (sluice::bound, common/text.h), cut at a character
/// boundary with a marker, so a hostile field name can never make the dead letter itself fail.
inline constexpr size_t kMaxReasonBytes = 1024;
/// Longest piece of untrusted text (a field name, a schema name) quoted inside a reason.
inline constexpr size_t kMaxQuotedBytes = 200;

/// Rows bound for one table, in offset order, encoded as in row_format.h.
struct TableRows {
  const TableLayout* table = nullptr;  ///< owned by the schema registry, lives for the process
  std::string data;                    ///< encoded rows, back to back
  std::vector<int64_t> offsets;        ///< Kafka offset of each row
  std::vector<uint32_t> ends;          ///< end position (after LF) of each row in `data`
  int64_t max_timestamp = -1;          ///< newest `timestamp` (epoch seconds) among the rows

  size_t rows() const { return offsets.size(); }
};

/// Spare TableRows whose buffers keep their capacity, so a new batch reuses memory a written
/// one has already grown and faulted in, rather than growing (and copying) a fresh buffer each
/// time. Bounded: at most `max_kept` are kept, none larger than `max_capacity` bytes.
/// Thread safety: one thread (the ingest thread); writers hand buffers back through reports.
class TableRowsPool {
 public:
  TableRowsPool(size_t max_kept, size_t max_capacity)
      : max_kept_(max_kept), max_capacity_(max_capacity) {}
  /// Empty rows for `table`, with recycled capacity when there is some.
  TableRows take(const TableLayout* table);
  /// Keeps `rows` (cleared) for reuse, or frees them when the pool is full.
  void give(TableRows&& rows);
  size_t kept() const { return spare_.size(); }

 private:
  size_t max_kept_;
  size_t max_capacity_;
  std::vector<TableRows> spare_;
};

struct DeadLetter {
  int64_t offset = 0;
  /// "<class>: <detail>", e.g. "wrong_type: event.isAnon: expected boolean"; at most
  /// kMaxReasonBytes.
  std::string reason;
  std::string payload;  ///< the message as received (may be empty, e.g. for an expired gap)
  /// The table the event's row was for, when the row was dead-lettered on the database side
  /// (dead_letter_table: a table of another layout, a row MariaDB refused); null otherwise.
  const TableLayout* table = nullptr;
  /// A kafka_gap (offsets that expired from Kafka unread) is one dead letter at its first
  /// offset: `gap_end` is one past its last, -1 for any other dead letter.
  int64_t gap_end = -1;
  std::string gap_where{};  ///< what the gap's reason adds after "before Sluice read them"

  /// The dead letter recording offsets [from, to) as lost upstream.
  static DeadLetter kafka_gap(int64_t from, int64_t to, std::string where);
};

struct Batch {
  std::string topic;
  int32_t partition = 0;
  /// The partition's next_offset this batch continues from: the compare-and-set value.
  int64_t base_offset = 0;
  /// One past the last offset the batch covers: the next_offset it commits.
  int64_t end_offset = 0;
  /// Incremented by the ingest side when the partition is revoked or repositioned, so writers
  /// can discard batches of an earlier assignment.
  uint64_t generation = 0;
  /// Where the partition began for Sluice when nothing was known of it — no sluice_offsets
  /// row, no group offset, no spool, no claim: Kafka's log start then. Only a batch starting
  /// here, or at offset 0, may create the partition's sluice_offsets row; any other finds
  /// MariaDB "behind" at 0 (DESIGN.md invariant 2: the compare-and-set is always on). -1: none.
  int64_t origin = -1;
  std::vector<TableRows> tables;
  std::vector<DeadLetter> dead_letters;
  size_t bytes = 0;   ///< approximate memory held, for queue accounting
  size_t events = 0;  ///< rows plus dead letters

  /// Drops everything below `offset` (already applied by an earlier owner) and moves the base
  /// there; a kafka_gap reaching past `offset` is narrowed to start there (the earlier owner
  /// wrote what it had, the rest is still lost). Precondition: base_offset <= offset <=
  /// end_offset.
  void trim_before(int64_t offset);

  /// An offset that splits the batch's events into two halves of about equal count (the first
  /// event of the second half), or -1 when the batch holds at most one event.
  int64_t middle_offset() const;
  /// Moves every event at or after `offset` into a new batch [offset, end_offset) of the same
  /// partition and generation, and ends this one at `offset`. Both stay contiguous: together
  /// they cover exactly what this batch covered. Precondition: base_offset < offset <
  /// end_offset.
  Batch split_at(int64_t offset);
  /// Turns the rows of tables[index] into dead letters with `reason` (each payload is the row
  /// as encoded, in row_format.h's text form) and removes that table from the batch.
  void dead_letter_table(size_t index, const std::string& reason);
};

}  // namespace sluice::storage
