#pragma once
/// Sluice's Prometheus metrics, declared in one place (prometheus-cpp), served at /metrics.
///
/// Two feeds: `observe_batch` is called on the ingest thread with every committed batch
/// (rows per table, dead letters per reason class, the batch histograms); `refresh` is called
/// before each scrape with the pipeline's status snapshot (states, spool, lag, and counters the
/// pipeline keeps itself, mirrored as increments). Label sets are bounded: topics and
/// partitions come from the subscription, tables from the schemas, reasons from the fixed set
/// of dead-letter classes.
/// Thread safety: every method may be called from any thread.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "ingest/pipeline_status.h"
#include "ingest/writer.h"

namespace sluice::admin {

class Metrics {
 public:
  /// The window of sluice_transaction_seconds_max.
  static constexpr std::chrono::seconds kMaxWindow{60};

  Metrics();

  void observe_batch(const ingest::WriteReport& report);
  void refresh(const ingest::PipelineStatus& status, const ingest::PipelineStats& stats);
  std::string serialize() const;

 private:
  /// Adds to a counter the growth of a total kept elsewhere since the last refresh.
  void mirror(prometheus::Counter& counter, uint64_t total, uint64_t& last);

  std::mutex mu_;
  std::shared_ptr<prometheus::Registry> registry_;  // shared: prometheus-cpp's collectable API
  prometheus::Family<prometheus::Counter>& consumed_;
  prometheus::Family<prometheus::Counter>& rows_inserted_;
  prometheus::Family<prometheus::Counter>& dead_letters_;
  prometheus::Counter& spooled_;
  prometheus::Counter& drained_;
  prometheus::Counter& batches_;
  prometheus::Counter& expired_offsets_;
  prometheus::Gauge& spool_events_;
  prometheus::Gauge& spool_bytes_;
  prometheus::Gauge& spool_oldest_age_;
  prometheus::Family<prometheus::Gauge>& state_;
  prometheus::Gauge& db_up_;
  prometheus::Gauge& fetch_paused_;
  prometheus::Family<prometheus::Gauge>& lag_;
  prometheus::Histogram& batch_rows_;
  prometheus::Histogram& batch_seconds_;
  prometheus::Gauge& transaction_max_;

  std::map<std::string, uint64_t> last_consumed_;  ///< per topic, as of the last refresh
  uint64_t last_spooled_ = 0, last_drained_ = 0, last_batches_ = 0, last_expired_ = 0;
  /// Recent transactions (when, seconds), for the max over the window.
  std::deque<std::pair<std::chrono::steady_clock::time_point, double>> recent_;
};

}  // namespace sluice::admin
