#pragma once
/// An event into its partition's batch: the schema registry, the decoder and the dead-letter
/// reason buffer of one thread, and the rate-limited line each dead letter logs. Three outcomes
/// as a value: a row, a dead letter (both in the batch, in offset order), or nothing yet — the
/// event's schema revision is still being fetched from the repository, and the caller holds
/// the partition at it (PartitionCursor::hold).
/// Thread safety: one thread (the pipeline's ingest thread).

#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/logging.h"
#include "ingest/batcher.h"
#include "ingest/decoder.h"
#include "ingest/schema.h"

namespace sluice::ingest {

class EventIntake {
 public:
  EventIntake(std::string schemas_path, const Clock& clock);
  EventIntake(const EventIntake&) = delete;
  EventIntake& operator=(const EventIntake&) = delete;

  /// Revisions not under schemas.path come from the cache, then the repository (see
  /// SchemaRegistry::use_repository).
  void use_repository(SchemaSource* source, std::string cache_root) {
    registry_.use_repository(source, std::move(cache_root));
  }

  enum class Outcome { kRow, kDeadLetter, kWaitsForSchema };
  /// Decodes the event at `offset` of topic/partition into `batcher`: a row, or a dead letter
  /// with its reason; kWaitsForSchema adds nothing (reason() says what it waits for).
  Outcome append(Batcher& batcher, std::string_view topic, int32_t partition, int64_t offset,
                 int64_t timestamp_ms, std::string_view payload);
  /// Why the last append did not give a row.
  const std::string& reason() const { return reason_; }
  /// After kWaitsForSchema: how long asking again is pointless (until the repository's next
  /// attempt), at most `longest` — sooner if schema_news() says an answer may have come.
  Clock::time_point wait_until(Clock::time_point now, std::chrono::milliseconds shortest,
                               std::chrono::milliseconds longest) const;
  /// Whether the repository finished a fetch since the last call: events waiting for a schema
  /// should ask again now.
  bool schema_news();

  const SchemaRegistry& registry() const { return registry_; }

 private:
  SchemaRegistry registry_;
  Decoder decoder_;
  std::string reason_;  ///< reused
  RateLimiter dead_letter_log_{std::chrono::seconds(10)};
  uint64_t completed_seen_ = 0;  ///< the repository's completed() at the last schema_news()
};

}  // namespace sluice::ingest
