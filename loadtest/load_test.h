#pragma once
/// The engine of `sluice bench`: pushes synthetic events of one schema through the real hot
/// path — decode and validate, encode, batch per partition, parallel writers each with its own
/// session and the same exactly-once transaction as production — into a table of the caller's
/// choosing, and measures rows/s and each batch's time in the database.
/// The source is in-process (no Kafka): what is measured is Sluice and the database.
/// Thread safety: run() is called from one thread; it starts and joins its writers.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ingest/schema.h"
#include "storage/batch_sink.h"
#include "storage/table_layout.h"

namespace sluice::loadtest {

struct LoadTestResult {
  size_t batch_rows = 0;
  size_t writers = 0;
  uint64_t events = 0;
  uint64_t rows = 0;     ///< rows the database reports inserted
  uint64_t batches = 0;  ///< transactions committed
  double seconds = 0;    ///< first event decoded to last batch committed
  double rows_per_s = 0;
  /// Time in the database per batch (the writer's view, retries included), milliseconds.
  double batch_p50_ms = 0, batch_p99_ms = 0, batch_max_ms = 0;
  std::string error;  ///< empty when every batch committed
};

class LoadTest {
 public:
  using SinkFactory = std::function<std::unique_ptr<storage::BatchSink>()>;
  /// Called on the calling thread with the events handed to writers so far.
  using Progress = std::function<void(uint64_t done)>;

  /// Rows of `schema` are written to `table` (a layout with the schema's columns under another
  /// name); `schema` comes from `registry`, which decodes the events. `max_bytes` bounds a batch as
  /// `batch.max_bytes` does.
  LoadTest(ingest::SchemaRegistry& registry, const ingest::Schema& schema, const storage::TableLayout& table,
           SinkFactory sinks, size_t max_bytes);

  /// One measured run of `events` events with batches of `batch_rows` rows over `writers`
  /// sessions. Each run writes under its own topic name and uuids, so runs never collide.
  LoadTestResult run(size_t batch_rows, size_t writers, uint64_t events,
                     const Progress& progress = {});

 private:
  /// Distinct capsules are generated once; each event takes one and gets a fresh uuid.
  static constexpr size_t kTemplates = 4096;

  ingest::SchemaRegistry& registry_;
  const storage::TableLayout& table_;
  SinkFactory sinks_;
  size_t max_bytes_;
  std::vector<std::string> templates_;
  uint64_t runs_ = 0;
};

}  // namespace sluice::loadtest
