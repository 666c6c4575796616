#pragma once
/// How fast the spool drains (DESIGN.md invariant 3 says in what order; this says at what
/// rate). After a maintenance window the backlog is written while the primary is cold and the
/// replicas must keep up with it, so the drain follows the database instead of pushing it:
///
///   - **Replica lag.** With `mariadb.replicas`, each replica's `sluice_offsets` is read about
///     once a second; a replica's lag is the age of the oldest commit of Sluice's it has not
///     applied yet (CommitHistory below — Sluice's own writes are the heartbeat, so no
///     privilege beyond SELECT is needed and the measure means what analysts see). Above
///     `drain.max_replica_lag_s` the drain rate halves, once per control interval — unless the
///     lag is falling since the interval before (the last cut is working: hold).
///   - **Commit latency.** Drain batches that take clearly longer than the batches before them
///     (twice the running baseline, and 50 ms more at least) for two intervals in a row mean
///     the primary is struggling: the rate drops by a third. Once is noise.
///   - Otherwise the rate rises again by a tenth of the fastest drain seen (unlimited or at the
///     cap; of `drain.max_rate` at least), per interval, and
///     is lifted altogether once it is well past anything the drain reached: additive increase,
///     multiplicative decrease, as Vector's adaptive request concurrency does for HTTP sinks.
///   - `drain.max_rate` caps it by hand. It never drops below kMinRate: a drain always ends.
///   - **Spool pressure** overrides all of it: with the spool past kPressure of
///     `spool.max_bytes`, a slower drain would soon pause fetching and, past Kafka's retention,
///     lose events; the limit is lifted until the spool is back under it.
///
/// Only the drain is governed: partitions flowing directly from Kafka (live traffic) are not,
/// and a partition's own order is never touched — a slower drain only means Kafka's events
/// for that partition wait longer in the spool behind it.
///
/// Thread safety: the ingest thread only.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace sluice::ingest {

struct DrainPolicy {
  double max_rate = 0;            ///< drain.max_rate: events per second, 0 = no cap
  double max_replica_lag_s = 30;  ///< drain.max_replica_lag_s: 0 = replica lag not followed
};

class DrainGovernor {
 public:
  /// The floor of the rate, in events per second.
  static constexpr double kMinRate = 50;
  /// How often the rate is reconsidered.
  static constexpr std::chrono::milliseconds kInterval{1000};
  /// Past this share of spool.max_bytes the drain is not limited.
  static constexpr double kPressure = 0.75;

  enum class Limit { kNone, kMaxRate, kCommitLatency, kReplicaLag, kSpoolPressure };
  static const char* limit_name(Limit limit);

  DrainGovernor(DrainPolicy policy, const Clock& clock);

  /// How many spooled events the drain may read now (SIZE_MAX when nothing limits it). At a
  /// limited rate the allowance comes in chunks of a tenth of a second's worth at least, so
  /// the drain does not read a few events at a time.
  size_t allowance();
  /// The spool is past kPressure of its limit (true) or back under it: lifts the limit. True
  /// when that changed (logged: status should say so at once).
  bool spool_pressure(bool on);
  /// The drain read `events` (taken from the allowance).
  void spent(size_t events);
  /// A drain batch of `events` committed after `seconds` in MariaDB (retries included).
  void committed(size_t events, double seconds);
  /// The worst replica's lag behind Sluice's commits, in seconds; nullopt when not known.
  void replica_lag(std::optional<double> seconds);
  /// Whether the replicas' positions are due to be read again (once per interval); true
  /// marks them read now.
  bool replicas_due();
  /// When the allowance is next at least one event, if it is empty now.
  std::optional<Clock::time_point> next_allowance() const;

  /// The current limit in events per second; 0 when the drain is not limited.
  double rate() const { return pressure_ ? 0 : rate_; }
  Limit limiting() const { return pressure_ ? Limit::kSpoolPressure : limit_; }
  /// Events per second the drain committed lately (a moving average).
  double drained_rate() const { return drained_rate_; }
  std::optional<double> last_replica_lag() const { return replica_lag_; }

 private:
  /// Reconsiders the rate once per interval.
  void control();
  void decrease(double factor, Limit why);
  /// Tokens needed before any is handed out: a tenth of a second's worth.
  double chunk() const { return std::max(1.0, rate_ / 10); }

  DrainPolicy policy_;
  const Clock& clock_;
  double rate_ = 0;  ///< 0: unlimited
  Limit limit_ = Limit::kNone;
  double tokens_ = 0;
  Clock::time_point refilled_{};
  Clock::time_point controlled_{};
  Clock::time_point replicas_read_{};
  // The current interval's commits.
  size_t interval_events_ = 0;
  size_t interval_batches_ = 0;
  double interval_seconds_ = 0;
  double baseline_latency_ = 0;  ///< per batch, a slow moving average of calm intervals
  int congested_ = 0;            ///< slow intervals in a row
  double drained_rate_ = 0;
  double peak_rate_ = 0;  ///< the fastest drain seen
  std::optional<double> replica_lag_;
  std::optional<double> previous_lag_;  ///< last interval's, while above the bound
  bool pressure_ = false;
};

/// When each of Sluice's commits happened, per partition, so that a replica's position in
/// `sluice_offsets` says how old the oldest commit is that it has not applied: its lag.
class CommitHistory {
 public:
  using Key = std::pair<std::string, int32_t>;
  /// A replica's sluice_offsets as read at `read_at_ms` (wall clock); `ok` false when the read
  /// failed (its lag is then unknown).
  struct ReplicaPositions {
    bool ok = false;
    int64_t read_at_ms = 0;
    std::map<Key, int64_t> next_offset;
  };

  /// Sluice committed a partition up to `end` at `at_ms`.
  void committed(const Key& key, int64_t end, int64_t at_ms);
  /// The worst lag among `replicas`, in seconds; nullopt when none could be read.
  std::optional<double> lag(const std::vector<ReplicaPositions>& replicas) const;
  /// Forgets commits older than `before_ms` (a replica that far behind is at least that late).
  void trim(int64_t before_ms);

 private:
  std::map<Key, std::deque<std::pair<int64_t, int64_t>>> commits_;  ///< (end, at_ms), in order
};

}  // namespace sluice::ingest
