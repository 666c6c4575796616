#pragma once
/// `sluice fleet status|forget`: the fleet's control topic read directly (no instance needs to
/// run): every instance's record and the target state; and forgetting an instance whose host is
/// lost for good, so that what its spool held no longer counts — printed first, done only with
/// --confirm.

#include <string>

namespace sluice::cli {

struct FleetOptions {
  std::string action;  ///< status | forget
  std::string config_path;
  std::string instance;  ///< forget: the instance id
  bool confirm = false;
  bool json = false;
};

/// Exit codes: 0 done, 1 failed (Kafka unreachable, ...), 2 bad config, 4 refused.
int fleet_command(const FleetOptions& o);

}  // namespace sluice::cli
