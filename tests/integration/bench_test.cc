// Integration tests of `sluice bench`: the real binary's load test against a private mariadbd.
// They check what the command promises, not its speed: every synthetic event written once per
// run, only scratch tables touched, and those dropped unless --keep.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ingest/drain_governor.h"
#include "testing/harness.h"

namespace sluice::testing {
namespace {

class BenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<MariaDb>(dir_.file("mariadb"));
    db_->start();
    // No Kafka is involved: the bench's source is in-process.
    config_ = write_config(dir_, "127.0.0.1:1", *db_, {"unused"}, "bench",
                           {.extra_yaml = "log:\n  level: warn\n"});
  }

  int bench(const std::vector<std::string>& args, std::string& output) {
    std::vector<std::string> argv{binary_dir() + "/main/sluice", "bench", "--config", config_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, output);
  }

  /// bench(args), which must exit 0 (else the failure shows its output).
  ::testing::AssertionResult bench_ok(const std::vector<std::string>& args, std::string& output) {
    const int code = bench(args, output);
    if (code == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "exit " << code << "\n" << output;
  }

  int64_t tables_in_log() {
    return db_->scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'log'");
  }

  TempDir dir_;
  std::unique_ptr<MariaDb> db_;
  std::string config_;
};

TEST_F(BenchTest, SweepWritesEveryEventOncePerRunAndLeavesNoTableBehind) {
  ASSERT_EQ(tables_in_log(), 0);
  std::string out;
  ASSERT_TRUE(bench_ok(
      {"--events", "3000", "--batch-rows", "500,1000", "--writers", "1,2", "--json"}, out));
  const auto result = nlohmann::json::parse(out);
  ASSERT_EQ(result["runs"].size(), 4u) << out;
  for (const auto& run : result["runs"]) {
    EXPECT_FALSE(run.contains("error")) << run.dump();
    EXPECT_EQ(run["rows"], 3000) << run.dump();
    // 3000 rows in batches of at most batch_rows: at least that many transactions.
    EXPECT_GE(run["batches"].get<int>(), 3000 / run["batch_rows"].get<int>()) << run.dump();
    EXPECT_GT(run["rows_per_s"].get<double>(), 0);
    EXPECT_LE(run["batch_p50_ms"].get<double>(), run["batch_p99_ms"].get<double>());
  }
  EXPECT_GT(result["backlog"]["drain_seconds"].get<double>(), 0);
  EXPECT_EQ(tables_in_log(), 0) << "the scratch tables were not dropped";
}

TEST_F(BenchTest, KeepLeavesTheLastRunsRowsExactlyOnceAndTouchesNoProductionTable) {
  std::string out;
  ASSERT_TRUE(bench_ok(
      {"--events", "2500", "--batch-rows", "1000", "--writers", "2", "--keep", "--json"}, out));
  const auto result = nlohmann::json::parse(out);
  const std::string table = result["table"];
  ASSERT_TRUE(table.starts_with("sluice_bench_NavigationTiming_")) << table;
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM `" + table + "`"), 2500);
  EXPECT_EQ(db_->scalar("SELECT COUNT(DISTINCT uuid) FROM `" + table + "`"), 2500);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM `" + table + "` WHERE timestamp IS NULL"), 0);
  EXPECT_EQ(db_->scalar("SELECT SUM(next_offset) FROM sluice_bench_offsets"), 2500);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_bench_dead_letter"), 0);
  // Only scratch tables exist: no sluice_offsets, no schema table of the production layout.
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                        "'log' AND table_name NOT LIKE 'sluice\\_bench\\_%'"),
            0);
}

TEST_F(BenchTest, HumanOutputAnswersHowLongABacklogTakes) {
  std::string out;
  ASSERT_TRUE(bench_ok(
      {"--events", "1000", "--batch-rows", "500", "--writers", "1", "--backlog", "2000000"}, out));
  EXPECT_NE(out.find("rows/s"), std::string::npos) << out;
  EXPECT_NE(out.find("a backlog of 2,000,000 events drains in about"), std::string::npos) << out;
  EXPECT_NE(out.find("scratch tables dropped"), std::string::npos) << out;
  EXPECT_EQ(tables_in_log(), 0);
}

