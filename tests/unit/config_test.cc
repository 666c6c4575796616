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

/// Bad files, each named by the line and key at fault and the reason.
TEST_F(ConfigTest, EachBadValueIsNamedWithItsLineAndKey) {
  struct Case {
    const char* what;
    const char* yaml;
    const char* where;  ///< after the file's path
    const char* reason;
  };
  const Case cases[] = {
      {"an unknown key", "kafka:\n  topics: [a]\nbatch:\n  max_rows: 10\n  max_rowz: 5\n",
       ":5: batch.max_rowz", "unknown key"},
      {"a wrong type", "kafka:\n  topics: [a]\nmariadb:\n  port: \"three\"\n", ":4: mariadb.port",
       "expected an integer"},
      {"a negative size", "kafka:\n  topics: [a]\nspool:\n  max_bytes: -5\n", ":4: spool.max_bytes",
       "must not be negative"},
      {"a YAML syntax error", "kafka:\n  topics: [a\nbatch:\n  max_rows: 1\n", ":",
       "YAML syntax error"},
      {"a missing password file",
       "kafka:\n  topics: [a]\nmariadb:\n  password_file: /nonexistent/pw\n",
       ":4: mariadb.password_file", "cannot read password file"},
      {"a bad enum value", "kafka:\n  topics: [a]\nlog:\n  level: loud\n", ":4: log.level",
       "expected one of"},
      {"an offset reset other than earliest",
       "kafka:\n  topics: [a]\n  properties:\n    auto.offset.reset: latest\n",
       ":4: kafka.properties.auto.offset.reset", "only 'earliest' is allowed"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const auto path = write(c.yaml);
    expect_error(load_config(path), path + c.where, c.reason);
  }
}

TEST_F(ConfigTest, DuplicateKeyIsRefusedNotSilentlyResolved) {
  const auto path =
      write("kafka:\n  topics: [a]\nbatch:\n  max_rows: 10\nbatch:\n  max_rows: 20\n");
  expect_error(load_config(path), path + ":5: batch", "duplicate key");
  const auto inner = write("kafka:\n  topics: [a]\nbatch:\n  max_rows: 10\n  max_rows: 20\n");
  expect_error(load_config(inner), inner + ":5: batch.max_rows", "duplicate key");
}

TEST_F(ConfigTest, DrainLimitsLoadAndANegativeOneIsNamedWithItsLine) {
  auto c = load_config(
      write("kafka:\n  topics: [a]\ndrain:\n  max_rate: 5000\n  max_replica_lag_s: 10\n"));
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->drain.max_rate, 5000);
  EXPECT_EQ(c->drain.max_replica_lag_s, 10);
  const auto path = write("kafka:\n  topics: [a]\ndrain:\n  max_replica_lag_s: -1\n");
  expect_error(load_config(path), path + ":4: drain.max_replica_lag_s", "");
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

TEST_F(ConfigTest, TlsFilesAreCheckedAndReplicasInheritThePrimarysTls) {
  for (const char* f : {"ca.pem", "client.pem", "client.key"}) std::ofstream(dir_.file(f)) << "x";
  const auto path = write(
      "kafka:\n  topics: [t]\nmariadb:\n  host: db1\n  replicas:\n    - host: r1\n"
      "    - host: r2\n      tls:\n        enabled: false\n  tls:\n    enabled: true\n"
      "    ca_file: ca.pem\n    cert_file: client.pem\n    key_file: client.key\n"
      "    verify_server_cert: false\n");
  auto c = load_config(path);
  ASSERT_TRUE(c) << c.status().message();
  const auto& tls = c->mariadb.tls;
  EXPECT_TRUE(tls.enabled);
  EXPECT_EQ(tls.ca_file, dir_.file("ca.pem"));
  EXPECT_EQ(tls.cert_file, dir_.file("client.pem"));
  EXPECT_EQ(tls.key_file, dir_.file("client.key"));
  EXPECT_FALSE(tls.verify_server_cert);
  ASSERT_EQ(c->replicas.size(), 2u);
  EXPECT_EQ(c->replicas[0].tls, tls) << "a replica without tls of its own uses the primary's";
  EXPECT_FALSE(c->replicas[1].tls.enabled);
  EXPECT_TRUE(MariaDbTlsConfig{}.verify_server_cert) << "verification is on unless turned off";
}

TEST_F(ConfigTest, TlsMistakesAreNamedWithTheirKey) {
  std::ofstream(dir_.file("ca.pem")) << "x";
  std::ofstream(dir_.file("client.pem")) << "x";
  const std::string head = "kafka:\n  topics: [t]\nmariadb:\n  tls:\n";
  auto path = write(head + "    enabled: true\n    ca_file: absent.pem\n");
  expect_error(load_config(path), path + ":6: mariadb.tls.ca_file", "cannot read");
  path = write(head + "    enabled: true\n    cert_file: client.pem\n");
  expect_error(load_config(path), "mariadb.tls", "cert_file and key_file go together");
  path = write(head + "    ca_file: ca.pem\n");
  expect_error(load_config(path), "mariadb.tls.enabled", "TLS is off");
  path = write(head + "    enabled: yes please\n");
  expect_error(load_config(path), path + ":5: mariadb.tls.enabled", "expected true or false");
  path = write(head + "    verify: false\n");
  expect_error(load_config(path), path + ":5: mariadb.tls.verify", "unknown key");
}

TEST_F(ConfigTest, AdminOnANonLoopbackAddressNeedsAToken) {
  const std::string head = "kafka:\n  topics: [t]\nadmin:\n";
  auto path = write(head + "  listen: \"0.0.0.0:8470\"\n");
  expect_error(load_config(path), path + ":4: admin.listen", "set admin.token_file");
  path = write(head + "  listen: \"[::]:8470\"\n");
  expect_error(load_config(path), "admin.listen", "not a loopback address");
  std::ofstream(dir_.file("token")) << "t0ken\n";
  path = write(head + "  listen: \"0.0.0.0:8470\"\n  token_file: token\n");
  EXPECT_TRUE(load_config(path)) << "with a token the endpoint may face the network";
  path = write(head + "  listen: \"\"\n");
  EXPECT_TRUE(load_config(path)) << "no endpoint at all";
  path = write(head + "  token_file: absent-token\n");
  expect_error(load_config(path), path + ":4: admin.token_file", "cannot read");
}

TEST_F(ConfigTest, AnAdminEndpointThatCannotBeBoundOrATokenThatIsEmptyFailsHereNotAtStart) {
  const std::string head = "kafka:\n  topics: [t]\nadmin:\n";
  // Each of these passed check-config once and then failed at start (or bound port 4464).
  auto path = write(head + "  listen: \"localhost:8470\"\n");
  expect_error(load_config(path), path + ":4: admin.listen", "not an IP address");
  path = write(head + "  listen: \"127.0.0.1:70000\"\n");
  expect_error(load_config(path), path + ":4: admin.listen", "the port must be 0-65535");
  path = write(head + "  listen: \"127.0.0.1:84x0\"\n");
  expect_error(load_config(path), "admin.listen", "the port must be 0-65535");
  path = write(head + "  listen: \"127.0.0.1\"\n");
  expect_error(load_config(path), "admin.listen", "expected HOST:PORT");
  path = write(head + "  listen: \"::1:8470\"\n");
  expect_error(load_config(path), "admin.listen", "in brackets");
  path = write(head + "  listen: \"[::1:8470\"\n");
  expect_error(load_config(path), "admin.listen", "expected [IPv6]:PORT");
  for (const char* good : {"127.0.0.1:8470", "[::1]:8470", "127.0.0.1:0"}) {
    path = write(head + "  listen: \"" + good + "\"\n");
    EXPECT_TRUE(load_config(path)) << good;
  }
  std::ofstream(dir_.file("empty-token")) << "\n";
  path = write(head + "  token_file: empty-token\n");
  expect_error(load_config(path), path + ":4: admin.token_file", "holds no token");
}

TEST(ConfigLoopbackTest, OnlyLoopbackAddressesCountAsLoopback) {
  for (const char* yes : {"127.0.0.1:8470", "127.1.2.3:1", "localhost:8470", "[::1]:8470",
                          "[::ffff:127.0.0.1]:8470"}) {
    EXPECT_TRUE(is_loopback_listen(yes)) << yes;
  }
  for (const char* no : {"0.0.0.0:8470", "[::]:8470", "10.0.0.1:8470", "db1001:8470",
                         "128.0.0.1:8470", "[::1:8470", ":8470"}) {
    EXPECT_FALSE(is_loopback_listen(no)) << no;
  }
}

TEST_F(ConfigTest, KafkaSaslPasswordComesFromItsFileOnly) {
  std::ofstream(dir_.file("kafka-password")) << "s3cret\nignored\n";
  auto path = write(
      "kafka:\n  topics: [t]\n  sasl_password_file: kafka-password\n  properties:\n"
      "    security.protocol: SASL_SSL\n    sasl.mechanisms: SCRAM-SHA-512\n");
  auto c = load_config(path);
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->kafka.properties.at("sasl.password"), "s3cret");
  EXPECT_EQ(c->kafka.sasl_password_file, dir_.file("kafka-password"));
  path = write(
      "kafka:\n  topics: [t]\n  sasl_password_file: kafka-password\n  properties:\n"
      "    sasl.password: inline\n");
  expect_error(load_config(path), path + ":3: kafka.sasl_password_file", "sets sasl.password too");
  path = write("kafka:\n  topics: [t]\n  sasl_password_file: absent\n");
  expect_error(load_config(path), "kafka.sasl_password_file", "cannot read password file");
}

