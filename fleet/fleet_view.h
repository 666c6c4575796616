#pragma once
/// What one instance knows of its fleet — every instance of a consumer group — from the records
/// of the fleet's control topic (fleet.topic, compacted, one partition), the way Kafka
/// Connect's distributed workers share their target state and their status:
///
///   key "target"             the fleet's target state: paused (with a reason) or running, and
///                            the id of the request that set it. Set by `sluice pause`/`resume`
///                            through any instance.
///   key "instance/<id>"      one instance's own record, republished on every change and as a
///                            heartbeat: its state, whether it is quiet (no transaction, no
///                            MariaDB connection), the target it has applied, its partitions,
///                            what its spool holds per partition.
///
/// A null value (a tombstone) removes a record (`forget`). Pure: no I/O, no threads; the Fleet
/// feeds it records and the clocks.
/// Thread safety: none; the Fleet guards it.

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice::fleet {

/// The fleet's target state.
struct Target {
  bool paused = false;
  std::string reason;
  int64_t since_ms = 0;
  std::string by;  ///< the instance that took the request
  std::string id;  ///< of the request: instances acknowledge it
};

/// What an instance spools of one partition.
struct SpooledRange {
  std::string topic;
  int32_t partition = 0;
  int64_t first = -1, last = -1;
  uint64_t events = 0;
};

struct InstanceRecord {
  std::string id;
  /// starting | running | draining | paused | outage | stopping | stopped
  std::string state;
  /// No open transaction and no connection to MariaDB (the gate is closed).
  bool quiet = false;
  /// The id of the last target the instance has applied ("" none yet).
  std::string applied;
  std::string admin;  ///< its admin endpoint, host:port
  std::string version;
  /// This run of the instance (random at start) and when it started: two processes publishing
  /// under one id are two instances configured with the same kafka.instance_id.
  std::string incarnation;
  int64_t started_ms = 0;
  int64_t wall_ms = 0;  ///< when it wrote this record, by its own clock
  std::vector<std::pair<std::string, int32_t>> partitions;
  std::vector<SpooledRange> spooled;
  uint64_t spool_events = 0;
};

std::string encode(const Target& t);
std::string encode(const InstanceRecord& r);
/// What a record says its spool holds, as status shows it: per partition `topic`,
/// `partition`, `first_offset`, `last_offset`, `events`.
nlohmann::json spooled_json(const InstanceRecord& r);
Result<Target> decode_target(std::string_view json);
Result<InstanceRecord> decode_instance(std::string_view json);

/// The key of an instance's record.
std::string instance_key(const std::string& id);
inline constexpr std::string_view kTargetKey = "target";

class FleetView {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  /// `timeout`: an instance is live while its last record is younger than this — both by the
  /// clock of this host (when it was read) and by the writer's own wall clock (so records of
  /// instances long gone, read at start-up, are not mistaken for live ones; clocks are assumed
  /// within `skew` of each other).
  explicit FleetView(std::chrono::milliseconds timeout,
                     std::chrono::milliseconds skew = std::chrono::seconds(30));

  /// Applies one record of the control topic (value nullopt: a tombstone). Records that do
  /// not parse are ignored (and counted).
  void apply(std::string_view key, const std::optional<std::string>& value, SteadyTime now);

  const std::optional<Target>& target() const { return target_; }
  const std::map<std::string, InstanceRecord>& instances() const { return instances_; }
  bool live(const std::string& id, SteadyTime now, int64_t now_wall_ms) const;
  /// Seconds since the instance's record was read here, or -1 when unknown.
  double age_s(const std::string& id, SteadyTime now) const;

  /// Live instances that have not yet applied target `target_id` (and, for a pause, are not
  /// quiet). Empty: the request is done fleet-wide.
  std::vector<std::string> pending(const std::string& target_id, bool pause, SteadyTime now,
                                   int64_t now_wall_ms) const;
  /// Whether an instance other than `self` — live or not: a spool outlives its process — says
  /// its spool holds offsets of [from, to) of the partition.
  bool claimed_elsewhere(const std::string& self, const std::string& topic, int32_t partition,
                         int64_t from, int64_t to) const;
  uint64_t unreadable() const { return unreadable_; }

 private:
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds skew_;
  std::optional<Target> target_;
  std::map<std::string, InstanceRecord> instances_;
  std::map<std::string, SteadyTime> seen_;
  uint64_t unreadable_ = 0;
};

}  // namespace sluice::fleet
