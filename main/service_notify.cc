#include "main/service_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

#include "common/logging.h"

namespace sluice::cli {

ServiceNotifier::ServiceNotifier(StatusFn status, bool background)
    : status_(std::move(status)), background_(background) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) names this process.
  if (enabled_ && sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
}

ServiceNotifier::~ServiceNotifier() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool ServiceNotifier::send(const std::string& message) {
  const int r = sd_notify(0, message.c_str());
  if (r < 0) {
    // The manager went away or the socket is unusable: say so once per call site's event, never
    // per watchdog ping (a failing ping means the next one fails too; systemd acts on the
    // silence).
    logger("main")->debug("sd_notify failed: {}", std::strerror(-r));
  }
  return r > 0;
}

void ServiceNotifier::ready() {
  if (!enabled_) return;
  last_status_ = status_ ? status_() : "";
  send("READY=1\nSTATUS=" + last_status_);
  logger("main")->info("told systemd the service is ready{}",
                       watchdog_.count() > 0
                           ? fmt::format(" (watchdog every {} ms)", watchdog_.count() / 2000)
                           : "");
  if (background_) thread_ = std::thread([this] { loop(); });
}

void ServiceNotifier::stopping() {
  if (!enabled_) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  send("STOPPING=1\nSTATUS=stopping");
}

std::string ServiceNotifier::tick() {
  if (!enabled_) return "";
  std::string message;
  const uint64_t beats = beats_.load(std::memory_order_relaxed);
  if (watchdog_.count() > 0 && beats != beats_seen_) {
    beats_seen_ = beats;
    message = "WATCHDOG=1";
  }
  if (status_) {
    auto status = status_();
    if (status != last_status_) {
      last_status_ = std::move(status);
      message += (message.empty() ? "" : "\n") + ("STATUS=" + last_status_);
    }
  }
  if (!message.empty()) send(message);
  return message;
}

void ServiceNotifier::loop() {
  // Half the watchdog period, as sd_watchdog_enabled(3) advises; STATUS alone once a second.
  const auto period = watchdog_.count() > 0
                          ? std::chrono::duration_cast<std::chrono::milliseconds>(watchdog_ / 2)
                          : std::chrono::milliseconds(1000);
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, period, [this] { return stop_; });
    if (stop_) break;
    lock.unlock();
    tick();
    lock.lock();
  }
}

}  // namespace sluice::cli
