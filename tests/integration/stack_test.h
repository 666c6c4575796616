#pragma once
// The fixture of the integration tests that run `sluice` against a private mariadbd and a Kafka
// broker with one topic: producing TestSchema events whose uuids encode partition and sequence,
// the CLI against the running service, and the exact check — every event once, in offset order
// per partition.
//
// StackTest uses the test broker (librdkafka's mock cluster, eventlogging_m with four
// partitions); RealKafkaTest uses Apache Kafka (the binary's shared KRaft cluster, three nodes)
// with a topic and a consumer group of the test's own.

#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "testing/harness.h"
#include "testing/kafka_cluster.h"

namespace sluice::testing {

using namespace std::chrono_literals;

/// Test-friendly consumer settings: a short session, and new partitions noticed within
/// seconds (librdkafka's metadata refresh is five minutes by default).
inline const std::map<std::string, std::string> kShortSession = {
    {"session.timeout.ms", "6000"},
    {"heartbeat.interval.ms", "500"},
    {"topic.metadata.refresh.interval.ms", "2000"}};

class StackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<MariaDb>(dir_.file("mariadb"));
    start_kafka();
    seq_.assign(static_cast<size_t>(partitions_), 0);
    producer_ = std::make_unique<Producer>(bootstrap_, "none", idempotent_producer_);
  }

  /// Starts the broker and the topic; sets bootstrap_, topic_, partitions_ and group_.
  virtual void start_kafka() {
    broker_ = std::make_unique<Broker>(
        std::vector<std::string>{topic_ + ":" + std::to_string(partitions_)}, dir_.path());
    bootstrap_ = broker_->bootstrap();
  }

  /// Writes the config (always the same file) for `db` (default: db_); `more_yaml` adds
  /// top-level sections.
  std::string config(const std::string& spool_lines = "", const std::string& admin_lines = "",
                     const MariaDb* db = nullptr, const std::string& more_yaml = "",
                     const std::string& instance_id = "", const std::string& mariadb_lines = "") {
    return write_config(dir_, bootstrap_, db != nullptr ? *db : *db_, {topic_}, group_,
                        {.extra_yaml = "batch:\n  max_rows: 500\n  max_delay_ms: 100\n" + more_yaml,
                         .kafka_properties = kShortSession,
                         .mariadb_lines = mariadb_lines,
                         .admin_lines = admin_lines,
                         .spool_lines = spool_lines,
                         .instance_id = instance_id});
  }

  /// config() with `replicas` (replicas_lines) for it to watch.
  std::string config_watching(const std::string& replicas) {
    return config("", "", nullptr, "", "", replicas);
  }

  /// Produces `count` TestSchema events per partition, continuing each partition's sequence.
  void produce(size_t count) {
    for (size_t i = 0; i < count; ++i) {
      for (int32_t p = 0; p < partitions_; ++p) {
        producer_->produce(
            topic_, p,
            EventFactory::good(3, 1, static_cast<uint32_t>(p), seq_[static_cast<size_t>(p)]++));
      }
    }
    producer_->flush();
  }

  uint64_t produced() const {
    uint64_t n = 0;
    for (const auto s : seq_) n += s;
    return n;
  }

  /// Runs `sluice <cmd> --admin URL [args]`; returns the exit code, output in `out`.
  int cli(const Process& sluice, const std::vector<std::string>& args, std::string& out) {
    std::string url;
    EXPECT_TRUE(wait_until([&] { return !(url = admin_url(sluice)).empty(); }, 10s));
    std::vector<std::string> argv = {binary_dir() + "/main/sluice"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--admin", url});
    return run_command(argv, out);
  }

  /// Sluice started on config(), and `events` per partition produced and written. A failure
  /// is recorded: the caller asserts !HasFailure().
  std::unique_ptr<Process> start_written(size_t events) {
    auto sluice = start_sluice(dir_, config());
    produce(events);
    EXPECT_TRUE(wait_for_all()) << sluice->log();
    return sluice;
  }

  /// start_written, then paused for `reason`.
  std::unique_ptr<Process> start_written_then_paused(size_t events, const std::string& reason) {
    auto sluice = start_written(events);
    std::string out;
    EXPECT_EQ(cli(*sluice, {"pause", "--reason", reason}, out), 0) << out;
    return sluice;
  }

  nlohmann::json status(const Process& sluice) {
    std::string out;
    if (cli(sluice, {"status", "--json"}, out) != 0) return nlohmann::json();
    return nlohmann::json::parse(out, nullptr, false);
  }

  int64_t sluice_connections(MariaDb* db = nullptr) {
    return (db != nullptr ? db : db_.get())
        ->scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'sluice'");
  }

  int64_t rows(MariaDb* db = nullptr) {
    try {
      return (db != nullptr ? db : db_.get())->scalar("SELECT COUNT(*) FROM TestSchema_1");
    } catch (const std::exception&) {
      return 0;
    }
  }

  /// The sum of sluice_offsets' next offsets in `db` (default db_); -1 before Sluice has
  /// created the table (it does at its first contact with MariaDB).
  int64_t stored_offsets(MariaDb* db = nullptr) {
    try {
      return (db != nullptr ? db : db_.get())
          ->scalar("SELECT COALESCE(SUM(next_offset), 0) FROM sluice_offsets");
    } catch (const std::exception&) {
      return -1;
    }
  }

  /// sluice_offsets of `db` (default db_) covers every offset produced.
  bool wait_for_all(std::chrono::seconds timeout = 180s, MariaDb* db = nullptr) {
    return wait_until([&] { return stored_offsets(db) == static_cast<int64_t>(produced()); },
                      timeout);
  }

  /// Every event once, in offset order per partition, in `db` (default db_). `lost` lists,
  /// per partition, sequences that may be missing (expired from Kafka unread).
  void verify_exact(MariaDb* db = nullptr,
                    const std::map<uint32_t, std::set<uint64_t>>& lost = {}) {
    MariaDb& target = db != nullptr ? *db : *db_;
    const auto stored = target.query("SELECT uuid FROM TestSchema_1 ORDER BY id");
    size_t expected = produced();
    for (const auto& [p, seqs] : lost) expected -= seqs.size();
    ASSERT_EQ(stored.size(), expected);
    std::map<uint32_t, int64_t> last;
    std::map<uint32_t, uint64_t> count;
    std::set<std::string> seen;
    for (const auto& r : stored) {
      ASSERT_TRUE(seen.insert(*r[0]).second) << "duplicate " << *r[0];
      uint32_t t = 0, p = 0;
      uint64_t seq = 0;
      EventFactory::parse_uuid(*r[0], t, p, seq);
      if (const auto it = lost.find(p); it != lost.end()) {
        ASSERT_FALSE(it->second.contains(seq)) << "p" << p << " seq " << seq << " was lost";
      }
      auto at = last.find(p);
      if (at != last.end()) {
        EXPECT_LT(at->second, static_cast<int64_t>(seq)) << "order, p" << p;
      }
      last[p] = static_cast<int64_t>(seq);
      ++count[p];
    }
    for (uint32_t p = 0; p < static_cast<uint32_t>(partitions_); ++p) {
      const auto it = lost.find(p);
      EXPECT_EQ(count[p] + (it == lost.end() ? 0 : it->second.size()), seq_[p]) << "p" << p;
    }
  }

  TempDir dir_;
  std::unique_ptr<MariaDb> db_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<Producer> producer_;
  std::string bootstrap_;
  std::string topic_ = "eventlogging_m";
  std::string group_ = "m";
  int32_t partitions_ = 4;
  bool idempotent_producer_ = false;
  std::vector<uint64_t> seq_;
};

/// The same stack on Apache Kafka: the test binary's three-node cluster, a topic and a group
/// named after the test.
class RealKafkaTest : public StackTest {
 protected:
  void start_kafka() override {
    cluster_ = &KafkaCluster::shared(3);
    bootstrap_ = cluster_->bootstrap();
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    // The process id too: a test run again against the same cluster starts on a fresh topic.
    topic_ = "el_" + std::string(info->name()).substr(0, 60) + "_" + std::to_string(::getpid());
    group_ = topic_;
    idempotent_producer_ = true;
    cluster_->create_topic(topic_, partitions_);
  }

  KafkaCluster* cluster_ = nullptr;
};

}  // namespace sluice::testing
