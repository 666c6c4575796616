#pragma once
/// Sluice's Prometheus metrics, declared in one place (prometheus-cpp). `refresh` copies the
/// pipeline's counters into the registry; `serialize` renders the text exposition format that
/// the admin endpoint serves at /metrics.
/// Thread safety: refresh and serialize may be called from any thread.

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "ingest/pipeline.h"

namespace sluice::admin {

class Metrics {
 public:
  Metrics();

  void refresh(const ingest::PipelineStats& stats);
  std::string serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;  // shared: prometheus-cpp's collectable API
  prometheus::Gauge* consumed_;
  prometheus::Gauge* rows_inserted_;
  prometheus::Gauge* dead_letters_;
  prometheus::Gauge* batches_;
  prometheus::Gauge* expired_offsets_;
};

}  // namespace sluice::admin
