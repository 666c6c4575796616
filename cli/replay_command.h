#pragma once
/// `sluice replay`: re-reads a range of a topic from Kafka (or a file of JSON lines) and
/// writes what MariaDB lacks, through the service's own decode → batch → LOAD DATA path
/// (ingest/replay.h), idempotently and outside the consumer group's offsets. It prints what it
/// will do first, refuses a range wider than `replay.confirm_above_events` without
/// `--confirm`, shows progress on stderr (a bar on a terminal, plain lines otherwise) and ends
/// with a summary on stdout (`--json` for scripts).

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::cli {

struct ReplayOptions {
  std::string config_path;
  std::string topic;
  std::vector<int32_t> partitions;  ///< empty: every partition of the topic
  std::string from_time, to_time;   ///< ISO-8601; empty when not given
  bool has_from_offset = false, has_to_offset = false;
  int64_t from_offset = 0, to_offset = 0;
  std::vector<std::string> schemas;  ///< only these schemas; empty: all
  std::string from_file;             ///< a JSON-lines file instead of Kafka
  std::string target_database;       ///< instead of mariadb.database
  bool dry_run = false;
  bool json = false;
  bool confirm = false;
  /// Events read per second at most; -1: the config's drain.max_rate (0 there: no cap).
  int64_t max_rate = -1;
  /// Go ahead while the fleet is paused (a replay into another database, or on purpose).
  bool during_pause = false;
};

/// Exit codes of `sluice replay` (docs/reference.md).
enum ReplayExit : int {
  kReplayComplete = 0,      ///< every event of the range is in MariaDB (written or present)
  kReplayFailed = 1,        ///< Kafka, MariaDB or the file failed; the summary says how far
  kReplayUsage = 2,         ///< bad arguments or configuration; nothing done
  kReplayRefused = 5,       ///< wider than replay.confirm_above_events without --confirm
  kReplayExpired = 6,       ///< complete, but offsets of the range had expired from Kafka
  kReplayDeadLettered = 7,  ///< complete, and events were dead-lettered (or would be)
  kReplayInterrupted = 8,   ///< stopped by SIGINT/SIGTERM; the summary says how far
};

int replay_command(const ReplayOptions& options);

}  // namespace sluice::cli
