#include "storage/mariadb_sink.h"

#include <mysqld_error.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <unordered_map>

#include "common/logging.h"
#include "common/text.h"
#include "storage/row_format.h"
#include "storage/table_layout.h"

namespace sluice::storage {
namespace {

/// Statements that carry many rows are cut at about this size, well under max_allowed_packet.
constexpr size_t kMaxStatementBytes = 4 * 1024 * 1024;

std::string create_offsets_sql(const std::string& name) {
  return "CREATE TABLE IF NOT EXISTS " + quote_identifier(name) +
         " (\n"
         "  `consumer_group` VARBINARY(255) NOT NULL,\n"
         "  `topic` VARBINARY(255) NOT NULL,\n"
         "  `kafka_partition` INT NOT NULL,\n"
         "  `next_offset` BIGINT NOT NULL,\n"
         "  `updated_at` DATETIME(6) NOT NULL,\n"
         "  PRIMARY KEY (`consumer_group`, `topic`, `kafka_partition`)\n"
         ") ENGINE=InnoDB DEFAULT CHARSET=binary";
}

std::string create_dead_letter_sql(const std::string& name) {
  return "CREATE TABLE IF NOT EXISTS " + quote_identifier(name) +
         " (\n"
         "  `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,\n"
         "  `topic` VARBINARY(255) NOT NULL,\n"
         "  `kafka_partition` INT NOT NULL,\n"
         "  `kafka_offset` BIGINT NOT NULL,\n"
         "  `reason` VARBINARY(1024) NOT NULL,\n"
         "  `payload` LONGBLOB NULL,\n"
         "  `received_at` DATETIME(6) NOT NULL,\n"
         "  KEY `ix_position` (`topic`, `kafka_partition`, `kafka_offset`)\n"
         ") ENGINE=InnoDB DEFAULT CHARSET=binary";
}

/// Appends bytes as a hex literal (X'...'): binary-safe whatever the connection's character set,
/// so a payload that is not UTF-8 is stored as it came.
void append_hex(std::string& out, std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "X'";
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  out += '\'';
}

}  // namespace

MariaDbSink::MariaDbSink(MariaDbConfig config, std::string consumer_group,
                         BookkeepingTables bookkeeping, SinkMode mode, const WriteLease* lease)
    : config_(std::move(config)),
      group_(std::move(consumer_group)),
      mode_(mode),
      offsets_table_(quote_identifier(bookkeeping.offsets)),
      dead_letter_table_(quote_identifier(bookkeeping.dead_letter)),
      create_bookkeeping_{create_offsets_sql(bookkeeping.offsets),
                          create_dead_letter_sql(bookkeeping.dead_letter)},
      lease_(lease) {}

void MariaDbSink::disconnect() {
  std::unique_ptr<MariaDbConnection> closing;
  {
    std::lock_guard lock(conn_mu_);
    closing = std::move(conn_);
  }
}

void MariaDbSink::cancel() {
  std::lock_guard lock(conn_mu_);
  if (conn_) conn_->cancel();
}

DbStatus MariaDbSink::ensure_connected() {
  if (conn_) return {};
  std::unique_ptr<MariaDbConnection> opened;
  if (auto st = MariaDbConnection::open(config_, opened); !st.is_ok()) return st;
  {
    std::lock_guard lock(conn_mu_);
    conn_ = std::move(opened);
  }
  if (!bookkeeping_ready_) {
    // Any connection may be the first after a restart or a resume: make sure the bookkeeping
    // tables exist before the first compare-and-set. A replay needs only the dead letters'
    // table, and a dry run creates nothing.
    for (size_t i = 0; i < create_bookkeeping_.size(); ++i) {
      const bool wanted = mode_ == SinkMode::kExactlyOnce || (mode_ == SinkMode::kReplay && i == 1);
      if (!wanted) continue;
      if (auto st = conn_->exec(create_bookkeeping_[i]); !st.is_ok()) {
        disconnect();
        return st;
      }
    }
    bookkeeping_ready_ = true;
  }
  return {};
}

DbStatus MariaDbSink::probe() {
  if (auto st = ensure_connected(); !st.is_ok()) return st;
  if (mode_ == SinkMode::kReplayDryRun) return {};  // it only reads
  std::vector<std::vector<std::optional<std::string>>> rows;
  if (auto st = conn_->query("SELECT @@global.read_only", rows); !st.is_ok()) {
    disconnect();
    return st;
  }
  if (!rows.empty() && rows[0][0] && *rows[0][0] != "0") {
    disconnect();
    return {ER_OPTION_PREVENTS_STATEMENT, "the server is read-only (@@global.read_only = 1)"};
  }
  // Advice only (status notes): a server without InnoDB, or a proxy that does not know the
  // variable, must not fail the probe.
  std::vector<std::vector<std::optional<std::string>>> mode;
  if (conn_->query("SELECT @@global.innodb_autoinc_lock_mode", mode).is_ok() && !mode.empty() &&
      mode[0][0]) {
    autoinc_lock_mode_ = std::atoi(mode[0][0]->c_str());
  }
  // Which server this is, whatever the endpoint is called here (a name, an address, a proxy):
  // @@server_uid (a hash of a MAC address and the port; MariaDB 10.3+), else host and port.
  std::vector<std::vector<std::optional<std::string>>> uid;
  if ((conn_->query("SELECT @@server_uid", uid).is_ok() ||
       conn_->query("SELECT CONCAT(@@hostname, ':', @@port)", uid).is_ok()) &&
      !uid.empty() && uid[0][0]) {
    server_identity_ = *uid[0][0];
  }
  return {};
}

std::string MariaDbSink::quoted(std::string_view bytes) const {
  std::string out = "'";
  conn_->append_escaped(out, bytes);
  out += '\'';
  return out;
}

DbStatus MariaDbSink::read_offsets(const std::string& topic, std::map<int32_t, int64_t>& out) {
  out.clear();
  if (auto st = ensure_connected(); !st.is_ok()) return st;
  std::vector<std::vector<std::optional<std::string>>> rows;
  auto st = conn_->query("SELECT kafka_partition, next_offset FROM " + offsets_table_ +
                             " WHERE consumer_group = " + quoted(group_) +
                             " AND topic = " + quoted(topic),
                         rows);
  if (st.code == ER_NO_SUCH_TABLE && mode_ != SinkMode::kExactlyOnce) return {};
  if (!st.is_ok()) {
    if (st.error_class() == DbErrorClass::kOutage) disconnect();
    return st;
  }
  for (const auto& r : rows) out[std::stoi(*r[0])] = std::stoll(*r[1]);
  return {};
}

DbStatus MariaDbSink::check_table(const TableLayout& table, std::string& mismatch) {
  mismatch.clear();
  // A table that grows is keyed by its column list too: its layouts share its name.
  const std::string grown_key =
      table.growable() ? table.name() + '\0' + table.column_list() : std::string();
  const std::string& key = table.growable() ? grown_key : table.name();
  if (known_tables_.contains(key)) return {};
  auto log = logger("mariadb");
  if (auto st = conn_->exec(table.create_sql()); !st.is_ok()) {
    if (st.error_class() != DbErrorClass::kBadRow) return st;
    mismatch = "table_mismatch: " + table.name() + ": cannot create the table: " + st.describe();
  } else {
    std::vector<Column> missing;
    if (auto st2 = compare_layout(table, mismatch, table.growable() ? &missing : nullptr);
        !st2.is_ok()) {
      return st2;
    }
    if (mismatch.empty() && !missing.empty()) {
      // A newer version added fields: the table grows by them, once — IF NOT EXISTS makes the
      // same ALTER from another writer or instance, racing this one, change nothing.
      if (auto st3 = conn_->exec(table.add_columns_sql(missing)); !st3.is_ok()) {
        if (st3.error_class() != DbErrorClass::kBadRow) return st3;
        mismatch = "table_mismatch: " + table.name() + ": cannot add " + missing.front().name +
                   (missing.size() > 1 ? " and " + std::to_string(missing.size() - 1) + " more"
                                       : std::string()) +
                   ": " + st3.describe();
      } else {
        // Each column another writer added meanwhile is a note (1060, duplicate column name).
        const size_t there = std::min<size_t>(conn_->warning_count(), missing.size());
        columns_added_ += missing.size() - there;
        if (there == missing.size()) {
          log->info("table {} has the columns of a newer version of its schema: another writer "
                    "added them",
                    table.name());
        } else {
          log->info("table {} grew by {} column(s) for a newer version of its schema, from {}",
                    table.name(), missing.size() - there, missing.front().name);
        }
        if (auto st4 = compare_layout(table, mismatch, nullptr); !st4.is_ok()) return st4;
      }
    }
  }
  if (mismatch.empty()) {
    known_tables_.insert(key);
    if (mismatched_.erase(table.name()) > 0) {
      log->info("table {} matches its schema again: its events are written there", table.name());
    }
    return {};
  }
  bound(mismatch, kMaxReasonBytes);
  if (mismatched_.insert(table.name()).second) {
    log->error("{}; its events are dead-lettered until the table is fixed", mismatch);
  }
  return {};
}

DbStatus MariaDbSink::compare_layout(const TableLayout& table, std::string& mismatch,
                                     std::vector<Column>* missing) {
  std::vector<std::vector<std::optional<std::string>>> rows;
  auto st = conn_->query(
      "SELECT COLUMN_NAME, LOWER(DATA_TYPE), IS_NULLABLE = 'YES', COLUMN_DEFAULT IS NOT NULL, "
      "EXTRA LIKE '%auto_increment%' OR EXTRA LIKE '%GENERATED%' "
      "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = " +
          quoted(table.name()),
      rows);
  if (!st.is_ok()) return st;
  std::vector<ExistingColumn> existing;
  for (const auto& r : rows) {
    existing.push_back({r[0].value_or(""), r[1].value_or(""), r[2].value_or("0") == "1",
                        r[3].value_or("0") == "1", r[4].value_or("0") == "1"});
  }
  if (auto problem = check_layout(table, existing, missing); !problem.empty()) {
    mismatch = "table_mismatch: " + table.name() + ": " + problem;
  }
  return {};
}

WriteResult MariaDbSink::fail(DbStatus st, std::string table) {
  if (conn_) {
    // Roll back whatever is open; if even that fails the connection is not worth keeping.
    if (!conn_->exec("ROLLBACK").is_ok() || reconnect_after(st.code)) {
      disconnect();  // a named lock goes with its session
    } else {
      unlock_dead_letters();
    }
  }
  // A refused row may mean the table changed under us (a column added, dropped, renamed):
  // check its layout again before the next attempt.
  if (st.code == ER_NO_SUCH_TABLE || st.error_class() == DbErrorClass::kBadRow) {
    known_tables_.clear();
  }
  WriteResult r;
  r.outcome = WriteOutcome::kFailed;
  r.error = std::move(st);
  r.failed_table = std::move(table);
  return r;
}

DbStatus MariaDbSink::advance_offset(Batch& batch, bool& proceed, WriteResult& result) {
  proceed = false;
  const std::string where = " WHERE consumer_group = " + quoted(group_) +
                            " AND topic = " + quoted(batch.topic) +
                            " AND kafka_partition = " + std::to_string(batch.partition);
  // At most three rounds: a first-time insert racing another owner, then one trim.
  for (int round = 0; round < 3; ++round) {
    auto st = conn_->exec("UPDATE " + offsets_table_ + " SET next_offset = " +
                          std::to_string(batch.end_offset) + ", updated_at = UTC_TIMESTAMP(6)" +
                          where + " AND next_offset = " + std::to_string(batch.base_offset));
    if (!st.is_ok()) return st;
    if (conn_->affected_rows() == 1) {
      proceed = true;
      return {};
    }
    std::vector<std::vector<std::optional<std::string>>> rows;
    st = conn_->query("SELECT next_offset FROM " + offsets_table_ + where + " FOR UPDATE", rows);
    if (!st.is_ok()) return st;
    if (rows.empty() && batch.base_offset != 0 && batch.base_offset != batch.origin) {
      // No row: MariaDB holds nothing of this partition (a server restored from before the
      // row existed, a new database). Only a batch from where the partition began may create
      // it; this one would leave [0, base) out unseen: MariaDB is behind, at 0.
      result.db_next_offset = 0;
      result.outcome = WriteOutcome::kBehind;
      return conn_->exec("ROLLBACK");
    }
    if (rows.empty()) {
      st = conn_->exec("INSERT INTO " + offsets_table_ +
                       " (consumer_group, topic, kafka_partition, "
                       "next_offset, updated_at) VALUES (" +
                       quoted(group_) + ", " + quoted(batch.topic) + ", " +
                       std::to_string(batch.partition) + ", " + std::to_string(batch.end_offset) +
                       ", UTC_TIMESTAMP(6))");
      if (st.is_ok()) {
        proceed = true;
        return {};
      }
      if (st.code != ER_DUP_ENTRY) return st;
      continue;  // another owner inserted it first: compare again
    }
    const int64_t next = std::stoll(*rows[0][0]);
    result.db_next_offset = next;
    if (next >= batch.end_offset) {
      result.outcome = WriteOutcome::kAlreadyApplied;
      return conn_->exec("ROLLBACK");
    }
    if (next < batch.base_offset) {
      result.outcome = WriteOutcome::kBehind;
      return conn_->exec("ROLLBACK");
    }
    batch.trim_before(next);  // a prefix was applied by an earlier owner: write the rest
  }
  return {ER_LOCK_DEADLOCK, "the offsets row kept changing under the compare-and-set"};
}

std::string dead_letter_lock_name(const std::string& topic, int32_t partition) {
  // At most 64 characters: the topic hashed (FNV-1a, the same on every host and build).
  uint64_t h = 1469598103934665603ULL;
  for (const unsigned char c : topic) h = (h ^ c) * 1099511628211ULL;
  return "sluice_dl_" + std::to_string(h) + "_" + std::to_string(partition);
}

DbStatus classify_load_warning(std::string_view table, std::string_view code,
                               std::string_view message, std::string& uuid) {
  uuid.clear();
  const bool duplicate = code == std::to_string(ER_DUP_ENTRY);
  // A duplicate reads "Duplicate entry '<value>' for key '<key>'" (newer servers may qualify
  // the key with its table: '<table>.<key>').
  const auto open = message.find('\'');
  const auto close = open == std::string_view::npos ? open : message.find('\'', open + 1);
  if (duplicate && close != std::string_view::npos) {
    if (message.ends_with("for key 'ix_uuid'") || message.ends_with(".ix_uuid'")) {
      uuid = message.substr(open + 1, close - open - 1);
      return {};
    }
    if (message.ends_with("for key 'PRIMARY'") || message.ends_with(".PRIMARY'")) {
      return {kDuplicatePrimaryKey,
              "table " + std::string(table) + " refused a row: " + std::string(message) +
                  " (an auto-increment id taken twice by concurrent writers, or a primary key "
                  "that is not Sluice's id)"};
    }
  }
  // Rows are validated before they get here, so any other warning — or a duplicate on a unique
  // key other than the uuid's, which a DBA may have added — means a row would be stored altered
  // or dropped. Refuse the batch rather than lose the row silently: the writer splits it and
  // dead-letters the row with this message.
  return {duplicate ? static_cast<unsigned int>(ER_DUP_ENTRY)
                    : static_cast<unsigned int>(ER_TRUNCATED_WRONG_VALUE_FOR_FIELD),
          "table " + std::string(table) + " refused a row: " + std::string(message)};
}

DbStatus MariaDbSink::read_duplicate_warnings(const TableLayout& table,
                                              std::unordered_map<std::string, size_t>& refused) {
  std::vector<std::vector<std::optional<std::string>>> warnings;
  if (auto st = conn_->query("SHOW WARNINGS", warnings); !st.is_ok()) return st;
  std::string uuid;
  for (const auto& w : warnings) {  // Level, Code, Message
    if (auto st = classify_load_warning(table.name(), w[1].value_or(""), w[2].value_or(""), uuid);
        !st.is_ok()) {
      return st;
    }
    ++refused[uuid];
  }
  return {};
}

void MariaDbSink::resolve_duplicates(const TableRows& rows,
                                     const std::unordered_map<std::string, size_t>& refused,
                                     std::vector<DeadLetter>& out) {
  if (refused.empty()) return;
  // A uuid refused n times lost its last n occurrences in the batch: all of them when it was
  // stored before, all but the first when it repeats inside the batch.
  auto uuid_of = [&](size_t i) {
    const uint32_t start = i == 0 ? 0 : rows.ends[i - 1];
    return std::string_view(rows.data.data() + start, 32);
  };
  std::unordered_map<std::string_view, size_t> remaining;
  for (size_t i = 0; i < rows.rows(); ++i) {
    if (auto it = refused.find(std::string(uuid_of(i))); it != refused.end())
      ++remaining[it->first];
  }
  for (size_t i = 0; i < rows.rows(); ++i) {
    const auto it = refused.find(std::string(uuid_of(i)));
    if (it == refused.end()) continue;
    const size_t left = remaining[it->first]--;
    if (left > it->second) continue;  // an earlier occurrence that was stored
    const uint32_t start = i == 0 ? 0 : rows.ends[i - 1];
    out.push_back(
        {rows.offsets[i],
         "duplicate_uuid: uuid: " + it->first + " is already stored in table " + rows.table->name(),
         std::string(rows.data.data() + start, rows.ends[i] - start - 1)});
  }
}

DbStatus MariaDbSink::insert_rows(const TableRows& rows, WriteResult& result,
                                  std::vector<DeadLetter>& duplicates, size_t& refused_rows) {
  const TableLayout& table = *rows.table;
  uint64_t inserted = 0;
  std::unordered_map<std::string, size_t> refused;  // uuid -> rows refused as duplicates
  if (config_.insert_method == InsertMethod::kLoadData) {
    sql_ = "LOAD DATA LOCAL INFILE 'sluice-batch' IGNORE INTO TABLE " +
           quote_identifier(table.name()) +
           " CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
           "LINES TERMINATED BY '\\n' " +
           table.column_list();
    if (auto st = conn_->load_data(sql_, "sluice-batch", rows.data); !st.is_ok()) return st;
    inserted = conn_->affected_rows();
    if (conn_->warning_count() > 0) {
      if (auto st = read_duplicate_warnings(table, refused); !st.is_ok()) return st;
    }
  } else {
    // Multi-row INSERT IGNORE, converted from the encoded rows. Kept to measure against LOAD DATA.
    const std::string head = "INSERT IGNORE INTO " + quote_identifier(table.name()) + " " +
                             table.column_list() + " VALUES ";
    std::string field;
    uint32_t start = 0;
    sql_.clear();
    for (size_t i = 0; i < rows.rows(); ++i) {
      const std::string_view row(rows.data.data() + start, rows.ends[i] - start - 1);
      start = rows.ends[i];
      sql_ += sql_.empty() ? head + "(" : std::string(",(");
      bool first = true;
      for_each_field(row, field, [&](bool is_null, std::string_view value) {
        if (!first) sql_ += ',';
        first = false;
        if (is_null) {
          sql_ += "NULL";
        } else {
          sql_ += '\'';
          conn_->append_escaped(sql_, value);
          sql_ += '\'';
        }
      });
      sql_ += ')';
      if (sql_.size() >= kMaxStatementBytes || i + 1 == rows.rows()) {
        if (auto st = conn_->exec(sql_); !st.is_ok()) return st;
        inserted += conn_->affected_rows();
        if (conn_->warning_count() > 0) {
          if (auto st = read_duplicate_warnings(table, refused); !st.is_ok()) return st;
        }
        sql_.clear();
      }
    }
  }
  result.rows += inserted;
  refused_rows = 0;
  for (const auto& [uuid, n] : refused) refused_rows += n;
  // A replay counts a uuid already stored as present; only the service dead-letters it.
  if (mode_ == SinkMode::kExactlyOnce) resolve_duplicates(rows, refused, duplicates);
  return {};
}

DbStatus MariaDbSink::insert_dead_letters(const Batch& batch,
                                          const std::vector<DeadLetter>& letters) {
  const std::string head = "INSERT INTO " + dead_letter_table_ +
                           " (topic, kafka_partition, kafka_offset, reason, payload, "
                           "received_at) VALUES ";
  const std::string topic = quoted(batch.topic);
  const std::string partition = std::to_string(batch.partition);
  sql_.clear();
  for (size_t i = 0; i < letters.size(); ++i) {
    const auto& d = letters[i];
    sql_ += sql_.empty() ? head : std::string(",");
    sql_ += "(" + topic + "," + partition + "," + std::to_string(d.offset) + ",";
    // Reasons are bounded where they are built; this guards the column all the same.
    append_hex(sql_,
               std::string_view(d.reason).substr(0, utf8_prefix_length(d.reason, kMaxReasonBytes)));
    sql_ += ',';
    append_hex(sql_, d.payload);
    sql_ += ",UTC_TIMESTAMP(6))";
    if (sql_.size() >= kMaxStatementBytes || i + 1 == letters.size()) {
      if (auto st = conn_->exec(sql_); !st.is_ok()) return st;
      sql_.clear();
    }
  }
  return {};
}

std::optional<WriteResult> MariaDbSink::check_tables(Batch& batch) {
  std::string mismatch;
  for (size_t i = 0; i < batch.tables.size();) {
    const TableLayout& table = *batch.tables[i].table;
    if (auto st = check_table(table, mismatch); !st.is_ok()) {
      return fail(std::move(st), table.name());
    }
    if (mismatch.empty()) {
      ++i;
    } else {
      batch.dead_letter_table(i, mismatch);
    }
  }
  return std::nullopt;
}

WriteResult MariaDbSink::write(Batch& batch) {
  if (mode_ != SinkMode::kExactlyOnce) return write_replay(batch);
  WriteResult result;
  if (auto st = ensure_connected(); !st.is_ok()) return fail(std::move(st));
  // A table that does not match its schema: its rows are dead letters, in the same
  // transaction as the rest.
  if (auto failed = check_tables(batch)) return std::move(*failed);
  if (auto st = conn_->exec("START TRANSACTION"); !st.is_ok()) return fail(std::move(st));
  bool proceed = false;
  if (auto st = advance_offset(batch, proceed, result); !st.is_ok()) return fail(std::move(st));
  if (!proceed) return result;

  std::vector<DeadLetter> duplicates;
  for (const auto& t : batch.tables) {
    size_t refused = 0;
    if (auto st = insert_rows(t, result, duplicates, refused); !st.is_ok()) {
      return fail(std::move(st), t.table->name());
    }
  }
  if (!batch.dead_letters.empty() || !duplicates.empty()) {
    // A replay may have recorded some of them already (it runs beside the service): each
    // position holds one dead letter, whoever writes it first.
    if (auto st = lock_dead_letters(batch); !st.is_ok()) return fail(std::move(st));
    std::unordered_set<int64_t> recorded;
    if (auto st = recorded_dead_letters(batch, recorded, &duplicates); !st.is_ok()) {
      return fail(std::move(st));
    }
    for (const auto* list : {&batch.dead_letters, &duplicates}) {
      if (list->empty()) continue;
      letters_.clear();
      for (const auto& d : *list) {
        if (!recorded.contains(d.offset)) letters_.push_back(d);
      }
      if (letters_.empty()) continue;
      if (auto st = insert_dead_letters(batch, letters_); !st.is_ok()) return fail(std::move(st));
    }
  }
  // The last moment to find out that this instance may no longer write (its view of the fleet
  // went stale while the batch loaded): a pause may have answered meanwhile.
  if (lease_ != nullptr && !lease_->valid()) {
    return fail({kFenced, "this instance's write lease ran out (the fleet topic is not read)"});
  }
  if (auto st = conn_->exec("COMMIT"); !st.is_ok()) return fail(std::move(st));
  unlock_dead_letters();
  result.outcome = WriteOutcome::kCommitted;
  result.duplicates = duplicates.size();
  result.dead_letters = batch.dead_letters.size() + duplicates.size();
  return result;
}

DbStatus MariaDbSink::recorded_dead_letters(const Batch& batch, std::unordered_set<int64_t>& out,
                                           const std::vector<DeadLetter>* more) {
  out.clear();
  if (batch.dead_letters.empty() && (more == nullptr || more->empty())) return {};
  std::string sql = "SELECT DISTINCT kafka_offset FROM " + dead_letter_table_ +
                    " WHERE topic = " + quoted(batch.topic) +
                    " AND kafka_partition = " + std::to_string(batch.partition) +
                    " AND kafka_offset IN (";
  bool first = true;
  for (const auto* list : {&batch.dead_letters, more}) {
    if (list == nullptr) continue;
    for (const auto& d : *list) {
      if (!first) sql += ',';
      first = false;
      sql += std::to_string(d.offset);
    }
  }
  sql += ')';
  std::vector<std::vector<std::optional<std::string>>> rows;
  auto st = conn_->query(sql, rows);
  if (st.code == ER_NO_SUCH_TABLE) return {};  // a dry run against a database without it
  if (!st.is_ok()) return st;
  for (const auto& r : rows) out.insert(std::stoll(*r[0]));
  return {};
}

DbStatus MariaDbSink::lock_dead_letters(const Batch& batch) {
  // Held from before the dead letters are looked up until after the COMMIT: the service and
  // any replay take it.
  const std::string name = dead_letter_lock_name(batch.topic, batch.partition);
  std::vector<std::vector<std::optional<std::string>>> rows;
  if (auto st = conn_->query("SELECT GET_LOCK(" + quoted(name) + ", 10)", rows); !st.is_ok()) {
    return st;
  }
  if (rows.empty() || rows[0][0].value_or("0") != "1") {
    return {ER_LOCK_WAIT_TIMEOUT, "another session held the dead letters of " + batch.topic +
                                      "/" + std::to_string(batch.partition) + " for 10 s"};
  }
  dead_letters_locked_ = true;
  return {};
}

void MariaDbSink::unlock_dead_letters() {
  if (!dead_letters_locked_ || !conn_) return;
  dead_letters_locked_ = false;
  conn_->exec("DO RELEASE_ALL_LOCKS()").ignore();
}

DbStatus MariaDbSink::check_uuid_key(const TableLayout& table) {
  if (uuid_key_checked_.contains(table.name())) return {};
  // The replay's idempotence rests on it: a row whose uuid is stored is not stored again.
  std::vector<std::vector<std::optional<std::string>>> rows;
  auto st = conn_->query(
      "SELECT COUNT(*) FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE "
      "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = " +
          quoted(table.name()) +
          " AND NON_UNIQUE = 0 GROUP BY INDEX_NAME HAVING COUNT(*) = 1 AND "
          "MAX(COLUMN_NAME) = 'uuid') AS k",
      rows);
  if (!st.is_ok()) return st;
  if (rows.empty() || rows[0][0].value_or("0") == "0") {
    return {kNoUuidKey, "table " + table.name() +
                            " has no UNIQUE key on uuid alone, so a replay could store its rows "
                            "twice; add one first: ALTER TABLE `" +
                            table.name() + "` ADD UNIQUE KEY ix_uuid (uuid)"};
  }
  uuid_key_checked_.insert(table.name());
  return {};
}

DbStatus MariaDbSink::find_present(const TableRows& rows, std::vector<bool>& present) {
  present.assign(rows.rows(), false);
  auto uuid_of = [&](size_t i) {
    const uint32_t start = i == 0 ? 0 : rows.ends[i - 1];
    return std::string_view(rows.data.data() + start, 32);
  };
  // In chunks, so no statement grows past a few hundred kilobytes.
  constexpr size_t kChunk = 2000;
  std::unordered_set<std::string> stored;
  for (size_t from = 0; from < rows.rows(); from += kChunk) {
    std::string sql =
        "SELECT uuid FROM " + quote_identifier(rows.table->name()) + " WHERE uuid IN (";
    for (size_t i = from; i < std::min(rows.rows(), from + kChunk); ++i) {
      if (i > from) sql += ',';
      sql += quoted(uuid_of(i));
    }
    sql += ')';
    std::vector<std::vector<std::optional<std::string>>> found;
    auto st = conn_->query(sql, found);
    if (st.code == ER_NO_SUCH_TABLE) break;  // nothing stored yet (a dry run creates nothing)
    if (!st.is_ok()) return st;
    for (const auto& r : found) stored.insert(r[0].value_or(""));
  }
  // As LOAD DATA ... IGNORE would: a uuid stored before is refused, and a uuid that repeats
  // inside the batch is stored once.
  std::unordered_set<std::string_view> seen;
  for (size_t i = 0; i < rows.rows(); ++i) {
    const auto uuid = uuid_of(i);
    present[i] = stored.contains(std::string(uuid)) || !seen.insert(uuid).second;
  }
  return {};
}

WriteResult MariaDbSink::write_replay(Batch& batch) {
  WriteResult result;
  if (auto st = ensure_connected(); !st.is_ok()) return fail(std::move(st));
  result.present_per_table.assign(batch.tables.size(), 0);
  std::unordered_set<int64_t> recorded;
  std::vector<bool> present;
  if (mode_ == SinkMode::kReplayDryRun) {
    for (size_t i = 0; i < batch.tables.size(); ++i) {
      if (auto st = find_present(batch.tables[i], present); !st.is_ok()) return fail(std::move(st));
      const auto n = static_cast<size_t>(std::count(present.begin(), present.end(), true));
      result.present_per_table[i] = n;
      result.rows += batch.tables[i].rows() - n;
    }
    if (auto st = recorded_dead_letters(batch, recorded); !st.is_ok()) return fail(std::move(st));
    for (const auto& d : batch.dead_letters) {
      if (recorded.contains(d.offset)) {
        result.dead_letters_present.push_back(d.offset);
      } else {
        ++result.dead_letters;
      }
    }
    result.outcome = WriteOutcome::kCommitted;
    return result;
  }

  // A table that does not match: its rows are dead letters, marked as a replay's below.
  if (auto failed = check_tables(batch)) return std::move(*failed);
  for (const auto& t : batch.tables) {
    if (auto st = check_uuid_key(*t.table); !st.is_ok()) return fail(std::move(st), t.table->name());
  }
  result.present_per_table.assign(batch.tables.size(), 0);
  if (auto st = conn_->exec("START TRANSACTION"); !st.is_ok()) return fail(std::move(st));
  if (auto st = lock_dead_letters(batch); !st.is_ok()) return fail(std::move(st));
  std::vector<DeadLetter> unused;
  TableRows absent;
  for (size_t i = 0; i < batch.tables.size(); ++i) {
    // Rows already stored are left out of the load rather than refused by it: an IGNOREd
    // duplicate can make InnoDB hand its auto-increment id out again (interleaved lock mode),
    // which a concurrent writer may hold by then. The unique key still guards a race.
    const TableRows& rows = batch.tables[i];
    if (auto st = find_present(rows, present); !st.is_ok()) return fail(std::move(st));
    const auto n = static_cast<size_t>(std::count(present.begin(), present.end(), true));
    const TableRows* load = &rows;
    if (n > 0) {
      absent.table = rows.table;
      absent.data.clear();
      absent.offsets.clear();
      absent.ends.clear();
      for (size_t r = 0; r < rows.rows(); ++r) {
        if (present[r]) continue;
        const uint32_t start = r == 0 ? 0 : rows.ends[r - 1];
        absent.data.append(rows.data, start, rows.ends[r] - start);
        absent.offsets.push_back(rows.offsets[r]);
        absent.ends.push_back(static_cast<uint32_t>(absent.data.size()));
      }
      load = &absent;
    }
    size_t refused = 0;
    if (load->rows() > 0) {
      if (auto st = insert_rows(*load, result, unused, refused); !st.is_ok()) {
        return fail(std::move(st), rows.table->name());
      }
    }
    result.present_per_table[i] = n + refused;
  }
  if (auto st = recorded_dead_letters(batch, recorded); !st.is_ok()) return fail(std::move(st));
  std::vector<DeadLetter> letters;
  for (const auto& d : batch.dead_letters) {
    if (recorded.contains(d.offset)) {
      result.dead_letters_present.push_back(d.offset);
      continue;
    }
    // Marked as coming from a replay; the reason column holds 1,024 bytes.
    std::string reason = d.reason;
    bound(reason, kMaxReasonBytes - kReplayMark.size());
    reason += kReplayMark;
    letters.push_back({d.offset, std::move(reason), d.payload});
  }
  if (!letters.empty()) {
    if (auto st = insert_dead_letters(batch, letters); !st.is_ok()) return fail(std::move(st));
  }
  if (auto st = conn_->exec("COMMIT"); !st.is_ok()) return fail(std::move(st));
  unlock_dead_letters();
  result.outcome = WriteOutcome::kCommitted;
  result.dead_letters = letters.size();
  return result;
}

}  // namespace sluice::storage
