#include "admin/replica_freshness.h"

#include <mysqld_error.h>

#include <memory>

#include "common/logging.h"
#include "storage/mariadb_connection.h"
#include "storage/table_layout.h"

namespace sluice::admin {

ReplicaFreshness::ReplicaFreshness(std::vector<MariaDbConfig> replicas, TablesFn tables,
                                   std::chrono::milliseconds interval)
    : replicas_(std::move(replicas)), tables_(std::move(tables)), interval_(interval) {
  for (const auto& r : replicas_) results_.push_back({describe_endpoint(r), "", 0, {}});
  thread_ = std::thread([this] { loop(); });
}

ReplicaFreshness::~ReplicaFreshness() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::vector<ReplicaFreshness::Replica> ReplicaFreshness::snapshot() const {
  std::lock_guard lock(mu_);
  return results_;
}

void ReplicaFreshness::loop() {
  std::vector<std::unique_ptr<storage::MariaDbConnection>> sessions(replicas_.size());
  std::vector<RateLimiter> limiters(replicas_.size(), RateLimiter(std::chrono::minutes(5)));
  std::vector<std::vector<std::optional<std::string>>> rows;
  for (;;) {
    const auto tables = tables_();
    for (size_t i = 0; i < replicas_.size(); ++i) {
      Replica r{describe_endpoint(replicas_[i]), "", 0, {}};
      storage::DbStatus st;
      if (!sessions[i]) st = storage::MariaDbConnection::open(replicas_[i], sessions[i]);
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
        r.error = st.describe();
        uint64_t suppressed = 0;
        if (limiters[i].allow(suppressed)) {
          logger("admin")->warn("replica {}: freshness check failed: {}", r.endpoint, r.error);
        }
      }
      r.checked_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
      std::lock_guard lock(mu_);
      results_[i] = std::move(r);
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, interval_, [this] { return stop_; })) return;
  }
}

}  // namespace sluice::admin
