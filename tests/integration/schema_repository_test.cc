// Schemas from a schema repository, end to end: the real `sluice` against a private mariadbd,
// the test broker and a folder served over HTTP (or HTTPS with the test's own CA) by
// testing/serve_folder.py. A revision never deployed to disk is fetched, kept and written; a
// revision the repository does not have is dead-lettered naming its URL; while the repository
// is down, events that need it hold their partition — nothing dead-lettered, nothing written
// past them — and everything is written, once and in order, after it returns; over HTTPS a
// certificate from another CA is refused (the events wait), the right one works; Event Platform
// events of two minor versions land in one table that grew a column, once and in order, and a
// version that retypes a field is refused.

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "testing/certificates.h"
#include "testing/harness.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kTopic = "eventlogging_repo";

/// An event of `Remote` (TestSchema's document, served only by the repository) at `revision`.
std::string remote_event(uint32_t partition, uint64_t seq, int revision = 1) {
  return EventFactory::renamed("Remote", revision, 0, partition, seq);
}

class SchemaRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<MariaDb>(dir_.file("mariadb"));
    broker_ = std::make_unique<Broker>(std::vector<std::string>{std::string(kTopic) + ":2"},
                                       dir_.path());
    fs::create_directories(dir_.file("repo/Remote"));
    fs::copy_file(source_dir() + "/schemas/TestSchema/1.json", dir_.file("repo/Remote/1.json"));
  }

  /// Serves the repository folder; returns the server, its port in `port` (0: a free one).
  /// A CA of the test's own, and the repository's certificate for 127.0.0.1 from it.
  void use_tls() {
    certs_ = std::make_unique<Certificates>(dir_, "repo");
    certs_->issue("server", "localhost", "IP:127.0.0.1,DNS:localhost");
  }

  /// With `redirect_to`, every request is answered with a 301 to it.
  std::unique_ptr<Process> serve(int& port, const std::string& tls_args = "",
                                 const std::string& redirect_to = "") {
    std::vector<std::string> argv = {"python3", source_dir() + "/testing/serve_folder.py",
                                     dir_.file("repo"), "--port", std::to_string(port)};
    if (!tls_args.empty()) {
      argv.insert(argv.end(), {"--cert", certs_->file("server.pem"), "--key",
                               certs_->file("server.key")});
    }
    if (!redirect_to.empty()) argv.insert(argv.end(), {"--redirect-to", redirect_to});
    auto server = std::make_unique<Process>(argv, dir_.file("serve-" + std::to_string(++served_)));
    EXPECT_TRUE(wait_until([&] { return server->log().find("port ") != std::string::npos; }, 20s))
        << server->log();
    const std::string log = server->log();
    port = std::stoi(log.substr(log.find("port ") + 5));
    return server;
  }

  std::string config(const std::string& url, const std::string& more = "",
                     const std::string& group = "repo") {
    return write_config(dir_, broker_->bootstrap(), *db_, {kTopic}, group,
                        {.extra_yaml = "batch:\n  max_rows: 50\n  max_delay_ms: 100\n",
                         .schemas_lines = "  repository_url: \"" + url + "\"\n  cache_path: \"" +
                                          dir_.file("cache") + "\"\n  timeout_ms: 2000\n" + more});
  }

  nlohmann::json status(const Process& sluice) {
    std::string url;
    if (!wait_until([&] { return !(url = admin_url(sluice)).empty(); }, 20s)) return {};
    std::string out;
    if (run_command({binary_dir() + "/main/sluice", "status", "--json", "--admin", url}, out) !=
        0) {
      return {};
    }
    return nlohmann::json::parse(out, nullptr, false);
  }

  /// `sluice status` as an operator reads it.
  std::string status_text(const Process& sluice) {
    std::string out;
    run_command({binary_dir() + "/main/sluice", "status", "--admin", admin_url(sluice)}, out);
    return out;
  }

  /// The query's scalar, or -1 while its table is not there yet.
  int64_t scalar(const std::string& sql) {
    try {
      return db_->scalar(sql);
    } catch (const std::exception&) {
      return -1;
    }
  }
  int64_t rows(const std::string& table) { return scalar("SELECT COUNT(*) FROM " + table); }
  int64_t next_offset(int32_t partition) {
    return scalar("SELECT next_offset FROM sluice_offsets WHERE kafka_partition = " +
                  std::to_string(partition));
  }
  int64_t all_offsets() {
    return scalar("SELECT COALESCE(SUM(next_offset), 0) FROM sluice_offsets");
  }

  /// Every event of `table` once, and per partition in sequence order from 0 to `per_partition`.
  void expect_exact(const std::string& table, size_t per_partition) {
    EXPECT_EQ(EventFactory::exact_fault(db_->query("SELECT uuid FROM " + table + " ORDER BY id"), 0,
                                        per_partition),
              "")
        << table;
  }

  TempDir dir_;
  std::unique_ptr<MariaDb> db_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<Certificates> certs_;
  int served_ = 0;
};

