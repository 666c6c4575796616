#include "ingest/event_intake.h"

namespace sluice::ingest {

EventIntake::EventIntake(std::string schemas_path, const Clock& clock)
    : registry_(std::move(schemas_path), clock), decoder_(registry_) {}

EventIntake::Outcome EventIntake::append(Batcher& batcher, std::string_view topic,
                                         int32_t partition, int64_t offset, int64_t timestamp_ms,
                                         std::string_view payload) {
  if (const Schema* schema = decoder_.decode(payload, timestamp_ms, reason_)) {
    batcher.add_decoded(schema->table.get(), decoder_, offset);
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

}  // namespace sluice::ingest
