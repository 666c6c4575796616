#pragma once
/// When the group fences the consumer — its session expired while a broker or the network was
/// away — the pipeline joins again with a new one. Unless that keeps happening: fenced again
/// and again within minutes is the sign of another running instance with the same
/// kafka.instance_id (static membership lets only one of them in), and then the service stops
/// saying so, rather than the two fencing each other for ever. Ingest thread.

#include <chrono>
#include <deque>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace sluice::ingest {

class Rejoins {
 public:
  static constexpr size_t kMaxRejoins = 3;
  static constexpr auto kWindow = std::chrono::minutes(10);

  Rejoins(const Clock& clock, std::string instance_id)
      : clock_(clock), instance_id_(std::move(instance_id)) {}

  /// The group fenced the consumer (`why`): ok to join again (logged), or an error of kind
  /// kDuplicateInstance after kMaxRejoins within kWindow. `twin_stopping`: a later process
  /// with the same instance id is known to be stopping (it reads the fleet topic): its
  /// fencings are expected and not counted.
  Status fenced(const Status& why, bool twin_stopping);

 private:
  const Clock& clock_;
  const std::string instance_id_;
  std::deque<Clock::time_point> recent_;  ///< when the group fenced us, lately
};

}  // namespace sluice::ingest
