#include "ingest/event_intake.h"

#include <algorithm>

namespace sluice::ingest {

EventIntake::EventIntake(std::string schemas_path, const Clock& clock)
    : registry_(std::move(schemas_path), clock), decoder_(registry_) {}

EventIntake::Outcome EventIntake::append(Batcher& batcher, std::string_view topic,
                                         int32_t partition, int64_t offset, int64_t timestamp_ms,
                                         std::string_view payload) {
  if (const Schema* schema = decoder_.decode(payload, timestamp_ms, reason_)) {
    batcher.add_decoded(schema->layout(), decoder_, offset);
    return Outcome::kRow;
  }
  if (decoder_.schema_pending()) return Outcome::kWaitsForSchema;
  uint64_t suppressed = 0;
  if (dead_letter_log_.allow(suppressed)) {
    logger("ingest")->warn("{}/{}@{} dead-lettered: {} ({} more since the last such line)", topic,
                           partition, offset, reason_, suppressed);
  }
  batcher.add_dead_letter(offset, reason_, std::string(payload));
  return Outcome::kDeadLetter;
}

Clock::time_point EventIntake::wait_until(Clock::time_point now,
                                          std::chrono::milliseconds shortest,
                                          std::chrono::milliseconds longest) const {
  const auto retry = registry_.pending_retry_at();
  if (retry == Clock::time_point{}) return now + longest;  // a fetch under way: its news
  return std::clamp(retry, now + shortest, now + longest);
}

bool EventIntake::schema_news() {
  const SchemaSource* repo = registry_.repository();
  if (repo == nullptr) return false;
  const uint64_t completed = repo->completed();
  if (completed == completed_seen_) return false;
  completed_seen_ = completed;
  return true;
}

}  // namespace sluice::ingest
