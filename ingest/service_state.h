#pragma once
/// What the service is doing, one word for status, metrics (`sluice_state`) and the log.

#include <array>
#include <ostream>
#include <string_view>

namespace sluice::ingest {

enum class ServiceState {
  kStarting,          ///< until the fleet's target is known
  kRunning,           ///< writing from Kafka
  kPaused,            ///< by the operator: spooling, no session to MariaDB
  kDraining,          ///< writing what the spool holds (or a range read again) before live events
  kOutage,            ///< MariaDB down or read-only: spooling and probing
  kFleetUnreachable,  ///< the write lease ran out: nothing is written
  kStopping,
};

inline constexpr std::array<ServiceState, 7> kServiceStates = {
    ServiceState::kStarting, ServiceState::kRunning,          ServiceState::kPaused,
    ServiceState::kDraining, ServiceState::kOutage, ServiceState::kFleetUnreachable,
    ServiceState::kStopping};

constexpr std::string_view to_string(ServiceState s) {
  switch (s) {
    case ServiceState::kStarting:
      return "starting";
    case ServiceState::kRunning:
      return "running";
    case ServiceState::kPaused:
      return "paused";
    case ServiceState::kDraining:
      return "draining";
    case ServiceState::kOutage:
      return "outage";
    case ServiceState::kFleetUnreachable:
      return "fleet_unreachable";
    case ServiceState::kStopping:
      return "stopping";
  }
  return "unknown";
}

inline std::ostream& operator<<(std::ostream& out, ServiceState s) { return out << to_string(s); }

}  // namespace sluice::ingest
