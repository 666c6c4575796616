#include "admin/metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>

#include "ingest/timestamp.h"

namespace sluice::admin {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

/// A family of metrics, `builder`'s kind, registered as `name` and explained by `help`.
template <class Builder>
auto& family(Builder builder, prometheus::Registry& registry, const std::string& name,
             const std::string& help) {
  return builder.Name(name).Help(help).Register(registry);
}

/// A partition's modes (partition_cursor.h), each a series of sluice_partition_mode.
constexpr const char* kModes[] = {"direct", "refill",   "draining", "waiting",
                                  "halted", "spooling", "orphan"};

/// Epoch seconds of a YYYYMMDDHHMMSS timestamp (a replica's answer), nullopt when malformed.
std::optional<int64_t> epoch_of_mediawiki(const std::string& t) {
  if (t.size() != 14) return std::nullopt;
  return ingest::epoch_seconds_from_iso8601(t.substr(0, 4) + "-" + t.substr(4, 2) + "-" +
                                            t.substr(6, 2) + "T" + t.substr(8, 2) + ":" +
                                            t.substr(10, 2) + ":" + t.substr(12, 2) + "Z");
}

/// Seconds from `since_ms` to `now_ms`; 0 when `since_ms` is unknown.
double seconds_since(int64_t since_ms, int64_t now_ms) {
  return since_ms > 0 ? static_cast<double>(std::max<int64_t>(0, now_ms - since_ms)) / 1000.0 : 0;
}

}  // namespace