TEST_F(SchemaRepositoryTest, ARevisionNeverDeployedIsFetchedKeptAndWrittenAndA404DeadLetters) {
  int port = 0;
  auto server = serve(port);
  Producer producer(broker_->bootstrap());
  constexpr uint64_t kEach = 200;
  for (uint64_t seq = 0; seq < kEach; ++seq) {
    producer.produce(kTopic, 0, remote_event(0, seq));
    producer.produce(kTopic, 1, EventFactory::good(3, 0, 1, seq));
  }
  producer.produce(kTopic, 1, remote_event(1, 999, /*revision=*/2));
  producer.flush();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  auto sluice = start_sluice(dir_, config(url));
  ASSERT_TRUE(wait_until(
      [&] {
        return all_offsets() == static_cast<int64_t>(2 * kEach + 1);
      },
      120s))
      << sluice->log();
  expect_exact("Remote_1", kEach);
  expect_exact("TestSchema_1", kEach);
  const auto dead = db_->query("SELECT reason FROM sluice_dead_letter");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(*dead[0][0], "unknown_revision: Remote revision 2 is not at " + url +
                             "/Remote/2.json (HTTP 404)");
  EXPECT_TRUE(fs::exists(dir_.file("cache/Remote/1.json")));
  nlohmann::json s;  // the snapshot is republished every quarter second: the latest one
  ASSERT_TRUE(wait_until(
      [&] {
        s = status(*sluice);
        return s.is_object() && s["schemas"].value("fetched", 0) == 1;
      },
      20s))
      << s.dump();
  EXPECT_EQ(s["schemas"]["repository"], url) << s.dump();
  EXPECT_EQ(s["schemas"]["fetched"], 1) << s.dump();
  EXPECT_EQ(s["schemas"]["from_path"], 1) << s.dump();
  EXPECT_EQ(s["schemas"]["not_found"], 1) << s.dump();
  const std::string text = status_text(*sluice);
  EXPECT_NE(text.find("schemas:   1 from "), std::string::npos) << text;
  EXPECT_NE(text.find("1 fetched from " + url + ", 1 not found there"), std::string::npos) << text;
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
}

