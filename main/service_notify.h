#pragma once
/// Tells systemd how `sluice run` is doing (sd_notify(3), libsystemd), for a unit with
/// Type=notify. Outside systemd (no NOTIFY_SOCKET) every call does nothing.
///
///   READY=1     once the pipeline has started: consuming, or knowingly paused or in an outage
///               (`systemctl start` returns then, and units ordered after Sluice start)
///   STATUS=...  the pipeline's state, as `systemctl status sluice` shows it, when it changes
///   STOPPING=1  when a graceful shutdown begins
///   WATCHDOG=1  with WatchdogSec= in the unit: every half period, but only while the ingest loop
///               keeps completing rounds (`beat()`). A loop stuck for a whole period stops the
///               pings, and systemd kills and restarts the service (which loses nothing: offsets
///               follow MariaDB and the synced spool).
///
/// Lifecycle: construct before the pipeline starts; `ready()` starts the background thread that
/// sends STATUS and WATCHDOG; `stopping()` (or the destructor) stops it.
/// Thread safety: `beat()` from the ingest thread; the rest from the thread that owns the
/// notifier. `tick()` runs on the background thread (or in a test, with `background` off).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace sluice::cli {

class ServiceNotifier {
 public:
  /// A short description of the service's state for STATUS= (e.g. "running; spool 0 events").
  using StatusFn = std::function<std::string()>;

  /// Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment once. With
  /// `background` off no thread is started and the caller drives `tick()` (tests).
  explicit ServiceNotifier(StatusFn status, bool background = true);
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  /// True when running under a service manager that listens (NOTIFY_SOCKET is set).
  bool enabled() const { return enabled_; }
  /// The WatchdogSec= of the unit (zero when the watchdog is off).
  std::chrono::microseconds watchdog_period() const { return watchdog_; }

  /// READY=1 with the current STATUS=; starts the background thread.
  void ready();
  /// STOPPING=1; stops the background thread (no more watchdog pings while shutting down:
  /// TimeoutStopSec= bounds the shutdown instead).
  void stopping();
  /// The ingest loop completed a round. Cheap: one relaxed atomic increment.
  void beat() { beats_.fetch_add(1, std::memory_order_relaxed); }

  /// One turn of the background thread: WATCHDOG=1 when the watchdog is on and the loop beat
  /// since the previous turn, and STATUS= when the state changed. Returns what it sent (empty
  /// when nothing).
  std::string tick();

 private:
  void loop();
  bool send(const std::string& message);

  StatusFn status_;
  bool background_;
  bool enabled_ = false;
  std::chrono::microseconds watchdog_{0};
  std::atomic<uint64_t> beats_{0};
  uint64_t beats_seen_ = 0;  // tick()'s own: the background thread, or the test
  std::string last_status_;  // tick()'s own

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace sluice::cli
