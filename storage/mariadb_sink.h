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
///
/// `sluice replay` uses the same path in a mode of its own (SinkMode): no sluice_offsets at all
/// (neither read by the write nor moved), a row whose uuid is already stored counts as already
/// present instead of becoming a dead letter, and a dead letter already recorded at the same
/// position is not written again — so a replay of any range is idempotent.
/// Thread safety: one instance per thread (it owns one connection); `cancel` from any thread.

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/config.h"
#include "common/write_lease.h"
#include "storage/batch_sink.h"
#include "storage/mariadb_connection.h"
#include "storage/table_layout.h"

namespace sluice::storage {

/// Names of the tables the sink keeps its own records in. `sluice bench` uses scratch ones.
struct BookkeepingTables {
  std::string offsets = "sluice_offsets";
  std::string dead_letter = "sluice_dead_letter";
};

/// What a write does.
enum class SinkMode {
  /// The service: the sluice_offsets compare-and-set, a uuid already stored is a
  /// `duplicate_uuid` dead letter.
  kExactlyOnce,
  /// `sluice replay`: each batch is one transaction of rows and dead letters only. Rows whose
  /// uuid is already stored are refused by the unique key and reported in
  /// WriteResult::present_per_table; dead letters already recorded at the same (topic,
  /// partition, offset) are skipped and reported in WriteResult::dead_letters_present; the
  /// others are written with kReplayMark appended to their reason. sluice_offsets is never
  /// created, read by a write, or moved.
  kReplay,
  /// `sluice replay --dry-run`: as kReplay, but nothing is written, not even a table: the
  /// result counts what kReplay would write (WriteResult::rows, dead_letters) and what it would
  /// find present.
  kReplayDryRun,
};

/// What one warning of a load into `table` (SHOW WARNINGS: Code, Message) means. Ok, with
/// `uuid` set, for a row refused because its uuid is already stored (key ix_uuid): IGNOREd, as
/// meant. kDuplicatePrimaryKey for a duplicate on the primary key (transient while it does not
/// repeat). Anything else is an error of class kBadRow — ER_DUP_ENTRY for a unique key a DBA
/// added, ER_TRUNCATED_WRONG_VALUE_FOR_FIELD otherwise — since it means a row stored altered or
/// dropped.
DbStatus classify_load_warning(std::string_view table, std::string_view code,
                               std::string_view message, std::string& uuid);

/// The named lock (GET_LOCK) under which the service and replays look a partition's dead
/// letters up and write them: each position gets one, whoever comes first.
std::string dead_letter_lock_name(const std::string& topic, int32_t partition);

/// Appended to the reason of every dead letter a replay writes.
inline constexpr std::string_view kReplayMark = " (sluice replay)";

class MariaDbSink final : public BatchSink {
 public:
  /// `lease`: a transaction is rolled back instead of committed once it has run out (error
  /// kFenced); nullptr: never runs out.
  MariaDbSink(MariaDbConfig config, std::string consumer_group, BookkeepingTables bookkeeping = {},
              SinkMode mode = SinkMode::kExactlyOnce, const WriteLease* lease = nullptr);

  WriteResult write(Batch& batch) override;
  /// Connects (creating sluice_offsets and sluice_dead_letter; in kReplay only the latter, in
  /// kReplayDryRun neither) and checks @@global.read_only (not in kReplayDryRun).
  DbStatus probe() override;
  int autoinc_lock_mode() const override { return autoinc_lock_mode_; }
  std::string server_identity() const override { return server_identity_; }
  /// sluice_offsets of this group; an empty map when the table does not exist (replay modes).
  DbStatus read_offsets(const std::string& topic, std::map<int32_t, int64_t>& out) override;
  void disconnect() override;
  /// mariadb_cancel on the session in use (safe from any thread).
  void cancel() override;
  /// Columns this sink's ALTER TABLEs added to tables that grow (not counting those another
  /// writer had added first).
  size_t columns_added() const { return columns_added_; }

