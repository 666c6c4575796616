#include "admin/replica_freshness.h"

#include <mysqld_error.h>

#include <memory>

#include "common/logging.h"
#include "common/thread_name.h"
#include "storage/mariadb_connection.h"
#include "storage/table_layout.h"

namespace sluice::admin {

ReplicaFreshness::ReplicaFreshness(std::vector<MariaDbConfig> replicas, std::string group,
                                   std::string offsets_table, std::chrono::milliseconds interval)
    : replicas_(std::move(replicas)),
      group_(std::move(group)),
      offsets_table_(std::move(offsets_table)),
      interval_(interval) {
  for (const auto& r : replicas_) results_.push_back({describe_endpoint(r), "", 0, {}});
  thread_ = std::thread([this] {
    name_this_thread("sluice-freshnes");
    loop();
  });
}

ReplicaFreshness::~ReplicaFreshness() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ReplicaFreshness::follow(const std::string& table) {
  std::lock_guard lock(mu_);
  tables_.insert(table);
}

std::vector<ReplicaFreshness::Replica> ReplicaFreshness::snapshot() const {
  std::lock_guard lock(mu_);
  return results_;
}

void ReplicaFreshness::loop() {
  constexpr auto kOffsetsEvery = std::chrono::seconds(1);
  std::vector<std::unique_ptr<storage::MariaDbConnection>> sessions(replicas_.size());
  std::vector<RateLimiter> limiters(replicas_.size(), RateLimiter(std::chrono::minutes(5)));
  std::vector<std::vector<std::optional<std::string>>> rows;
  const auto wall_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  auto tables_due = std::chrono::steady_clock::now();
  for (;;) {
    const bool check_tables = std::chrono::steady_clock::now() >= tables_due;
    if (check_tables) tables_due = std::chrono::steady_clock::now() + interval_;
    std::vector<std::string> tables;
    if (check_tables) {
      std::lock_guard lock(mu_);
      tables.assign(tables_.begin(), tables_.end());
    }
    for (size_t i = 0; i < replicas_.size(); ++i) {
      Replica r;
      {
        std::lock_guard lock(mu_);
        r = results_[i];
      }
      storage::DbStatus st;
      if (!sessions[i]) st = storage::MariaDbConnection::open(replicas_[i], sessions[i]);
      // How far the replica has applied Sluice's own commits.
      if (st.is_ok()) {
        std::string group = "'";
        sessions[i]->append_escaped(group, group_);
        group += '\'';
        const auto read = sessions[i]->query("SELECT topic, kafka_partition, next_offset FROM " +
                                                 storage::quote_identifier(offsets_table_) +
                                                 " WHERE consumer_group = " + group,
                                             rows);
        // Not replicated (yet), or not readable by this user: the lag is unknown, and the
        // freshness checks go on. Only a lost connection ends this round for the replica.
        r.offsets_ok = read.is_ok();
        r.offsets_read_at_ms = wall_ms();
        r.offsets.clear();
        for (const auto& row : rows) {
          if (!read.is_ok() || !row[0] || !row[1] || !row[2]) continue;
          r.offsets[{*row[0], std::stoi(*row[1])}] = std::stoll(*row[2]);
        }
        if (!read.is_ok() && read.error_class() == storage::DbErrorClass::kOutage) st = read;
      } else {
        r.offsets_ok = false;
      }
      if (check_tables) r.tables.clear();
      for (size_t t = 0; st.is_ok() && t < tables.size(); ++t) {
        st = sessions[i]->query(
            "SELECT MAX(`timestamp`) FROM " + storage::quote_identifier(tables[t]), rows);
        if (st.code == ER_NO_SUCH_TABLE) {  // not replicated yet: no freshness to show
          st = {};
          r.tables.push_back({tables[t], ""});
          continue;
        }
        if (st.is_ok()) {
          r.tables.push_back(
              {tables[t], !rows.empty() && rows[0][0] ? *rows[0][0] : std::string()});
        }
      }
      if (!st.is_ok()) {
        sessions[i].reset();
        r.offsets_ok = false;
        r.error = st.describe();
        uint64_t suppressed = 0;
        if (limiters[i].allow(suppressed)) {
          logger("admin")->warn("replica {}: freshness check failed: {}", r.endpoint, r.error);
        }
      } else if (check_tables) {
        r.error.clear();
      }
      if (check_tables || !st.is_ok()) r.checked_at_ms = wall_ms();
      std::lock_guard lock(mu_);
      results_[i] = std::move(r);
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, kOffsetsEvery, [this] { return stop_; })) return;
  }
}

}  // namespace sluice::admin
