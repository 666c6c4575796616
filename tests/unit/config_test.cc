#include "common/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "testing/harness.h"

namespace sluice {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    const std::string path = dir_.file("c" + std::to_string(n_++) + ".yaml");
    std::ofstream(path) << text;
    return path;
  }
  testing::TempDir dir_;
  int n_ = 0;
};

constexpr const char* kValid = R"(kafka:
  brokers: "127.0.0.1:9092"
  group_id: "g"
  topics: ["eventlogging_NavigationTiming", "^eventlogging_.*"]
  properties:
    fetch.wait.max.ms: "50"
mariadb:
  host: "db1"
  port: 3307
  user: "sluice"
  database: "log"
  writers: 3
batch:
  max_rows: 1000
  max_bytes: 1048576
  max_delay_ms: 250
spool:
  path: "spool"
  max_bytes: 1073741824
schemas:
  path: "myschemas"
admin:
  listen: "127.0.0.1:9999"
)";

TEST_F(ConfigTest, ValidFileLoadsEveryKeyAndResolvesRelativePaths) {
  const auto path = write(kValid);
  auto c = load_config(path);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->kafka.topics.size(), 2u);
  EXPECT_EQ(c->kafka.properties.at("fetch.wait.max.ms"), "50");
  EXPECT_EQ(c->mariadb.port, 3307);
  EXPECT_EQ(c->mariadb.writers, 3);
  EXPECT_EQ(c->batch.max_rows, 1000);
  EXPECT_EQ(c->batch.max_delay_ms, 250);
  EXPECT_EQ(c->spool.max_bytes, 1073741824);
  EXPECT_EQ(c->schemas_path, dir_.path() + "/myschemas");
  EXPECT_EQ(c->spool.path, dir_.path() + "/spool");
}

void expect_error(const Result<Config>& c, const std::string& where, const std::string& what) {
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find(where), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find(what), std::string::npos) << c.status().message();
}

TEST_F(ConfigTest, UnknownKeyIsNamedWithItsLine) {
  const auto path = write("kafka:\n  topics: [a]\nbatch:\n  max_rows: 10\n  max_rowz: 5\n");
  expect_error(load_config(path), path + ":5: batch.max_rowz", "unknown key");
}

TEST_F(ConfigTest, DuplicateKeyIsRefusedNotSilentlyResolved) {
  const auto path =
      write("kafka:\n  topics: [a]\nbatch:\n  max_rows: 10\nbatch:\n  max_rows: 20\n");
  expect_error(load_config(path), path + ":5: batch", "duplicate key");
  const auto inner = write("kafka:\n  topics: [a]\nbatch:\n  max_rows: 10\n  max_rows: 20\n");
  expect_error(load_config(inner), inner + ":5: batch.max_rows", "duplicate key");
}

TEST_F(ConfigTest, WrongTypeIsNamedWithItsLine) {
  const auto path = write("kafka:\n  topics: [a]\nmariadb:\n  port: \"three\"\n");
  expect_error(load_config(path), path + ":4: mariadb.port", "expected an integer");
}

TEST_F(ConfigTest, NegativeSizeIsRefused) {
  const auto path = write("kafka:\n  topics: [a]\nspool:\n  max_bytes: -5\n");
  expect_error(load_config(path), path + ":4: spool.max_bytes", "must not be negative");
}

TEST_F(ConfigTest, YamlSyntaxErrorGivesTheLine) {
  const auto path = write("kafka:\n  topics: [a\nbatch:\n  max_rows: 1\n");
  expect_error(load_config(path), path + ":", "YAML syntax error");
}

TEST_F(ConfigTest, MissingPasswordFileIsNamed) {
  const auto path = write("kafka:\n  topics: [a]\nmariadb:\n  password_file: /nonexistent/pw\n");
  expect_error(load_config(path), path + ":4: mariadb.password_file", "cannot read password file");
}

TEST_F(ConfigTest, PasswordIsReadFromItsFile) {
  std::ofstream(dir_.file("pw")) << "s3cret\n";
  const auto path = write("kafka:\n  topics: [a]\nmariadb:\n  password_file: pw\n");
  auto c = load_config(path);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->mariadb.password, "s3cret");
}

TEST_F(ConfigTest, TopicsAreRequired) {
  const auto path = write("kafka:\n  brokers: x\n");
  expect_error(load_config(path), "kafka.topics", "at least one topic");
}

TEST_F(ConfigTest, BadEnumValueIsNamed) {
  const auto path = write("kafka:\n  topics: [a]\nlog:\n  level: loud\n");
  expect_error(load_config(path), path + ":4: log.level", "expected one of");
}

TEST_F(ConfigTest, AnOffsetResetOtherThanEarliestIsRefusedWithTheReason) {
  const auto path = write("kafka:\n  topics: [a]\n  properties:\n    auto.offset.reset: latest\n");
  expect_error(load_config(path), path + ":4: kafka.properties.auto.offset.reset",
               "only 'earliest' is allowed");
}

TEST_F(ConfigTest, PropertiesThatCarrySluicesPromisesAreRefused) {
  for (const char* key : {"enable.auto.commit", "group.instance.id", "group.id"}) {
    const auto path =
        write(std::string("kafka:\n  topics: [a]\n  properties:\n    ") + key + ": \"x\"\n");
    expect_error(load_config(path), path + ":4: kafka.properties." + key, "managed by Sluice");
  }
}