Metrics::Metrics(const MetricsInfo& info)
    : registry_(std::make_shared<prometheus::Registry>()),
      consumed_(family(BuildCounter(), *registry_, "sluice_events_consumed_total",
                       "Events read from Kafka, per topic")),
      rows_inserted_(family(BuildCounter(), *registry_, "sluice_rows_inserted_total",
                            "Rows committed to MariaDB, per table")),
      dead_letters_(family(BuildCounter(), *registry_, "sluice_dead_letters_total",
                           "Events committed to sluice_dead_letter, per reason class")),
      spooled_(family(BuildCounter(), *registry_, "sluice_events_spooled_total",
                      "Events written to the spool")
                   .Add({})),
      spool_write_errors_(family(BuildCounter(), *registry_, "sluice_spool_write_errors_total",
                                 "Spool writes that failed (a full disk, an I/O error); "
                                 "fetching for the spool pauses until one succeeds")
                              .Add({})),
      drained_(family(BuildCounter(), *registry_, "sluice_events_drained_total",
                      "Spooled events read back for MariaDB")
                   .Add({})),
      batches_(family(BuildCounter(), *registry_, "sluice_batches_committed_total",
                      "Batch transactions committed")
                   .Add({})),
      expired_offsets_(family(BuildCounter(), *registry_, "sluice_kafka_expired_offsets_total",
                              "Offsets that expired from Kafka before Sluice read them")
                           .Add({})),
      spool_events_(
          family(BuildGauge(), *registry_, "sluice_spool_events", "Events held in the spool")
              .Add({})),
      spool_bytes_(family(BuildGauge(), *registry_, "sluice_spool_bytes", "Bytes held in the spool")
                       .Add({})),
      spool_oldest_age_(family(BuildGauge(), *registry_, "sluice_spool_oldest_age_seconds",
                               "Age of the oldest spooled event (0 when empty)")
                            .Add({})),
      state_(
          family(BuildGauge(), *registry_, "sluice_state", "1 for the pipeline's current state")),
      db_up_(family(BuildGauge(), *registry_, "sluice_db_up",
                    "1 when MariaDB took Sluice's last write or probe, 0 in an outage")
                 .Add({})),
      fetch_paused_(family(BuildGauge(), *registry_, "sluice_fetch_paused",
                           "1 while fetching from Kafka is paused (MariaDB behind, spool full)")
                        .Add({})),
      lag_(family(BuildGauge(), *registry_, "sluice_consumer_lag_events",
                  "Events between Sluice's position and the partition's high watermark "
                  "(what is not yet fetched)")),
      lag_deprecated_(family(BuildGauge(), *registry_, "sluice_consumer_lag",
                             "Deprecated: sluice_consumer_lag_events, under its old name "
                             "until the next release")),
      durable_lag_(family(BuildGauge(), *registry_, "sluice_durable_lag_events",
                          "Events of the partition not yet in MariaDB, what the spool holds "
                          "included: the high watermark minus MariaDB's next offset")),
      partition_mode_(family(BuildGauge(), *registry_, "sluice_partition_mode",
                             "1 for the partition's current mode (direct, refill, draining, "
                             "waiting, halted, spooling, orphan), 0 for the others")),
      partition_spool_unreadable_(
          family(BuildGauge(), *registry_, "sluice_partition_spool_unreadable",
                 "1 while the partition's spooled events cannot be read (a corrupt block): "
                 "its drain stops there until `sluice spool discard --corrupt`")),
      log_start_(family(BuildGauge(), *registry_, "sluice_kafka_log_start_offset",
                        "Kafka's log start of the partition as last fetched: retention moves "
                        "it towards sluice_position_offset")),
      position_(family(BuildGauge(), *registry_, "sluice_position_offset",
                       "The next offset Sluice reads from Kafka: everything below it is in "
                       "MariaDB, in the spool, or in a batch being written")),
      batch_rows_(
          family(BuildHistogram(), *registry_, "sluice_batch_rows", "Rows per committed batch")
              .Add({}, prometheus::Histogram::BucketBoundaries{1, 10, 100, 500, 1000, 2500, 5000,
                                                               10000, 25000, 65535})),
      batch_seconds_(
          family(BuildHistogram(), *registry_, "sluice_batch_seconds",
                 "Time in MariaDB per committed batch, retries included")
              .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                               0.5, 1, 2.5, 5, 10, 30})),
      transaction_max_(family(BuildGauge(), *registry_, "sluice_transaction_seconds_max",
                              "Longest batch transaction in the last 60 s")
                           .Add({})),
      pause_duration_(family(BuildGauge(), *registry_, "sluice_pause_duration_seconds",
                             "How long the operator's pause has held (0 when not paused)")
                          .Add({})),
      outage_duration_(family(BuildGauge(), *registry_, "sluice_outage_duration_seconds",
                              "How long the current outage has lasted (0 when none)")
                           .Add({})),
      spool_full_(family(BuildGauge(), *registry_, "sluice_spool_full",
                         "1 while the spool is at spool.max_bytes and fetching is paused")
                      .Add({})),
      waiting_for_schema_(family(BuildGauge(), *registry_, "sluice_partition_waiting_for_schema",
                                 "1 while the partition holds: its next event's schema "
                                 "revision is still being fetched from the repository")),
      schema_repository_up_(family(BuildGauge(), *registry_, "sluice_schema_repository_up",
                                   "1 when the schema repository's last fetch got an "
                                   "answer, 0 when not, -1 without a repository")
                                .Add({})),
      schema_revisions_(family(BuildGauge(), *registry_, "sluice_schema_revisions",
                               "Schema revisions compiled since start, by where they came "
                               "from: path (schemas.path), cache (schemas.cache_path), "
                               "repository (fetched)")),
      schema_fetch_failures_(family(BuildCounter(), *registry_,
                                    "sluice_schema_fetch_failures_total",
                                    "Fetches from the schema repository that got no answer "
                                    "(no connection, a timeout, HTTP 5xx, a refused "
                                    "certificate); retried with backoff")
                                 .Add({})),
      drain_rate_limit_(family(BuildGauge(), *registry_, "sluice_drain_rate_limit",
                               "Events per second the spool's drain may write now (0: no limit)")
                            .Add({})),
      drain_limited_(family(BuildGauge(), *registry_, "sluice_drain_limited",
                            "1 for what limits the drain now: none, max_rate, "
                            "commit_latency, replica_lag; spool_pressure: not limited, "
                            "the spool is near spool.max_bytes")),
      replica_lag_(family(BuildGauge(), *registry_, "sluice_replica_lag_seconds",
                          "Worst replica's lag behind Sluice's commits, from its "
                          "sluice_offsets (-1: unknown or no replicas)")
                       .Add({})),
      table_max_timestamp_(
          family(BuildGauge(), *registry_, "sluice_table_max_timestamp_seconds",
                 "Newest event `timestamp` Sluice inserted into the table (epoch seconds)")),
      table_event_lag_(
          family(BuildGauge(), *registry_, "sluice_table_event_lag_seconds",
                 "How far the table is behind event time: now minus the newest event "
                 "`timestamp` Sluice inserted into it (the data's age as analysts see it)")),
      replica_up_(family(BuildGauge(), *registry_, "sluice_replica_up",
                         "1 when the replica's last freshness check worked")),
      replica_max_timestamp_(
          family(BuildGauge(), *registry_, "sluice_replica_max_timestamp_seconds",
                 "MAX(`timestamp`) of the table on the replica (epoch seconds)")),
      writers_failing_(family(BuildGauge(), *registry_, "sluice_writer_failing",
                              "Writers whose batch has failed 3 or more attempts in a row "
                              "(status: writers[].state = failing)")
                           .Add({})),
      db_errors_(family(BuildCounter(), *registry_, "sluice_db_errors_total",
                        "Failed MariaDB write attempts, per error class (transient, outage, "
                        "read_only, bad_row, fatal)")),
      lease_valid_(family(BuildGauge(), *registry_, "sluice_fleet_lease_valid",
                          "1 while this instance's write lease holds (it has read its own "
                          "fleet records back lately); 0: it writes nothing")
                       .Add({})),
      lease_remaining_(family(BuildGauge(), *registry_, "sluice_fleet_lease_remaining_seconds",
                              "How long the write lease holds without another record read "
                              "back (negative or 0: run out)")
                           .Add({})),
      records_rejected_(family(BuildCounter(), *registry_, "sluice_fleet_records_rejected_total",
                               "Fleet topic records ignored: not signed with fleet.key_file, "
                               "signed with another key, or replayed")
                            .Add({})),
      topic_warnings_(family(BuildGauge(), *registry_, "sluice_fleet_topic_warnings",
                             "Settings of the fleet topic weaker than they should be "
                             "(replication, min.insync.replicas, cleanup.policy)")
                          .Add({})),
      target_paused_(family(BuildGauge(), *registry_, "sluice_fleet_target_paused",
                            "The fleet's target: 1 paused, 0 running, -1 never set")
                         .Add({})),
      instance_live_(family(BuildGauge(), *registry_, "sluice_fleet_instance_live",
                            "Per instance of the fleet as this one sees it: 1 while it may "
                            "be running (its lease and grace not yet over)")),
      instance_applied_(BuildGauge()
                            .Name("sluice_fleet_instance_applied")
                            .Help("Per instance: 1 once it applied the fleet's current target")
                            .Register(*registry_)) {
  // sluice_state has a series for every state, 1 for the current one.
  for (const auto s : ingest::kServiceStates) {
    state_.Add({{"state", std::string(ingest::to_string(s))}}).Set(0);
  }
  for (const char* reason : kDeadLetterClasses) dead_letters_.Add({{"reason", reason}});
  for (const auto& topic : info.topics) {
    if (!topic.starts_with("^")) consumed_.Add({{"topic", topic}});
  }
  BuildGauge()
      .Name("sluice_build_info")
      .Help("Always 1; the labels say which Sluice runs")
      .Register(*registry_)
      .Add({{"version", info.version}, {"revision", info.revision}})
      .Set(1);
  BuildGauge()
      .Name("sluice_spool_max_bytes")
      .Help("spool.max_bytes: the spool's size limit")
      .Register(*registry_)
      .Add({})
      .Set(static_cast<double>(info.spool_max_bytes));
  for (size_t c = 0; c < last_db_errors_.size(); ++c) {
    db_errors_.Add({{"class", storage::to_string(static_cast<storage::DbErrorClass>(c))}});
  }
}