 private:
  DbStatus ensure_connected();
  /// Creates the table if needed, grows it by the columns a newer version added (a growable
  /// layout), and checks its layout; `mismatch` is set (a dead-letter reason) when its rows
  /// cannot go there.
  DbStatus check_table(const TableLayout& table, std::string& mismatch);
  /// check_table for each of the batch's tables; one that mismatches has its rows made dead
  /// letters (Batch::dead_letter_table). The failed write when a check could not be made.
  std::optional<WriteResult> check_tables(Batch& batch);
  /// The table's columns against the layout (check_layout, with `missing`).
  DbStatus compare_layout(const TableLayout& table, std::string& mismatch,
                          std::vector<Column>* missing);
  /// Steps 1 of the transaction; sets `result` when the batch must not be written.
  DbStatus advance_offset(Batch& batch, bool& proceed, WriteResult& result);
  /// Loads the rows; those refused as duplicates become dead letters in `duplicates`
  /// (kExactlyOnce), or are only counted in `refused` (replay modes).
  DbStatus insert_rows(const TableRows& rows, WriteResult& result,
                       std::vector<DeadLetter>& duplicates, size_t& refused);
  DbStatus insert_dead_letters(const Batch& batch, const std::vector<DeadLetter>& letters);
  /// Counts, per uuid, the rows the last statement refused as duplicates of a stored uuid. Any
  /// other warning is an error (classify_load_warning): a duplicate primary key is retried, and
  /// split when it repeats; the rest is kBadRow.
  DbStatus read_duplicate_warnings(const TableLayout& table,
                                   std::unordered_map<std::string, size_t>& refused);
  /// Turns refused rows into dead letters.
  static void resolve_duplicates(const TableRows& rows,
                                 const std::unordered_map<std::string, size_t>& refused,
                                 std::vector<DeadLetter>& out);
  std::string quoted(std::string_view bytes) const;
  WriteResult fail(DbStatus st, std::string table = "");
  /// kReplay and kReplayDryRun: the offsets of the batch's dead letters that
  /// sluice_dead_letter already holds (none when the table does not exist).
  DbStatus recorded_dead_letters(const Batch& batch, std::unordered_set<int64_t>& out,
                                 const std::vector<DeadLetter>* more = nullptr);
  /// Takes the partition's named dead-letter lock (GET_LOCK, 10 s), held until the COMMIT or
  /// rollback: the service and replays look a position's dead letter up and write it under it,
  /// so that none is recorded twice, whoever comes first.
  DbStatus lock_dead_letters(const Batch& batch);
  void unlock_dead_letters();
  /// Replay modes: the table has a UNIQUE key on uuid alone (kNoUuidKey otherwise).
  DbStatus check_uuid_key(const TableLayout& table);
  /// Replay modes: per row of `rows`, whether the table already holds its uuid (or the row
  /// repeats an earlier uuid of the batch); none when the table does not exist.
  DbStatus find_present(const TableRows& rows, std::vector<bool>& present);
  WriteResult write_replay(Batch& batch);

  MariaDbConfig config_;
  std::string group_;
  SinkMode mode_;
  std::string offsets_table_;      ///< quoted
  std::string dead_letter_table_;  ///< quoted
  std::array<std::string, 2> create_bookkeeping_;
  const WriteLease* lease_;
  /// Written by the owning thread only, under conn_mu_ (so that cancel() from another thread
  /// never sees it half gone); read by the owning thread without it.
  std::unique_ptr<MariaDbConnection> conn_;
  std::mutex conn_mu_;
  size_t columns_added_ = 0;
  std::unordered_set<std::string> known_tables_;  ///< created and matching, this session
  std::unordered_set<std::string> mismatched_;    ///< found not matching (logged once)
  bool bookkeeping_ready_ = false;
  int autoinc_lock_mode_ = -1;
  std::string server_identity_;
  bool dead_letters_locked_ = false;
  std::unordered_set<std::string> uuid_key_checked_;  ///< replay modes, this sink's life
  std::vector<DeadLetter> letters_;                   ///< reused: dead letters to write
  std::string sql_;  ///< reused statement buffer
};

}  // namespace sluice::storage
