#include "testing/fake_database.h"

#include <errmsg.h>
#include <mysqld_error.h>

#include <algorithm>

#include "storage/mariadb_sink.h"

namespace sluice::testing {

using storage::DbStatus;
using storage::WriteOutcome;
using storage::WriteResult;

// --- FakeDatabase -----------------------------------------------------------------------------

void FakeDatabase::set_mode(Mode mode) {
  {
    std::lock_guard lock(mu_);
    mode_ = mode;
  }
  cv_.notify_all();
}

bool FakeDatabase::holds_writes() const {
  std::lock_guard lock(mu_);
  return hold_ && mode_ == Mode::kUp;
}

void FakeDatabase::hold_writes(bool hold) {
  {
    std::lock_guard lock(mu_);
    hold_ = hold;
  }
  cv_.notify_all();
}

void FakeDatabase::fail_next_writes_transiently(int n) {
  std::lock_guard lock(mu_);
  transient_failures_ = n;
}

void FakeDatabase::copy_from(const FakeDatabase& other) {
  std::scoped_lock lock(mu_, other.mu_);
  next_offset_ = other.next_offset_;
  for (const auto& [key, next] : next_offset_) {
    auto& high = highest_next_offset_.try_emplace(key, -1).first->second;
    high = std::max(high, next);
  }
  stored_ = other.stored_;
  reasons_ = other.reasons_;
  dead_letters_ = other.dead_letters_;
}

void FakeDatabase::truncate(const std::string& topic, int32_t partition, int64_t next_offset) {
  std::lock_guard lock(mu_);
  const PartitionKey key{topic, partition};
  auto& stored = stored_[key];
  stored.erase(
      std::remove_if(stored.begin(), stored.end(), [&](int64_t o) { return o >= next_offset; }),
      stored.end());
  next_offset_[key] = next_offset;
}

void FakeDatabase::forget_partition(const std::string& topic, int32_t partition) {
  std::lock_guard lock(mu_);
  const PartitionKey key{topic, partition};
  stored_.erase(key);
  reasons_.erase(key);
  next_offset_.erase(key);
}

std::vector<int64_t> FakeDatabase::stored(const std::string& topic, int32_t partition) const {
  std::lock_guard lock(mu_);
  const auto it = stored_.find({topic, partition});
  return it == stored_.end() ? std::vector<int64_t>{} : it->second;
}

int64_t FakeDatabase::highest_next_offset(const std::string& topic, int32_t partition) const {
  std::lock_guard lock(mu_);
  const auto it = highest_next_offset_.find({topic, partition});
  return it == highest_next_offset_.end() ? -1 : it->second;
}

int64_t FakeDatabase::next_offset(const std::string& topic, int32_t partition) const {
  std::lock_guard lock(mu_);
  const auto it = next_offset_.find({topic, partition});
  return it == next_offset_.end() ? -1 : it->second;
}

std::map<int64_t, std::string> FakeDatabase::dead_letter_reasons(const std::string& topic,
                                                                 int32_t partition) const {
  std::lock_guard lock(mu_);
  const auto it = reasons_.find({topic, partition});
  return it == reasons_.end() ? std::map<int64_t, std::string>{} : it->second;
}

// --- FakeSession ------------------------------------------------------------------------------

namespace {

WriteResult failed(unsigned int code, const char* message) {
  WriteResult r;
  r.outcome = WriteOutcome::kFailed;
  r.error = {code, message};
  return r;
}

}  // namespace

DbStatus FakeSession::connect_locked() {
  switch (db_.mode_) {
    case FakeDatabase::Mode::kDown:
      if (connected_) {
        connected_ = false;
        --db_.connections_;
        return {CR_SERVER_LOST, "Lost connection to server during query"};
      }
      return {CR_CONNECTION_ERROR, "Can't connect to local server"};
    case FakeDatabase::Mode::kAccessDenied:
      return {ER_ACCESS_DENIED_ERROR, "Access denied for user 'sluice'"};
    case FakeDatabase::Mode::kUp:
    case FakeDatabase::Mode::kReadOnly:
      break;
  }
  if (!connected_) {
    connected_ = true;
    ++db_.connections_;
  }
  return {};
}

WriteResult FakeSession::write(storage::Batch& batch) {
  std::unique_lock lock(db_.mu_);
  ++db_.writes_;
  if (auto st = connect_locked(); !st.is_ok()) return failed(st.code, st.message.c_str());
  if (db_.mode_ == FakeDatabase::Mode::kReadOnly) {
    // MariaDbSink closes the connection after a read-only refusal.
    connected_ = false;
    --db_.connections_;
    return failed(ER_OPTION_PREVENTS_STATEMENT, "The MariaDB server is running with --read-only");
  }
  if (db_.transient_failures_ > 0) {
    --db_.transient_failures_;
    return failed(ER_LOCK_DEADLOCK, "Deadlock found when trying to get lock");
  }
  ++db_.open_transactions_;
  if (db_.hold_) {
    ++db_.held_;
    db_.cv_.wait(lock, [&] { return !db_.hold_ || db_.mode_ != FakeDatabase::Mode::kUp; });
    --db_.held_;
    if (db_.mode_ != FakeDatabase::Mode::kUp) {
      --db_.open_transactions_;
      connected_ = false;
      --db_.connections_;
      return failed(CR_SERVER_LOST, "Lost connection to server during query");
    }
  }
  const PartitionKey key{batch.topic, batch.partition};
  WriteResult result;
  if (const auto it = db_.next_offset_.find(key); it != db_.next_offset_.end()) {
    const int64_t next = it->second;
    if (next >= batch.end_offset || next < batch.base_offset) {
      --db_.open_transactions_;
      result.outcome =
          next >= batch.end_offset ? WriteOutcome::kAlreadyApplied : WriteOutcome::kBehind;
      result.db_next_offset = next;
      return result;
    }
    if (next > batch.base_offset) batch.trim_before(next);
  } else if (batch.base_offset != 0 && batch.base_offset != batch.origin) {
    // As MariaDbSink: no row, and the batch does not start where the partition began.
    --db_.open_transactions_;
    result.outcome = WriteOutcome::kBehind;
    result.db_next_offset = 0;
    return result;
  }
  if (lease_ != nullptr && !lease_->valid()) {
    --db_.open_transactions_;
    return failed(storage::kFenced, "this instance's write lease ran out");
  }
  std::vector<int64_t> offsets;
  for (const auto& t : batch.tables) {
    offsets.insert(offsets.end(), t.offsets.begin(), t.offsets.end());
    result.rows += t.rows();
  }
  for (const auto& d : batch.dead_letters) offsets.push_back(d.offset);
  std::sort(offsets.begin(), offsets.end());
  auto& stored = db_.stored_[key];
  stored.insert(stored.end(), offsets.begin(), offsets.end());
  db_.next_offset_[key] = batch.end_offset;
  auto& high = db_.highest_next_offset_.try_emplace(key, -1).first->second;
  high = std::max(high, batch.end_offset);
  db_.dead_letters_ += batch.dead_letters.size();
  for (const auto& d : batch.dead_letters) db_.reasons_[key][d.offset] = d.reason;
  result.dead_letters = batch.dead_letters.size();
  result.outcome = WriteOutcome::kCommitted;
  --db_.open_transactions_;
  return result;
}

DbStatus FakeSession::probe() {
  std::lock_guard lock(db_.mu_);
  ++db_.probes_;
  if (auto st = connect_locked(); !st.is_ok()) return st;
  if (db_.mode_ == FakeDatabase::Mode::kReadOnly) {
    connected_ = false;
    --db_.connections_;
    return {ER_OPTION_PREVENTS_STATEMENT, "the server is read-only (@@global.read_only = 1)"};
  }
  identity_ = db_.identity_;
  return {};
}

void FakeDatabase::set_identity(std::string identity) {
  std::lock_guard lock(mu_);
  identity_ = std::move(identity);
}

std::string FakeDatabase::identity() const {
  std::lock_guard lock(mu_);
  return identity_;
}

DbStatus FakeSession::read_offsets(const std::string& topic, std::map<int32_t, int64_t>& out) {
  std::lock_guard lock(db_.mu_);
  out.clear();
  if (auto st = connect_locked(); !st.is_ok()) return st;
  for (const auto& [key, next] : db_.next_offset_) {
    if (key.first == topic) out[key.second] = next;
  }
  return {};
}

void FakeSession::disconnect() {
  std::lock_guard lock(db_.mu_);
  if (connected_) --db_.connections_;
  connected_ = false;
}

// --- FakeEventTables / FakeReplaySession -----------------------------------------------------

std::vector<std::string> FakeEventTables::uuids(const std::string& table) const {
  std::lock_guard lock(mu_);
  const auto it = order_.find(table);
  return it == order_.end() ? std::vector<std::string>{} : it->second;
}

std::map<std::string, std::string> FakeEventTables::dead_letters() const {
  std::lock_guard lock(mu_);
  return dead_letters_;
}

void FakeEventTables::store(const std::string& table, const std::string& uuid) {
  std::lock_guard lock(mu_);
  if (stored_[table].insert(uuid).second) order_[table].push_back(uuid);
}

void FakeEventTables::fail_next_writes(int n) {
  std::lock_guard lock(mu_);
  failures_ = n;
}

int FakeEventTables::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

WriteResult FakeReplaySession::write(storage::Batch& batch) {
  std::lock_guard lock(tables_.mu_);
  ++tables_.writes_;
  if (tables_.failures_ > 0) {
    --tables_.failures_;
    return failed(ER_ACCESS_DENIED_ERROR, "Access denied for user 'sluice'");
  }
  WriteResult result;
  result.present_per_table.assign(batch.tables.size(), 0);
  for (size_t t = 0; t < batch.tables.size(); ++t) {
    const auto& rows = batch.tables[t];
    const std::string& name = rows.table->name();
    auto& stored = tables_.stored_[name];
    std::set<std::string> in_batch;
    for (size_t i = 0; i < rows.rows(); ++i) {
      const uint32_t start = i == 0 ? 0 : rows.ends[i - 1];
      const std::string uuid(rows.data.data() + start, 32);
      if (stored.contains(uuid) || !in_batch.insert(uuid).second) {
        ++result.present_per_table[t];
        continue;
      }
      ++result.rows;
      if (!dry_run_) {
        stored.insert(uuid);
        tables_.order_[name].push_back(uuid);
      }
    }
  }
  for (const auto& d : batch.dead_letters) {
    const std::string key =
        batch.topic + "/" + std::to_string(batch.partition) + "@" + std::to_string(d.offset);
    if (tables_.dead_letters_.contains(key)) {
      result.dead_letters_present.push_back(d.offset);
      continue;
    }
    ++result.dead_letters;
    if (!dry_run_) tables_.dead_letters_[key] = d.reason + std::string(storage::kReplayMark);
  }
  result.outcome = WriteOutcome::kCommitted;
  return result;
}

}  // namespace sluice::testing
