#pragma once
/// `sluice offsets show|set`: every position of a partition in one place — MariaDB's next
/// offset (sluice_offsets), the consumer group's, what each instance's spool holds (the fleet
/// topic), Kafka's log start and end — and moving them, together, while the fleet is stopped:
/// to a time, an offset, the log's start or end, or by a number of events. `set` prints its
/// plan; `--dry-run` stops there; `--confirm` waits for the group to have no member, moves
/// every partition's sluice_offsets row by compare-and-set and records each move in
/// sluice_dead_letter (reason `offsets_set: ...`: who, when, the range skipped or to be read
/// again) in one transaction, then commits the group's offsets.

#include <cstdint>
#include <string>

namespace sluice::cli {

struct OffsetsOptions {
  std::string action;  ///< show | set
  std::string config_path;
  std::string topic;   ///< show: only this topic; set: required
  int partition = -1;  ///< only this partition
  // set: exactly one of
  std::string to_time;  ///< ISO-8601: the first event at or after it
  int64_t to_offset = -1;
  bool has_to_offset = false;
  bool to_earliest = false;
  bool to_latest = false;
  int64_t shift_by = 0;
  bool has_shift_by = false;
  // and one of
  bool dry_run = false;
  bool confirm = false;
  bool json = false;
};

/// Exit codes: 0 done (or planned), 1 failed (a server), 2 usage or config, 4 refused (an
/// instance runs, a spool holds the range, an offset outside the log).
int offsets_command(const OffsetsOptions& o);

}  // namespace sluice::cli
