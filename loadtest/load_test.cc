#include "loadtest/load_test.h"

#include <algorithm>
#include <chrono>

#include "ingest/batcher.h"
#include "ingest/decoder.h"
#include "loadtest/synthetic_events.h"
#include "ingest/writer_pool.h"

namespace sluice::loadtest {

using ingest::Batcher;
using ingest::BatchLimits;
using ingest::Decoder;
using ingest::WriterPool;

namespace {

/// Where a generated capsule's uuid starts: it opens with {"uuid":"<32 hex>".
constexpr size_t kUuidAt = 9;
/// Batches queued per writer beyond the one being written: enough to keep each session busy
/// while the next batch is built, little enough to bound memory.
constexpr size_t kQueuedPerWriter = 2;

double percentile_ms(std::vector<double>& seconds, double q) {
  if (seconds.empty()) return 0;
  const size_t i = std::min(seconds.size() - 1, static_cast<size_t>(q * seconds.size()));
  std::nth_element(seconds.begin(), seconds.begin() + static_cast<std::ptrdiff_t>(i),
                   seconds.end());
  return seconds[i] * 1000;
}

/// Writes `v` as 16 lowercase hex digits at `at`.
void put_hex16(char* at, uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, v >>= 4) at[i] = kDigits[v & 15];
}

}  // namespace

LoadTest::LoadTest(ingest::SchemaRegistry& registry, const ingest::Schema& schema,
                   const storage::TableLayout& table, SinkFactory sinks, size_t max_bytes)
    : registry_(registry),
      table_(table),
      sinks_(std::move(sinks)),
      max_bytes_(max_bytes) {
  SyntheticEvents generator(schema, /*seed=*/0);
  templates_.resize(kTemplates);
  for (size_t i = 0; i < kTemplates; ++i) generator.append(i, templates_[i]);
}

LoadTestResult LoadTest::run(size_t batch_rows, size_t writers, uint64_t events,
                             const Progress& progress) {
  const uint64_t run_id = ++runs_;
  LoadTestResult result;
  result.batch_rows = batch_rows;
  result.writers = writers;
  result.events = events;

  const Clock& clock = SystemClock::instance();
  // Connected before the clock starts: the run measures writing, not logging in.
  std::vector<std::unique_ptr<storage::BatchSink>> sinks;
  for (size_t w = 0; w < writers; ++w) {
    sinks.push_back(sinks_());
    if (auto st = sinks.back()->probe(); !st.is_ok()) {
      result.error = st.message;
      return result;
    }
  }
  // Twice as many partitions as writers, as a consumer group spreads a topic's partitions.
  const size_t partitions = 2 * writers;
  const size_t max_in_flight = writers * (kQueuedPerWriter + 1);
  WriterPool pool({.writers = writers,
                   .spare_rows = partitions + max_in_flight,
                   .spare_rows_capacity = max_bytes_ * 2},
                  [&sinks] {
                    auto sink = std::move(sinks.back());
                    sinks.pop_back();
                    return sink;
                  },
                  clock);
  pool.start();
  std::vector<double> batch_seconds;
  auto collect = [&] {
    for (auto& r : pool.take_reports()) {
      if (r.outcome == storage::WriteOutcome::kCommitted) {
        result.rows += r.rows;
        ++result.batches;
        batch_seconds.push_back(r.seconds);
      } else if (result.error.empty()) {
        result.error = r.error.is_ok() ? "a batch was not written" : r.error.message;
      }
    }
  };

  const std::string topic = "sluice-bench-" + std::to_string(run_id);
  std::vector<Batcher> batchers;
  batchers.reserve(partitions);
  const BatchLimits limits{batch_rows, max_bytes_, std::chrono::hours(1)};
  for (size_t p = 0; p < partitions; ++p) {
    batchers.emplace_back(topic, static_cast<int32_t>(p), limits, clock, &pool.rows());
    batchers.back().reset(0, 1);
  }

  const auto started = std::chrono::steady_clock::now();
  auto dispatch = [&](size_t p) {
    while (pool.in_flight() >= max_in_flight) {
      pool.wait_for_report(std::chrono::milliseconds(100));
      collect();
    }
    pool.push(batchers[p].take());
  };

  Decoder decoder(registry_);
  std::string reason;
  uint64_t dead = 0;
  for (uint64_t i = 0; i < events; ++i) {
    std::string& capsule = templates_[i % kTemplates];
    put_hex16(capsule.data() + kUuidAt, run_id);
    put_hex16(capsule.data() + kUuidAt + 16, i);
    const size_t p = (i / batch_rows) % partitions;
    Batcher& batcher = batchers[p];
    const int64_t offset = batcher.next_offset();
    if (decoder.decode(capsule, -1, reason) != nullptr) {
      batcher.add_decoded(&table_, decoder, offset);
    } else {
      ++dead;
      batcher.add_dead_letter(offset, reason, capsule);
    }
    if (batcher.full()) dispatch(p);
    if (progress && i % 4096 == 0) progress(i);
  }
  for (size_t p = 0; p < partitions; ++p) {
    if (!batchers[p].empty()) dispatch(p);
  }
  while (pool.in_flight() > 0) {
    pool.wait_for_report(std::chrono::milliseconds(100));
    collect();
  }
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (progress) progress(events);
  pool.stop(false);

  result.rows_per_s = result.seconds > 0 ? static_cast<double>(result.rows) / result.seconds : 0;
  result.batch_p50_ms = percentile_ms(batch_seconds, 0.50);
  result.batch_p99_ms = percentile_ms(batch_seconds, 0.99);
  result.batch_max_ms = batch_seconds.empty()
                            ? 0
                            : *std::max_element(batch_seconds.begin(), batch_seconds.end()) * 1000;
  if (result.error.empty() && dead > 0) {
    result.error = std::to_string(dead) + " synthetic events failed validation, e.g. " + reason;
  } else if (result.error.empty() && result.rows != events) {
    result.error = "the database reports " + std::to_string(result.rows) + " rows inserted of " +
                   std::to_string(events);
  }
  return result;
}

}  // namespace sluice::loadtest
