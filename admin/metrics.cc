#include "admin/metrics.h"

#include <prometheus/text_serializer.h>

namespace sluice::admin {
namespace {

prometheus::Gauge* gauge(prometheus::Registry& registry, const std::string& name,
                         const std::string& help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

// Totals are kept by the pipeline as atomics and mirrored here; they only grow, so Prometheus's
// rate() treats them as counters.
Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      consumed_(gauge(*registry_, "sluice_events_consumed", "Events read from Kafka")),
      rows_inserted_(gauge(*registry_, "sluice_rows_inserted", "Rows committed to MariaDB")),
      dead_letters_(gauge(*registry_, "sluice_dead_letters", "Events sent to sluice_dead_letter")),
      batches_(gauge(*registry_, "sluice_batches_committed", "Batch transactions committed")),
      expired_offsets_(gauge(*registry_, "sluice_kafka_expired_offsets",
                             "Offsets that expired from Kafka before Sluice read them")) {}

void Metrics::refresh(const ingest::PipelineStats& s) {
  consumed_->Set(static_cast<double>(s.consumed.load()));
  rows_inserted_->Set(static_cast<double>(s.rows_inserted.load()));
  dead_letters_->Set(static_cast<double>(s.dead_letters.load()));
  batches_->Set(static_cast<double>(s.batches_committed.load()));
  expired_offsets_->Set(static_cast<double>(s.expired_offsets.load()));
}

std::string Metrics::serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace sluice::admin