TEST_F(SchemaRepositoryTest, WhileTheRepositoryIsDownItsEventsWaitAndNothingIsDeadLettered) {
  int port = 0;
  serve(port).reset();  // a port nothing listens on now, for the server started later
  Producer producer(broker_->bootstrap());
  constexpr uint64_t kEach = 400;
  // Partition 0: 100 known events, then 200 of a revision only the repository has, then 100
  // known events. Partition 1: known events only, written meanwhile.
  for (uint64_t seq = 0; seq < kEach; ++seq) {
    producer.produce(kTopic, 0, seq >= 100 && seq < 300 ? remote_event(0, seq)
                                                        : EventFactory::good(3, 0, 0, seq));
    producer.produce(kTopic, 1, EventFactory::good(3, 0, 1, seq));
  }
  producer.flush();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  auto sluice = start_sluice(dir_, config(url));
  ASSERT_TRUE(wait_until(
      [&] {
        return next_offset(1) == static_cast<int64_t>(kEach);
      },
      120s))
      << sluice->log();
  // The repository stays down for a while: partition 0 holds at offset 100.
  std::this_thread::sleep_for(15s);
  EXPECT_EQ(next_offset(0), 100);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
  EXPECT_LE(rows("Remote_1"), 0);
  const auto s = status(*sluice);
  ASSERT_TRUE(s.is_object()) << sluice->log();
  EXPECT_EQ(s["schemas"]["reachable"], false) << s.dump();
  EXPECT_GT(s["schemas"]["fetch_failures"].get<int>(), 1) << s.dump();
  bool waits = false;
  for (const auto& p : s["partitions"]) {
    if (p["partition"] == 0) {
      waits = p.value("waits_for_schema", "").find("schema_pending: Remote revision 1") == 0;
    }
  }
  EXPECT_TRUE(waits) << s.dump();
  const std::string text = status_text(*sluice);
  EXPECT_NE(text.find("REPOSITORY NOT ANSWERING"), std::string::npos) << text;
  EXPECT_NE(text.find("WAITS FOR ITS SCHEMA: schema_pending: Remote revision 1"),
            std::string::npos)
      << text;
  const std::string log = sluice->log();
  EXPECT_NE(log.find("the schema repository does not answer"), std::string::npos) << log;

  // The repository returns on the same address: everything is written, once, in order.
  auto server = serve(port);
  ASSERT_TRUE(wait_until(
      [&] {
        return all_offsets() == static_cast<int64_t>(2 * kEach);
      },
      120s))
      << sluice->log();
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
  EXPECT_EQ(rows("Remote_1"), 200);
  EXPECT_EQ(rows("TestSchema_1"), static_cast<int64_t>(2 * kEach - 200));
  // Partition 0's three runs in sequence order across the two tables.
  const auto got = db_->query(
      "SELECT uuid FROM (SELECT uuid, timestamp FROM TestSchema_1 UNION ALL SELECT uuid, "
      "timestamp FROM Remote_1) AS u");
  std::set<uint64_t> seqs0;
  for (const auto& r : got) {
    uint32_t t = 0, p = 0;
    uint64_t seq = 0;
    EventFactory::parse_uuid(*r[0], t, p, seq);
    if (p == 0) {
      EXPECT_TRUE(seqs0.insert(seq).second) << "duplicate " << seq;
    }
  }
  EXPECT_EQ(seqs0.size(), kEach);
  EXPECT_NE(sluice->log().find("the schema repository answers again"), std::string::npos);
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
}