void Metrics::observe_batch(const ingest::WriteReport& r) {
  std::lock_guard lock(mu_);
  for (const auto& t : r.tables) {
    rows_inserted_.Add({{"table", t.name}}).Increment(static_cast<double>(t.rows));
  }
  for (const auto& [reason, n] : r.dead_letter_classes) {
    dead_letters_.Add({{"reason", reason}}).Increment(static_cast<double>(n));
  }
  batch_rows_.Observe(static_cast<double>(r.rows));
  batch_seconds_.Observe(r.seconds);
  const auto now = std::chrono::steady_clock::now();
  recent_.emplace_back(now, r.seconds);
  // Bounded even when nobody scrapes.
  while (recent_.front().first < now - kMaxWindow) recent_.pop_front();
}

void Metrics::mirror(prometheus::Counter& counter, uint64_t total, uint64_t& last) {
  if (total > last) counter.Increment(static_cast<double>(total - last));
  last = std::max(last, total);
}

void Metrics::refresh(const ingest::PipelineStatus& s, const ingest::PipelineStats& stats,
                      int64_t now_ms) {
  std::lock_guard lock(mu_);
  for (const auto& [topic, total] : s.consumed_by_topic) {
    mirror(consumed_.Add({{"topic", topic}}), total, last_consumed_[topic]);
  }
  mirror(spooled_, stats.spooled.load(), last_spooled_);
  mirror(drained_, stats.drained.load(), last_drained_);
  mirror(spool_write_errors_, stats.spool_write_errors.load(), last_spool_write_errors_);
  mirror(batches_, stats.batches_committed.load(), last_batches_);
  mirror(expired_offsets_, stats.expired_offsets.load(), last_expired_);
  spool_events_.Set(static_cast<double>(s.spool_events));
  spool_bytes_.Set(static_cast<double>(s.spool_bytes));
  spool_oldest_age_.Set(s.spool_oldest_age_s);
  for (const auto state : ingest::kServiceStates) {
    state_.Add({{"state", std::string(ingest::to_string(state))}}).Set(s.state == state ? 1 : 0);
  }
  db_up_.Set(s.db_up ? 1 : 0);
  fetch_paused_.Set(s.fetch_paused ? 1 : 0);
  spool_full_.Set(s.spool_full ? 1 : 0);
  schema_repository_up_.Set(s.schemas.repository.empty() ? -1 : s.schemas.reachable ? 1 : 0);
  schema_revisions_.Add({{"origin", "path"}}).Set(static_cast<double>(s.schemas.from_path));
  schema_revisions_.Add({{"origin", "cache"}}).Set(static_cast<double>(s.schemas.from_cache));
  schema_revisions_.Add({{"origin", "repository"}}).Set(static_cast<double>(s.schemas.fetched));
  mirror(schema_fetch_failures_, s.schemas.fetch_failures, last_schema_fetch_failures_);
  drain_rate_limit_.Set(s.drain.rate_limit);
  for (const char* factor :
       {"none", "max_rate", "commit_latency", "replica_lag", "spool_pressure"}) {
    drain_limited_.Add({{"factor", factor}}).Set(s.drain.limiting == factor ? 1 : 0);
  }
  replica_lag_.Set(s.drain.replica_lag_s);
  pause_duration_.Set(
      s.state == ingest::ServiceState::kPaused ? seconds_since(s.paused_since_ms, now_ms) : 0);
  outage_duration_.Set(
      s.state == ingest::ServiceState::kOutage ? seconds_since(s.outage_since_ms, now_ms) : 0);
  for (const auto& t : s.tables) {
    if (t.max_timestamp < 0) continue;
    table_max_timestamp_.Add({{"table", t.table}}).Set(static_cast<double>(t.max_timestamp));
    table_event_lag_.Add({{"table", t.table}})
        .Set(std::max(0.0,
                      static_cast<double>(now_ms) / 1000.0 - static_cast<double>(t.max_timestamp)));
  }
  std::set<std::pair<std::string, int32_t>> now_assigned;
  for (const auto& p : s.partitions) {
    now_assigned.emplace(p.topic, p.partition);
    const prometheus::Labels labels = {{"topic", p.topic},
                                       {"partition", std::to_string(p.partition)}};
    // A value not known now (an orphan: revoked, its spool still draining here) has no
    // series: its last one would stand beside the new owner's for ever.
    auto set_or_remove = [&labels](prometheus::Family<prometheus::Gauge>& family, int64_t v) {
      if (v >= 0) {
        family.Add(labels).Set(static_cast<double>(v));
      } else if (family.Has(labels)) {
        family.Remove(&family.Add(labels));
      }
    };
    const bool orphan = p.mode == "orphan";
    set_or_remove(lag_, orphan ? -1 : p.lag);
    set_or_remove(lag_deprecated_, orphan ? -1 : p.lag);
    set_or_remove(durable_lag_, !orphan && p.high_watermark >= 0 && p.committed >= 0
                                    ? std::max<int64_t>(0, p.high_watermark - p.committed)
                                    : -1);
    set_or_remove(log_start_, orphan ? -1 : p.log_start);
    set_or_remove(position_, orphan ? -1 : p.position);
    for (const char* mode : kModes) {
      auto with_mode = labels;
      with_mode.emplace("mode", mode);
      partition_mode_.Add(with_mode).Set(p.mode == mode ? 1 : 0);
    }
    partition_spool_unreadable_.Add(labels).Set(p.spool_error.empty() ? 0 : 1);
    waiting_for_schema_.Add(labels).Set(p.waits_for_schema.empty() ? 0 : 1);
  }
  // A partition that moved to another instance: its series go, rather than stay at their last
  // value (a lag that never changes again, a mode it is no longer in here).
  for (const auto& [topic, partition] : partitions_) {
    if (!now_assigned.contains({topic, partition})) remove_partition(topic, partition);
  }
  partitions_ = std::move(now_assigned);
  double failing = 0;
  std::array<uint64_t, 5> errors{};
  for (const auto& w : s.writers) {
    failing += w.failing ? 1 : 0;
    for (size_t c = 0; c < errors.size(); ++c) errors[c] += w.errors_by_class[c];
  }
  writers_failing_.Set(failing);
  for (size_t c = 0; c < errors.size(); ++c) {
    mirror(db_errors_.Add({{"class", storage::to_string(static_cast<storage::DbErrorClass>(c))}}),
           errors[c], last_db_errors_[c]);
  }
  const auto cutoff = std::chrono::steady_clock::now() - kMaxWindow;
  while (!recent_.empty() && recent_.front().first < cutoff) recent_.pop_front();
  double longest = 0;
  for (const auto& [when, seconds] : recent_) longest = std::max(longest, seconds);
  transaction_max_.Set(longest);
}

