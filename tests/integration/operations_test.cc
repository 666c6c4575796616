// Integration tests of operating Sluice: metrics that move with the stream, a bounded graceful
// stop under load, SIGHUP retargeting to another MariaDB while paused, and the spool tools.
// The real binary against a private mariadbd (two, for the failover) and the test broker.

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <thread>

#include "admin/admin_client.h"
#include "tests/integration/stack_test.h"

namespace sluice::testing {
namespace {

class OperationsTest : public StackTest {
 protected:
  std::string metrics(const Process& sluice) {
    std::string url;
    EXPECT_TRUE(wait_until([&] { return !(url = admin_url(sluice)).empty(); }, 10s));
    auto reply = admin::http_request(url, "GET", "/metrics", "", "", 5000);
    EXPECT_TRUE(static_cast<bool>(reply));
    return reply ? reply->body : "";
  }

  /// The value of one series (`name` or `name{labels}` exactly as exposed); NaN when absent.
  static double value(const std::string& text, const std::string& series) {
    const std::string head = series + " ";
    for (size_t at = text.find(head); at != std::string::npos; at = text.find(head, at + 1)) {
      if (at == 0 || text[at - 1] == '\n')
        return std::strtod(text.c_str() + at + head.size(), nullptr);
    }
    return std::nan("");
  }
};

TEST_F(OperationsTest, EveryMetricIsPresentAndMovesWithTheStream) {
  auto sluice = start_sluice(dir_, config());
  produce(500);
  std::string reason_a, reason_b;
  producer_->produce("eventlogging_m", 0, EventFactory::bad(0, 1, reason_a));
  producer_->produce("eventlogging_m", 1, EventFactory::bad(2, 2, reason_b));
  producer_->flush();
  const int64_t total = static_cast<int64_t>(produced()) + 2;
  ASSERT_TRUE(wait_until(
      [&] {
        return db_->scalar("SELECT COALESCE(SUM(next_offset), 0) FROM sluice_offsets") == total;
      },
      120s))
      << sluice->log();
  std::string m;
  // Metrics are mirrored from a status snapshot at most a quarter second old.
  ASSERT_TRUE(wait_until(
      [&] {
        m = metrics(*sluice);
        return value(m, "sluice_consumer_lag{partition=\"3\",topic=\"eventlogging_m\"}") == 0;
      },
      10s))
      << m;
  EXPECT_EQ(value(m, "sluice_events_consumed_total{topic=\"eventlogging_m\"}"), total) << m;
  EXPECT_EQ(value(m, "sluice_rows_inserted_total{table=\"TestSchema_1\"}"), 2000) << m;
  const std::string class_a = reason_a.substr(0, reason_a.find(':'));
  const std::string class_b = reason_b.substr(0, reason_b.find(':'));
  ASSERT_NE(class_a, class_b);
  EXPECT_EQ(value(m, "sluice_dead_letters_total{reason=\"" + class_a + "\"}"), 1) << m;
  EXPECT_EQ(value(m, "sluice_dead_letters_total{reason=\"" + class_b + "\"}"), 1) << m;
  const double batches = value(m, "sluice_batches_committed_total");
  EXPECT_GE(batches, 4) << m;
  EXPECT_EQ(value(m, "sluice_batch_rows_count"), batches) << m;
  EXPECT_EQ(value(m, "sluice_batch_rows_sum"), 2000) << m;
  EXPECT_EQ(value(m, "sluice_batch_seconds_count"), batches) << m;
  EXPECT_GT(value(m, "sluice_batch_seconds_sum"), 0) << m;
  EXPECT_GT(value(m, "sluice_transaction_seconds_max"), 0) << m;
  EXPECT_EQ(value(m, "sluice_state{state=\"running\"}"), 1) << m;
  EXPECT_EQ(value(m, "sluice_state{state=\"paused\"}"), 0) << m;
  EXPECT_EQ(value(m, "sluice_db_up"), 1) << m;
  for (int p = 0; p < 4; ++p) {
    EXPECT_EQ(value(m, "sluice_consumer_lag{partition=\"" + std::to_string(p) +
                           "\",topic=\"eventlogging_m\"}"),
              0)
        << m;
  }
  EXPECT_EQ(value(m, "sluice_spool_events"), 0) << m;
  EXPECT_EQ(value(m, "sluice_events_spooled_total"), 0) << m;

  // Status: lag to the high watermark per partition, freshness per table equal to the table's.
  auto s = status(*sluice);
  for (const auto& p : s["partitions"]) {
    EXPECT_EQ(p["lag"], 0) << s.dump();
    EXPECT_EQ(p["high_watermark"], p["position"]) << s.dump();
  }
  ASSERT_EQ(s["tables"].size(), 1u) << s.dump();
  EXPECT_EQ(s["tables"][0]["max_timestamp"],
            *db_->query("SELECT MAX(timestamp) FROM TestSchema_1")[0][0]);

  // Paused: events go to the spool, and the metrics say so.
  std::string out;
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "metrics"}, out), 0) << out;
  produce(100);
  ASSERT_TRUE(wait_until(
      [&] {
        m = metrics(*sluice);
        return value(m, "sluice_spool_events") == 400;
      },
      60s))
      << m;
  EXPECT_EQ(value(m, "sluice_state{state=\"paused\"}"), 1) << m;
  EXPECT_EQ(value(m, "sluice_state{state=\"running\"}"), 0) << m;
  EXPECT_EQ(value(m, "sluice_events_spooled_total"), 400) << m;
  EXPECT_GT(value(m, "sluice_spool_bytes"), 0) << m;
  EXPECT_GE(value(m, "sluice_spool_oldest_age_seconds"), 0) << m;

  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  ASSERT_TRUE(wait_until(
      [&] {
        return db_->scalar("SELECT COALESCE(SUM(next_offset), 0) FROM sluice_offsets") ==
               total + 400;
      },
      120s))
      << sluice->log();
  ASSERT_TRUE(wait_until(
      [&] {
        m = metrics(*sluice);
        return value(m, "sluice_spool_events") == 0 &&
               value(m, "sluice_state{state=\"running\"}") == 1;
      },
      30s))
      << m;
  EXPECT_EQ(value(m, "sluice_events_drained_total"), 400) << m;
  EXPECT_EQ(value(m, "sluice_rows_inserted_total{table=\"TestSchema_1\"}"), 2400) << m;
  EXPECT_EQ(value(m, "sluice_events_consumed_total{topic=\"eventlogging_m\"}"), total + 400) << m;

  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), 0) << sluice->log();
}