TEST(ConfigDiffTest, ChangedTlsSettingsNeedARestart) {
  Config a;
  a.kafka.topics = {"t"};
  Config b = a;
  b.mariadb.tls.enabled = true;
  b.mariadb.tls.ca_file = "/etc/sluice/new-ca.pem";
  const auto c = diff_config(a, b);
  EXPECT_FALSE(c.mariadb_endpoint);
  EXPECT_EQ(c.need_restart, std::vector<std::string>{"mariadb.tls"});
}

TEST(ConfigExampleTest, TheShippedExampleSetsEveryKeyAndLoads) {
  // deploy/sluice.example.yaml documents every key; with its secret files made real, it must
  // load as it is, so the example can never drift from what Sluice accepts.
  testing::TempDir dir;
  std::ifstream in(testing::source_dir() + "/deploy/sluice.example.yaml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(text.empty());
  for (const std::string secret : {"/etc/sluice/password", "/etc/sluice/admin-token"}) {
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
  EXPECT_TRUE(c->replicas.empty()) << "the installed config names no made-up replica";
  EXPECT_FALSE(c->mariadb.tls.enabled);
  EXPECT_EQ(c->kafka.topics, std::vector<std::string>{"^eventlogging_.*"});
  // Nothing per host: every host installed from the package gets its own instance id (the host
  // name), and a group renamed by the operator gets its own fleet topic (and pause).
  EXPECT_EQ(c->kafka.instance_id, default_instance_id()) << "the host name";
  EXPECT_EQ(c->fleet.topic, default_fleet_topic(c->kafka.group_id));
  EXPECT_NE(text.find("  # instance_id: "), std::string::npos) << "documented, commented out";
  EXPECT_NE(text.find("  # topic: "), std::string::npos) << "documented, commented out";
  {
    std::string renamed = text;
    const auto g = renamed.find("group_id: \"sluice\"");
    ASSERT_NE(g, std::string::npos);
    renamed.replace(g, 18, "group_id: \"other\"");
    std::ofstream(path) << renamed;
    auto other = load_config(path);
    ASSERT_TRUE(other) << other.status().message();
    EXPECT_EQ(other->fleet.topic, "_sluice_fleet.other") << "a renamed group shares no pause";
    std::ofstream(path) << text;
  }
  EXPECT_EQ(c->replay.confirm_above_events, ReplayConfig{}.confirm_above_events)
      << "the default, spelled out";
  EXPECT_EQ(c->drain.max_replica_lag_s, DrainConfig{}.max_replica_lag_s) << "the default";
  EXPECT_EQ(c->drain.max_rate, DrainConfig{}.max_rate) << "the default";
  for (const char* key : {"brokers:",
                          "group_id:",
                          "topics:",
                          "properties:",
                          "host:",
                          "port:",
                          "socket:",
                          "user:",
                          "password_file:",
                          "database:",
                          "writers:",
                          "connect_timeout_ms:",
                          "io_timeout_ms:",
                          "insert_method:",
                          "replicas:",
                          "max_rows:",
                          "max_bytes:",
                          "max_delay_ms:",
                          "path:",
                          "listen:",
                          "token_file:",
                          "level:",
                          "format:",
                          "sasl_password_file:",
                          "tls:",
                          "enabled:",
                          "ca_file:",
                          "cert_file:",
                          "key_file:",
                          "verify_server_cert:",
                          "topic:",
                          "heartbeat_ms:",
                          "lease_ms:",
                          "instance_id:",
                          "instance_timeout_ms:",
                          "confirm_above_events:",
                          "max_rate:",
                          "max_replica_lag_s:"}) {
    // Set, or (a per-host default) documented and commented out.
    EXPECT_TRUE(text.find(std::string("  ") + key) != std::string::npos ||
                text.find(std::string("  # ") + key) != std::string::npos)
        << key;
  }

  // The commented replica entry is valid too, once uncommented.
  const std::string commented = "  #   replicas:\n  #     - host: \"db1002.example.org\"\n";
  const auto at = text.find(commented);
  ASSERT_NE(at, std::string::npos);
  std::string entry;
  for (size_t line = at; line < text.size() && text.compare(line, 3, "  #") == 0;) {
    const auto end = text.find('\n', line);
    entry += "  " + text.substr(line + 6, end - line - 6) + "\n";
    line = end + 1;
  }
  std::ofstream(dir.file("replica-password")) << "x\n";
  const auto replica_pw = entry.find("/etc/sluice/replica-password");
  ASSERT_NE(replica_pw, std::string::npos) << entry;
  entry.replace(replica_pw, 28, dir.file("replica-password"));
  text.replace(text.find("  replicas: []\n"), 15, entry);
  std::ofstream(path) << text;
  c = load_config(path);
  ASSERT_TRUE(c) << c.status().message() << "\n" << entry;
  ASSERT_EQ(c->replicas.size(), 1u);
  EXPECT_EQ(c->replicas[0].host, "db1002.example.org");
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST(ConfigTextTest, TextParsesLikeAFileAndNamesThePathGiven) {
  auto c = parse_config("kafka:\n  topics: [a]\nbatch:\n  max_rows: 7\n", "/etc/sluice/x.yaml");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->batch.max_rows, 7);
  EXPECT_EQ(c->schemas_path, "/etc/sluice/schemas");
  auto bad = parse_config("kafka:\n  topics: [a]\nbatch:\n  max_rowz: 7\n", "/etc/sluice/x.yaml");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message().rfind("/etc/sluice/x.yaml:4: batch.max_rowz: unknown key", 0),
            0u)
      << bad.status().message();
}

TEST(ConfigTextTest, APasswordFileThatIsNotARegularFileIsRefusedNotReadForever) {
  for (const char* path : {"/dev/zero", "/dev/stdin", "/tmp"}) {
    auto c = parse_config(
        std::string("kafka:\n  topics: [a]\nmariadb:\n  password_file: ") + path + "\n", "/x.yaml");
    ASSERT_FALSE(c.is_ok()) << path;
    EXPECT_NE(c.status().message().find("cannot read password file"), std::string::npos);
  }
}

TEST_F(ConfigTest, ASchemaRepositoryLoadsWithItsCacheBesideTheSpoolAndABadUrlIsNamed) {
  auto c = load_config(write(
      "kafka:\n  topics: [a]\nspool:\n  path: \"/srv/sluice/spool\"\nschemas:\n"
      "  repository_url: \"https://schemas.example.org/jsonschema/\"\n  timeout_ms: 3000\n"));
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->schema_repository.url, "https://schemas.example.org/jsonschema");
  EXPECT_EQ(c->schema_repository.cache_path, "/srv/sluice/schema-cache");
  EXPECT_EQ(c->schema_repository.timeout_ms, 3000);
  EXPECT_EQ(c->schemas_path, dir_.path() + "/schemas") << "schemas.path keeps its default";
  const auto ftp = write("kafka:\n  topics: [a]\nschemas:\n  repository_url: \"ftp://x/\"\n");
  expect_error(load_config(ftp), ftp + ":4: schemas.repository_url",
               "expected an http:// or https:// URL");
  const auto ca = write("kafka:\n  topics: [a]\nschemas:\n  ca_file: \"/nonexistent.pem\"\n");
  expect_error(load_config(ca), ca + ":4: schemas.ca_file", "");
}

}  // namespace
}  // namespace sluice