TEST_F(ConfigTest, TheInstanceIdDefaultsToTheHostNameAndMustBeAMemberName) {
  auto config = load_config(write("kafka:\n  topics: [a]\n"));
  ASSERT_TRUE(config);
  EXPECT_EQ(config->kafka.instance_id, default_instance_id());
  EXPECT_FALSE(config->kafka.instance_id.empty());
  config = load_config(write("kafka:\n  topics: [a]\n  instance_id: db-ingest-2\n"));
  ASSERT_TRUE(config);
  EXPECT_EQ(config->kafka.instance_id, "db-ingest-2");
  const auto path = write("kafka:\n  topics: [a]\n  instance_id: \"two words\"\n");
  expect_error(load_config(path), path + ":3: kafka.instance_id", "[A-Za-z0-9._-]");
}

TEST_F(ConfigTest, MissingFileIsReported) {
  expect_error(load_config(dir_.file("absent.yaml")), "absent.yaml", "cannot read");
}

TEST(ConfigDiffTest, EndpointAndLogLevelAreReloadableEverythingElseNeedsARestart) {
  Config a;
  a.kafka.topics = {"t"};
  Config b = a;
  EXPECT_FALSE(diff_config(a, b).mariadb_endpoint);
  EXPECT_TRUE(diff_config(a, b).need_restart.empty());

  b.mariadb.host = "10.0.0.2";
  b.mariadb.password = "rotated";
  b.log.level = "debug";
  auto c = diff_config(a, b);
  EXPECT_TRUE(c.mariadb_endpoint);
  EXPECT_TRUE(c.log_level);
  EXPECT_TRUE(c.need_restart.empty());

  b.mariadb.database = "other";
  b.batch.max_rows = 10;
  b.kafka.topics = {"t", "u"};
  c = diff_config(a, b);
  EXPECT_EQ(c.need_restart,
            (std::vector<std::string>{"kafka.topics", "mariadb.database", "batch.max_rows"}));
  EXPECT_EQ(describe_endpoint(b.mariadb), "sluice@10.0.0.2:3306");
}

TEST(ConfigReplicasTest, ReplicasAreEndpointsWithThePrimarysDatabaseByDefault) {
  testing::TempDir dir;
  const std::string pw = dir.file("pw");
  std::ofstream(pw) << "secret\n";
  const std::string path = dir.file("c.yaml");
  std::ofstream(path) << "kafka:\n  topics: [t]\nmariadb:\n  database: log\n  replicas:\n    - "
                         "host: r1\n      port: 3307\n"
                         "      password_file: \""
                      << pw << "\"\n    - socket: /tmp/r2.sock\n      database: other\n";
  auto c = load_config(path);
  ASSERT_TRUE(c) << c.status().message();
  ASSERT_EQ(c->replicas.size(), 2u);
  EXPECT_EQ(c->replicas[0].host, "r1");
  EXPECT_EQ(c->replicas[0].port, 3307);
  EXPECT_EQ(c->replicas[0].password, "secret");
  EXPECT_EQ(c->replicas[0].database, "log");
  EXPECT_EQ(c->replicas[1].socket, "/tmp/r2.sock");
  EXPECT_EQ(c->replicas[1].database, "other");

  std::ofstream(path) << "kafka:\n  topics: [t]\nmariadb:\n  replicas:\n    - host: r1\n"
                         "      writers: 3\n";
  c = load_config(path);
  ASSERT_FALSE(c);
  EXPECT_NE(c.status().message().find(":6: mariadb.replicas[0].writers: unknown key"),
            std::string::npos)
      << c.status().message();
}

TEST(ConfigExampleTest, TheShippedExampleSetsEveryKeyAndLoads) {
  // deploy/sluice.example.yaml documents every key; with its secret files made real, it must
  // load as it is, so the example can never drift from what Sluice accepts.
  testing::TempDir dir;
  std::ifstream in(testing::source_dir() + "/deploy/sluice.example.yaml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(text.empty());
  for (const std::string secret :
       {"/etc/sluice/password", "/etc/sluice/replica-password", "/etc/sluice/admin-token"}) {
    const auto at = text.find(secret);
    ASSERT_NE(at, std::string::npos) << secret;
    const std::string local = dir.file(secret.substr(secret.rfind('/') + 1));
    std::ofstream(local) << "x\n";
    text.replace(at, secret.size(), local);
  }
  const std::string path = dir.file("sluice.yaml");
  std::ofstream(path) << text;
  auto c = load_config(path);
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->replicas.size(), 1u);
  EXPECT_EQ(c->kafka.topics, std::vector<std::string>{"^eventlogging_.*"});
  EXPECT_EQ(c->kafka.instance_id, "db-ingest-1");
  for (const char* key : {"brokers:",       "group_id:",      "topics:",   "properties:",
                          "host:",          "port:",          "socket:",   "user:",
                          "password_file:", "database:",      "writers:",  "connect_timeout_ms:",
                          "io_timeout_ms:", "insert_method:", "replicas:", "max_rows:",
                          "max_bytes:",     "max_delay_ms:",  "path:",     "listen:",
                          "token_file:",    "level:",         "format:"}) {
    EXPECT_NE(text.find(std::string("  ") + key), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace sluice
