#include "ingest/drain_governor.h"

#include <algorithm>
#include <limits>

#include "common/enum_names.h"
#include "common/logging.h"

namespace sluice::ingest {

namespace {
constexpr double kLatencyFactor = 2.0;     ///< batches this much slower than the baseline...
constexpr double kLatencySlackS = 0.05;    ///< ...and slower by at least this much...
constexpr int kCongestedIntervals = 2;     ///< ...in this many intervals in a row: congestion
constexpr size_t kLatencyMinBatches = 3;   ///< fewer batches in an interval say nothing
constexpr double kLagDecrease = 0.5;       ///< replicas behind: halve
constexpr double kLatencyDecrease = 0.67;  ///< the primary struggling: a third less
constexpr double kIncrease = 0.1;          ///< of the fastest drain seen, per calm interval
constexpr double kLiftAbove = 1.5;         ///< this far past the fastest drain: no limit at all
constexpr size_t kHistoryPerPartition = 4096;
}  // namespace

const char* DrainGovernor::limit_name(Limit limit) {
  static constexpr EnumNames<Limit, Limit::kSpoolPressure, 5> kNames{
      {"none", "max_rate", "commit_latency", "replica_lag", "spool_pressure"}};
  return kNames(limit);
}

DrainGovernor::DrainGovernor(DrainPolicy policy, const Clock& clock)
    : policy_(policy), clock_(clock) {
  if (policy_.max_rate > 0) {
    rate_ = std::max(policy_.max_rate, 1.0);
    limit_ = Limit::kMaxRate;
  }
  refilled_ = controlled_ = clock_.now();
}

size_t DrainGovernor::allowance() {
  control();
  if (rate_ <= 0 || pressure_) return std::numeric_limits<size_t>::max();
  const auto now = clock_.now();
  const double elapsed = std::chrono::duration<double>(now - refilled_).count();
  refilled_ = now;
  // At most one second's worth saved up: a drain that was idle does not burst.
  tokens_ = std::min(tokens_ + elapsed * rate_, std::max(rate_, chunk()));
  return tokens_ < chunk() ? 0 : static_cast<size_t>(tokens_);
}

bool DrainGovernor::spool_pressure(bool on) {
  if (on == pressure_) return false;
  pressure_ = on;
  const double percent = kPressure * 100;
  if (on) {
    logger("ingest")->warn(
        "the spool is past {:.0f} % of spool.max_bytes: the drain is not limited until it is "
        "back under",
        percent);
  } else {
    logger("ingest")->info(
        "the spool is back under {:.0f} % of spool.max_bytes: the drain follows the database "
        "again",
        percent);
  }
  return true;
}

void DrainGovernor::spent(size_t events) {
  if (rate_ > 0) tokens_ -= static_cast<double>(events);
}

std::optional<Clock::time_point> DrainGovernor::next_allowance() const {
  if (rate_ <= 0 || pressure_ || tokens_ >= chunk()) return std::nullopt;
  const double wait_s = (chunk() - tokens_) / rate_;
  return refilled_ + std::chrono::duration_cast<Clock::time_point::duration>(
                         std::chrono::duration<double>(wait_s));
}

void DrainGovernor::committed(size_t events, double seconds) {
  interval_events_ += events;
  ++interval_batches_;
  interval_seconds_ += seconds;
}

bool DrainGovernor::replicas_due() {
  const auto now = clock_.now();
  if (now - replicas_read_ < kInterval) return false;
  replicas_read_ = now;
  return true;
}

void DrainGovernor::replica_lag(std::optional<double> seconds) { replica_lag_ = seconds; }

void DrainGovernor::decrease(double factor, Limit why) {
  // From the limit in force, or — when there was none — from what the drain really did.
  const double from = rate_ > 0 ? rate_ : std::max(drained_rate_, kMinRate);
  rate_ = std::max(kMinRate, from * factor);
  if (policy_.max_rate > 0) rate_ = std::min(rate_, policy_.max_rate);
  tokens_ = std::min(tokens_, rate_);
  limit_ = why;
}

void DrainGovernor::control() {
  const auto now = clock_.now();
  const double dt = std::chrono::duration<double>(now - controlled_).count();
  if (now - controlled_ < kInterval) return;
  controlled_ = now;
  const double rate_now = static_cast<double>(interval_events_) / dt;
  drained_rate_ =
      interval_events_ == 0 ? drained_rate_ * 0.5 : 0.5 * drained_rate_ + 0.5 * rate_now;
  const double latency = interval_batches_ > 0 ? interval_seconds_ / interval_batches_ : 0;
  const size_t batches = interval_batches_;
  interval_events_ = interval_batches_ = 0;
  interval_seconds_ = 0;

  if (policy_.max_replica_lag_s > 0 && replica_lag_ && *replica_lag_ > policy_.max_replica_lag_s) {
    // The lag answers late (commits take a while to be applied and read back): while it falls,
    // the last cut is working — hold; cut again once it stops falling.
    const bool falling = previous_lag_ && *replica_lag_ < *previous_lag_ - 0.5;
    previous_lag_ = replica_lag_;
    if (!falling) decrease(kLagDecrease, Limit::kReplicaLag);
    return;
  }
  previous_lag_.reset();
  const bool slow =
      batches >= kLatencyMinBatches && baseline_latency_ > 0 &&
      latency > std::max(baseline_latency_ * kLatencyFactor, baseline_latency_ + kLatencySlackS);
  congested_ = slow ? congested_ + 1 : 0;
  if (congested_ >= kCongestedIntervals) {
    decrease(kLatencyDecrease, Limit::kCommitLatency);
    return;
  }
  if (slow) return;  // once is noise: neither taught nor rewarded
  // A calm interval: it teaches what normal latency is, and the rate may rise.
  if (batches >= kLatencyMinBatches) {
    baseline_latency_ = baseline_latency_ == 0 ? latency : 0.8 * baseline_latency_ + 0.2 * latency;
  }
  // The fastest drain seen, unlimited or at the cap: the scale of the recovery's steps.
  if (rate_ <= 0 || limit_ == Limit::kNone || limit_ == Limit::kMaxRate) {
    peak_rate_ = std::max(peak_rate_, rate_now);
  }
  if (rate_ <= 0) return;
  rate_ += std::max(kMinRate, kIncrease * std::max(peak_rate_, policy_.max_rate));
  if (policy_.max_rate > 0 && rate_ >= policy_.max_rate) {
    rate_ = policy_.max_rate;
    limit_ = Limit::kMaxRate;
  } else if (policy_.max_rate <= 0 && rate_ > kLiftAbove * std::max(peak_rate_, kMinRate)) {
    rate_ = 0;
    tokens_ = 0;
    limit_ = Limit::kNone;
  }
}

// --- CommitHistory -----------------------------------------------------------------------------

void CommitHistory::committed(const Key& key, int64_t end, int64_t at_ms) {
  auto& commits = commits_[key];
  // MariaDB's position went back (a restore, a failover to a server that lags): start over.
  if (!commits.empty() && end <= commits.back().first) commits.clear();
  commits.emplace_back(end, at_ms);
  if (commits.size() > kHistoryPerPartition) commits.pop_front();
}

std::optional<double> CommitHistory::lag(const std::vector<ReplicaPositions>& replicas) const {
  std::optional<double> worst;
  for (const auto& r : replicas) {
    if (!r.ok) continue;
    double lag = 0;
    for (const auto& [key, commits] : commits_) {
      const auto it = r.next_offset.find(key);
      const int64_t applied = it == r.next_offset.end() ? -1 : it->second;
      // The oldest commit the replica has not applied yet.
      const auto pending = std::upper_bound(
          commits.begin(), commits.end(), applied,
          [](int64_t offset, const std::pair<int64_t, int64_t>& c) { return offset < c.first; });
      if (pending == commits.end()) continue;
      lag = std::max(lag, static_cast<double>(r.read_at_ms - pending->second) / 1000.0);
    }
    worst = std::max(worst.value_or(0), lag);
  }
  return worst;
}

void CommitHistory::trim(int64_t before_ms) {
  for (auto it = commits_.begin(); it != commits_.end();) {
    auto& commits = it->second;
    // The newest commit stays: it says where the partition stands.
    while (commits.size() > 1 && commits.front().second < before_ms) commits.pop_front();
    ++it;
  }
}

}  // namespace sluice::ingest
