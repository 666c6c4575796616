#pragma once
/// What one instance knows of its fleet — every instance of a consumer group — from the records
/// of the fleet's control topic (fleet.topic, compacted, one partition), the way Kafka
/// Connect's distributed workers share their target state and their status:
///
///   key "target"             the fleet's target state: paused (with a reason) or running (with
///                            the MariaDB endpoint the fleet writes to), and the id of the
///                            request that set it. Set by `sluice pause`/`resume` through any
///                            instance.
///   key "instance/<id>"      one instance's own record, republished on every change and as a
///                            heartbeat: its state, whether it is quiet (no transaction, no
///                            MariaDB connection), the target it has applied, its lease, its
///                            MariaDB endpoint, its partitions, what its spool holds.
///
/// No clock of another host is ever compared with ours. Time in the fleet is measured two ways
/// only: by the topic's order, and by this host's monotonic clock at the moments it reads
/// records it wrote itself. When one of our own records is read back at time t, every record
/// before it in the topic was certainly in the topic by t — so "the latest record of instance j
/// was in the topic by t" (its `bound`) is known without j's clock.
///
/// Leases (DESIGN.md invariant 5). An instance writes to MariaDB only while it has read one of
/// its own records back within its lease (`lease_ms`, in its record): past that it closes its
/// gate by itself, and within `kFenceGrace` more every session is closed. Records are read in
/// order, so an instance that has not read a pause target can only have renewed its lease with
/// a record from before the target; hence once `bound + lease + kFenceGrace` has passed here
/// for the latest record it wrote before the target, it is quiet — whether or not it can say
/// so. That is how a pause counts a silent instance (`pending`).
///
/// A null value (a tombstone), or a "forgotten" record, removes an instance (`forget`). Pure:
/// no I/O, no threads; the Fleet feeds it records (already authenticated) and its clock.
/// Thread safety: none; the Fleet guards it.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace sluice::fleet {

/// How long after its lease has run out an instance may still hold a MariaDB session: the
/// writers' transactions are refused their COMMIT the moment the lease ends, and the sessions
/// are closed (a statement still running is cancelled) within this.
inline constexpr std::chrono::milliseconds kFenceGrace{5000};

/// The fleet's target state.
struct Target {
  bool paused = false;
  std::string reason;
  int64_t since_ms = 0;  ///< wall time of the request, for people only
  std::string by;        ///< the instance that took the request
  std::string id;        ///< of the request: instances acknowledge it
  /// Counts the targets set so far; a record that does not count up is an old one replayed.
  uint64_t epoch = 0;
  /// A running target: the MariaDB endpoint every instance must write to ("" any), as the
  /// resuming instance names it, and that server's @@server_uid as it last saw it ("" unknown).
  std::string mariadb;
  std::string server;
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
  /// starting | running | draining | paused | outage | fleet_unreachable | stopping | stopped
  std::string state;
  /// No open transaction and no connection to MariaDB (the gate is closed).
  bool quiet = false;
  /// The id of the last target the instance has applied ("" none yet).
  std::string applied;
  std::string admin;  ///< its admin endpoint, host:port
  std::string version;
  /// This run of the instance (random at start): two processes publishing under one id are
  /// two instances configured with the same kafka.instance_id.
  std::string incarnation;
  int64_t started_ms = 0;  ///< wall time, for people only
  int64_t wall_ms = 0;     ///< when it wrote this record, by its own clock: for people only
  /// Counts this incarnation's records: read back, the record renews its lease; a record of
  /// the same incarnation that does not count up is an old one replayed.
  uint64_t seq = 0;
  /// It writes only while it has read one of its own records within this (0: an instance of a
  /// version that keeps no lease).
  int64_t lease_ms = 0;
  /// The MariaDB endpoint it writes to (as configured), and the server's identity as last
  /// seen there ("" unknown).
  std::string mariadb;
  std::string server;
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
/// The value `forget` writes under an instance's key when records are signed (a tombstone
/// cannot carry a signature): it removes the instance like a tombstone.
std::string forgotten_value(const std::string& id);

/// Whether two instances write to the same server: by the server's own identity
/// (@@server_uid) when both know it — endpoints may be named differently on different hosts —
/// else by the endpoint as configured.
bool same_server(const std::string& endpoint_a, const std::string& server_a,
                 const std::string& endpoint_b, const std::string& server_b);

/// The key of an instance's record.
std::string instance_key(const std::string& id);
inline constexpr std::string_view kTargetKey = "target";
inline constexpr std::string_view kInstancePrefix = "instance/";
/// Written by `sluice fleet` commands to read back: a clock of their own in the topic.
inline constexpr std::string_view kProbeKey = "probe";

/// Bounds on what the topic can make a view hold: whoever can write to it may write anything.
struct ViewLimits {
  size_t max_record_bytes = 1 << 20;
  size_t max_instances = 1024;
  size_t max_spooled_ranges = 100'000;  ///< per record
};

class FleetView {
 public:
  using SteadyTime = Clock::time_point;
  using Duration = std::chrono::milliseconds;

