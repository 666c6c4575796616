#pragma once
/// Sluice's Prometheus metrics, declared in one place (prometheus-cpp), served at /metrics.
///
/// Three feeds: `observe_batch` is called on the ingest thread with every committed batch
/// (rows per table, dead letters per reason class, the batch histograms); `refresh` is called
/// before each scrape with the pipeline's status snapshot (states, spool, lag, pause and outage
/// durations, freshness, and counters the pipeline keeps itself, mirrored as increments), and
/// `refresh_replicas` with the replicas' freshness. Label sets are bounded: topics and
/// partitions come from the subscription, tables from the schemas, reasons from the fixed set
/// of dead-letter classes, replicas from the config. Series whose labels are known in advance
/// (every state, every dead-letter class, every topic named in kafka.topics) exist at 0 from
/// the start.
/// deploy/grafana and deploy/prometheus use these names; tests/unit/deploy_test.cc and
/// tests/integration/deploy_test.cc keep them in step.
/// Thread safety: every method may be called from any thread.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "admin/replica_freshness.h"
#include "ingest/pipeline_status.h"
#include "ingest/writer.h"

namespace sluice::admin {

/// What the metrics say about the process itself (sluice_build_info, sluice_spool_max_bytes).
struct MetricsInfo {
  std::string version;
  std::string revision;
  int64_t spool_max_bytes = 0;  ///< spool.max_bytes
  /// kafka.topics: the names (not the ^patterns) get their consumed counter at 0 from the start.
  std::vector<std::string> topics{};
};

class Metrics {
 public:
  /// The window of sluice_transaction_seconds_max.
  static constexpr std::chrono::seconds kMaxWindow{60};
  /// Every dead-letter reason class (architecture.md, "Bad input"): the `reason` label values of
  /// sluice_dead_letters_total, each exported from the start.
  static constexpr const char* kDeadLetterClasses[] = {
      "malformed_json", "not_object",       "unknown_schema",   "unknown_revision",
      "wrong_type",     "missing_required", "unexpected_field", "too_long",
      "invalid_value",  "duplicate_uuid",   "kafka_gap",        "table_mismatch",
      "db_refused"};

  explicit Metrics(const MetricsInfo& info = {});

  void observe_batch(const ingest::WriteReport& report);
  /// `now_ms`: the wall clock, for the pause and outage durations.
  void refresh(const ingest::PipelineStatus& status, const ingest::PipelineStats& stats,
               int64_t now_ms);
  void refresh_replicas(const std::vector<ReplicaFreshness::Replica>& replicas);
  /// The fleet as Fleet::status_json shows it: the lease, rejected records, the topic's
  /// warnings, the target, and per instance whether it is live and applied the target.
  void refresh_fleet(const nlohmann::json& fleet);
  std::string serialize() const;

 private:
  /// Adds to a counter the growth of a total kept elsewhere since the last refresh.
  void mirror(prometheus::Counter& counter, uint64_t total, uint64_t& last);
  /// Removes a partition's series (it moved to another instance).
  void remove_partition(const std::string& topic, int32_t partition);

  std::mutex mu_;
  std::shared_ptr<prometheus::Registry> registry_;  // shared: prometheus-cpp's collectable API
  prometheus::Family<prometheus::Counter>& consumed_;
  prometheus::Family<prometheus::Counter>& rows_inserted_;
  prometheus::Family<prometheus::Counter>& dead_letters_;
  prometheus::Counter& spooled_;
  prometheus::Counter& spool_write_errors_;
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
  /// sluice_consumer_lag, the name before the unit suffix: exported beside lag_ for one
  /// release (docs/reference.md, Metrics), then removed.
  prometheus::Family<prometheus::Gauge>& lag_deprecated_;
  prometheus::Family<prometheus::Gauge>& durable_lag_;
  prometheus::Family<prometheus::Gauge>& partition_mode_;
  prometheus::Family<prometheus::Gauge>& partition_spool_unreadable_;
  prometheus::Family<prometheus::Gauge>& log_start_;
  prometheus::Family<prometheus::Gauge>& position_;
  /// Partitions with series, as of the last refresh: one that leaves has them removed.
  std::set<std::pair<std::string, int32_t>> partitions_;
  prometheus::Histogram& batch_rows_;
  prometheus::Histogram& batch_seconds_;
  prometheus::Gauge& transaction_max_;
  prometheus::Gauge& pause_duration_;
  prometheus::Gauge& outage_duration_;
  prometheus::Gauge& spool_full_;
  prometheus::Family<prometheus::Gauge>& waiting_for_schema_;
  prometheus::Gauge& schema_repository_up_;
  prometheus::Family<prometheus::Gauge>& schema_revisions_;
  prometheus::Counter& schema_fetch_failures_;
  uint64_t last_schema_fetch_failures_ = 0;
  prometheus::Gauge& drain_rate_limit_;
  prometheus::Family<prometheus::Gauge>& drain_limited_;
  prometheus::Gauge& replica_lag_;
  prometheus::Family<prometheus::Gauge>& table_max_timestamp_;
  prometheus::Family<prometheus::Gauge>& table_event_lag_;
  prometheus::Family<prometheus::Gauge>& replica_up_;
  prometheus::Family<prometheus::Gauge>& replica_max_timestamp_;
  prometheus::Gauge& writers_failing_;
  prometheus::Family<prometheus::Counter>& db_errors_;
  prometheus::Gauge& lease_valid_;
  prometheus::Gauge& lease_remaining_;
  prometheus::Counter& records_rejected_;
  prometheus::Gauge& topic_warnings_;
  prometheus::Gauge& target_paused_;
  prometheus::Family<prometheus::Gauge>& instance_live_;
  prometheus::Family<prometheus::Gauge>& instance_applied_;
  std::set<std::string> fleet_ids_;  ///< instances with series, as of the last refresh_fleet
  uint64_t last_rejected_ = 0;

  std::map<std::string, uint64_t> last_consumed_;  ///< per topic, as of the last refresh
  uint64_t last_spool_write_errors_ = 0;
  uint64_t last_spooled_ = 0, last_drained_ = 0, last_batches_ = 0, last_expired_ = 0;
  std::array<uint64_t, 5> last_db_errors_{};  ///< per storage::DbErrorClass
  /// Recent transactions (when, seconds), for the max over the window.
  std::deque<std::pair<std::chrono::steady_clock::time_point, double>> recent_;
};

}  // namespace sluice::admin