TEST_F(OperationsTest, SigtermUnderLoadExitsZeroPromptlyAndARestartIsExact) {
  auto sluice = start_sluice(dir_, config());
  std::atomic<bool> stop_producing{false};
  std::thread producer([&] {
    for (int round = 0; round < 40 && !stop_producing; ++round) {
      produce(100);
      std::this_thread::sleep_for(50ms);
    }
  });
  ASSERT_TRUE(wait_until([&] { return rows() >= 2000; }, 60s)) << sluice->log();
  const auto before = std::chrono::steady_clock::now();
  sluice->signal(SIGTERM);
  const auto code = sluice->wait(30s);
  const auto took = std::chrono::steady_clock::now() - before;
  stop_producing = true;
  producer.join();
  ASSERT_TRUE(code.has_value()) << "no exit within 30 s of SIGTERM\n" << sluice->log();
  EXPECT_EQ(*code, 0) << sluice->log();
  std::cout << "[ measure  ] SIGTERM to exit under load "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";

  auto again = start_sluice(dir_, config(), "sluice-2.log");
  ASSERT_TRUE(wait_for_all()) << again->log();
  verify_exact();
  again->signal(SIGTERM);
  EXPECT_EQ(again->wait(60s), 0) << again->log();
}

}  // namespace
}  // namespace sluice::testing