void Metrics::remove_partition(const std::string& topic, int32_t partition) {
  const prometheus::Labels labels = {{"topic", topic}, {"partition", std::to_string(partition)}};
  for (auto* family : {&lag_, &lag_deprecated_, &durable_lag_, &partition_spool_unreadable_,
                       &log_start_, &position_, &waiting_for_schema_}) {
    if (family->Has(labels)) family->Remove(&family->Add(labels));
  }
  for (const char* mode : kModes) {
    auto with_mode = labels;
    with_mode.emplace("mode", mode);
    if (partition_mode_.Has(with_mode)) partition_mode_.Remove(&partition_mode_.Add(with_mode));
  }
}

void Metrics::refresh_fleet(const nlohmann::json& fleet) {
  std::lock_guard lock(mu_);
  if (!fleet.is_object()) return;
  const auto lease = fleet.value("lease", nlohmann::json::object());
  lease_valid_.Set(lease.value("valid", false) ? 1 : 0);
  lease_remaining_.Set(static_cast<double>(lease.value("remaining_ms", int64_t{0})) / 1000.0);
  mirror(
      records_rejected_,
      fleet.value("records_rejected", uint64_t{0}) + fleet.value("records_replayed", uint64_t{0}),
      last_rejected_);
  topic_warnings_.Set(
      static_cast<double>(fleet.value("topic_warnings", nlohmann::json::array()).size()));
  const auto target = fleet.value("target", nlohmann::json());
  target_paused_.Set(target.is_object() ? (target.value("state", "") == "paused" ? 1 : 0) : -1);
  std::set<std::string> now;
  for (const auto& i : fleet.value("instances", nlohmann::json::array())) {
    const std::string id = i.value("id", "");
    now.insert(id);
    instance_live_.Add({{"instance_id", id}}).Set(i.value("live", false) ? 1 : 0);
    instance_applied_.Add({{"instance_id", id}}).Set(i.value("applied_target", false) ? 1 : 0);
  }
  // Series of instances forgotten since: removed, not left at their last value.
  for (const auto& id : fleet_ids_) {
    if (now.contains(id)) continue;
    instance_live_.Remove(&instance_live_.Add({{"instance_id", id}}));
    instance_applied_.Remove(&instance_applied_.Add({{"instance_id", id}}));
  }
  fleet_ids_ = std::move(now);
}

void Metrics::refresh_replicas(const std::vector<ReplicaFreshness::Replica>& replicas) {
  std::lock_guard lock(mu_);
  for (const auto& r : replicas) {
    replica_up_.Add({{"replica", r.endpoint}}).Set(r.error.empty() && r.checked_at_ms > 0 ? 1 : 0);
    for (const auto& t : r.tables) {
      if (const auto epoch = epoch_of_mediawiki(t.max_timestamp)) {
        replica_max_timestamp_.Add({{"replica", r.endpoint}, {"table", t.table}})
            .Set(static_cast<double>(*epoch));
      }
    }
  }
}

std::string Metrics::serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace sluice::admin
