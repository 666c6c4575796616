#pragma once
/// Freshness of the tables on replicas (`mariadb.replicas`): a background thread that every
/// few seconds asks each replica, over its own read-only session, for `MAX(timestamp)` of each
/// table Sluice writes (an index lookup: `timestamp` is indexed), so `sluice status` shows
/// primary and replica freshness side by side without a status request ever waiting on a
/// replica. A replica that cannot be reached shows its error; nothing else is affected.
/// Thread safety: snapshot() from any thread.

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"

namespace sluice::admin {

class ReplicaFreshness {
 public:
  struct Table {
    std::string table;
    std::string max_timestamp;  ///< YYYYMMDDHHMMSS, empty when the table is empty or missing
  };
  struct Replica {
    std::string endpoint;       ///< describe_endpoint
    std::string error;          ///< the last check's failure, empty when it worked
    int64_t checked_at_ms = 0;  ///< wall clock of the last check, 0 before the first
    std::vector<Table> tables;
    /// The replica's sluice_offsets for this consumer group (topic, partition → next offset),
    /// read about once a second: how far it has applied Sluice's commits (the drain follows
    /// it, ingest/drain_governor.h). `offsets_ok` false when the last read failed.
    bool offsets_ok = false;
    int64_t offsets_read_at_ms = 0;
    std::map<std::pair<std::string, int32_t>, int64_t> offsets{};
  };
  /// Tables are checked every `interval` (those it was told of, follow()); `offsets_table`
  /// (of `group`) about once a second.
  ReplicaFreshness(std::vector<MariaDbConfig> replicas, std::string group,
                   std::string offsets_table = "sluice_offsets",
                   std::chrono::milliseconds interval = std::chrono::seconds(5));
  ~ReplicaFreshness();
  ReplicaFreshness(const ReplicaFreshness&) = delete;
  ReplicaFreshness& operator=(const ReplicaFreshness&) = delete;

  std::vector<Replica> snapshot() const;
  /// A table Sluice wrote to (each committed batch's): checked from the next round on.
  void follow(const std::string& table);

 private:
  void loop();

  std::vector<MariaDbConfig> replicas_;
  std::string group_;
  std::string offsets_table_;
  std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;             // guarded by mu_
  std::vector<Replica> results_;  // guarded by mu_
  std::set<std::string> tables_;  // guarded by mu_
  std::thread thread_;            // last: starts once the members above exist
};

}  // namespace sluice::admin