TEST_F(BenchTest, WithReplicasItSaysHowFarBehindTheyFellAndHowLongADrainWithinTheBoundTakes) {
  // A primary with a binary log and a real replica of it.
  MariaDb primary(dir_.file("primary"), kPrimaryOptions);
  MariaDb replica(dir_.file("replica"), kReplicaOptions);
  start_replication(primary, replica);
  config_ = write_config(dir_, "127.0.0.1:1", primary, {"unused"}, "bench",
                         {.extra_yaml = "log:\n  level: warn\ndrain:\n  max_replica_lag_s: 30\n",
                          .mariadb_lines = replicas_lines(replica)});
  std::string out;
  ASSERT_TRUE(bench_ok({"--events", "4000", "--batch-rows", "1000", "--writers", "1,2", "--backlog",
                        "1000000", "--json"},
                       out));
  const auto result = nlohmann::json::parse(out);
  ASSERT_EQ(result["runs"].size(), 2u) << out;
  for (const auto& run : result["runs"]) {
    ASSERT_EQ(run["replicas"].size(), 1u) << run.dump();
    const auto& r = run["replicas"][0];
    EXPECT_FALSE(r.contains("error")) << r.dump();
    EXPECT_TRUE(r["caught_up"].get<bool>()) << r.dump();
    EXPECT_GE(r["behind_at_end_s"].get<double>(), 0) << r.dump();
    EXPECT_GT(r["apply_rows_per_s"].get<double>(), 0) << r.dump();
    EXPECT_LE(r["apply_rows_per_s"].get<double>(), run["rows_per_s"].get<double>() * 1.01)
        << "a replica cannot apply a run faster than the primary took it: " << run.dump();
  }
  const auto& backlog = result["backlog"];
  EXPECT_EQ(backlog["max_replica_lag_s"], 30) << out;
  EXPECT_GE(backlog["drain_seconds_within_replica_lag"].get<double>(),
            backlog["drain_seconds"].get<double>())
      << out;
  // The replica applied the drops too: no scratch table is left on it.
  ASSERT_TRUE(wait_until(
      [&] {
        return replica.scalar(
                   "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'log'") ==
               0;
      },
      std::chrono::seconds(60)));

  // Human output: the answer with the replicas in it.
  ASSERT_TRUE(bench_ok(
      {"--events", "2000", "--batch-rows", "1000", "--writers", "1", "--backlog", "1000000"}, out));
  EXPECT_NE(out.find("behind at the end"), std::string::npos) << out;
  EXPECT_NE(out.find("the replicas kept up"), std::string::npos) << out;

  // A replica that applies nothing (its SQL thread stopped): waited for a while, then the
  // answer is the drain held to its floor.
  replica.exec("STOP SLAVE SQL_THREAD");
  ASSERT_TRUE(bench_ok({"--events", "2000", "--batch-rows", "1000", "--writers", "1", "--backlog",
                        "1000000", "--json"},
                       out));
  const auto stuck = nlohmann::json::parse(out);
  const auto& r = stuck["runs"][0]["replicas"][0];
  EXPECT_FALSE(r["caught_up"].get<bool>()) << out;
  EXPECT_GE(r["behind_at_end_s"].get<double>(), 30) << out;
  EXPECT_FALSE(stuck["backlog"]["replicas_keep_up"].get<bool>()) << out;
  EXPECT_NEAR(stuck["backlog"]["drain_seconds_within_replica_lag"].get<double>(),
              1'000'000 / ingest::DrainGovernor::kMinRate, 1)
      << out;
}

TEST_F(BenchTest, UnknownSchemaAndUnreachableDatabaseAreClearErrors) {
  std::string out;
  EXPECT_EQ(bench({"--schema", "NoSuchSchema", "--events", "10"}, out), 2);
  EXPECT_NE(out.find("NoSuchSchema"), std::string::npos) << out;

  db_->stop();
  EXPECT_EQ(bench({"--events", "10", "--batch-rows", "10", "--writers", "1"}, out), 1);
  EXPECT_NE(out.find("sluice bench:"), std::string::npos) << out;
}

}  // namespace
}  // namespace sluice::testing
