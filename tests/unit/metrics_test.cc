#include "admin/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::admin {
namespace {

/// The value of one series in the exposition text ("name{labels}" as serialized), or -1.
double value_of(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(MetricsTest, SeriesWithKnownLabelsExistAtZeroFromTheStart) {
  Metrics m({.version = "1.2.3",
             .revision = "abc",
             .spool_max_bytes = 1 << 20,
             .topics = {"eventlogging_A", "^eventlogging_.*"}});
  const auto text = m.serialize();
  EXPECT_EQ(value_of(text, "sluice_events_consumed_total{topic=\"eventlogging_A\"}"), 0);
  EXPECT_EQ(text.find("topic=\"^"), std::string::npos) << "a pattern is not a topic";
  for (const char* reason : Metrics::kDeadLetterClasses) {
    EXPECT_EQ(value_of(text, std::string("sluice_dead_letters_total{reason=\"") + reason + "\"}"),
              0)
        << reason;
  }
  for (const char* state :
       {"starting", "running", "paused", "draining", "outage", "fleet_unreachable", "stopping"}) {
    EXPECT_EQ(value_of(text, std::string("sluice_state{state=\"") + state + "\"}"), 0) << state;
  }
  EXPECT_EQ(value_of(text, "sluice_build_info{revision=\"abc\",version=\"1.2.3\"}"), 1) << text;
  EXPECT_EQ(value_of(text, "sluice_spool_max_bytes"), 1 << 20);
  EXPECT_EQ(value_of(text, "sluice_pause_duration_seconds"), 0);
  EXPECT_EQ(value_of(text, "sluice_outage_duration_seconds"), 0);
}

TEST(MetricsTest, TheFleetAsThisInstanceSeesItAndNoSeriesOfAForgottenInstance) {
  Metrics m;
  auto fleet = nlohmann::json::parse(R"({
    "lease": {"valid": false, "remaining_ms": -2500},
    "records_rejected": 3, "records_replayed": 1,
    "topic_warnings": ["replication factor 1"],
    "target": {"state": "paused"},
    "instances": [{"id": "host-a", "live": true, "applied_target": true},
                  {"id": "host-b", "live": false, "applied_target": false}]})");
  m.refresh_fleet(fleet);
  auto text = m.serialize();
  EXPECT_EQ(value_of(text, "sluice_fleet_lease_valid"), 0);
  EXPECT_EQ(value_of(text, "sluice_fleet_lease_remaining_seconds"), -2.5);
  EXPECT_EQ(value_of(text, "sluice_fleet_records_rejected_total"), 4);
  EXPECT_EQ(value_of(text, "sluice_fleet_topic_warnings"), 1);
  EXPECT_EQ(value_of(text, "sluice_fleet_target_paused"), 1);
  EXPECT_EQ(value_of(text, "sluice_fleet_instance_live{instance_id=\"host-b\"}"), 0);
  EXPECT_EQ(value_of(text, "sluice_fleet_instance_applied{instance_id=\"host-a\"}"), 1);
  fleet["instances"].erase(1);  // host-b forgotten
  fleet["records_rejected"] = 5;
  m.refresh_fleet(fleet);
  text = m.serialize();
  EXPECT_EQ(text.find("host-b"), std::string::npos) << "a forgotten instance's series stays";
  EXPECT_EQ(value_of(text, "sluice_fleet_records_rejected_total"), 6);
}

TEST(MetricsTest, PauseAndOutageDurationsCountFromWhenTheyBegan) {
  Metrics m;
  ingest::PipelineStats stats;
  ingest::PipelineStatus s;
  s.state = ingest::ServiceState::kPaused;
  s.paused_since_ms = 1'700'000'000'000;
  m.refresh(s, stats, 1'700'000'090'500);
  auto text = m.serialize();
  EXPECT_EQ(value_of(text, "sluice_pause_duration_seconds"), 90.5);
  EXPECT_EQ(value_of(text, "sluice_outage_duration_seconds"), 0);
  EXPECT_EQ(value_of(text, "sluice_state{state=\"paused\"}"), 1);

  s.state = ingest::ServiceState::kOutage;
  s.outage_since_ms = 1'700'000'100'000;
  s.spool_full = true;
  m.refresh(s, stats, 1'700'000'400'000);
  text = m.serialize();
  EXPECT_EQ(value_of(text, "sluice_pause_duration_seconds"), 0);
  EXPECT_EQ(value_of(text, "sluice_outage_duration_seconds"), 300);
  EXPECT_EQ(value_of(text, "sluice_spool_full"), 1);

  s.state = ingest::ServiceState::kRunning;
  m.refresh(s, stats, 1'700'000'500'000);
  EXPECT_EQ(value_of(m.serialize(), "sluice_outage_duration_seconds"), 0);
}

TEST(MetricsTest, EachPartitionsModeAndDurableLagAndNoSeriesOfAPartitionThatMovedAway) {
  Metrics m;
  ingest::PipelineStats stats;
  ingest::PipelineStatus s;
  s.state = ingest::ServiceState::kRunning;
  // Partition 0 drains a spool: Kafka's position is at the end (consumer lag 0), yet 9,000
  // events are not in MariaDB. Partition 1's spool block is unreadable.
  s.partitions.push_back({.topic = "t",
                          .partition = 0,
                          .mode = "draining",
                          .position = 10'000,
                          .committed = 1'000,
                          .high_watermark = 10'000,
                          .lag = 0,
                          .spool_error = "",
                          .log_start = 400,
                          .waits_for_schema = ""});
  s.partitions.push_back({.topic = "t",
                          .partition = 1,
                          .mode = "halted",
                          .position = 50,
                          .committed = 40,
                          .high_watermark = 60,
                          .lag = 10,
                          .spool_error = "block 40..49 does not decode",
                          .log_start = -1,
                          .waits_for_schema = ""});
  m.refresh(s, stats, 0);
  auto text = m.serialize();
  EXPECT_EQ(value_of(text, "sluice_consumer_lag_events{partition=\"0\",topic=\"t\"}"), 0);
  EXPECT_EQ(value_of(text, "sluice_consumer_lag_events{partition=\"1\",topic=\"t\"}"), 10);
  EXPECT_EQ(value_of(text, "sluice_consumer_lag{partition=\"1\",topic=\"t\"}"), 10)
      << "the old name stays one release";
  EXPECT_EQ(value_of(text, "sluice_durable_lag_events{partition=\"0\",topic=\"t\"}"), 9000);
  EXPECT_EQ(value_of(text, "sluice_durable_lag_events{partition=\"1\",topic=\"t\"}"), 20);
  EXPECT_EQ(value_of(text, "sluice_kafka_log_start_offset{partition=\"0\",topic=\"t\"}"), 400);
  EXPECT_EQ(value_of(text, "sluice_position_offset{partition=\"0\",topic=\"t\"}"), 10000);
  EXPECT_EQ(value_of(text, "sluice_partition_mode{mode=\"draining\",partition=\"0\",topic=\"t\"}"),
            1);
  EXPECT_EQ(value_of(text, "sluice_partition_mode{mode=\"direct\",partition=\"0\",topic=\"t\"}"),
            0);
  EXPECT_EQ(value_of(text, "sluice_partition_mode{mode=\"halted\",partition=\"1\",topic=\"t\"}"),
            1);
  EXPECT_EQ(value_of(text, "sluice_partition_spool_unreadable{partition=\"1\",topic=\"t\"}"), 1);
  EXPECT_EQ(value_of(text, "sluice_partition_spool_unreadable{partition=\"0\",topic=\"t\"}"), 0);

  // Partition 1 moves to another instance: none of its series stay behind.
  s.partitions.pop_back();
  s.partitions[0].mode = "direct";
  m.refresh(s, stats, 0);
  text = m.serialize();
  EXPECT_EQ(text.find("partition=\"1\""), std::string::npos) << text;
  EXPECT_EQ(value_of(text, "sluice_partition_mode{mode=\"direct\",partition=\"0\",topic=\"t\"}"),
            1);
  EXPECT_EQ(value_of(text, "sluice_partition_mode{mode=\"draining\",partition=\"0\",topic=\"t\"}"),
            0);

  // Revoked while its spool still drains here (an orphan): its mode stays, its Kafka positions
  // go (the new owner exports them).
  s.partitions[0] = {.topic = "t",
                     .partition = 0,
                     .mode = "orphan",
                     .position = -1,
                     .committed = 1'000,
                     .high_watermark = -1,
                     .lag = -1,
                     .spool_error = "",
                     .log_start = -1,
                     .waits_for_schema = ""};
  m.refresh(s, stats, 0);
  text = m.serialize();
  EXPECT_EQ(value_of(text, "sluice_partition_mode{mode=\"orphan\",partition=\"0\",topic=\"t\"}"),
            1);
  for (const char* gone : {"sluice_consumer_lag{", "sluice_consumer_lag_events{",
                           "sluice_durable_lag_events{",
                           "sluice_position_offset{", "sluice_kafka_log_start_offset{"}) {
    EXPECT_EQ(text.find(gone), std::string::npos) << gone << "\n" << text;
  }
}

TEST(MetricsTest, FreshnessOfEachTableOnThePrimaryAndOnEachReplica) {
  Metrics m;
  ingest::PipelineStats stats;
  ingest::PipelineStatus s;
  s.tables.push_back({.table = "TestSchema_1", .rows_inserted = 3, .max_timestamp = 1700000000});
  s.tables.push_back({.table = "Empty_1", .rows_inserted = 0, .max_timestamp = -1});
  m.refresh(s, stats, 1'700'000'090'000);
  m.refresh_replicas({{.endpoint = "ro@db2:3306",
                       .error = "",
                       .checked_at_ms = 1,
                       .tables = {{"TestSchema_1", "20231114221300"}, {"Empty_1", ""}}},
                      {.endpoint = "ro@db3:3306",
                       .error = "connection refused",
                       .checked_at_ms = 2,
                       .tables = {}}});
  const auto text = m.serialize();
  EXPECT_EQ(value_of(text, "sluice_table_max_timestamp_seconds{table=\"TestSchema_1\"}"),
            1700000000);
  EXPECT_EQ(text.find("sluice_table_max_timestamp_seconds{table=\"Empty_1\"}"), std::string::npos)
      << "no series for a table without a timestamp yet";
  // The event-time lag per table, as of the refresh: 90 s behind.
  EXPECT_EQ(value_of(text, "sluice_table_event_lag_seconds{table=\"TestSchema_1\"}"), 90);
  EXPECT_EQ(text.find("sluice_table_event_lag_seconds{table=\"Empty_1\"}"), std::string::npos);
  EXPECT_EQ(value_of(text, "sluice_replica_up{replica=\"ro@db2:3306\"}"), 1);
  EXPECT_EQ(value_of(text, "sluice_replica_up{replica=\"ro@db3:3306\"}"), 0);
  // 2023-11-14 22:13:00 UTC
  EXPECT_EQ(value_of(text,
                     "sluice_replica_max_timestamp_seconds{replica=\"ro@db2:3306\","
                     "table=\"TestSchema_1\"}"),
            1699999980);
}

}  // namespace
}  // namespace sluice::admin
