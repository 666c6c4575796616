#pragma once
/// What the service is doing, one word for status, metrics (`sluice_state`) and the log.

#include <array>
#include <ostream>
#include <string_view>

#include "common/enum_names.h"

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

inline constexpr EnumNames<ServiceState, ServiceState::kStopping, 7> kServiceStateNames{
    {"starting", "running", "paused", "draining", "outage", "fleet_unreachable", "stopping"}};
constexpr std::string_view to_string(ServiceState s) { return kServiceStateNames(s, "unknown"); }

inline std::ostream& operator<<(std::ostream& out, ServiceState s) { return out << to_string(s); }

}  // namespace sluice::ingest
