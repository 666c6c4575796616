#include "ingest/rejoins.h"

#include <fmt/format.h>

#include "common/logging.h"

namespace sluice::ingest {

Status Rejoins::fenced(const Status& why, bool twin_stopping) {
  const auto now = clock_.now();
  while (!recent_.empty() && now - recent_.front() > kWindow) recent_.pop_front();
  if (twin_stopping) {
    logger("kafka")->warn(
        "the group fenced this consumer ({}): a later process runs with the same instance id "
        "and stops once it reads the fleet topic; joining again with a new consumer",
        why.message());
    return Status::ok();
  }
  if (recent_.size() >= kMaxRejoins) {
    return Status::error(why.message() +
                             fmt::format(" — fenced {} times in {} minutes: another running "
                                         "instance uses the same kafka.instance_id ({}); "
                                         "give each instance of the group its own",
                                         recent_.size() + 1, kWindow.count(), instance_id_),
                         ErrorKind::kDuplicateInstance);
  }
  recent_.push_back(now);
  logger("kafka")->warn(
      "the group fenced this consumer ({}): its session expired while a broker or the network "
      "was away; joining again with a new consumer, its partitions revoked and assigned anew",
      why.message());
  return Status::ok();
}

}  // namespace sluice::ingest
