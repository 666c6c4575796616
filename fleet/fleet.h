#pragma once
/// This instance as a member of its fleet — every Sluice of one consumer group (DESIGN.md
/// invariants 5 and 9). It shares one target state (paused or running) with the others through
/// the fleet's control topic (see fleet_view.h), applies it to the local pipeline, keeps this
/// instance's write lease, and says how it stands: its record is republished on every change and
/// as a heartbeat.
///
///   - The lease: each time the instance reads one of its own records back it knows it has read
///     everything before it — a pause included — and renews its `WriteLease` until the moment
///     that record was sent plus `lease`. An instance that cannot read the topic stops writing
///     when the lease runs out, by itself (the writers check it; the pipeline closes its gate).
///     A start is released only once the instance has read its own first record back, so a
///     pause can never answer before a starting instance is counted.
///   - One pause for all: `pause` writes the target "paused" and answers once every instance is
///     quiet — having said so, or having been silent since before the target for its whole
///     lease and the grace (by this host's clock, never another's). `resume` likewise, refused
///     while live instances write to different MariaDB endpoints; a running target names the
///     endpoint, and an instance configured for another does not apply it.
///   - When the topic cannot be written, `pause_locally` pauses this instance at once; the
///     fleet adopts that pause (writes a paused target) as soon as the topic takes writes again.
///   - What spools hold: each record lists what its instance's spool holds per partition, so an
///     offset range that expired from Kafka is not declared lost while a spool — of a live
///     instance or not — may still hold it (`first_claimed`). A host lost for good with its
///     spool is `forget`-ten by an operator (its record removed), never one merely silent for a
///     moment.
///   - Records may be signed with a shared key (fleet.key_file, record_signer.h); a record that
///     is not, or not rightly, is ignored, counted and logged at a bounded rate.
///
/// Time: only the injected clock, and only this host's; two hosts' clocks are never compared.
/// Thread safety: `step` from one thread at a time — the fleet's own thread after `start()`, or
/// a test driving it; `pause`, `resume`, `pause_locally`, `forget`, `first_claimed`,
/// `set_endpoint` and the status calls from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/write_lease.h"
#include "fleet/control_channel.h"
#include "fleet/fleet_view.h"
#include "fleet/record_signer.h"
#include "ingest/fleet_claims.h"

namespace sluice::fleet {

struct FleetOptions {
  std::string instance_id;
  std::chrono::milliseconds heartbeat{3000};
  /// This instance writes to MariaDB only while it has read one of its own records back within
  /// this; shorter than the instance timeout, at least twice the heartbeat.
  std::chrono::milliseconds lease{10000};
  /// An instance silent this long is gone: not waited for by a resume, and may be forgotten.
  std::chrono::milliseconds instance_timeout{30000};
  std::string version;
  /// The MariaDB endpoint this instance writes to, as describe_endpoint() names it.
  std::string mariadb;
  ViewLimits limits{};
};

/// What the fleet needs of the instance it runs in: the pipeline, adapted by `sluice run`
/// (main/pipeline_instance.h); tests fake it. Called on the fleet's thread (or whoever steps it).
class LocalInstance {
 public:
  virtual ~LocalInstance() = default;
  /// The instance's own record as it stands now (id, applied, lease, seq and wall time are
  /// filled in by the fleet).
  virtual InstanceRecord describe() = 0;
  /// `local`: a pause of this instance alone (pause_locally), which the fleet adopts later.
  virtual std::future<Status> pause(const std::string& reason, bool local) = 0;
  /// `server`: the @@server_uid the fleet writes to ("" unknown): the pipeline writes nothing
  /// to another (Pipeline::request_resume).
  virtual std::future<Status> resume(const std::string& server) = 0;
  /// Lets go of a start held until the fleet's target was known, when the fleet has none (a
  /// pause of the instance's own, recorded before, stays).
  virtual std::future<Status> release() = 0;
  /// The admin endpoint ("host:port") once it listens; "" before, or without one.
  virtual std::string admin() { return {}; }
  /// A pause of this instance's own that the fleet should adopt (recorded while the topic could
  /// not be written, possibly before a restart): its reason, or nullopt.
  virtual std::optional<std::string> local_pause() { return std::nullopt; }
};

class Fleet final : public ingest::FleetClaims {
 public:
  /// `lease` is renewed by this fleet; the pipeline's writers check it. The instance is
  /// attached before the fleet is started or stepped (the pipeline asks the fleet about claims
  /// as it is built, so it comes second).
  Fleet(FleetOptions options, std::unique_ptr<ControlChannel> channel, WriteLease& lease,
        RecordSigner signer = RecordSigner(), const Clock& clock = SystemClock::instance());
  ~Fleet() override;
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  /// The instance this fleet speaks for; once, before start() or the first step().
  void attach(LocalInstance& local);
  /// Starts the fleet's thread, which runs `step` until `stop`.
  void start();
  /// Stops it, after publishing a last record (state "stopped", and what the spool still
  /// holds). The lease is revoked.
  void stop();
  /// One round: reads what is new in the topic (waiting at most `poll`), renews the lease,
  /// follows the target, heartbeats.
  void step(std::chrono::milliseconds poll);

