#pragma once
/// This instance as a member of its fleet — every Sluice of one consumer group (DESIGN.md
/// invariants 5 and 9). It shares one target state (paused or running) with the others through
/// the fleet's control topic (see fleet_view.h), applies it to the local pipeline, and says how
/// it stands: its record is republished on every change and as a heartbeat.
///
///   - One pause for all: `pause` (POST /v1/pause on any instance, `sluice pause`) writes the
///     target "paused" and answers once every live instance has applied it and is quiet — no
///     transaction, no MariaDB connection. `resume` likewise. The target is in the topic, so it
///     survives a restart of any instance, and an instance that joins a paused fleet starts
///     paused: until it has read the topic it stays quiet (the pipeline starts held).
///   - What spools hold: each record lists what its instance's spool holds per partition, so an
///     offset range that expired from Kafka is not declared lost while a spool — of a live
///     instance or not — may still hold it (`claimed_elsewhere`). A host lost for good with
///     its spool is `forget`-ten by an operator (its record removed).
///
/// Thread safety: its own thread reads the topic, applies the target and heartbeats; `pause`,
/// `resume`, `forget`, `claimed_elsewhere` and `status_json` may be called from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/status.h"
#include "fleet/control_channel.h"
#include "fleet/fleet_view.h"

namespace sluice::fleet {

struct FleetOptions {
  std::string instance_id;
  std::chrono::milliseconds heartbeat{3000};
  /// An instance silent for longer is no longer waited for by a pause or a resume.
  std::chrono::milliseconds instance_timeout{15000};
  std::string version;
};

/// What the fleet needs of the local pipeline.
struct LocalInstance {
  /// The instance's own record as it stands now (id, applied and wall time are filled in).
  std::function<InstanceRecord()> describe;
  std::function<std::future<Status>(const std::string& reason)> pause;
  std::function<std::future<Status>()> resume;
  /// Lets go of a start held until the fleet's target was known, when the fleet has none (a
  /// pause of the instance's own, recorded before, stays).
  std::function<std::future<Status>()> release;
  /// The admin endpoint ("host:port"), once it listens.
  std::function<std::string()> admin{};
};

class Fleet {
 public:
  Fleet(FleetOptions options, std::unique_ptr<ControlChannel> channel, LocalInstance local,
        const Clock& clock = SystemClock::instance());
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  /// Starts the fleet's thread.
  void start();
  /// Stops it, after publishing a last record (state "stopped", and what the spool still holds).
  void stop();

  /// Pauses the fleet: the future-free, waiting form used by the admin endpoint. Ok once every
  /// live instance applied the pause and is quiet; an error naming those that are not, after
  /// `timeout`.
  Status pause(const std::string& reason, std::chrono::milliseconds timeout);
  Status resume(std::chrono::milliseconds timeout);
  /// Removes an instance's record (a host lost for good): its spool no longer counts.
  Status forget(const std::string& id);

  bool claimed_elsewhere(const std::string& topic, int32_t partition, int64_t from,
                         int64_t to) const;
  /// True once the topic has been read to its end at least once.
  bool caught_up() const { return caught_up_.load(); }
  /// Not ok once another running process publishes under this instance's id and started
  /// before this one: two instances with the same kafka.instance_id, and this one must go (the
  /// group would fence them in turn). The older one goes on.
  Status conflict() const;
  /// True while another process that started after this one publishes under this instance's
  /// id (lately: within the instance timeout). The group fences the two in turn until that one
  /// reads the topic and stops; this one, the older, joins again each time.
  bool outlives_a_later_twin() const;
  /// The fleet as GET /v1/status shows it: the target and every instance.
  nlohmann::json status_json() const;

 private:
  void loop();
  /// Reads what is new in the topic; returns false on a channel error.
  void read(std::chrono::milliseconds timeout);
  void follow_target();
  void publish_self(bool force);
  /// A record under this instance's key, read after catching up: another process's?
  void check_own_key(const std::optional<std::string>& value);
  Status request(bool paused, const std::string& reason, std::chrono::milliseconds timeout);

  FleetOptions options_;
  std::unique_ptr<ControlChannel> channel_;  ///< the fleet thread's, after start()
  LocalInstance local_;
  const Clock& clock_;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  FleetView view_;                               ///< guarded by mu_
  std::string applied_;                          ///< guarded by mu_: the target id applied locally
  std::string following_;                        ///< guarded by mu_: the target id being applied
  std::optional<std::future<Status>> applying_;  ///< fleet thread only
  bool initial_done_ = false;                    ///< fleet thread only
  std::string last_published_;                   ///< fleet thread only
  Clock::time_point last_heartbeat_{};           ///< fleet thread only
  std::atomic<bool> caught_up_{false};
  const std::string incarnation_;
  const int64_t started_ms_;
  std::string conflict_;                              ///< guarded by mu_
  std::optional<Clock::time_point> later_twin_seen_;  ///< guarded by mu_
  std::atomic<bool> stop_{false};
  std::mutex publish_mu_;  ///< one publisher at a time (the thread, pause/resume/forget)
  std::thread thread_;
};

}  // namespace sluice::fleet
