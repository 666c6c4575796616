#pragma once
/// The seam between the Fleet and the fleet's control topic: write a record and know it is in
/// the topic; read every record, from the beginning, in the topic's order, as they come. The
/// real adapter is KafkaControlChannel (a compacted topic of one partition); unit tests share
/// an in-memory log between several fleets (testing/fakes.h).
/// Thread safety: `poll`, `send` and `caught_up` from one thread (the Fleet's); `publish` from
/// any thread, one call at a time.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice::fleet {

struct ControlRecord {
  std::string key;
  std::optional<std::string> value;  ///< nullopt: a tombstone
  /// Its position in the topic. Records are read in this order, which is the only order the
  /// fleet trusts: no two hosts' clocks are ever compared.
  int64_t offset = -1;
};

class ControlChannel {
 public:
  virtual ~ControlChannel() = default;
  /// Writes a record (nullopt: a tombstone) and waits until the broker has it.
  virtual Status publish(const std::string& key, const std::optional<std::string>& value) = 0;
  /// Writes a record without waiting (a heartbeat): whether it arrived is learnt by reading it
  /// back. An error here means it was not even queued.
  virtual Status send(const std::string& key, const std::string& value) = 0;
  /// Appends to `out` the records read since the last call, waiting at most `timeout` for the
  /// first. An error is transient (the broker unreachable): the channel keeps trying.
  virtual Status poll(std::chrono::milliseconds timeout, std::vector<ControlRecord>& out) = 0;
  /// True once every record that was in the topic when the channel opened has been read.
  virtual bool caught_up() const = 0;
  /// What is weaker than it should be about the topic (its replication, min.insync.replicas,
  /// cleanup policy), one sentence each; empty when all is well or not known yet.
  virtual std::vector<std::string> warnings() const { return {}; }
};

}  // namespace sluice::fleet