TEST_F(SchemaRepositoryTest, EventPlatformVersionsLandInOneTableThatGrowsExactlyOnceInOrder) {
  // /test/click is shipped (schemas.path has it): the repository serves it as /repo/click.
  using Version = EventFactory::PlatformVersion;
  auto retitled = [](const std::string& text) {
    return EventFactory::retitled(text, "/repo/click");
  };
  for (const Version v : {Version::k1_0, Version::k1_1, Version::kRetyped}) {
    const fs::path file = dir_.file("repo") + retitled(EventFactory::platform_schema_file(v));
    fs::create_directories(file.parent_path());
    std::ofstream(file) << retitled(EventFactory::platform_schema_document(v));
  }
  int port = 0;
  auto server = serve(port);
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  const std::string table = "repo_click_1";
  auto columns = [&] {
    std::set<std::string> out;
    for (const auto& r : db_->query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE "
                                    "TABLE_SCHEMA = 'log' AND TABLE_NAME = '" +
                                    table + "'")) {
      out.insert(*r[0]);
    }
    return out;
  };
  // 1.0.0 only: the table is made with its columns.
  Producer producer(broker_->bootstrap());
  constexpr uint64_t kOld = 100, kAll = 300;
  for (uint64_t seq = 0; seq < kOld; ++seq) {
    for (uint32_t p = 0; p < 2; ++p) {
      producer.produce(kTopic, static_cast<int32_t>(p),
                       retitled(EventFactory::platform_event(Version::k1_0, 0, p, seq)));
    }
  }
  producer.flush();
  auto sluice = start_sluice(dir_, config(url));
  ASSERT_TRUE(wait_until([&] { return all_offsets() == static_cast<int64_t>(2 * kOld); }, 120s))
      << sluice->log();
  EXPECT_FALSE(columns().contains("session_id"));
  EXPECT_TRUE(columns().contains("meta_stream"));
  // Then 1.0.0 and 1.1.0 interleaved, and a 1.2.0 that retypes `count`; killed mid-way.
  for (uint64_t seq = kOld; seq < kAll; ++seq) {
    for (uint32_t p = 0; p < 2; ++p) {
      const Version v = seq % 2 == 0 ? Version::k1_1 : Version::k1_0;
      producer.produce(kTopic, static_cast<int32_t>(p),
                       retitled(EventFactory::platform_event(v, 0, p, seq)));
    }
  }
  producer.produce(kTopic, 1,
                   retitled(EventFactory::platform_event(Version::kRetyped, 0, 1, 9999)));
  producer.flush();
  ASSERT_TRUE(wait_until([&] { return all_offsets() > static_cast<int64_t>(2 * kOld + 50); }, 120s))
      << sluice->log();
  sluice->signal(SIGKILL);
  sluice->wait(30s);
  sluice = start_sluice(dir_, config(url), "sluice-restarted.log");
  ASSERT_TRUE(
      wait_until([&] { return all_offsets() == static_cast<int64_t>(2 * kAll + 1); }, 120s))
      << sluice->log();
  expect_exact(table, kAll);
  for (const char* c : {"session_id", "ratio", "count", "action", "$schema", "meta_dt"}) {
    EXPECT_TRUE(columns().contains(c)) << c;
  }
  // The rows of 1.0.0, before the table grew and after, hold NULL where 1.1.0 added fields.
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM " + table + " WHERE session_id IS NULL"),
            static_cast<int64_t>(2 * (kOld + (kAll - kOld) / 2)));
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM " + table +
                   " WHERE ratio = 0.5 AND `$schema` = '/repo/click/1.1.0'"),
            static_cast<int64_t>(kAll - kOld));
  const auto dead = db_->query("SELECT reason FROM sluice_dead_letter");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(*dead[0][0],
            "incompatible_version: /repo/click 1.2.0 is not an additive change of 1.0.0: column "
            "count is BIGINT in 1.0.0 and VARBINARY(1024) in 1.2.0");
  EXPECT_TRUE(fs::exists(dir_.file("cache/repo/click/1.1.0.json")));
  EXPECT_FALSE(fs::exists(dir_.file("cache/repo/click/1.2.0.json"))) << "refused: not kept";
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
}

