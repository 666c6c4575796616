#pragma once
/// ReplayInput from a file of JSON lines (`sluice replay --from-file F.jsonl`), in either
/// shape, line by line:
///  - a `sluice spool export` line: {"topic", "partition", "offset", "timestamp_ms",
///    "payload" | "payload_hex"} — the event keeps its Kafka position (for dead letters) and
///    its Kafka timestamp (the `timestamp` of a capsule that has none of its own);
///  - any other line is a capsule as it was in Kafka (a dump of a topic, a backfill file): its
///    topic is the one given (--topic, or the file's name), partition 0, and its offset the
///    line's number (from 1), so a dead letter points at its line.
/// Empty lines are skipped. With a topic or partitions given, export lines of other topics or
/// partitions are skipped (not counted).
/// Thread safety: one thread.

#include <simdjson.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "ingest/replay.h"

namespace sluice::ingest {

class JsonLinesInput final : public ReplayInput {
 public:
  /// Opens `path`. `topic`: for capsule lines (default: the file's name), and a filter of
  /// export lines when not empty; `partitions`: a filter of export lines when not empty.
  static Result<std::unique_ptr<JsonLinesInput>> open(const std::string& path, std::string topic,
                                                      std::set<int32_t> partitions);

  /// Lines holding an event (not empty), counted without parsing: the plan's "about N events".
  static Result<uint64_t> count_events(const std::string& path);

  Status read(std::chrono::milliseconds timeout, size_t max,
              std::vector<SourceMessage>& out) override;
  bool done() const override { return done_; }

 private:
  JsonLinesInput() = default;

  std::string path_;
  std::string default_topic_;
  std::string topic_filter_;
  std::set<int32_t> partitions_;
  std::ifstream in_;
  uint64_t line_number_ = 0;
  bool done_ = false;
  simdjson::dom::parser parser_;
  std::string line_;
  std::vector<std::string> payloads_;  ///< backing the views handed out by the last read
  std::set<std::string, std::less<>> topic_names_;  ///< backing the topics handed out
};

}  // namespace sluice::ingest
