// Micro-benchmarks of the per-event hot path (Google Benchmark): decode + validate, row
// encoding, batch building, and the spool's durable append and drain scan. Events are
// production-shaped NavigationTiming capsules (testing::EventFactory::navigation_timing: ~30
// fields, optional ones present or not, unicode, a nested userAgent object in a third).
// Reported as items (events) and bytes (capsule JSON) per second. No assertions: see
// bench/README.md for how to read and compare the figures.

#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <filesystem>
#include <string>
#include <vector>

#include "ingest/batcher.h"
#include "ingest/decoder.h"
#include "ingest/schema.h"
#include "storage/rocksdb_spool.h"
#include "testing/harness.h"

namespace {

using sluice::testing::EventFactory;

/// A corpus of distinct events, cycled through so caches see realistic variety.
const std::vector<std::string>& corpus() {
  static const std::vector<std::string> events = [] {
    std::vector<std::string> out;
    for (uint64_t seq = 0; seq < 4096; ++seq) {
      out.push_back(EventFactory::navigation_timing(1, static_cast<uint32_t>(seq % 8), seq));
    }
    return out;
  }();
  return events;
}

size_t corpus_bytes() {
  size_t n = 0;
  for (const auto& e : corpus()) n += e.size();
  return n;
}

struct Decoding {
  sluice::ingest::SchemaRegistry registry{sluice::testing::source_dir() + "/schemas"};
  sluice::ingest::Decoder decoder{registry};
  std::string reason;
};

void BM_DecodeValidate(benchmark::State& state) {
  Decoding d;
  const auto& events = corpus();
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const auto& e = events[i++ % events.size()];
    benchmark::DoNotOptimize(d.decoder.decode(e, -1, d.reason));
    bytes += e.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_DecodeValidate);

/// The same capsules, each in a buffer with simdjson's padding after it.
const std::vector<simdjson::padded_string>& padded_corpus() {
  static const std::vector<simdjson::padded_string> events = [] {
    std::vector<simdjson::padded_string> out;
    for (const auto& e : corpus()) out.emplace_back(e);
    return out;
  }();
  return events;
}

/// Visits every key and value of an On-Demand value: the least work any validator must do.
simdjson::error_code walk(simdjson::ondemand::value value, size_t& seen) {
  simdjson::ondemand::json_type type;
  if (auto err = value.type().get(type)) return err;
  switch (type) {
    case simdjson::ondemand::json_type::object: {
      simdjson::ondemand::object object;
      if (auto err = value.get_object().get(object)) return err;
      for (auto field : object) {
        std::string_view key;
        if (auto err = field.unescaped_key().get(key)) return err;
        seen += key.size();
        if (auto err = walk(field.value(), seen)) return err;
      }
      return simdjson::SUCCESS;
    }
    case simdjson::ondemand::json_type::array: {
      simdjson::ondemand::array array;
      if (auto err = value.get_array().get(array)) return err;
      for (auto element : array) {
        simdjson::ondemand::value v;
        if (auto err = element.get(v)) return err;
        if (auto err = walk(v, seen)) return err;
      }
      return simdjson::SUCCESS;
    }
    case simdjson::ondemand::json_type::string: {
      std::string_view text;
      if (auto err = value.get_string().get(text)) return err;
      seen += text.size();
      return simdjson::SUCCESS;
    }
    case simdjson::ondemand::json_type::number: {
      simdjson::ondemand::number number;
      if (auto err = value.get_number().get(number)) return err;
      seen += number.is_double() ? 1 : 2;
      return simdjson::SUCCESS;
    }
    case simdjson::ondemand::json_type::boolean: {
      bool b = false;
      if (auto err = value.get_bool().get(b)) return err;
      seen += b ? 1 : 0;
      return simdjson::SUCCESS;
    }
    case simdjson::ondemand::json_type::null:
      seen += value.is_null() ? 1 : 0;
      return simdjson::SUCCESS;
  }
  return simdjson::SUCCESS;
}

/// The reference for BM_DecodeValidate: simdjson On-Demand walking every key and value of the
/// same capsules (padded buffers), strings unescaped, numbers parsed — nothing else.
void BM_ParseOnly(benchmark::State& state) {
  simdjson::ondemand::parser parser;
  const auto& events = padded_corpus();
  size_t i = 0, bytes = 0, seen = 0;
  for (auto _ : state) {
    const auto& e = events[i++ % events.size()];
    simdjson::ondemand::document doc;
    simdjson::ondemand::value root;
    if (parser.iterate(e).get(doc) || doc.get_value().get(root) || walk(root, seen)) {
      state.SkipWithError("a capsule did not parse");
      return;
    }
    bytes += e.size();
  }
  benchmark::DoNotOptimize(seen);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ParseOnly);

/// What the decoder's parse alone costs: simdjson's DOM parser over the unpadded capsules (it
/// copies each into its own padded buffer), no validation.
void BM_ParseDom(benchmark::State& state) {
  simdjson::dom::parser parser;
  const auto& events = corpus();
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const auto& e = events[i++ % events.size()];
    simdjson::dom::element doc;
    if (parser.parse(e.data(), e.size()).get(doc)) {
      state.SkipWithError("a capsule did not parse");
      return;
    }
    benchmark::DoNotOptimize(doc);
    bytes += e.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ParseDom);

void BM_EncodeRow(benchmark::State& state) {
  Decoding d;
  const auto& events = corpus();
  if (d.decoder.decode(events[1], -1, d.reason) == nullptr) {
    state.SkipWithError(d.reason.c_str());
    return;
  }
  std::string out;
  out.reserve(8 << 20);
  for (auto _ : state) {
    d.decoder.encode_row(out);
    if (out.size() > (4 << 20)) out.clear();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_EncodeRow);

/// The whole per-event ingest path: decode, validate, encode into the partition's batch, and
/// close a batch every 5000 events.
void BM_BuildBatch(benchmark::State& state) {
  Decoding d;
  const auto& events = corpus();
  // Written batches give their buffers back, as the writers do in the pipeline.
  sluice::storage::TableRowsPool pool(8, 32 << 20);
  sluice::ingest::Batcher batcher("t", 0, {}, sluice::SystemClock::instance(), &pool);
  batcher.reset(0, 1);
  int64_t offset = 0;
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const auto& e = events[i++ % events.size()];
    bytes += e.size();
    if (const auto* schema = d.decoder.decode(e, -1, d.reason)) {
      batcher.add_decoded(schema->layout(), d.decoder, offset++);
    }
    if (batcher.full()) {
      auto batch = batcher.take();
      benchmark::DoNotOptimize(batch);
      for (auto& rows : batch.tables) pool.give(std::move(rows));
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_BuildBatch);

/// A spool in a fresh directory, removed again when the benchmark is done with it; nullptr
/// (the benchmark skipped with the reason) when it cannot be opened.
struct ScratchSpool {
  std::string dir;
  std::unique_ptr<sluice::storage::Spool> spool;
  ScratchSpool(benchmark::State& state, const char* name)
      : dir((std::filesystem::temp_directory_path() / (std::string("sluice-bench-") + name))
                .string()) {
    std::filesystem::remove_all(dir);
    auto opened = sluice::storage::RocksDbSpool::open(dir);
    if (!opened) {
      state.SkipWithError(opened.status().message().c_str());
      return;
    }
    spool = std::move(opened).value();
  }
  ~ScratchSpool() {
    spool.reset();
    std::filesystem::remove_all(dir);
  }
};

/// Durable appends: every `group` events are written in one synced commit (the pipeline commits
/// once per loop round, up to 1000 events).
void BM_SpoolAppendSyncedEvery(benchmark::State& state) {
  const auto group = static_cast<size_t>(state.range(0));
  ScratchSpool scratch(state, "append");
  if (!scratch.spool) return;
  auto& spool = scratch.spool;
  const auto& events = corpus();
  int64_t offset = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    const auto& e = events[static_cast<size_t>(offset) % events.size()];
    spool->append("eventlogging_NavigationTiming", static_cast<int32_t>(offset % 8), offset,
                  1'700'000'000'000, e);
    bytes += e.size();
    if (static_cast<size_t>(++offset) % group == 0 && !spool->commit()) {
      state.SkipWithError("commit failed");
      break;
    }
  }
  if (!spool->commit()) state.SkipWithError("commit failed");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_SpoolAppendSyncedEvery)->Arg(100)->Arg(1000)->Arg(5000)->UseRealTime();

/// The drain's read: a partition scanned in chunks of 5000 events, in offset order.
void BM_SpoolScan(benchmark::State& state) {
  ScratchSpool scratch(state, "scan");
  if (!scratch.spool) return;
  auto& spool = scratch.spool;
  const auto& events = corpus();
  constexpr int64_t kEvents = 200'000;
  for (int64_t o = 0; o < kEvents; ++o) {
    spool->append("t", 0, o, 1, events[static_cast<size_t>(o) % events.size()]);
    if (o % 5000 == 4999 && !spool->commit()) state.SkipWithError("commit failed");
  }
  if (!spool->commit()) state.SkipWithError("commit failed");
  sluice::storage::SpoolChunk chunk;
  int64_t from = 0;
  size_t items = 0, bytes = 0;
  for (auto _ : state) {
    if (!spool->read("t", 0, from, 5000, chunk)) state.SkipWithError("read failed");
    items += chunk.events.size();
    bytes += chunk.bytes.size();
    from = chunk.events.empty() ? 0 : chunk.events.back().offset + 1;
    if (from >= kEvents) from = 0;
  }
  state.SetItemsProcessed(static_cast<int64_t>(items));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_SpoolScan);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext(
      "corpus", std::to_string(corpus().size()) + " NavigationTiming capsules, mean " +
                    std::to_string(corpus_bytes() / corpus().size()) + " bytes");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