TEST_F(SchemaRepositoryTest, CheckConfigOnlineAsksTheRepositoryAsTheServiceWould) {
  use_tls();
  Certificates other(dir_, "other");
  int port = 0;
  auto server = serve(port, "tls");
  const std::string url = "https://127.0.0.1:" + std::to_string(port);
  const std::string bin = binary_dir() + "/main/sluice";
  std::string out;
  auto check = [&](const std::string& config) {
    return run_command({bin, "check-config", "--config", config, "--online"}, out);
  };
  ASSERT_EQ(check(config(url, "  ca_file: \"" + certs_->ca() + "\"\n")), 0) << out;
  EXPECT_NE(out.find("\u2714 schemas.repository_url: " + url + " answers (HTTP 404"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\u2714 schemas.cache_path"), std::string::npos) << out;
  EXPECT_NE(out.find("\u2714 mariadb: ALTER works"), std::string::npos) << out;
  // A certificate of another CA, and nothing listening: a failure naming why, and its fix.
  EXPECT_EQ(check(config(url, "  ca_file: \"" + other.ca() + "\"\n")), 1) << out;
  EXPECT_NE(out.find("\u2718 schemas.repository_url: " + url +
                     "/SluiceCheckConfigProbe/1.json: "),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("certificate"), std::string::npos) << out;
  EXPECT_NE(out.find("schemas.ca_file names the CA"), std::string::npos) << out;
  server.reset();
  EXPECT_EQ(check(config(url, "  ca_file: \"" + certs_->ca() + "\"\n")), 1) << out;
  EXPECT_NE(out.find("\u2718 schemas.repository_url: "), std::string::npos) << out;
}

TEST_F(SchemaRepositoryTest, AnHttpsRepositoryMayRedirectToHttpsButNeverToPlainHttp) {
  use_tls();
  int plain_port = 0, tls_port = 0, to_plain = 0, to_tls = 0;
  auto plain = serve(plain_port);
  auto tls = serve(tls_port, "tls");
  auto redirect_plain =
      serve(to_plain, "tls", "http://127.0.0.1:" + std::to_string(plain_port));
  auto redirect_tls = serve(to_tls, "tls", "https://127.0.0.1:" + std::to_string(tls_port));
  const std::string bin = binary_dir() + "/main/sluice";
  const std::string ca = "  ca_file: \"" + certs_->ca() + "\"\n";
  std::string out;
  auto check = [&](int port) {
    return run_command({bin, "check-config", "--config",
                        config("https://127.0.0.1:" + std::to_string(port), ca), "--online"},
                       out);
  };
  EXPECT_EQ(check(to_tls), 0) << out;
  EXPECT_NE(out.find("answers (HTTP 404"), std::string::npos) << out;
  EXPECT_EQ(check(to_plain), 1) << out;
  EXPECT_NE(out.find("\u2718 schemas.repository_url: "), std::string::npos) << out;
  EXPECT_NE(out.find("Protocol \"http\" not supported"), std::string::npos) << out;
  // And the service: an event whose revision sits behind the downgrade waits, never written
  // from plain http, never dead-lettered.
  Producer producer(broker_->bootstrap());
  for (uint64_t seq = 0; seq < 5; ++seq) producer.produce(kTopic, 0, remote_event(0, seq));
  producer.flush();
  auto sluice = start_sluice(
      dir_, config("https://127.0.0.1:" + std::to_string(to_plain), ca, "repo-downgrade"));
  nlohmann::json s;
  ASSERT_TRUE(wait_until(
      [&] {
        s = status(*sluice);
        return s.is_object() && s["schemas"].value("fetch_failures", 0) > 0;
      },
      60s))
      << sluice->log();
  EXPECT_EQ(s["schemas"]["fetched"], 0) << s.dump();
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
  EXPECT_LE(rows("Remote_1"), 0);
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
}

TEST_F(SchemaRepositoryTest, OverHttpsOnlyACertificateOfTheConfiguredCaIsTrusted) {
  use_tls();
  Certificates other(dir_, "other");
  int port = 0;
  auto server = serve(port, "tls");
  Producer producer(broker_->bootstrap());
  constexpr uint64_t kEach = 50;
  for (uint64_t seq = 0; seq < kEach; ++seq) producer.produce(kTopic, 0, remote_event(0, seq));
  producer.flush();
  const std::string url = "https://127.0.0.1:" + std::to_string(port);
  {
    // Another CA: the repository is not trusted, so its events wait; none is dead-lettered.
    // (A group of its own: the next run's consumer starts afresh, not after a session timeout.)
    auto sluice =
        start_sluice(dir_, config(url, "  ca_file: \"" + other.ca() + "\"\n", "repo-other-ca"),
                     "sluice-other-ca.log");
    nlohmann::json s;
    ASSERT_TRUE(wait_until(
        [&] {
          s = status(*sluice);
          return s.is_object() && s["schemas"].value("fetch_failures", 0) > 0;
        },
        60s))
        << sluice->log();
    EXPECT_NE(s["schemas"]["last_error"].get<std::string>().find("certificate"),
              std::string::npos)
        << s.dump();
    EXPECT_EQ(scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
    EXPECT_LE(rows("Remote_1"), 0);
    sluice->signal(SIGTERM);
    EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
  }
  auto sluice = start_sluice(dir_, config(url, "  ca_file: \"" + certs_->ca() + "\"\n"));
  ASSERT_TRUE(wait_until([&] { return rows("Remote_1") == static_cast<int64_t>(kEach); }, 120s))
      << sluice->log();
  expect_exact("Remote_1", kEach);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
}

}  // namespace
}  // namespace sluice::testing