  /// `self`: this instance's id. `instance_timeout`: an instance silent this long — or a record
  /// of a version without leases silent this long — counts as gone (status, resume, forget).
  FleetView(std::string self, Duration instance_timeout, ViewLimits limits = {});

  /// Applies one record, read at `now` (this host's clock). `own`: this process wrote it — it
  /// marks the time by which every record before it was in the topic. Records that do not
  /// parse, exceed the limits or replay an older one are ignored (and counted).
  void apply(const std::string& key, const std::optional<std::string>& value, int64_t offset,
             bool own, SteadyTime now);

  const std::optional<Target>& target() const { return target_; }
  /// Where the current target is in the topic (-1 none).
  int64_t target_offset() const { return target_offset_; }
  const std::map<std::string, InstanceRecord>& instances() const { return records_; }

  /// How long, by this host's clock, since the instance's latest record was certainly in the
  /// topic (zero while no record of ours has followed it yet: it is the newest we know of).
  /// nullopt for an unknown instance.
  std::optional<Duration> silent_for(const std::string& id, SteadyTime now) const;
  /// Whether the instance may still be running: its lease (plus the grace) or, for a version
  /// without leases, the instance timeout has not run out since its latest record. A record
  /// saying "stopped" is not live (for status and a resume; a pause trusts no such word).
  bool live(const std::string& id, SteadyTime now) const;
  /// Whether `forget` may remove the instance: it recorded a clean stop and has been silent
  /// past its lease, or it has been silent for the instance timeout — far longer than any
  /// lease — so it is not merely partitioned for a moment.
  Status forgettable(const std::string& id, SteadyTime now) const;

  /// The instances that may still hold up target `target_id` (the current target). For a
  /// pause: every instance that had a record before the target and has neither applied it and
  /// said it is quiet, nor been silent since before the target for its whole lease and grace.
  /// For a resume: every live instance that has not applied it. Empty: done fleet-wide.
  std::vector<std::string> pending(const std::string& target_id, bool pause,
                                   SteadyTime now) const;
  /// Of these pending instances, those held up only because they could not be heard (for the
  /// message of a pause that times out).
  bool heard_since_target(const std::string& id) const;

  /// The lowest offset of [from, to) of the partition that an instance other than this one —
  /// live or not: a spool outlives its process — says its spool holds; nullopt when none.
  /// Below it nothing of [from, to) is claimed.
  std::optional<int64_t> first_claimed(const std::string& topic, int32_t partition, int64_t from,
                                       int64_t to) const;

  /// Live instances that write to another MariaDB server than (`endpoint`, `server`), each
  /// with what it writes to (see same_server).
  std::vector<std::pair<std::string, std::string>> other_servers(const std::string& endpoint,
                                                                 const std::string& server,
                                                                 SteadyTime now) const;

  uint64_t unreadable() const { return unreadable_; }
  uint64_t replayed() const { return replayed_; }
  uint64_t over_limits() const { return over_limits_; }

 private:
  /// What this view knows of one instance beyond its record: where and when.
  struct Seen {
    int64_t offset = -1;  ///< of its latest record
    /// The time (here) by which its latest record was certainly in the topic: when a record of
    /// ours following it was read. Unset while none has.
    std::optional<SteadyTime> bound;
    // At the current target:
    bool before_target = false;  ///< it had a record before the target
    std::optional<SteadyTime> bound_before_target;
    int64_t lease_before_target = 0;
    bool heard_since_target = false;
  };
  void apply_target(const std::string& value, int64_t offset);
  void apply_instance(const std::string& id, const std::optional<std::string>& value,
                      int64_t offset);
  void remove(const std::string& id);
  /// A record of ours was read at `now`: everything before it was in the topic by then.
  void mark_own(SteadyTime now);
  /// The instance's latest record says its lease (plus the grace) has run out by now.
  bool lease_over(const InstanceRecord& r, const Seen& s, SteadyTime now) const;

  std::string self_;
  Duration instance_timeout_;
  ViewLimits limits_;
  std::optional<Target> target_;
  int64_t target_offset_ = -1;
  std::set<std::string> target_ids_;  ///< target ids read (the latest few thousand): replays
  std::deque<std::string> target_order_;  ///< the same, oldest first
  std::map<std::string, InstanceRecord> records_;
  std::map<std::string, Seen> seen_;
  uint64_t unreadable_ = 0;
  uint64_t replayed_ = 0;
  uint64_t over_limits_ = 0;
};

}  // namespace sluice::fleet
