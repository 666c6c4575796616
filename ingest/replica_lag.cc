#include "ingest/replica_lag.h"

#include <mysqld_error.h>

#include <map>
#include <memory>

#include "common/logging.h"
#include "common/thread_name.h"
#include "storage/mariadb_connection.h"
#include "storage/table_layout.h"

namespace sluice::ingest {

namespace {

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// `MAX(id)` of each of `tables` on `session` into `out` (a missing table is left out: nothing
/// of it applied yet). False when the session failed.
bool read_max_ids(std::unique_ptr<storage::MariaDbConnection>& session, const MariaDbConfig& server,
                  const std::vector<std::string>& tables,
                  std::map<CommitHistory::Key, int64_t>& out, std::string& error) {
  out.clear();
  storage::DbStatus st;
  if (!session) st = storage::MariaDbConnection::open(server, session);
  std::vector<std::vector<std::optional<std::string>>> rows;
  for (size_t i = 0; st.is_ok() && i < tables.size(); ++i) {
    st = session->query("SELECT MAX(`id`) FROM " + storage::quote_identifier(tables[i]), rows);
    if (st.code == ER_NO_SUCH_TABLE) {
      st = {};
      continue;
    }
    if (st.is_ok() && !rows.empty() && rows[0][0]) out[{tables[i], 0}] = std::stoll(*rows[0][0]);
  }
  if (st.is_ok()) return true;
  session.reset();
  error = st.describe();
  return false;
}

}  // namespace

ReplicaLagProbe::ReplicaLagProbe(MariaDbConfig primary, std::vector<MariaDbConfig> replicas,
                                 std::chrono::milliseconds interval)
    : primary_(std::move(primary)), replicas_(std::move(replicas)), interval_(interval) {
  thread_ = std::thread([this] {
    name_this_thread("sluice-replicas");
    loop();
  });
}

ReplicaLagProbe::~ReplicaLagProbe() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ReplicaLagProbe::follow(std::vector<std::string> tables) {
  std::lock_guard lock(mu_);
  tables_ = std::move(tables);
}

std::optional<double> ReplicaLagProbe::lag() const {
  std::lock_guard lock(mu_);
  return lag_;
}

void ReplicaLagProbe::loop() {
  std::unique_ptr<storage::MariaDbConnection> primary_session;
  std::vector<std::unique_ptr<storage::MariaDbConnection>> sessions(replicas_.size());
  RateLimiter warn(std::chrono::minutes(1));
  CommitHistory history;
  std::map<CommitHistory::Key, int64_t> newest;  // the largest id seen per table
  std::map<CommitHistory::Key, int64_t> ids;
  std::string error;
  for (;;) {
    std::vector<std::string> tables;
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, interval_, [this] { return stop_; })) return;
      tables = tables_;
    }
    if (!read_max_ids(primary_session, primary_, tables, ids, error)) {
      uint64_t suppressed = 0;
      if (warn.allow(suppressed)) logger("replay")->warn("primary: replica lag unknown: {}", error);
      continue;
    }
    const int64_t now = wall_ms();
    for (const auto& [key, id] : ids) {
      // Only a new maximum is a new heartbeat: one seen again says nothing about when.
      auto& last = newest[key];
      if (id > last) history.committed(key, id, now);
      last = std::max(last, id);
    }
    std::vector<CommitHistory::ReplicaPositions> positions;
    for (size_t i = 0; i < replicas_.size(); ++i) {
      CommitHistory::ReplicaPositions p;
      p.ok = read_max_ids(sessions[i], replicas_[i], tables, p.next_offset, error);
      p.read_at_ms = wall_ms();
      if (!p.ok) {
        uint64_t suppressed = 0;
        if (warn.allow(suppressed)) {
          logger("replay")->warn("replica {}: lag unknown: {}", describe_endpoint(replicas_[i]),
                                 error);
        }
      }
      positions.push_back(std::move(p));
    }
    history.trim(now - 10 * 60 * 1000);
    const auto lag = history.lag(positions);
    std::lock_guard lock(mu_);
    lag_ = lag;
  }
}

}  // namespace sluice::ingest