  /// A pause or resume of the whole fleet, once written to the topic.
  struct Request {
    std::string id;
    bool pause = false;
    Clock::time_point deadline;
    std::chrono::milliseconds timeout;
  };
  /// Writes the target; an error before the topic has been read to its end once, when it
  /// cannot be written, or (a resume) when live instances write to different MariaDB endpoints.
  Result<Request> begin(bool pause, const std::string& reason, std::chrono::milliseconds timeout);
  /// nullopt while the request is in progress; ok once done fleet-wide; an error naming what
  /// holds it once the deadline has passed, or when a later request replaced it.
  std::optional<Status> check(const Request& request) const;
  /// Waits for the topic to be read (a request right after a start), then begin + check until
  /// done: the waiting form used by the admin endpoint.
  Status pause(const std::string& reason, std::chrono::milliseconds timeout);
  Status resume(std::chrono::milliseconds timeout);
  /// Pauses this instance without the topic (Kafka unreachable): the local pipeline's pause,
  /// adopted by the fleet as a paused target once the topic takes writes.
  Status pause_locally(const std::string& reason, std::chrono::milliseconds timeout);
  /// Removes an instance's record (a host lost for good): its spool no longer counts. Refused
  /// unless FleetView::forgettable.
  Status forget(const std::string& id);
  /// The MariaDB endpoint after a reload (a retarget): a running target naming it applies.
  void set_endpoint(std::string mariadb);

  /// See FleetView::first_claimed.
  std::optional<int64_t> first_claimed(const std::string& topic, int32_t partition, int64_t from,
                                       int64_t to) const override;
  /// True once the topic has been read to its end at least once.
  bool caught_up() const { return caught_up_.load(); }
  bool knows_claims() const override { return caught_up_.load() && lease_.valid(); }
  /// Not ok once another running process publishes under this instance's id and started
  /// before this one (its records came first in the topic): two instances with the same
  /// kafka.instance_id, and this one must go (the group would fence them in turn).
  Status conflict() const;
  /// True while another process that started after this one publishes under this instance's
  /// id (lately: within the instance timeout). The group fences the two in turn until that one
  /// reads the topic and stops; this one, the older, joins again each time.
  bool outlives_a_later_twin() const override;
  /// The fleet as GET /v1/status shows it: the target, the lease, every instance.
  nlohmann::json status_json() const;

 private:
  void read(std::chrono::milliseconds timeout);
  /// Until caught_up() or `deadline`; returns caught_up().
  bool wait_caught_up(Clock::time_point deadline) const;
  /// Applies records read; the caller holds mu_.
  void apply(const ControlRecord& r, Clock::time_point now);
  /// A record under this instance's key, of another incarnation: another process's?
  void check_twin(const InstanceRecord& other, int64_t offset);
  void follow_target();
  void adopt_local_pause();
  void publish_self(bool force);
  /// The record this instance publishes now (seq and wall time not yet set).
  InstanceRecord describe_self();
  std::string pending_text(const std::vector<std::string>& ids, bool pause) const;
  std::optional<Status> check_locked(const Request& request) const;
  /// check() until done, waiting for each change.
  Status wait(const Request& request) const;

  FleetOptions options_;
  std::unique_ptr<ControlChannel> channel_;  ///< step's; publish under publish_mu_
  LocalInstance* local_ = nullptr;  ///< attach()
  WriteLease& lease_;
  RecordSigner signer_;
  const Clock& clock_;
  const std::string incarnation_;
  const int64_t started_ms_;
  const Clock::time_point started_at_;

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  FleetView view_;                          ///< guarded by mu_
  std::string applied_;                     ///< guarded by mu_: the target id applied locally
  std::string following_;                   ///< guarded by mu_: the target id being applied
  std::string endpoint_;                    ///< guarded by mu_: options_.mariadb, then reloads
  std::string mismatch_;                    ///< guarded by mu_: why the target is not applied
  std::set<std::string> own_targets_;       ///< guarded by mu_: targets written here
  std::map<std::string, int64_t> own_target_offsets_;  ///< guarded by mu_: where read back
  std::map<uint64_t, Clock::time_point> sent_;         ///< guarded by mu_: seq → when sent
  std::optional<Clock::time_point> fresh_as_of_;       ///< guarded by mu_
  int64_t first_own_offset_ = -1;                      ///< guarded by mu_
  std::map<std::string, int64_t> twins_;  ///< guarded by mu_: incarnation → first offset seen
  std::string conflict_;                  ///< guarded by mu_
  std::optional<Clock::time_point> later_twin_seen_;  ///< guarded by mu_
  uint64_t rejected_ = 0;                             ///< guarded by mu_: unsigned or forged
  std::vector<std::string> topic_warnings_;           ///< guarded by mu_: ControlChannel's
  RateLimiter rejected_log_{std::chrono::seconds(30)};  ///< guarded by mu_
  bool fenced_logged_ = false;                          ///< step's
  bool ever_valid_ = false;                             ///< step's

  std::optional<std::future<Status>> applying_;  ///< step's
  std::optional<Backoff> apply_backoff_;         ///< step's: after a failed apply
  Clock::time_point next_apply_{};               ///< step's
  Clock::time_point next_adopt_{};               ///< step's
  bool initial_done_ = false;                    ///< step's
  std::string last_published_;                   ///< step's
  Clock::time_point last_heartbeat_{};           ///< step's
  uint64_t seq_ = 0;                             ///< step's
  RateLimiter channel_log_{std::chrono::seconds(30)};  ///< step's
  std::atomic<bool> caught_up_{false};
  std::atomic<bool> stop_{false};
  std::mutex publish_mu_;  ///< one publisher at a time (step, requests, forget)
  std::thread thread_;
};

}  // namespace sluice::fleet
