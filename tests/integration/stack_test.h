#pragma once
// The fixture of the integration tests that run one `sluice` against a private mariadbd and the
// test broker with one topic of four partitions (eventlogging_m): producing TestSchema events
// whose uuids encode partition and sequence, the CLI against the running service, and the exact
// check — every event once, in offset order per partition.

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "testing/harness.h"

namespace sluice::testing {

using namespace std::chrono_literals;

inline const std::map<std::string, std::string> kShortSession = {{"session.timeout.ms", "6000"},
                                                                 {"heartbeat.interval.ms", "500"}};

class StackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<MariaDb>(dir_.file("mariadb"));
    broker_ = std::make_unique<Broker>(std::vector<std::string>{"eventlogging_m:4"}, dir_.path());
    producer_ = std::make_unique<Producer>(broker_->bootstrap());
  }

  /// Writes the config (always the same file) for `db` (default: db_); `more_yaml` adds
  /// top-level sections.
  std::string config(const std::string& spool_lines = "", const std::string& admin_lines = "",
                     const MariaDb* db = nullptr, const std::string& more_yaml = "") {
    return write_config(dir_, broker_->bootstrap(), db != nullptr ? *db : *db_, {"eventlogging_m"},
                        "m",
                        {.extra_yaml = "batch:\n  max_rows: 500\n  max_delay_ms: 100\n" + more_yaml,
                         .kafka_properties = kShortSession,
                         .admin_lines = admin_lines,
                         .spool_lines = spool_lines});
  }

  /// Produces `count` TestSchema events per partition, continuing each partition's sequence.
  void produce(size_t count) {
    for (size_t i = 0; i < count; ++i) {
      for (uint32_t p = 0; p < 4; ++p) {
        producer_->produce("eventlogging_m", static_cast<int32_t>(p),
                           EventFactory::good(3, 1, p, seq_[p]++));
      }
    }
    producer_->flush();
  }

  uint64_t produced() const { return seq_[0] + seq_[1] + seq_[2] + seq_[3]; }

  /// Runs `sluice <cmd> --admin URL [args]`; returns the exit code, output in `out`.
  int cli(const Process& sluice, const std::vector<std::string>& args, std::string& out) {
    std::string url;
    EXPECT_TRUE(wait_until([&] { return !(url = admin_url(sluice)).empty(); }, 10s));
    std::vector<std::string> argv = {binary_dir() + "/main/sluice"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--admin", url});
    return run_command(argv, out);
  }

  nlohmann::json status(const Process& sluice) {
    std::string out;
    if (cli(sluice, {"status", "--json"}, out) != 0) return nlohmann::json();
    return nlohmann::json::parse(out, nullptr, false);
  }

  int64_t sluice_connections() {
    return db_->scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'sluice'");
  }

  int64_t rows() {
    try {
      return db_->scalar("SELECT COUNT(*) FROM TestSchema_1");
    } catch (const std::exception&) {
      return 0;
    }
  }

  bool wait_for_all(std::chrono::seconds timeout = 180s) {
    return wait_until(
        [&] {
          try {
            return db_->scalar("SELECT COALESCE(SUM(next_offset), 0) FROM sluice_offsets") ==
                   static_cast<int64_t>(produced());
          } catch (const std::exception&) {
            return false;
          }
        },
        timeout);
  }

  /// Every event once, in offset order per partition.
  void verify_exact() {
    const auto stored = db_->query("SELECT uuid FROM TestSchema_1 ORDER BY id");
    ASSERT_EQ(stored.size(), produced());
    std::map<uint32_t, int64_t> last;
    std::set<std::string> seen;
    for (const auto& r : stored) {
      ASSERT_TRUE(seen.insert(*r[0]).second) << "duplicate " << *r[0];
      uint32_t t = 0, p = 0;
      uint64_t seq = 0;
      EventFactory::parse_uuid(*r[0], t, p, seq);
      auto it = last.find(p);
      if (it != last.end()) {
        EXPECT_LT(it->second, static_cast<int64_t>(seq)) << "order, p" << p;
      }
      last[p] = static_cast<int64_t>(seq);
    }
    for (uint32_t p = 0; p < 4; ++p) EXPECT_EQ(last[p] + 1, static_cast<int64_t>(seq_[p]));
  }

  TempDir dir_;
  std::unique_ptr<MariaDb> db_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<Producer> producer_;
  uint64_t seq_[4] = {0, 0, 0, 0};
};

}  // namespace sluice::testing
