#pragma once
/// The seam between the pipeline and Kafka: a consumer-group member that delivers messages of
/// the partitions assigned to it and takes commits, pauses and seeks. The real adapter is
/// KafkaSource (librdkafka); unit tests drive the pipeline with FakeSource (testing/fakes.h),
/// which behaves like librdkafka where it matters: rebalances (eager and cooperative), messages
/// fetched before a seek or a pause still delivered once, calls that fail.
///
/// Every call that can fail says so: a failed seek, pause or resume has not happened, and the
/// caller must keep the partition in the state that needs it and call again. Each of these
/// calls is idempotent, so a retry after a partial failure is safe.
///
/// Thread safety: every method, and the handler's callbacks, run on one thread (the pipeline's
/// ingest thread); the callbacks run inside `poll` (and `close`).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sluice::ingest {

/// Kafka's "no offset" (RD_KAFKA_OFFSET_INVALID): the group's or the reset policy's choice.
inline constexpr int64_t kOffsetInvalid = -1001;
/// The beginning of a partition's log (RD_KAFKA_OFFSET_BEGINNING), for seeks.
inline constexpr int64_t kOffsetBeginning = -2;

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = kOffsetInvalid;  ///< meaning depends on the call
};

/// One message. The views point into the source's buffers and stay valid until the next
/// `poll` (or `close`).
struct SourceMessage {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = -1;  ///< the message's Kafka timestamp, -1 when it has none
  std::string_view payload;
};

/// Called from inside poll() (and close()).
struct SourceHandler {
  /// The group assigned these partitions. The handler sets each one's start offset, or leaves
  /// kOffsetInvalid for the group's committed offset (and then the earliest offset Kafka has).
  std::function<void(std::vector<TopicPartition>&)> on_assign;
  /// The partitions are taken away (a rebalance, or close). Nothing of them is delivered after.
  std::function<void(const std::vector<TopicPartition>&)> on_revoke;
  /// The broker acknowledged (or refused) an asynchronous commit: each partition's `offset` is
  /// what was committed. `error` is ok, or why the commit did not happen.
  std::function<void(const std::vector<TopicPartition>&, const Status& error)> on_commit{};
};

class EventSource {
 public:
  virtual ~EventSource() = default;

  /// Waits up to `timeout` for the first message, then takes what is ready without waiting, up
  /// to `max` messages in all, appending them to `out` (cleared first). Handler callbacks run
  /// inside. Transient consumer errors (a broker down, a leader moving) are the source's to log,
  /// rate-limited; an error returned here is fatal — this consumer cannot go on: of kind
  /// ErrorKind::kFenced when the group fenced this member (KIP-345: another member joined with
  /// the same instance id, or this one came back after its own session had expired — a new
  /// consumer can join again, and the pipeline tells the two causes apart by how often), of
  /// kind kError for a fatal protocol error.
  virtual Status poll(std::chrono::milliseconds timeout, size_t max,
                      std::vector<SourceMessage>& out) = 0;

  /// Offsets the group committed for these partitions (kOffsetInvalid when none).
  virtual Status committed(std::vector<TopicPartition>& partitions,
                           std::chrono::milliseconds timeout) = 0;
  /// Commits each partition's `offset` (the next offset to read). Asynchronous commits are
  /// acknowledged through `SourceHandler::on_commit`; a synchronous one returns the outcome,
  /// waiting at most a few seconds — a coordinator out of reach (the host cut off from Kafka)
  /// must not hold the ingest thread, and with it a pause: the commit then counts as failed
  /// (it may still land; a commit is never ahead of MariaDB, so either outcome is safe).
  virtual Status commit(const std::vector<TopicPartition>& partitions, bool async) = 0;
  /// Stops fetching these partitions; messages already fetched may still be delivered.
  virtual Status pause(const std::vector<TopicPartition>& partitions) = 0;
  /// Fetches these partitions again from the fetcher's own position (not the last message
  /// delivered: what was dropped meanwhile needs a seek).
  virtual Status resume(const std::vector<TopicPartition>& partitions) = 0;
  /// Moves each partition's fetch position to its `offset`. Messages fetched before may still
  /// be delivered once.
  virtual Status seek(const std::vector<TopicPartition>& partitions) = 0;
  /// Low (log start) and high watermarks of a partition, asking the broker.
  virtual Status watermarks(const std::string& topic, int32_t partition, int64_t& low,
                            int64_t& high, std::chrono::milliseconds timeout) = 0;
  /// The partition's high watermark as last seen in a fetch (no broker round trip), or -1 when
  /// not known yet. For lag in status and metrics.
  virtual int64_t cached_high_watermark(const std::string& topic, int32_t partition) = 0;
  /// The partition's log start as last seen in a fetch, or -1 when not known: how close
  /// Kafka's retention is to what Sluice has not stored yet (metrics).
  virtual int64_t cached_low_watermark(const std::string& /*topic*/, int32_t /*partition*/) {
    return -1;
  }
  /// Leaves the group (revoking the assignment through the handler). Idempotent.
  virtual void close() = 0;
};

/// Builds the source once the pipeline can hand it its handler.
using SourceFactory = std::function<Result<std::unique_ptr<EventSource>>(SourceHandler handler)>;

}  // namespace sluice::ingest
