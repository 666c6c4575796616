#pragma once
/// `sluice spool inspect|export|discard`: the spool of a stopped service (--path DIR, or the
/// spool.path of --config FILE), or for `inspect` a running one through the admin API.
/// `discard` first prints exactly what it would delete and deletes nothing without --confirm;
/// nothing else in Sluice deletes spooled events that MariaDB does not have. `discard
/// --corrupt` removes only blocks that do not decode, each copied aside first; the service
/// then reads their offsets again from Kafka.

#include <cstdint>
#include <string>

#include "cli/admin_call.h"

namespace sluice::cli {

struct SpoolOptions {
  std::string action;  ///< inspect | export | discard
  std::string path;    ///< the spool directory (offline)
  std::string config_path;
  AdminOptions admin;  ///< inspect of a running service when neither path nor config is given
  std::string topic;   ///< export/discard: only this topic
  int32_t partition = -1;
  bool all = false;      ///< discard: every partition
  bool corrupt = false;  ///< discard: only blocks that do not decode (copied aside first)
  bool confirm = false;
  std::string output = "-";  ///< export: file, or - for stdout
};

/// Returns the exit code: 0 done (or nothing to do), 1 the spool cannot be used, 2 usage.
int spool_command(const SpoolOptions& options);

}  // namespace sluice::cli
