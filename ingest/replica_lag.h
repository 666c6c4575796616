#pragma once
/// How far the replicas (`mariadb.replicas`) are behind the primary on the tables a
/// `sluice replay` writes, so the replay follows them the way the drain does
/// (ingest/drain_governor.h). A replay does not write `sluice_offsets`, the drain's heartbeat,
/// so the tables themselves are: once a second a background thread reads `MAX(id)` of each
/// table on the primary (an index lookup: `id` is the primary key) and remembers when each
/// new maximum was first seen; a replica's lag is the age of the oldest maximum it has not
/// reached yet (CommitHistory, with a table's largest id for a partition's offset). Needs
/// SELECT only, on every server; the replay's loop never waits on a replica.
/// Thread safety: every public method from any thread.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "ingest/drain_governor.h"

namespace sluice::ingest {

class ReplicaLagProbe {
 public:
  ReplicaLagProbe(MariaDbConfig primary, std::vector<MariaDbConfig> replicas,
                  std::chrono::milliseconds interval = std::chrono::seconds(1));
  ~ReplicaLagProbe();
  ReplicaLagProbe(const ReplicaLagProbe&) = delete;
  ReplicaLagProbe& operator=(const ReplicaLagProbe&) = delete;

  /// The tables to follow (those written so far).
  void follow(std::vector<std::string> tables);
  /// The worst replica's lag in seconds; nullopt until some replica could be read.
  std::optional<double> lag() const;

 private:
  void loop();

  const MariaDbConfig primary_;
  const std::vector<MariaDbConfig> replicas_;
  const std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                // guarded by mu_
  std::vector<std::string> tables_;  // guarded by mu_
  std::optional<double> lag_;        // guarded by mu_
  std::thread thread_;               // last: starts once the members above exist
};

}  // namespace sluice::ingest
