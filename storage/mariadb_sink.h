#pragma once
/// MariaDB adapter of BatchSink. Each batch is one transaction:
///   1. UPDATE sluice_offsets SET next_offset = <end> WHERE ... AND next_offset = <base>
///      (inserting the row on a partition's first batch);
///   2. the rows, per table, by LOAD DATA LOCAL INFILE streamed from memory (or multi-row
///      INSERT, for comparison), IGNOREing uuids already stored, which become dead letters;
///   3. the batch's dead letters; 4. COMMIT.
/// A failed compare-and-set means the batch (or a prefix of it) is applied already, so
/// re-delivery never creates a second row. Tables are created on first use; a table that exists
/// already is checked once against the schema's layout (check_layout), and while it does not
/// match, its rows become dead letters ("table_mismatch: <table>: <column ...>") — checked again
/// before each batch that has rows for it, so a table a DBA fixes takes rows again. Dead letters
/// are sent as hex literals, so any bytes round-trip. After an error that makes the session
/// unusable or that a new session may not have (reconnect_after: access denied), the connection
/// is closed and the next write opens a new one.
/// Thread safety: one instance per thread (it owns one connection).

#include <array>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/config.h"
#include "storage/batch_sink.h"
#include "storage/mariadb_connection.h"

namespace sluice::storage {

/// Names of the tables the sink keeps its own records in. `sluice bench` uses scratch ones.
struct BookkeepingTables {
  std::string offsets = "sluice_offsets";
  std::string dead_letter = "sluice_dead_letter";
};

class MariaDbSink final : public BatchSink {
 public:
  MariaDbSink(MariaDbConfig config, std::string consumer_group, BookkeepingTables bookkeeping = {});

  WriteResult write(Batch& batch) override;
  /// Connects (creating sluice_offsets and sluice_dead_letter) and checks @@global.read_only.
  DbStatus probe() override;
  DbStatus read_offsets(const std::string& topic, std::map<int32_t, int64_t>& out) override;
  void disconnect() override { conn_.reset(); }

 private:
  DbStatus ensure_connected();
  /// Creates the table if needed and checks its layout; `mismatch` is set (a dead-letter
  /// reason) when its rows cannot go there.
  DbStatus check_table(const TableLayout& table, std::string& mismatch);
  /// Steps 1 of the transaction; sets `result` when the batch must not be written.
  DbStatus advance_offset(Batch& batch, bool& proceed, WriteResult& result);
  DbStatus insert_rows(const TableRows& rows, WriteResult& result,
                       std::vector<DeadLetter>& duplicates);
  DbStatus insert_dead_letters(const Batch& batch, const std::vector<DeadLetter>& letters);
  /// Counts, per uuid, the rows the last statement refused as duplicates. Any other warning is
  /// an error: it would mean a row stored altered.
  DbStatus read_duplicate_warnings(const TableLayout& table,
                                   std::unordered_map<std::string, size_t>& refused);
  /// Turns refused rows into dead letters.
  static void resolve_duplicates(const TableRows& rows,
                                 const std::unordered_map<std::string, size_t>& refused,
                                 std::vector<DeadLetter>& out);
  std::string quoted(std::string_view bytes) const;
  WriteResult fail(DbStatus st, std::string table = "");

  MariaDbConfig config_;
  std::string group_;
  std::string offsets_table_;      ///< quoted
  std::string dead_letter_table_;  ///< quoted
  std::array<std::string, 2> create_bookkeeping_;
  std::unique_ptr<MariaDbConnection> conn_;
  std::unordered_set<std::string> known_tables_;  ///< created and matching, this session
  std::unordered_set<std::string> mismatched_;    ///< found not matching (logged once)
  bool bookkeeping_ready_ = false;
  std::string sql_;  ///< reused statement buffer
};

}  // namespace sluice::storage
